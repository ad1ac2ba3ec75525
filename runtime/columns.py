"""Which columns or arrays of the data feed which model input, the target and the sample weights (§7)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np

from ..compiler.source import user_error
from .data import Batch, Located, Source
from .session import TensorSpec


@dataclass
class ColumnPlan:
    inputs: dict[str, list[str]]          # model input -> columns (tabular) or [array name]
    target: str | None = None
    weight: str | None = None
    stacked: dict[str, bool] = field(default_factory=dict)  # input takes [batch, k] from k columns
    keep: list[str] = field(default_factory=list)            # copied as they are into the predictions (--keep)

    def checked(self) -> list[str]:
        """The columns whose values must be numbers, not missing (--on-missing): inputs', target, sample weights."""
        names = [c for cols in self.inputs.values() for c in cols]
        return list(dict.fromkeys(names + [n for n in (self.target, self.weight) if n is not None]))

    def used(self) -> list[str]:
        """Every column or array read: the checked ones and those kept."""
        return list(dict.fromkeys(self.checked() + self.keep))


def parse_columns(specs: list[str]) -> dict[str, list[str]]:
    """`--columns x=c1,c2` (repeatable) -> {"x": ["c1", "c2"]}."""
    out = {}
    for spec in specs:
        name, sep, cols = spec.partition("=")
        if not sep or not name or not cols:
            raise user_error(f"--columns expects INPUT=COL1,COL2,..., got '{spec}'")
        out[name.strip()] = [c.strip() for c in cols.split(",") if c.strip()]
    return out


def parse_names(specs: list[str] | str | None) -> list[str]:
    """`--drop a --drop b,c` (repeatable, comma-separated) or a Python list -> ["a", "b", "c"]."""
    items = [specs] if isinstance(specs, str) else list(specs or [])
    return list(dict.fromkeys(n.strip() for item in items for n in item.split(",") if n.strip()))


def require_column(source: Source, name: str, what: str) -> None:
    """`name` is a column (or array) of `source`, or a user error for `what` with a did-you-mean."""
    if name not in source.names:
        from ..compiler.source import did_you_mean
        raise user_error(f"{source.path} has no {'column' if source.tabular else 'array'} '{name}' for {what}"
                         f"{did_you_mean(name, source.names)}; it has: {', '.join(source.names) or 'nothing'}")


def plan_columns(source: Source, inputs: list[TensorSpec], target: str | None = None, weight: str | None = None,
                 columns: dict[str, list[str]] | None = None, drop: list[str] | None = None,
                 keep: list[str] | None = None) -> ColumnPlan:
    """Which columns feed each input: --columns, else by name, else (one input) every column not reserved for
    the target and sample weights or left out by `drop`. `keep` columns are read to be copied as they are."""
    columns = dict(columns or {})
    _check_requests(source, inputs, columns, drop or [], keep or [])
    for name, what in ((target, "--target"), (weight, "--sample-weight")):
        if name is not None:
            if not source.tabular and len(source.names) == 1 and source.path.endswith(".npy"):
                raise user_error(f"{source.path} holds one array; give {what} with a .npz, .csv or .parquet")
            require_column(source, name, what)
    plan = ColumnPlan({}, target, weight, keep=list(keep or []))
    if not source.tabular:
        for spec in inputs:
            name = columns.get(spec.name, [spec.name])[0]
            if len(source.names) == 1 and len(inputs) == 1 and source.path.endswith(".npy"):
                name = source.names[0]
            require_column(source, name, f"model input '{spec.name}'")
            _check_shape(spec, (source.num_rows, *source.shape_of(name)), f"{source.path}: array '{name}'", 1)
            plan.inputs[spec.name] = [name]
        source.select(plan.used())
        return plan
    reserved = {target, weight, *(drop or [])}
    free = [c for c in source.names if c not in reserved and not any(c in v for v in columns.values())]
    for spec in inputs:
        if spec.name in columns:
            cols = columns[spec.name]
        elif len(inputs) == 1:
            cols = free
        elif spec.name in free:
            cols = [spec.name]
        else:
            raise user_error(f"say which columns feed model input '{spec.name}': --columns {spec.name}=COL1,COL2,...")
        for c in cols:
            require_column(source, c, f"model input '{spec.name}'")
        plan.stacked[spec.name] = _stacked(spec, cols, source.path, target)
        plan.inputs[spec.name] = cols
    source.select(plan.used())  # only what the plan reads sets the rows (an .npz may hold other arrays)
    return plan


def _check_requests(source: Source, inputs: list[TensorSpec], columns: dict[str, list[str]], drop: list[str],
                    keep: list[str]) -> None:
    """--columns names model inputs; --drop and --keep name columns there are; --columns uses none dropped."""
    for name in columns:
        if name not in [i.name for i in inputs]:
            raise user_error(f"--columns names '{name}', which is not a model input "
                             f"(inputs: {', '.join(i.name for i in inputs)})")
    for names, what in ((drop, "--drop"), (keep, "--keep")):
        for name in names:
            require_column(source, name, what)
    for name, cols in columns.items():
        both = [c for c in cols if c in drop]
        if both:
            raise user_error(f"--columns {name}=... names '{both[0]}', which --drop leaves out")


def _stacked(spec: TensorSpec, cols: list[str], path: str, target: str | None) -> bool:
    """Whether `cols` feed `spec` as one [batch, k] tensor (True) or as its one [batch] column (False)."""
    rank = len(spec.shape)
    if rank == 1:
        if len(cols) != 1:
            raise user_error(f"model input '{spec.name}' {list(spec.shape)} takes one column, got {len(cols)}: "
                             f"{', '.join(cols)}; use --columns {spec.name}=COL")
        return False
    if rank == 2:
        k = spec.shape[1]
        if isinstance(k, int) and k != len(cols):
            extra = f" besides the target '{target}'" if target else ""
            raise user_error(f"model input '{spec.name}' takes {k} columns, {path} has {len(cols)}{extra}: "
                             f"{', '.join(cols)}; leave some out with --drop COL, or name them with "
                             f"--columns {spec.name}=COL1,COL2,...")
        return True
    raise user_error(f"model input '{spec.name}' has rank {rank}; columns of a table feed rank 1 or 2 "
                     "inputs only (use .npz for others)")


def _cast(values: np.ndarray, spec: TensorSpec, what: str) -> np.ndarray:
    if values.dtype == spec.dtype:
        return values
    if values.dtype.kind in "OUS" or not np.can_cast(values.dtype, spec.dtype, casting="same_kind"):
        raise user_error(f"{what} has dtype {values.dtype.name}, model input '{spec.name}' expects "
                         f"{spec.dtype.name}")
    return values.astype(spec.dtype)


def guard_casts(located: Iterable[Located], plan: ColumnPlan, inputs: list[TensorSpec]) -> Iterator[Located]:
    """The batches as they are, once each column cast to a narrower float input has been looked at: a finite
    value that the cast makes infinite is an error (its row and value named); integers past the float type's
    exact integers that it rounds are a warning, once per column. (Floats losing digits to float32 are not.)"""
    narrow = [(spec, plan.inputs.get(spec.name, [])) for spec in inputs if spec.dtype.kind == "f"]
    warned: set[str] = set()
    for source, first_row, batch in located:
        errors = []   # (row, message): the first row of the batch with a value out of range is named
        for spec, columns in narrow:
            cast = [c for c in columns if c in batch and _narrows(batch[c].dtype, spec.dtype)]
            if cast and not _fits([batch[c] for c in cast], spec.dtype):   # one cheap pass first, then by column
                for column in cast:
                    errors += _check_cast(batch[column], spec, source.path, first_row, column, warned)
        if errors:
            raise user_error(min(errors)[1])
        yield source, first_row, batch


def _narrows(source: np.dtype, target: np.dtype) -> bool:
    return source.kind in "iu" or (source.kind == "f" and source.itemsize > target.itemsize)


def _fits(arrays: list[np.ndarray], dtype: np.dtype) -> bool:
    """Whether every value casts to `dtype` as it is: floats within its range, integers within its exact ones
    (a NaN says no: the column-by-column check decides). Columns are joined: one max and one min a batch, not
    two reductions a column (bench/cast_guard_bench.py: about half what feeds_for costs on the same columns)."""
    info = np.finfo(dtype)
    for kinds, bound in (("f", info.max), ("iu", 2 ** (info.nmant + 1))):
        group = [a.reshape(-1) for a in arrays if a.dtype.kind in kinds and a.size]
        if group:
            joined = np.concatenate(group) if len(group) > 1 else group[0]
            if not max(float(joined.max()), -float(joined.min())) <= bound:
                return False
    return True


def _check_cast(values: np.ndarray, spec: TensorSpec, path: str, first_row: int, column: str,
                warned: set[str]) -> list[tuple[int, str]]:
    info, name = np.finfo(spec.dtype), spec.dtype.name
    exact = 2 ** (info.nmant + 1)   # every integer up to this one is a float of this type
    if values.dtype.kind == "f" and (values.dtype.itemsize <= spec.dtype.itemsize
                                     or np.nanmax(np.abs(values), initial=0) <= info.max):
        return []
    if values.dtype.kind in "iu" and np.max(np.abs(values.astype(np.float64)), initial=0) <= exact:
        return []
    with np.errstate(over="ignore", invalid="ignore"):
        cast = values.astype(spec.dtype)
    overflow = np.isfinite(values) & ~np.isfinite(cast)
    if overflow.any():
        i, value, _ = _first_at(overflow, values, cast)
        return [(i, f"{path} row {first_row + i + 1}, column '{column}': {value} is past {name}'s range "
                    f"(±{info.max:.4g}), model input '{spec.name}' is {name}")]
    with np.errstate(invalid="ignore"):  # integers compared as integers: past 2**53 float64 would round both sides
        rounded = cast.astype(values.dtype) != values if values.dtype.kind in "iu" else \
            cast.astype(np.float64) != values.astype(np.float64)
    if values.dtype.kind in "iu" and rounded.any() and column not in warned:
        warned.add(column)
        i, value, became = _first_at(rounded, values, cast)
        warnings.warn(f"{path}: column '{column}' holds integers past {name}'s exact ones (2**{info.nmant + 1} = "
                      f"{exact:,}); model input '{spec.name}' is {name}, so they are rounded (row "
                      f"{first_row + i + 1}: {value} becomes {became:.0f})", stacklevel=2)
    return []


def _first_at(mask: np.ndarray, values: np.ndarray, cast: np.ndarray) -> tuple[int, Any, Any]:
    """The first row where `mask` holds, and its first such value before and after the cast."""
    at = np.unravel_index(int(np.flatnonzero(mask)[0]), mask.shape)
    return int(at[0]), values[at].item(), cast[at].item()


def _check_shape(spec: TensorSpec, shape: tuple, what: str, first: int = 0) -> None:
    """`shape` fits the model input from dimension `first` on. At planning (first=1: a row's shape, from the
    headers) an array of the wrong width, or a header claiming gigabytes a row, is refused before a read."""
    want = spec.shape
    if len(shape) != len(want) or any(isinstance(w, int) and w != g for w, g in zip(want[first:], shape[first:])):
        raise user_error(f"model input '{spec.name}' expects shape [{', '.join(str(d) for d in want)}], "
                         f"{what} gives {list(shape)}")


def feeds_for(batch: Batch, plan: ColumnPlan, inputs: list[TensorSpec]) -> dict[str, np.ndarray]:
    feeds = {}
    for spec in inputs:
        cols = plan.inputs[spec.name]
        if plan.stacked.get(spec.name):
            parts = [_cast(batch[c], spec, f"column '{c}'") for c in cols]
            value = np.stack(parts, axis=1) if parts else np.empty((0, 0), spec.dtype)
        else:
            value = _cast(batch[cols[0]], spec, f"{'column' if spec.name in plan.stacked else 'array'} '{cols[0]}'")
        _check_shape(spec, value.shape, "data")
        feeds[spec.name] = value
    return feeds
