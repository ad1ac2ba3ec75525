"""Predictions files: each output's rows are appended to a raw scratch file batch by batch (memory stays
bounded), then the final file is assembled in the format its suffix names, written atomically."""
from __future__ import annotations

import shutil
import zipfile
from pathlib import Path
from typing import IO, Any, Callable, Sequence

import numpy as np

from ..compiler.files import atomic_write
from ..compiler.source import user_error
from .defaults import PREDICTION_FORMATS
from .session import TensorSpec

TABLE_CHUNK = 1 << 16   # rows per table written to .parquet/.csv


class RawColumns:
    """Each column's rows (outputs, and data columns kept beside them) appended to a raw temporary file in
    `folder`; the final format is assembled at the end. Text (IDs a table holds as Python objects) goes to an
    Arrow stream instead, as strings."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.files: dict[str, IO[bytes]] = {}
        self.meta: dict[str, tuple[np.dtype, tuple[int, ...]]] = {}
        self.texts: dict[str, Any] = {}         # name -> its Arrow stream writer
        self.widths: dict[str, int] = {}        # name -> its longest string (for the fixed-width .npz array)
        self.rows = 0

    def append(self, outputs: dict[str, np.ndarray]) -> None:
        for name, value in outputs.items():
            if name not in self.files:
                self.files[name] = open(self.folder / f"{len(self.files)}.raw", "wb")  # noqa: SIM115
                self.meta[name] = (value.dtype, value.shape[1:])
            if self.meta[name][0].hasobject:
                self._append_text(name, value)
                continue
            self.files[name].write(np.ascontiguousarray(self._same_dtype(name, value)).tobytes())
        self.rows += len(next(iter(outputs.values())))

    def _same_dtype(self, name: str, value: np.ndarray) -> np.ndarray:
        """A kept column read as int64 in one batch and float64 in another (a missing value) cannot be cast."""
        dtype = self.meta[name][0]
        if value.dtype == dtype:
            return value
        if not np.can_cast(value.dtype, dtype, casting="same_kind"):
            raise user_error(f"column '{name}' holds {dtype.name} in its first rows and {value.dtype.name} after "
                             f"row {self.rows} (a missing value?); it cannot be written as one column")
        return value.astype(dtype)

    def _append_text(self, name: str, value: np.ndarray) -> None:
        """Text cells in row-major order ([batch, k]: k cells a row), as one Arrow column of strings."""
        import pyarrow as pa
        import pyarrow.compute as pc
        if value.shape[1:] != self.meta[name][1]:
            raise user_error(f"output '{name}' is {list(value.shape[1:])} a row after {list(self.meta[name][1])}")
        try:
            cells = pa.array(value.reshape(-1), from_pandas=True).cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
            raise user_error(f"column '{name}' cannot be written to the predictions as text: {e}") from None
        if name not in self.texts:
            self.texts[name] = pa.ipc.new_stream(self.files[name], pa.schema([(name, pa.string())]))
        self.texts[name].write_batch(pa.record_batch([cells], names=[name]))
        lengths = pc.max(pc.utf8_length(cells)).as_py()
        self.widths[name] = max(self.widths.get(name, 1), lengths or 0)

    def append_empty(self, outputs: list[TensorSpec], names: list[str], kept: Sequence[str] = ()) -> None:
        """No rows came: still give each output its dtype and trailing shape (unknown sizes as 0), and each
        kept column a column of text."""
        self.append({**{k: np.empty(0, object) for k in kept},
                     **{o.name: np.empty((0, *[d if isinstance(d, int) else 0 for d in o.shape[1:]]), o.dtype)
                        for o in outputs if o.name in names}})

    def close(self) -> None:
        for writer in self.texts.values():
            writer.close()
        self.texts = {}
        for f in self.files.values():
            f.close()

    def text(self, name: str, lo: int, hi: int) -> Any:
        """Rows lo..hi of a text column, as Arrow strings (row-major: `cells` a row)."""
        import pyarrow as pa
        cells = self.cells(name)
        with pa.memory_map(self.files[name].name) as source:
            return pa.ipc.open_stream(source).read_all().column(0).slice(lo * cells, (hi - lo) * cells) \
                .combine_chunks()

    def cells(self, name: str) -> int:
        """Values a row of a column holds: 1 for [batch], k for [batch, k]."""
        return int(np.prod(self.meta[name][1], dtype=np.int64))

    def write_npy(self, name: str, out: IO[bytes]) -> None:
        dtype, tail = self.meta[name]
        if dtype.hasobject:  # text as a fixed-width unicode array, missing cells as ""
            dtype = np.dtype(f"<U{self.widths.get(name, 1)}")
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                  "shape": (self.rows, *tail)}
        np.lib.format.write_array_header_2_0(out, header)
        if self.meta[name][0].hasobject:
            for lo in range(0, self.rows, TABLE_CHUNK):
                cells = self.text(name, lo, min(lo + TABLE_CHUNK, self.rows)).fill_null("")
                out.write(np.asarray(cells.to_pylist(), dtype=dtype).tobytes())
            return
        with open(self.files[name].name, "rb") as raw:
            shutil.copyfileobj(raw, out, 1 << 22)

    def memmap(self, name: str) -> np.ndarray:
        dtype, tail = self.meta[name]
        if self.rows == 0:
            return np.empty((0, *tail), dtype)
        return np.memmap(self.files[name].name, dtype=dtype, mode="r", shape=(self.rows, *tail))

    def table_columns(self, lo: int, hi: int) -> dict[str, Any]:
        """Outputs as table columns: [batch] -> NAME, [batch, k] -> NAME_0 .. NAME_{k-1} (NAME when k = 1);
        kept columns as they are."""
        cols: dict[str, Any] = {}
        for name in self.files:
            if self.meta[name][0].hasobject and self.cells(name) == 1:
                cols[name] = self.text(name, lo, hi)
                continue
            if self.meta[name][0].hasobject:   # [batch, k] text: NAME_0 .. NAME_{k-1}, as numbers are
                flat = self.text(name, lo, hi)
                for j in range(self.cells(name)):
                    cols[f"{name}_{j}"] = flat.take(np.arange(j, len(flat), self.cells(name)))
                continue
            values = self.memmap(name)[lo:hi]
            flat = values.reshape(len(values), int(np.prod(values.shape[1:], dtype=np.int64)))  # -1 fails on 0 rows
            if values.ndim == 1 or flat.shape[1] == 1:
                cols[name] = np.asarray(flat[:, 0])
            else:
                for j in range(flat.shape[1]):
                    cols[f"{name}_{j}"] = np.asarray(flat[:, j])
        return cols


def _write_npy(raw: RawColumns, tmp: Path) -> None:
    if len(raw.files) != 1:
        raise user_error(f"a .npy holds one array, the model has {len(raw.files)} outputs; use .npz")
    with open(tmp, "wb") as out:
        raw.write_npy(next(iter(raw.files)), out)


def _write_npz(raw: RawColumns, tmp: Path) -> None:
    with zipfile.ZipFile(tmp, "w", allowZip64=True) as z:
        for name in raw.files:
            with z.open(f"{name}.npy", "w", force_zip64=True) as out:
                raw.write_npy(name, out)


def _table_writer(open_writer: Callable[[str, Any], Any]) -> Callable[[RawColumns, Path], None]:
    """A writer of tables TABLE_CHUNK rows at a time, through pyarrow."""
    def write(raw: RawColumns, tmp: Path) -> None:
        import pyarrow as pa
        first = pa.table(raw.table_columns(0, min(TABLE_CHUNK, raw.rows)))
        with open_writer(str(tmp), first.schema) as writer:
            writer.write_table(first)
            for lo in range(TABLE_CHUNK, raw.rows, TABLE_CHUNK):
                writer.write_table(pa.table(raw.table_columns(lo, min(lo + TABLE_CHUNK, raw.rows))))
    return write


def _parquet(path: str, schema: Any) -> Any:
    import pyarrow.parquet as pq
    return pq.ParquetWriter(path, schema)


def _csv(path: str, schema: Any) -> Any:
    import pyarrow.csv as pcsv
    return pcsv.CSVWriter(path, schema)


_BY_FORMAT = {"npz": _write_npz, "npy": _write_npy, "parquet": _table_writer(_parquet), "csv": _table_writer(_csv)}
WRITERS: dict[str, Callable[[RawColumns, Path], None]] = {f: _BY_FORMAT[f] for f in PREDICTION_FORMATS}


def format_of(path: str | Path) -> str:
    """The format a predictions file's suffix names, or a user error listing those there are."""
    fmt = Path(path).suffix.lstrip(".")
    if fmt not in WRITERS:
        raise user_error(f"predictions go to {', '.join('.' + f for f in WRITERS)}, got {path}")
    return fmt


def write_predictions(raw: RawColumns, path: str | Path) -> None:
    """The raw columns as the file `path` names, written atomically."""
    write = WRITERS[format_of(path)]
    with atomic_write(path) as (tmp,):
        write(raw, tmp)
