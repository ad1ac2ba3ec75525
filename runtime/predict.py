"""`modelc run`: predictions streamed to .npz/.npy/.parquet/.csv, written atomically."""
from __future__ import annotations

import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .columns import feeds_for, plan_columns
from .evaluate import DEFAULT_BATCH, LoadedModel, Progress, atomic_path, load_model, model_inputs, user_error
from .session import Session

WRITERS = (".npz", ".npy", ".parquet", ".csv")


class RawColumns:
    """Each output's rows appended to a raw temporary file; the final format is assembled at the end."""

    def __init__(self, folder: str):
        self.folder = folder
        self.files: dict[str, Any] = {}
        self.meta: dict[str, tuple[np.dtype, tuple[int, ...]]] = {}
        self.rows = 0

    def append(self, outputs: dict[str, np.ndarray]) -> None:
        for name, value in outputs.items():
            if name not in self.files:
                self.files[name] = open(Path(self.folder) / f"{len(self.files)}.raw", "wb")  # noqa: SIM115
                self.meta[name] = (value.dtype, value.shape[1:])
            self.files[name].write(np.ascontiguousarray(value).tobytes())
        self.rows += len(next(iter(outputs.values())))

    def close(self) -> None:
        for f in self.files.values():
            f.close()

    def write_npy(self, name: str, out: Any) -> None:
        dtype, tail = self.meta[name]
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                  "shape": (self.rows, *tail)}
        np.lib.format.write_array_header_2_0(out, header)
        with open(self.files[name].name, "rb") as raw:
            shutil.copyfileobj(raw, out, 1 << 22)

    def memmap(self, name: str) -> np.ndarray:
        dtype, tail = self.meta[name]
        if self.rows == 0:
            return np.empty((0, *tail), dtype)
        return np.memmap(self.files[name].name, dtype=dtype, mode="r", shape=(self.rows, *tail))


def table_columns(raw: RawColumns, lo: int, hi: int) -> dict[str, np.ndarray]:
    """Outputs as table columns: [batch] -> NAME, [batch, k] -> NAME_0 .. NAME_{k-1} (NAME when k = 1)."""
    cols = {}
    for name in raw.files:
        values = raw.memmap(name)[lo:hi]
        flat = values.reshape(len(values), int(np.prod(values.shape[1:], dtype=np.int64)))  # -1 fails on 0 rows
        if values.ndim == 1 or flat.shape[1] == 1:
            cols[name] = np.asarray(flat[:, 0])
        else:
            for j in range(flat.shape[1]):
                cols[f"{name}_{j}"] = np.asarray(flat[:, j])
    return cols


def write_predictions(raw: RawColumns, path: str, chunk: int = 1 << 16) -> None:
    suffix = Path(path).suffix
    with atomic_path(path) as tmp:
        if suffix == ".npy":
            if len(raw.files) != 1:
                raise user_error(f"a .npy holds one array, the model has {len(raw.files)} outputs; use .npz")
            with open(tmp, "wb") as out:
                raw.write_npy(next(iter(raw.files)), out)
        elif suffix == ".npz":
            with zipfile.ZipFile(tmp, "w", allowZip64=True) as z:
                for name in raw.files:
                    with z.open(f"{name}.npy", "w", force_zip64=True) as out:
                        raw.write_npy(name, out)
        else:
            import pyarrow as pa
            first = pa.table(table_columns(raw, 0, min(chunk, raw.rows)))
            if suffix == ".parquet":
                import pyarrow.parquet as pq
                writer = pq.ParquetWriter(str(tmp), first.schema)
            else:
                import pyarrow.csv as pcsv
                writer = pcsv.CSVWriter(str(tmp), first.schema)
            with writer:
                writer.write_table(first)
                for lo in range(chunk, raw.rows, chunk):
                    writer.write_table(pa.table(table_columns(raw, lo, min(lo + chunk, raw.rows))))


def run(model: Any, data: str, output_path: str, *, provider: str = "cpu", batch_size: int = DEFAULT_BATCH,
        outputs: list[str] | None = None, columns: dict[str, list[str]] | None = None,
        progress: bool | None = None, engine: str | None = None, client: Any = None, scheduler: str | None = None,
        workers: int | None = None, partition_rows: int | None = None, output_format: str | None = None,
        **compile_options: Any) -> dict[str, Any]:
    """Run a model over a data file in batches and write its predictions. Returns a summary.

    Data may be a glob, a directory or a list of files. `output_path` a directory (`predictions/`): one file per
    input partition (--format, default parquet), skipping those already written; engine="dask" runs them on Dask."""
    from .distributed import run_dask, run_partitioned_local, wants_dask
    from .partitions import is_directory_output
    options = dict(provider=provider, batch_size=batch_size, outputs=outputs, columns=columns, progress=progress,
                   partition_rows=partition_rows, output_format=output_format, **compile_options)
    if wants_dask(engine, client, scheduler, workers):
        return run_dask(model, data, output_path, client=client, scheduler=scheduler, workers=workers, **options)
    if is_directory_output(output_path):
        return run_partitioned_local(model, data, output_path, **options)
    if Path(output_path).suffix not in WRITERS:
        raise user_error(f"predictions go to {', '.join(WRITERS)}, got {output_path}")
    if batch_size < 1:
        raise user_error(f"--batch-size must be at least 1, got {batch_size}")
    loaded = model if isinstance(model, LoadedModel) else load_model(model, **compile_options)
    from .partitions import open_data
    source = open_data(data)  # a glob, directory or list: the files one after another, into one output
    inputs = model_inputs(loaded.proto)
    plan = plan_columns(source, inputs, None, None, columns)
    session = Session(loaded.proto, provider)
    names = outputs or session.output_names
    unknown = [n for n in names if n not in session.output_names]
    if unknown:
        raise user_error(f"the model has no output '{unknown[0]}'; outputs: {', '.join(session.output_names)}")
    bar = Progress(source.num_rows, progress)
    started = time.perf_counter()
    batches = 0
    folder_of_output = Path(output_path).resolve().parent
    if not folder_of_output.is_dir():
        raise user_error(f"cannot write {output_path}: no folder {folder_of_output}")
    with tempfile.TemporaryDirectory(dir=folder_of_output, prefix=".modelc-run-") as folder:
        raw = RawColumns(folder)
        try:
            for batch in source.batches(batch_size):
                if not batch or not len(next(iter(batch.values()))):
                    continue
                result = session.run(feeds_for(batch, plan, inputs), names)
                raw.append(result)
                batches += 1
                bar.advance(len(next(iter(result.values()))), raw.rows)
        finally:
            raw.close()
            bar.close()
        if not raw.files:
            raw.append({n: np.empty((0, *[d if isinstance(d, int) else 0 for d in o.shape[1:]]), o.dtype)
                        for o in session.outputs for n in [o.name] if n in names})
            raw.close()
        write_predictions(raw, output_path)
    seconds = time.perf_counter() - started
    return {"output": str(output_path), "samples": raw.rows, "batches": batches, "provider": provider,
            "outputs": names, "seconds": round(seconds, 6),
            "rows_per_second": round(raw.rows / seconds, 1) if seconds > 0 else None}
