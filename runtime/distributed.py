"""`run` and `eval` over many files or partitions, one task each: locally in turn, or on Dask (`--engine dask`).

A task reads its partition, runs the model (for eval, fused with the metric-state graph) and returns only the
small metric states (eval) or writes its own predictions file atomically (run). On Dask the model's bytes go to
each worker once, in a worker plugin; every worker builds one onnxruntime session per model the first time a
task needs it and keeps it for the rest of the job; partition states merge in a tree reduction on the cluster.

Nothing here imports Dask until the Dask engine is asked for: without the `modelc[dask]` extra, `--engine dask`
says how to install it, and the local engine works as before.
"""
from __future__ import annotations

import logging
import os
import pickle
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..compiler.source import Diagnostic, ModelcError
from .columns import ColumnPlan, feeds_for, plan_columns
from .data import prefetch
from .evaluate import DEFAULT_BATCH, LoadedModel, _nan_rows, load_model, model_inputs, plan_evaluation, user_error
from .partitions import (Partition, expand_data, is_directory_output, open_partition, output_paths,
                         plan_partitions, require_columns)
from .session import Session, TensorSpec, tensor_specs

INSTALL_HINT = "--engine dask needs Dask's distributed scheduler: pip install 'modelc[dask]'"
FANIN = 8           # partition results merged per reduction task
FORMATS = ("parquet", "npz", "npy", "csv")
# no dashboard; the scheduler's small HTTP server (health, metrics) on a free loopback port, never 8787's warning
LOOPBACK_NO_DASHBOARD = {"dashboard_address": None,
                         "scheduler_kwargs": {"dashboard": False, "dashboard_address": "127.0.0.1:0"}}


def require_dask() -> Any:
    try:
        import distributed
    except ImportError:
        raise user_error(f"{INSTALL_HINT} (or pip install 'dask[distributed]')") from None
    return distributed


def wants_dask(engine: str | None, client: Any = None, scheduler: str | None = None,
               workers: int | None = None) -> bool:
    """engine="dask", or a Dask client, scheduler address or worker count given (which imply it)."""
    if engine not in (None, "local", "dask"):
        raise user_error(f"unknown engine '{engine}'; expected local or dask")
    implied = client is not None or scheduler is not None or workers is not None
    if engine == "local" and implied:
        raise user_error("a Dask client, --scheduler or --workers needs --engine dask")
    return engine == "dask" or implied


# --- what every task of one job shares ---------------------------------------------------------------
@dataclass
class EvalJob:
    plan: ColumnPlan
    inputs: list[TensorSpec]
    target: str
    sample_weight: str | None
    batch_size: int
    out_name: str
    out_dtype: np.dtype
    rules: dict[str, str]           # metric state -> merge rule (sum, count, bincount, min, max)


@dataclass
class RunJob:
    plan: ColumnPlan
    inputs: list[TensorSpec]
    batch_size: int
    names: list[str]
    outputs: list[TensorSpec]


class Runner:
    """A model's onnxruntime sessions in one process, built once and used by every task there.

    kind: "fused" (model and metric states in one graph), "split" (two sessions: opset < 17 or
    fuse_metrics=False) or "predict" (the model alone, for run).
    """

    def __init__(self, protos: list[bytes], provider: str, kind: str, threads: int | None = None):
        import onnx
        self.kind = kind
        self.sessions = [Session(onnx.load_from_string(b), provider, threads) for b in protos]

    def states(self, job: EvalJob, feeds: dict[str, np.ndarray], extra: dict[str, np.ndarray]) -> dict:
        if self.kind == "fused":
            result = self.sessions[0].run({**feeds, **{f"metric:{k}": v for k, v in extra.items()}})
            return {k[len("metric:"):]: v for k, v in result.items()}
        predictions = self.sessions[0].run(feeds, [job.out_name])[job.out_name]
        return self.sessions[1].run({"y_pred": predictions, **extra})

    def predict(self, feeds: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
        return self.sessions[0].run(feeds, names)


# --- task bodies (the same on a Dask worker and in the local engine) -----------------------------------
def merge_states(into: dict[str, np.ndarray], new: dict[str, np.ndarray], rules: dict[str, str]) -> None:
    """Merge states by rule, as MetricSet.accumulate does (the bincount range check runs at the end, there)."""
    for name, value in new.items():
        value = np.asarray(value)
        rule = rules[name]
        if name not in into:
            into[name] = value.copy()
        elif rule in ("sum", "count", "bincount"):
            into[name] = into[name] + value
        elif rule == "min":
            into[name] = np.minimum(into[name], value)
        else:
            into[name] = np.maximum(into[name], value)


def empty_record() -> dict[str, Any]:
    return {"states": {}, "rows": 0, "batches": 0, "nan_inputs": 0, "partitions": 0, "written": 0, "skipped": 0,
            "failed": [], "task_seconds": 0.0}


def merge_records(rules: dict[str, str], *records: dict[str, Any]) -> dict[str, Any]:
    """Partition results combined in the order given: counters add, states merge by rule, failures collect."""
    out = empty_record()
    for r in records:
        merge_states(out["states"], r["states"], rules)
        for k in ("rows", "batches", "nan_inputs", "partitions", "written", "skipped", "task_seconds"):
            out[k] += r[k]
        out["failed"] = out["failed"] + r["failed"]
    return out


def describe(partition: Partition, error: BaseException) -> dict[str, str]:
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


def _failed(partition: Partition, error: BaseException, started: float) -> dict[str, Any]:
    record = empty_record()
    record.update(partitions=1, failed=[describe(partition, error)], task_seconds=time.perf_counter() - started)
    return record


def eval_partition(job: EvalJob, runner: Runner, partition: Partition) -> dict[str, Any]:
    """Read one partition, run model and metric states batch by batch; only the merged states come back.
    A partition that fails (missing, corrupt, wrong columns) adds nothing but its name and the reason."""
    started = time.perf_counter()
    record = empty_record()
    try:
        source = open_partition(partition, npy_table=True)
        used = job.plan.used()
        require_columns(source, used)
        source.select(used)

        def prepare(batch: dict[str, np.ndarray]) -> tuple[int, dict, dict, int]:
            """Host-side work on one batch, in the prefetch thread beside the model (as evaluate() does)."""
            n = len(next(iter(batch.values()))) if batch else 0
            if n == 0:
                return 0, {}, {}, 0
            feeds = feeds_for(batch, job.plan, job.inputs)
            truth = np.asarray(batch[job.target])
            if truth.dtype.kind in "OUS":
                raise user_error(f"target '{job.target}' has dtype {truth.dtype}; metrics need numbers")
            truth = truth.astype(job.out_dtype if job.out_dtype.kind == "f" else np.float64)
            extra = {"y_true": truth}
            if job.sample_weight is not None:
                extra["sample_weight"] = np.asarray(batch[job.sample_weight], dtype=np.float64)
            return n, feeds, extra, _nan_rows(feeds)

        for n, feeds, extra, nan_rows in prefetch(map(prepare, source.batches(job.batch_size))):
            if n == 0:
                continue
            merge_states(record["states"], runner.states(job, feeds, extra), job.rules)
            record["rows"] += n
            record["batches"] += 1
            record["nan_inputs"] += nan_rows
    except Exception as e:  # noqa: BLE001 - reported by file name; the other partitions go on
        return _failed(partition, e, started)
    record.update(partitions=1, task_seconds=time.perf_counter() - started)
    return record


def run_partition(job: RunJob, runner: Runner, partition: Partition, out_path: str) -> dict[str, Any]:
    """Predictions of one partition to its own file, written atomically; an existing file is skipped."""
    from .predict import RawColumns, write_predictions
    started = time.perf_counter()
    record = empty_record()
    record["partitions"] = 1
    if os.path.exists(out_path):
        record.update(skipped=1, task_seconds=time.perf_counter() - started)
        return record
    try:
        source = open_partition(partition)
        used = job.plan.used()
        require_columns(source, used)
        source.select(used)
        folder = Path(out_path).parent
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".modelc-run-") as scratch:
            raw = RawColumns(scratch)
            try:
                for batch in source.batches(job.batch_size):
                    if not batch or not len(next(iter(batch.values()))):
                        continue
                    raw.append(runner.predict(feeds_for(batch, job.plan, job.inputs), job.names))
                    record["batches"] += 1
            finally:
                raw.close()
            if not raw.files:
                raw.append({o.name: np.empty((0, *[d if isinstance(d, int) else 0 for d in o.shape[1:]]), o.dtype)
                            for o in job.outputs if o.name in job.names})
                raw.close()
            write_predictions(raw, out_path)
        record.update(rows=raw.rows, written=1)
    except Exception as e:  # noqa: BLE001
        return _failed(partition, e, started)
    record["task_seconds"] = time.perf_counter() - started
    return record


class PartitionErrors(ModelcError):
    """Some partitions failed; `result` holds what the others gave (metrics over them, or their files)."""

    def __init__(self, result: dict[str, Any], failed: list[dict[str, str]], total: int, what: str):
        self.result, self.failed = result, failed
        lines = [Diagnostic(None, f["error"]) for f in failed]
        lines.append(Diagnostic(None, f"{len(failed)} of {total} partitions failed (listed above); {what}"))
        super().__init__(lines)


# --- setting a job up (on the client) -----------------------------------------------------------------
def _first_source(partitions: list[Partition], npy_table: bool) -> Any:
    """The first readable partition: it gives the columns and the target's shape for the whole job."""
    first_error = None
    for p in partitions:
        try:
            return open_partition(p, npy_table)
        except ModelcError as e:
            first_error = first_error or e
    raise first_error  # type: ignore[misc]


def prepare_eval(loaded: LoadedModel, partitions: list[Partition], target: str, metrics: list[str],
                 batch_size: int, output: str | None, columns: dict[str, list[str]] | None,
                 sample_weight: str | None, fuse_metrics: bool) -> tuple[Any, EvalJob, list[bytes], str]:
    """What evaluate() builds before its loop, once for all partitions: the column plan (from the first file),
    the metric-state graph, and the model's bytes (fused with the states where the opset allows)."""
    setup = plan_evaluation(loaded, _first_source(partitions, npy_table=True), target, metrics, output, columns,
                            sample_weight, fuse_metrics)
    if setup.fused is not None:
        protos, kind = [setup.fused.SerializeToString()], "fused"
    else:
        protos, kind = [loaded.proto.SerializeToString(), setup.states.SerializeToString()], "split"
    rules = {name: spec.rule for name, spec in setup.metric_set.rules.items()}
    job = EvalJob(setup.plan, setup.inputs, target, sample_weight, batch_size, setup.output.name,
                  setup.output.dtype, rules)
    return setup.metric_set, job, protos, kind


def prepare_run(loaded: LoadedModel, partitions: list[Partition], batch_size: int, outputs: list[str] | None,
                columns: dict[str, list[str]] | None, fmt: str) -> RunJob:
    proto = loaded.proto
    source = _first_source(partitions, npy_table=False)
    inputs = model_inputs(proto)
    plan = plan_columns(source, inputs, None, None, columns)
    all_outputs = tensor_specs(proto.graph.output)
    names = outputs or [o.name for o in all_outputs]
    unknown = [n for n in names if n not in {o.name for o in all_outputs}]
    if unknown:
        raise user_error(f"the model has no output '{unknown[0]}'; outputs: "
                         f"{', '.join(o.name for o in all_outputs)}")
    if fmt == "npy" and len(names) != 1:
        raise user_error(f"a .npy holds one array, the model has {len(names)} outputs; use --format npz")
    return RunJob(plan, inputs, batch_size, names, all_outputs)


def _check_common(batch_size: int, fmt: str | None = None) -> None:
    if batch_size < 1:
        raise user_error(f"--batch-size must be at least 1, got {batch_size}")
    if fmt is not None and fmt.lstrip(".") not in FORMATS:
        raise user_error(f"--format must be one of {', '.join(FORMATS)}, got {fmt}")


class PartitionBar:
    """A progress bar driven by finished partitions (rows counted as they come), quiet off a terminal."""

    def __init__(self, total: int, enabled: bool | None, what: str):
        import sys
        self.bar = None
        self.done = 0
        if sys.stderr.isatty() if enabled is None else enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
            self.bar = Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TextColumn("partitions"),
                                TextColumn("{task.fields[rows]:,} rows"), TimeElapsedColumn(),
                                console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task(what, total=total, rows=0)
            self.bar.start()

    def advance(self, rows: int | None) -> None:
        self.done += rows or 0
        if self.bar is not None:
            self.bar.update(self.task, advance=1, rows=self.done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _finish_eval(metric_set: Any, record: dict[str, Any], base: dict[str, Any], data: Any, total: int,
                 seconds: float) -> dict[str, Any]:
    if record["states"]:
        metric_set.accumulate(record["states"])
    if record["rows"] == 0:
        import warnings
        warnings.warn(f"{data} has no rows: metrics are undefined", RuntimeWarning, stacklevel=3)
    rows = record["rows"]
    result = {
        "metrics": metric_set.results(), "samples": rows, "batches": record["batches"], **base,
        "seconds": round(seconds, 6), "rows_per_second": round(rows / seconds, 1) if seconds > 0 else None,
        "nan_predictions": metric_set.nan_predictions(), "nan_input_rows": record["nan_inputs"],
        "partitions": total, "failed_partitions": record["failed"],
    }
    if record["failed"]:
        raise PartitionErrors(result, record["failed"], total,
                              f"the metrics are over the other {total - len(record['failed'])} partitions only")
    return result


# --- the local engine over partitions (run -o DIR/) ---------------------------------------------------
def run_partitioned_local(model: Any, data: Any, output_dir: str, *, provider: str = "cpu",
                          batch_size: int = DEFAULT_BATCH, outputs: list[str] | None = None,
                          columns: dict[str, list[str]] | None = None, progress: bool | None = None,
                          partition_rows: int | None = None, output_format: str | None = None,
                          **compile_options: Any) -> dict[str, Any]:
    """One predictions file per partition, in this process, one partition after another (the layout that
    --engine dask writes, so either engine can finish what the other started)."""
    fmt = (output_format or "parquet").lstrip(".")
    _check_common(batch_size, fmt)
    loaded = model if isinstance(model, LoadedModel) else load_model(model, **compile_options)
    partitions = plan_partitions(expand_data(data), partition_rows)
    job = prepare_run(loaded, partitions, batch_size, outputs, columns, fmt)
    paths = output_paths(partitions, output_dir, fmt)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    runner = Runner([loaded.proto.SerializeToString()], provider, "predict")
    started = time.perf_counter()
    bar = PartitionBar(len(partitions), progress, "predicting")
    record = empty_record()
    try:
        for p, path in zip(partitions, paths):
            one = run_partition(job, runner, p, path)
            record = merge_records({}, record, one)
            bar.advance(one["rows"])
    finally:
        bar.close()
    return _finish_run(record, output_dir, provider, job, "local", len(partitions), time.perf_counter() - started)


def _finish_run(record: dict[str, Any], output_dir: str, provider: str, job: RunJob, engine: str, total: int,
                seconds: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    rows = record["rows"]
    result = {"output": str(output_dir), "samples": rows, "batches": record["batches"], "provider": provider,
              "outputs": job.names, "engine": engine, "partitions": total, "written": record["written"],
              "skipped": record["skipped"], "failed_partitions": record["failed"], "seconds": round(seconds, 6),
              "rows_per_second": round(rows / seconds, 1) if seconds > 0 and rows else None, **(extra or {})}
    if record["failed"]:
        raise PartitionErrors(result, record["failed"], total,
                              "the others' predictions are written; a rerun skips them and retries these")
    return result


# --- Dask -------------------------------------------------------------------------------------------------
@contextmanager
def connect(client: Any = None, scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """The user's client as it is; a client of --scheduler ADDRESS; or a LocalCluster of --workers N processes
    (default: one per core), one thread each, on loopback, closed at the end."""
    distributed = require_dask()
    if client is not None:
        yield client
        return
    if scheduler is not None:
        try:
            own = distributed.Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as e:
            raise user_error(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
        try:
            yield own
        finally:
            own.close()
        return
    if workers is not None and workers < 1:
        raise user_error(f"--workers must be at least 1, got {workers}")
    try:
        n = workers or len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        n = workers or os.cpu_count() or 1
    cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       silence_logs=logging.ERROR, **LOOPBACK_NO_DASHBOARD)
    own = distributed.Client(cluster)
    try:
        yield own
    finally:
        own.close()
        cluster.close()


@contextmanager
def model_on_workers(client: Any, protos: list[bytes], provider: str, kind: str) -> Iterator[str]:
    """Register the model as a worker plugin for the length of a job; unregistered (sessions freed) after."""
    from urllib.parse import urlparse
    threads_by_host: dict[str, int] = {}
    for address, n in client.nthreads().items():
        host = urlparse(address).hostname or ""
        threads_by_host[host] = threads_by_host.get(host, 0) + n
    from .dask_worker import ModelPlugin
    name = f"modelc-model-{uuid.uuid4().hex[:12]}"
    for attempt in range(3):  # a worker that dies during the broadcast fails it; its restart gets the plugin
        try:
            client.register_plugin(ModelPlugin(name, protos, provider, kind, threads_by_host), name=name)
            break
        except OSError:  # distributed's CommClosedError
            if attempt == 2:
                raise
            time.sleep(0.5)
    try:
        yield name
    finally:
        try:
            client.unregister_worker_plugin(name)
        except Exception:  # noqa: BLE001 - a closing cluster; the sessions go with its workers
            pass


def _lost(error: BaseException, labels: dict[str, str]) -> ModelcError:
    """A task Dask gave up on (its workers died more often than distributed.scheduler.allowed-failures)."""
    text = str(error)
    for key, label in labels.items():
        if key in text:
            return user_error(f"{label}: Dask gave up on this partition: {text}")
    return user_error(f"the Dask job failed: {type(error).__name__}: {text}")


def _wire_bytes(*objects: Any) -> int:
    return len(pickle.dumps(objects, protocol=pickle.HIGHEST_PROTOCOL))


def tree_reduce(client: Any, futures: list[Any], rules: dict[str, str], token: str, fanin: int = FANIN) -> Any:
    """Merge results FANIN at a time on the cluster, level by level, until one is left (log_FANIN(P) levels)."""
    from .dask_worker import merge_task
    level = 0
    while len(futures) > 1:
        futures = [client.submit(merge_task, rules, *futures[i:i + fanin], key=f"modelc-merge-{token}-{level}-{i}")
                   for i in range(0, len(futures), fanin)]
        level += 1
    return futures[0]


def evaluate_dask(model: Any, data: Any, target: str, metrics: list[str], *, provider: str = "cpu",
                  batch_size: int = DEFAULT_BATCH, output: str | None = None,
                  columns: dict[str, list[str]] | None = None, sample_weight: str | None = None,
                  checkpoint: str | None = None, resume: bool = False, progress: bool | None = None,
                  fuse_metrics: bool = True, client: Any = None, scheduler: str | None = None,
                  workers: int | None = None, partition_rows: int | None = None, fanin: int = FANIN,
                  **compile_options: Any) -> dict[str, Any]:
    """evaluate() on Dask: one task per partition returns its metric states; they merge in a tree on the
    cluster; the final states finalize here. Same result dict as evaluate(), plus the Dask figures."""
    _check_common(batch_size)
    if not metrics:
        raise user_error("give at least one --metric (e.g. --metric mse)")
    if checkpoint or resume:
        raise user_error("--checkpoint/--resume belong to the local engine; on Dask a lost worker's partitions "
                         "are recomputed by Dask itself")
    require_dask()
    loaded = model if isinstance(model, LoadedModel) else load_model(model, **compile_options)
    partitions = plan_partitions(expand_data(data), partition_rows)
    metric_set, job, protos, kind = prepare_eval(loaded, partitions, target, metrics, batch_size, output, columns,
                                                 sample_weight, fuse_metrics)
    token = uuid.uuid4().hex[:12]
    connect_started = time.perf_counter()
    with connect(client, scheduler, workers) as c:
        startup = time.perf_counter() - connect_started
        n_workers = len(c.nthreads())
        started = time.perf_counter()
        with model_on_workers(c, protos, provider, kind) as model_key:
            from .dask_worker import eval_task
            record = _submit_and_wait(c, partitions, token, progress, "evaluating",
                                      lambda p: c.submit(eval_task, job, model_key, p,
                                                         key=f"modelc-eval-{token}-{p.index}"),
                                      job.rules, fanin)
        seconds = time.perf_counter() - started
    base = {"provider": provider, "output": job.out_name, "fused": kind == "fused", "engine": "dask",
            "workers": n_workers,
            "dask": {"startup_seconds": round(startup, 3), "model_bytes_per_worker": sum(map(len, protos)),
                     "task_bytes": _wire_bytes(job, "modelc-model-xxxxxxxxxxxx", partitions[0]),
                     "state_bytes": _wire_bytes(record["states"]), "reduction_fanin": fanin,
                     "task_seconds": round(record["task_seconds"], 6)}}
    return _finish_eval(metric_set, record, base, data, len(partitions), seconds)


def _submit_and_wait(client: Any, partitions: list[Partition], token: str, progress: bool | None, what: str,
                     submit: Any, rules: dict[str, str] | None, fanin: int) -> dict[str, Any]:
    """Submit one task per partition (and, for eval, the merge tree); advance the bar as partitions finish."""
    from distributed import as_completed
    labels = {f"-{token}-{p.index}'": p.label for p in partitions}  # a key as it shows in KilledWorker's text
    futures = [submit(p) for p in partitions]
    final = tree_reduce(client, futures, rules, token, fanin) if rules is not None else None
    rows = {f.key: p.rows for f, p in zip(futures, partitions)}
    bar = PartitionBar(len(partitions), progress, what)
    try:
        for f in as_completed(futures):
            bar.advance(rows.get(f.key))
        if final is not None:
            return final.result()
        return merge_records({}, *client.gather(futures))
    except BaseException as e:
        # stop what is still queued (an interrupt, or Dask gave up on a partition); done tasks just go
        client.cancel([f for f in [*futures, final] if f is not None and not f.done()])
        if isinstance(e, Exception) and not isinstance(e, ModelcError):  # KilledWorker and the like
            raise _lost(e, labels) from None
        raise
    finally:
        bar.close()


def run_dask(model: Any, data: Any, output_dir: str, *, provider: str = "cpu", batch_size: int = DEFAULT_BATCH,
             outputs: list[str] | None = None, columns: dict[str, list[str]] | None = None,
             progress: bool | None = None, client: Any = None, scheduler: str | None = None,
             workers: int | None = None, partition_rows: int | None = None, output_format: str | None = None,
             **compile_options: Any) -> dict[str, Any]:
    """run() on Dask: each worker writes its partitions' predictions, one file each, atomically; partitions
    whose file exists are skipped (a rerun finishes what a failed run left)."""
    fmt = (output_format or "parquet").lstrip(".")
    _check_common(batch_size, fmt)
    if not is_directory_output(output_dir):
        raise user_error(f"with --engine dask, -o names a directory (one predictions file per partition), e.g. "
                         f"-o predictions/; got {output_dir}")
    require_dask()
    loaded = model if isinstance(model, LoadedModel) else load_model(model, **compile_options)
    partitions = plan_partitions(expand_data(data), partition_rows)
    job = prepare_run(loaded, partitions, batch_size, outputs, columns, fmt)
    paths = output_paths(partitions, output_dir, fmt)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    todo = [(p, path) for p, path in zip(partitions, paths) if not os.path.exists(path)]
    record = empty_record()
    record.update(partitions=len(partitions) - len(todo), skipped=len(partitions) - len(todo))
    token = uuid.uuid4().hex[:12]
    with connect(client, scheduler, workers) as c:
        n_workers = len(c.nthreads())
        started = time.perf_counter()
        if todo:
            from .dask_worker import run_task
            by_index = dict((p.index, path) for p, path in todo)
            with model_on_workers(c, [loaded.proto.SerializeToString()], provider, "predict") as model_key:
                done = _submit_and_wait(c, [p for p, _ in todo], token, progress, "predicting",
                                        lambda p: c.submit(run_task, job, model_key, p, by_index[p.index],
                                                           key=f"modelc-run-{token}-{p.index}"), None, FANIN)
            record = merge_records({}, record, done)
        seconds = time.perf_counter() - started
    return _finish_run(record, output_dir, provider, job, "dask", len(partitions), seconds, {"workers": n_workers})
