"""Which columns or arrays of the data feed which model input, the target and the sample weights (§7)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..compiler.source import user_error
from .data import Batch, Source
from .session import TensorSpec


@dataclass
class ColumnPlan:
    inputs: dict[str, list[str]]          # model input -> columns (tabular) or [array name]
    target: str | None = None
    weight: str | None = None
    stacked: dict[str, bool] = field(default_factory=dict)  # input takes [batch, k] from k columns

    def used(self) -> list[str]:
        """Every column or array read: inputs', target, sample weights."""
        names = [c for cols in self.inputs.values() for c in cols]
        return list(dict.fromkeys(names + [n for n in (self.target, self.weight) if n is not None]))


def parse_columns(specs: list[str]) -> dict[str, list[str]]:
    """`--columns x=c1,c2` (repeatable) -> {"x": ["c1", "c2"]}."""
    out = {}
    for spec in specs:
        name, sep, cols = spec.partition("=")
        if not sep or not name or not cols:
            raise user_error(f"--columns expects INPUT=COL1,COL2,..., got '{spec}'")
        out[name.strip()] = [c.strip() for c in cols.split(",") if c.strip()]
    return out


def _require(source: Source, name: str, what: str) -> None:
    if name not in source.names:
        from ..compiler.source import did_you_mean
        raise user_error(f"{source.path} has no {'column' if source.tabular else 'array'} '{name}' for {what}"
                         f"{did_you_mean(name, source.names)}; it has: {', '.join(source.names) or 'nothing'}")


def plan_columns(source: Source, inputs: list[TensorSpec], target: str | None = None, weight: str | None = None,
                 columns: dict[str, list[str]] | None = None) -> ColumnPlan:
    columns = dict(columns or {})
    for name in columns:
        if name not in [i.name for i in inputs]:
            raise user_error(f"--columns names '{name}', which is not a model input "
                             f"(inputs: {', '.join(i.name for i in inputs)})")
    for name, what in ((target, "--target"), (weight, "--sample-weight")):
        if name is not None:
            if not source.tabular and len(source.names) == 1 and source.path.endswith(".npy"):
                raise user_error(f"{source.path} holds one array; give {what} with a .npz, .csv or .parquet")
            _require(source, name, what)
    plan = ColumnPlan({}, target, weight)
    reserved = {target, weight}
    if not source.tabular:
        for spec in inputs:
            name = columns.get(spec.name, [spec.name])[0]
            if len(source.names) == 1 and len(inputs) == 1 and source.path.endswith(".npy"):
                name = source.names[0]
            _require(source, name, f"model input '{spec.name}'")
            plan.inputs[spec.name] = [name]
        source.select(plan.used())
        return plan
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
            _require(source, c, f"model input '{spec.name}'")
        rank = len(spec.shape)
        if rank == 1:
            if len(cols) != 1:
                raise user_error(f"model input '{spec.name}' {list(spec.shape)} takes one column, got {len(cols)}: "
                                 f"{', '.join(cols)}; use --columns {spec.name}=COL")
            plan.stacked[spec.name] = False
        elif rank == 2:
            k = spec.shape[1]
            if isinstance(k, int) and k != len(cols):
                extra = f" besides the target '{target}'" if target else ""
                raise user_error(f"model input '{spec.name}' takes {k} columns, {source.path} has {len(cols)}"
                                 f"{extra}: {', '.join(cols)}")
            plan.stacked[spec.name] = True
        else:
            raise user_error(f"model input '{spec.name}' has rank {rank}; columns of a table feed rank 1 or 2 "
                             "inputs only (use .npz for others)")
        plan.inputs[spec.name] = cols
    source.select(plan.used())  # only what the plan reads sets the rows (an .npz may hold other arrays)
    return plan


def _cast(values: np.ndarray, spec: TensorSpec, what: str) -> np.ndarray:
    if values.dtype == spec.dtype:
        return values
    if values.dtype.kind in "OUS" or not np.can_cast(values.dtype, spec.dtype, casting="same_kind"):
        raise user_error(f"{what} has dtype {values.dtype.name}, model input '{spec.name}' expects "
                         f"{spec.dtype.name}")
    return values.astype(spec.dtype)


def feeds_for(batch: Batch, plan: ColumnPlan, inputs: list[TensorSpec]) -> dict[str, np.ndarray]:
    feeds = {}
    for spec in inputs:
        cols = plan.inputs[spec.name]
        if plan.stacked.get(spec.name):
            parts = [_cast(batch[c], spec, f"column '{c}'") for c in cols]
            value = np.stack(parts, axis=1) if parts else np.empty((0, 0), spec.dtype)
        else:
            value = _cast(batch[cols[0]], spec, f"{'column' if spec.name in plan.stacked else 'array'} '{cols[0]}'")
        want = spec.shape
        if len(value.shape) != len(want) or any(isinstance(w, int) and w != g for w, g in zip(want, value.shape)):
            raise user_error(f"model input '{spec.name}' expects shape [{', '.join(str(d) for d in want)}], "
                             f"data gives {list(value.shape)}")
        feeds[spec.name] = value
    return feeds
