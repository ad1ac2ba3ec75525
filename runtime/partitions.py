"""Data given as a glob, a directory or a list of files, cut into partitions (large Parquet files by row groups).

The single-process engine reads the files one after another (`open_data`); the Dask engine sends one task per
partition (`plan_partitions`, `open_partition`). Nothing here imports Dask.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..compiler.source import user_error
from .data import READERS, ArrowSource, Batch, Located, NpySource, Source, open_source

DEFAULT_PARTITION_ROWS = 1 << 20   # a Parquet file of more rows is split into tasks at row-group boundaries

def _wanted(path: Path) -> bool:
    """A data file a directory or glob contributes: a known suffix, not hidden, not `_SUCCESS`-like metadata."""
    return path.suffix.lower() in READERS and not path.name.startswith((".", "_")) and path.is_file()


def expand_data(data: Any) -> list[str]:
    """A path, glob or directory, or a list of them -> the data files, in a stable (sorted) order.

    A path that does not exist stays in the list: the reader reports it by name (an explicit list of files
    keeps every name the user gave).
    """
    items = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    if not items:
        raise user_error("no data given: name a file, a glob (e.g. 'data/part-*.parquet') or a directory")
    files: list[str] = []
    for item in items:
        text = str(item)
        if os.path.isdir(text):
            root = Path(text)
            found = sorted(str(p) for p in root.rglob("*") if _wanted(p)
                           and not any(part.startswith((".", "_")) for part in p.relative_to(root).parts[:-1]))
            if not found:
                raise user_error(f"directory {text} holds no .parquet, .npz, .npy or .csv file")
        elif not os.path.exists(text) and glob.has_magic(text):
            found = sorted(p for p in glob.glob(text, recursive=True) if _wanted(Path(p)))
            if not found:
                raise user_error(f"{text} matches no .parquet, .npz, .npy or .csv file")
        else:
            found = [text]
        files.extend(found)
    return list(dict.fromkeys(files))


# --- partitions -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Partition:
    """One task's share of the data: a whole file, or some row groups of a Parquet file."""

    index: int
    path: str
    row_groups: tuple[int, ...] | None = None
    rows: int | None = None
    piece: int = 0
    pieces: int = 1

    @property
    def label(self) -> str:
        if self.row_groups is None or self.pieces == 1:
            return self.path
        first, last = self.row_groups[0], self.row_groups[-1]
        groups = f"row group {first}" if first == last else f"row groups {first}-{last}"
        return f"{self.path} ({groups})"


def _row_groups(path: str) -> list[int] | None:
    """Rows of each row group of a Parquet file, or None when its footer cannot be read (the task will say why)."""
    try:
        import pyarrow.parquet as pq
        meta = pq.read_metadata(path)
    except Exception:  # noqa: BLE001 - a missing or corrupt file fails in its own task, by name
        return None
    return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


def plan_partitions(files: list[str], partition_rows: int | None = None) -> list[Partition]:
    """One partition per file; a Parquet file of more than `partition_rows` rows becomes several, each a run of
    whole row groups of at most `partition_rows` rows (a single larger row group is one partition)."""
    limit = partition_rows or DEFAULT_PARTITION_ROWS
    if limit < 1:
        raise user_error(f"--partition-rows must be at least 1, got {limit}")
    out: list[Partition] = []
    for path in files:
        groups = _row_groups(path) if Path(path).suffix.lower() == ".parquet" else None
        if groups is None:
            out.append(Partition(len(out), path))
            continue
        if sum(groups) <= limit or len(groups) <= 1:
            out.append(Partition(len(out), path, None, sum(groups)))
            continue
        runs: list[list[int]] = [[]]
        held = 0
        for i, n in enumerate(groups):
            if runs[-1] and held + n > limit:
                runs.append([])
                held = 0
            runs[-1].append(i)
            held += n
        for piece, run in enumerate(runs):
            out.append(Partition(len(out), path, tuple(run), sum(groups[i] for i in run), piece, len(runs)))
    return out


class RowGroupSource(ArrowSource):
    """Some row groups of a Parquet file, only the columns used: one partition of a split file."""

    def __init__(self, path: str, row_groups: tuple[int, ...]):
        super().__init__(path)
        self.row_groups = list(row_groups)
        self.wanted: list[str] | None = None
        self.num_rows = sum(self.file.metadata.row_group(i).num_rows for i in self.row_groups)
        self.first_row = sum(self.file.metadata.row_group(i).num_rows for i in range(self.row_groups[0]))

    def located(self, batch_size: int, start: int = 0) -> Iterator[Located]:
        """Rows numbered within the whole file, as its other partitions number theirs."""
        for source, row, batch in super().located(batch_size, start):
            yield source, self.first_row + row, batch

    def select(self, names: list[str]) -> None:
        self.wanted = [n for n in dict.fromkeys(names) if n in self.names]

    def _record_batches(self, batch_size: int):  # noqa: ANN202 - pyarrow type
        return self.file.iter_batches(batch_size=batch_size, row_groups=self.row_groups, columns=self.wanted)


def open_partition(partition: Partition, npy_table: bool = False) -> Source:
    if partition.row_groups is not None and partition.pieces > 1:
        return RowGroupSource(partition.path, partition.row_groups)
    return _open(partition.path, npy_table)


def _open(path: str, npy_table: bool) -> Source:
    source = open_source(path)
    if npy_table and isinstance(source, NpySource):  # a 2-D .npy holds the target as one of its columns
        source = source.as_table()
    return source


def require_columns(source: Source, names: list[str]) -> None:
    """Every column or array the evaluation reads is in this file (the plan was made on the first file)."""
    missing = [n for n in names if n not in source.names]
    if missing:
        what = "column" if source.tabular else "array"
        raise user_error(f"{source.path} has no {what} {', '.join(repr(m) for m in missing)} (the first data "
                         f"file has it); it has: {', '.join(source.names) or 'nothing'}")


# --- several files, read one after another (the single-process engine) ---------------------------
class MultiSource(Source):
    """Files read one after another, as one source. Each file is opened for its rows and names up front and
    again when its turn comes (never all open at once); batches do not straddle files."""

    def __init__(self, files: list[str], npy_table: bool = False):
        self.files, self.npy_table = files, npy_table
        first = _open(files[0], npy_table)
        self.first = first
        self.path = f"{files[0]} (+{len(files) - 1} more)"
        self.names = list(first.names)
        self.tabular = first.tabular
        self.used: list[str] | None = None
        rows: list[int | None] = []
        for path in files:
            source = first if path == files[0] else _open(path, npy_table)
            if source.tabular != self.tabular:
                raise user_error(f"{path} is {'a table' if source.tabular else 'arrays'}, {files[0]} is not: "
                                 "the data files must be of one kind")
            rows.append(source.num_rows)
        self.rows = rows
        self.num_rows = None if any(r is None for r in rows) else sum(rows)  # type: ignore[arg-type]

    def shape_of(self, name: str) -> tuple[int, ...]:
        return self.first.shape_of(name)

    def select(self, names: list[str]) -> None:
        self.used = list(names)
        self.first.select(names)

    def sources(self) -> Iterator[Source]:
        for path in self.files:
            source = self.first if path == self.files[0] else _open(path, self.npy_table)
            if self.used is not None:
                require_columns(source, self.used)
                source.select(self.used)
            yield source

    def batches(self, batch_size: int, start: int = 0) -> Iterator[Batch]:
        return (batch for _, _, batch in self.located(batch_size, start))

    def located(self, batch_size: int, start: int = 0) -> Iterator[Located]:
        skip = start
        for source in self.sources():
            if skip and source.num_rows is not None and skip >= source.num_rows:
                skip -= source.num_rows
                continue
            if skip and source.num_rows is not None:
                at, skip = skip, 0
                yield from source.located(batch_size, start=at)
                continue
            for one, row, batch in source.located(batch_size):  # rows unknown ahead (CSV): drop the rows done
                if skip:
                    n = len(next(iter(batch.values()))) if batch else 0
                    if n <= skip:
                        skip -= n
                        continue
                    batch, row = {k: v[skip:] for k, v in batch.items()}, row + skip
                    skip = 0
                yield one, row, batch


def open_data(data: Any, npy_table: bool = False) -> Source:
    """One file as before; a glob, a directory or a list as one source read file after file."""
    files = expand_data(data)
    if len(files) == 1:
        return _open(files[0], npy_table)
    return MultiSource(files, npy_table)


def is_directory_output(path: Any) -> bool:
    """`-o predictions/` (or an existing directory): one predictions file per input partition."""
    text = str(path)
    return text.endswith(("/", os.sep)) or os.path.isdir(text)


def output_paths(partitions: list[Partition], folder: str, fmt: str) -> list[str]:
    """predictions/<input file stem>[-<piece>].<fmt>; stems that two inputs share get the partition index."""
    stems = [Path(p.path).stem for p in partitions]
    ordinal = {path: i for i, path in enumerate(dict.fromkeys(p.path for p in partitions))}
    whole: dict[str, set[str]] = {}
    for p, stem in zip(partitions, stems):
        whole.setdefault(stem, set()).add(p.path)
    out = []
    for p, stem in zip(partitions, stems):
        name = stem if len(whole[stem]) == 1 else f"{stem}-{ordinal[p.path]:05d}"
        if p.pieces > 1:
            name += f"-{p.piece:04d}"
        out.append(str(Path(folder) / f"{name}.{fmt.lstrip('.')}"))
    return out
