"""The jobs, each written once over a source of batches: evaluate (metric states, merged) and predict (rows
to a predictions file). An engine only decides where the batches come from and how tallies merge: the
local engine runs them over all the data in this process, the Dask engine once per partition on a worker.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..compiler.files import scratch_folder
from ..compiler.source import ModelcError, user_error
from ..compiler.states import merge_states
from .columns import ColumnPlan, feeds_for, guard_casts, plan_columns, require_column
from .data import Batch, Located, Source, nan_row_mask, prefetch
from .defaults import DEFAULT_ON_MISSING
from .missing import screen
from .metrics import MetricSet, check_labels, metric_definitions, row_weights
from .model import EvalGraphs, LoadedModel, Runner, eval_graphs, model_inputs, pick_output, pick_outputs
from .partitions import Partition, open_partition, require_columns
from .session import TensorSpec, tensor_specs
from .writers import RawColumns, write_predictions


@dataclass
class EvalJob:
    """What every batch of one evaluation shares."""

    plan: ColumnPlan
    inputs: list[TensorSpec]
    target: str
    sample_weight: str | None
    batch_size: int
    out_dtype: np.dtype             # y_true is cast to y_pred's float dtype
    rules: dict[str, str]           # metric state -> merge rule (sum, count, bincount, min, max)
    on_missing: str = DEFAULT_ON_MISSING   # rows with a missing input or target value (missing.py)
    label_specs: list[str] = field(default_factory=list)   # metrics that take class labels (no fractions)


def weight_shape(shape: tuple) -> tuple:
    """The sample weights' shape after the batch axis as the state graph takes it: a column [N, 1] is one weight
    per row (Keras squeezes it)."""
    shape = tuple(shape)
    while shape and shape[-1] == 1:
        shape = shape[:-1]
    return shape


@dataclass
class RunJob:
    """What every batch of one prediction run shares."""

    plan: ColumnPlan
    inputs: list[TensorSpec]
    batch_size: int
    names: list[str]                # the outputs written
    outputs: list[TensorSpec]       # every output, for the dtypes of an empty file
    on_missing: str = DEFAULT_ON_MISSING   # rows with a missing input value (missing.py)


@dataclass
class Tally:
    """What a job has counted so far; tallies of parts of the data merge into the tally of the whole."""

    states: dict[str, np.ndarray] = field(default_factory=dict)
    rows: int = 0
    batches: int = 0
    nan_inputs: int = 0
    nan_targets: int = 0            # rows whose target is NaN (--on-missing keep, or arrays)
    missing_rows: int = 0           # rows left out by --on-missing skip
    partitions: int = 0
    written: int = 0
    skipped: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    task_seconds: float = 0.0

    def add_states(self, states: dict[str, np.ndarray], rules: dict[str, str]) -> None:
        merge_states(self.states, states, rules)

    def merge(self, other: "Tally", rules: dict[str, str]) -> "Tally":
        """Counters add, states merge by rule, failures collect; in the order given."""
        self.add_states(other.states, rules)
        for f in fields(self):
            if f.name not in ("states", "failed"):
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        self.failed = self.failed + other.failed
        return self


def merge_tallies(rules: dict[str, str], *tallies: Tally) -> Tally:
    out = Tally()
    for t in tallies:
        out.merge(t, rules)
    return out


def nan_rows(feeds: dict[str, np.ndarray]) -> int:
    """Rows with a NaN in any float input."""
    rows = None
    for v in feeds.values():
        if v.dtype.kind == "f" and v.size:
            bad = nan_row_mask(v)
            rows = bad if rows is None else rows | bad
    return int(rows.sum()) if rows is not None else 0


# --- planning a job (on the client, once for all its batches and partitions) ----------------------------
@dataclass
class EvalPlan:
    job: EvalJob
    metric_set: MetricSet
    graphs: EvalGraphs


def plan_eval(loaded: LoadedModel, source: Source, target: str, metrics: list[str], batch_size: int,
              output: str | None, columns: dict[str, list[str]] | None, sample_weight: str | None,
              fuse_metrics: bool, drop: list[str] | None = None, on_missing: str = DEFAULT_ON_MISSING) -> EvalPlan:
    """The column plan (from `source`, the first data file), the metric-state graph and the graphs to run."""
    inputs = model_inputs(loaded.proto)
    plan = plan_columns(source, inputs, target, sample_weight, columns, drop)
    out_spec = pick_output(loaded.proto, output)
    metric_set = MetricSet(metrics, metric_definitions(*loaded.programs))
    weighted = False if sample_weight is None else weight_shape(source.shape_of(sample_weight))
    graphs = eval_graphs(loaded, metric_set, out_spec, source.shape_of(target), weighted, fuse_metrics,
                         max_rows=batch_size)
    rules = {name: spec.rule for name, spec in metric_set.rules.items()}
    job = EvalJob(plan, inputs, target, sample_weight, batch_size, out_spec.dtype, rules, on_missing,
                  metric_set.label_specs)
    return EvalPlan(job, metric_set, graphs)


def plan_run(loaded: LoadedModel, source: Source, batch_size: int, outputs: list[str] | None,
             columns: dict[str, list[str]] | None, drop: list[str] | None = None, keep: list[str] | None = None,
             on_missing: str = DEFAULT_ON_MISSING, target: str | None = None) -> RunJob:
    """The column plan (`drop` and a `target` left out of the inputs, `keep` copied beside the outputs) and
    the outputs."""
    inputs = model_inputs(loaded.proto)
    if target is not None:
        require_column(source, target, "--target")
    plan = plan_columns(source, inputs, None, None, columns, [*(drop or []), *([target] if target else [])], keep)
    names = pick_outputs(loaded.proto, outputs)
    columns_of_outputs = "|".join(f"{re.escape(n)}(_[0-9]+)?" for n in names)  # NAME, or NAME_j in a table
    clash = [k for k in plan.keep if re.fullmatch(columns_of_outputs, k)]
    if clash:
        raise user_error(f"--keep column '{clash[0]}' has the name of a model output's column in the predictions; "
                         "rename it in the data, or leave it out of --keep")
    return RunJob(plan, inputs, batch_size, names, tensor_specs(loaded.proto.graph.output), on_missing)


def first_source(partitions: list[Partition], npy_table: bool) -> Source:
    """The first readable partition: it gives the columns and the target's shape for the whole job."""
    first_error = None
    for p in partitions:
        try:
            return open_partition(p, npy_table)
        except ModelcError as e:
            first_error = first_error or e
    raise first_error  # type: ignore[misc]


PreparedBatch = tuple[int, dict[str, np.ndarray], dict[str, np.ndarray], tuple[int, int]]
OnBatch = Callable[[dict[str, np.ndarray], int], None]


def _prepare(job: EvalJob, batch: Batch) -> PreparedBatch:
    """Host-side work on one batch: model feeds, y_true (and weights) for the state graph, NaN input rows."""
    n = len(next(iter(batch.values()))) if batch else 0
    if n == 0:
        return 0, {}, {}, (0, 0)
    feeds = feeds_for(batch, job.plan, job.inputs)
    truth = np.asarray(batch[job.target])
    if truth.dtype.kind in "OUS":
        raise user_error(f"target '{job.target}' has dtype {truth.dtype}; metrics need numbers")
    extra = {"y_true": truth.astype(job.out_dtype if job.out_dtype.kind == "f" else np.float64)}
    if job.sample_weight is not None:
        extra["sample_weight"] = row_weights(batch[job.sample_weight], n, f"--sample-weight '{job.sample_weight}'")
    return n, feeds, extra, (nan_rows(feeds), nan_rows({"y_true": extra["y_true"]}))


def screened(job: EvalJob | RunJob, located: Iterable[Located]) -> Iterator[tuple[Batch, int]]:
    """The batches after --on-missing, each with the rows it left out. The count travels with its batch (not
    into the tally from the prefetch thread), so a checkpoint counts exactly the batches merged before it."""
    pending = [0]

    def skipped(n: int) -> None:
        pending[0] += n
    for batch in screen(guard_casts(located, job.plan, job.inputs), job.plan.checked(), job.on_missing, skipped):
        left_out, pending[0] = pending[0], 0
        yield batch, left_out


def evaluate_batches(job: EvalJob, runner: Runner, located: Iterable[Located], tally: Tally,
                     on_batch: OnBatch | None = None) -> Tally:
    """The eval loop: each batch's states from the runner, merged into `tally`. The host-side work of the next
    batch runs in a prefetch thread beside the model; `on_batch(states, rows)` sees each batch once merged."""
    prepared = ((_prepare(job, b), left_out) for b, left_out in screened(job, located))
    for (n, feeds, extra, (nan_inputs, nan_targets)), left_out in prefetch(prepared):
        tally.missing_rows += left_out
        if n == 0:
            continue
        check_labels(job.label_specs, extra["y_true"], tally.rows + tally.missing_rows)
        states = runner.states(feeds, extra)
        tally.add_states(states, job.rules)
        tally.rows += n
        tally.batches += 1
        tally.nan_inputs += nan_inputs
        tally.nan_targets += nan_targets
        if on_batch is not None:
            on_batch(states, n)
    return tally


def predict_batches(job: RunJob, runner: Runner, located: Iterable[Located], out_path: str | Path,
                    tally: Tally, on_batch: Callable[[int, int], None] | None = None) -> Tally:
    """The predict loop: each batch's kept columns and outputs appended to scratch files beside `out_path`,
    then the predictions file written atomically. `on_batch(rows, rows_so_far)` sees each batch."""
    folder = Path(out_path).resolve().parent
    with scratch_folder(folder, "run") as scratch:
        raw = RawColumns(scratch)
        try:
            for batch, left_out in screened(job, located):
                tally.missing_rows += left_out
                if not batch or not len(next(iter(batch.values()))):
                    continue
                result = runner.predict(feeds_for(batch, job.plan, job.inputs), job.names)
                raw.append({**{k: batch[k] for k in job.plan.keep}, **result})
                tally.batches += 1
                if on_batch is not None:
                    on_batch(len(next(iter(result.values()))), raw.rows)
        finally:
            raw.close()
        if not raw.files:
            raw.append_empty(job.outputs, job.names, job.plan.keep)
            raw.close()
        write_predictions(raw, out_path)
    tally.rows += raw.rows
    return tally


# --- one partition, one task (the same on a Dask worker and in the local engine) ---------------------------
def describe_failure(partition: Partition, error: BaseException) -> dict[str, str]:
    """A failed partition, by file name (and row groups), with the reader's or the model's message."""
    if isinstance(error, ModelcError):
        message = "; ".join(d.message for d in error.diagnostics)
    else:
        message = f"{type(error).__name__}: {error}"
    if partition.path in message:
        message = message.replace(partition.path, partition.label, 1)
    else:
        message = f"{partition.label}: {message}"
    return {"file": partition.path, "partition": partition.label, "error": message}


def _open(partition: Partition, plan: ColumnPlan, npy_table: bool) -> Source:
    source = open_partition(partition, npy_table=npy_table)
    used = plan.used()
    require_columns(source, used)
    source.select(used)
    return source


def evaluate_partition(job: EvalJob, runner: Runner, partition: Partition) -> Tally:
    """One partition's merged states. A partition that fails (missing, corrupt, wrong columns) adds nothing
    but its name and the reason: the other partitions go on."""
    started = time.perf_counter()
    tally = Tally(partitions=1)
    try:
        evaluate_batches(job, runner, _open(partition, job.plan, True).located(job.batch_size), tally)
    except Exception as e:  # noqa: BLE001 - reported by file name
        return Tally(partitions=1, failed=[describe_failure(partition, e)], task_seconds=time.perf_counter() - started)
    tally.task_seconds = time.perf_counter() - started
    return tally


def predict_partition(job: RunJob, runner: Runner, partition: Partition, out_path: str) -> Tally:
    """One partition's predictions to their own file; a file already there is skipped (a rerun finishes
    what a failed run left)."""
    started = time.perf_counter()
    if os.path.exists(out_path):
        return Tally(partitions=1, skipped=1, task_seconds=time.perf_counter() - started)
    try:
        source = _open(partition, job.plan, False)
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        tally = predict_batches(job, runner, source.located(job.batch_size), out_path, Tally(partitions=1, written=1))
    except Exception as e:  # noqa: BLE001
        return Tally(partitions=1, failed=[describe_failure(partition, e)], task_seconds=time.perf_counter() - started)
    tally.task_seconds = time.perf_counter() - started
    return tally
