"""Batch readers for .npz, .npy, .csv and .parquet: rows stream in, never the whole file."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..compiler.array_files import NpzArchive, check_size, read_header, read_rows
from ..compiler.files import regular_input
from ..compiler.source import user_error

Batch = dict[str, np.ndarray]


class Source:
    """A named set of equally long columns (tabular) or arrays (npz/npy), read in row batches."""

    path: str
    names: list[str]
    num_rows: int | None
    tabular: bool
    cells: bool = False     # a table of cells that may be missing (CSV, Parquet): --on-missing applies

    def batches(self, batch_size: int, start: int = 0) -> Iterator[Batch]:
        raise NotImplementedError

    def located(self, batch_size: int, start: int = 0) -> Iterator["Located"]:
        """The batches with where they come from: the file's source and the 0-based row of each batch's first
        row in that file (for messages that name a row)."""
        row = start
        for batch in self.batches(batch_size, start):
            yield self, row, batch
            row += len(next(iter(batch.values()))) if batch else 0

    def shape_of(self, name: str) -> tuple[int, ...]:
        """The shape of one row of a column or array (() for a table's column)."""
        return ()

    def select(self, names: list[str]) -> None:
        """Read only these columns or arrays from now on (a table reads them all: no-op)."""


Located = tuple[Source, int, Batch]   # a batch, the file it comes from, the row of its first row in that file


class NpySource(Source):
    """One array, read batch by batch with plain file reads: memory stays one batch, whatever the file size.

    (A memory map would do, but its pages count as resident: a 4 GB file would show 4 GB of RSS.)
    """

    tabular = False

    def __init__(self, path: str):
        self.path = path
        try:
            with open(path, "rb") as f:
                self.header = read_header(f, path)
                check_size(self.header, os.fstat(f.fileno()).st_size, path)
        except OSError as e:
            raise user_error(f"cannot read {path}: {e}") from None
        self.shape, self.dtype = self.header.shape, self.header.dtype
        if not self.shape:
            raise user_error(f"{path} holds a scalar, not rows")
        self.names = [Path(path).stem]
        self.num_rows = self.shape[0]

    def shape_of(self, name: str) -> tuple[int, ...]:
        return tuple(self.shape[1:])

    def batches(self, batch_size: int, start: int = 0) -> Iterator[Batch]:
        with open(self.path, "rb", buffering=0) as f:
            f.seek(self.header.offset + start * self.header.row_bytes)
            for lo in range(start, self.num_rows, batch_size):
                yield {self.names[0]: read_rows(f, self.header, min(batch_size, self.num_rows - lo), self.path)}

    def as_table(self) -> "Source":
        """A 2-D array seen as a table whose columns are named "0", "1", ... (so --target 8 works)."""
        if len(self.shape) != 2:
            raise user_error(f"{self.path} has shape {list(self.shape)}; only a 2-D .npy has columns for --target")
        return NpyTable(self)


def nan_row_mask(values: np.ndarray) -> np.ndarray:
    """Rows of a float array [rows, ...] with a NaN anywhere in them."""
    return np.isnan(values.reshape(len(values), -1)).any(axis=1)


class NpyTable(Source):
    tabular = True

    def __init__(self, array: NpySource):
        self.array, self.path = array, array.path
        self.names = [str(j) for j in range(array.shape[1])]
        self.num_rows = array.num_rows

    def batches(self, batch_size: int, start: int = 0) -> Iterator[Batch]:
        for batch in self.array.batches(batch_size, start):
            values = next(iter(batch.values()))
            yield {name: values[:, j] for j, name in enumerate(self.names)}


class NpzSource(Source):
    """Arrays of an .npz read row by row through zipfile (stored or deflated), never loaded whole: names,
    shapes and sizes come from the headers, checked against the zip directory before any row is read."""

    tabular = False

    def __init__(self, path: str):
        self.path = path
        self.archive = NpzArchive(path)
        self.members = dict(self.archive.headers)
        self.names = list(self.members)
        lengths = {m.shape[0] for m in self.members.values() if m.shape}
        self.num_rows = min(lengths) if lengths else 0

    def shape_of(self, name: str) -> tuple[int, ...]:
        return tuple(self.members[name].shape[1:])

    def select(self, names: list[str]) -> None:
        """Read only the arrays used: others (metadata, scalars) neither shorten the rows nor get read."""
        members = {n: self.members[n] for n in dict.fromkeys(names)}
        scalars = [n for n, m in members.items() if not m.shape]
        if scalars:
            raise user_error(f"{self.path}: array '{scalars[0]}' is a scalar, not rows")
        lengths = {m.shape[0] for m in members.values()}
        if len(lengths) > 1:
            listed = ", ".join(f"'{n}' {m.shape[0]}" for n, m in members.items())
            raise user_error(f"{self.path}: the arrays used differ in their number of rows ({listed})")
        self.members = members
        self.num_rows = lengths.pop() if lengths else 0

    def batches(self, batch_size: int, start: int = 0) -> Iterator[Batch]:
        handles = {}
        try:
            for name in self.members:
                handles[name] = self.archive.open(name, start)  # zipfile checks each member's CRC at its end
            for lo in range(start, self.num_rows, batch_size):
                rows = min(batch_size, self.num_rows - lo)
                yield {name: read_rows(f, self.members[name], rows, f"{self.path}: array '{name}'")
                       for name, f in handles.items()}
        finally:
            for f in handles.values():
                f.close()


class ArrowSource(Source):
    """CSV or Parquet through pyarrow's streaming readers, re-cut into batches of exactly batch_size rows."""

    tabular = True
    cells = True

    def __init__(self, path: str):
        import pyarrow as pa
        self.path = path
        self.parquet = Path(path).suffix == ".parquet"
        try:
            if self.parquet:
                import pyarrow.parquet as pq
                self.file = pq.ParquetFile(path)
                self.schema = self.file.schema_arrow
                self.num_rows = self.file.metadata.num_rows
            else:
                self.schema = self._csv_reader().schema
                self.num_rows = None
        except (OSError, pa.ArrowInvalid) as e:
            raise user_error(f"cannot read {path}: {e}") from None
        self.names = list(self.schema.names)

    def _csv_reader(self, column_types: dict | None = None):  # noqa: ANN202 - pyarrow type
        import pyarrow.csv as pcsv
        convert = pcsv.ConvertOptions(column_types=column_types or {}, strings_can_be_null=column_types is not None)
        return pcsv.open_csv(self.path, read_options=pcsv.ReadOptions(block_size=1 << 22), convert_options=convert)

    def _record_batches(self, batch_size: int):  # noqa: ANN202
        if self.parquet:
            return self.file.iter_batches(batch_size=batch_size)
        return self._csv_reader()

    def batches(self, batch_size: int, start: int = 0) -> Iterator[Batch]:
        import pyarrow as pa
        pending: list = []
        held = 0
        skip = start
        try:
            for rb in self._record_batches(batch_size):
                if skip:
                    cut = min(skip, rb.num_rows)
                    rb, skip = rb.slice(cut), skip - cut
                pending.append(rb)
                held += rb.num_rows
                while held >= batch_size:
                    table = pa.Table.from_batches(pending).combine_chunks()
                    yield self._columns(table.slice(0, batch_size))
                    rest = table.slice(batch_size)
                    pending, held = rest.to_batches(), rest.num_rows
            if held:
                yield self._columns(pa.Table.from_batches(pending))
        except pa.ArrowInvalid as e:
            bad = None if self.parquet else self._bad_cell()  # a text cell past the block the types came from
            raise bad or user_error(f"cannot read {self.path}: {e}") from None

    def _bad_cell(self) -> Exception | None:
        """The first cell of a CSV that its column's type (inferred from the first block) cannot hold, by row,
        column and value: the file read again as text, only when the streaming reader failed."""
        import pyarrow as pa
        typed = {f.name: f.type for f in self.schema if not pa.types.is_string(f.type)}
        row = 0
        for rb in self._csv_reader({name: pa.string() for name in typed}):
            for name, kind in typed.items():
                cells = rb.column(name)
                try:
                    cells.cast(kind)
                    continue
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    pass
                for i, cell in enumerate(cells.to_pylist()):
                    try:
                        pa.scalar(cell, pa.string()).cast(kind)
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                        return not_a_number(self.path, row + i, name, cell, str(kind))
            row += rb.num_rows
        return None

    def _columns(self, table) -> Batch:  # noqa: ANN001
        out = {}
        for name, column in zip(table.column_names, table.columns):
            out[name] = column.to_numpy(zero_copy_only=False)
        return out


def not_a_number(path: str, row: int, column: str, value: Any, kind: str = "number") -> Exception:
    """A text cell in a column of numbers, by 1-based row (the header not counted), column and value."""
    what = "an integer" if kind.startswith(("int", "uint")) else \
        "a number" if kind in ("number", "double") or kind.startswith(("float", "halffloat")) else f"a {kind} value"
    return user_error(f"{path} row {row + 1}, column '{column}': {value!r} is not {what}")


def prefetch(batches: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """Produce batches in a background thread while the caller runs the model (onnxruntime drops the GIL)."""
    import queue
    import threading

    slots: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in batches:
                while not stop.is_set():
                    try:
                        slots.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put((done, None))
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
            slots.put((done, e))

    worker = threading.Thread(target=produce, name="modelc-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, err = slots.get()
            if err is not None:
                raise err
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while not slots.empty():
            slots.get_nowait()
        worker.join(timeout=5)


READERS = {".npy": NpySource, ".npz": NpzSource, ".csv": ArrowSource, ".parquet": ArrowSource}


def open_source(path: str) -> Source:
    suffix = Path(path).suffix.lower()
    if suffix not in READERS:
        raise user_error(f"cannot read {path}: data must be .npz, .npy, .csv or .parquet")
    if not Path(path).exists():
        raise user_error(f"cannot read {path}: no such file")
    regular_input(path, "data")
    return READERS[suffix](path)
