"""`evaluate()` and `run()`: validate the request once, plan the job, and pick the engine that runs it.

The local engine (this module) runs a job over all the data in this process: for eval with a progress bar
and checkpoints, for `run` into one predictions file, or one file per partition with `-o DIR/`. The Dask
engine (engine_dask.py) runs the same tasks once per partition on a cluster. Both report through report.py,
so `--json` has one shape whichever engine ran.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..compiler.files import check_writable
from ..compiler.source import user_error
from .checkpoints import Checkpoints, checkpoint_key
from .columns import parse_names
from .data import NpySource, Source
from .missing import check_policy
from .model import FUSED, LoadedModel, Runner, load_model, pick_output
from .partitions import Partition, expand_data, is_directory_output, open_data, output_paths, plan_partitions
from .report import PartitionErrors, Progress, eval_result, run_result
from .session import STATES_PROVIDER
from .tasks import EvalPlan, RunJob, Tally, evaluate_batches, first_source, merge_tallies, plan_eval, plan_run, \
    predict_batches, predict_partition
from .defaults import DEFAULT_BATCH, DEFAULT_FORMAT, DEFAULT_ON_MISSING
from .writers import WRITERS, format_of

__all__ = ["evaluate", "run", "PartitionErrors", "DEFAULT_BATCH"]
ENGINES = ("local", "dask")


# --- validation, once for both engines ---------------------------------------------------------------
def wants_dask(engine: str | None, client: Any = None, scheduler: str | None = None,
               workers: int | None = None) -> bool:
    """engine="dask", or a Dask client, scheduler address or worker count given (which imply it)."""
    if engine not in (None, *ENGINES):
        raise user_error(f"unknown engine '{engine}'; expected local or dask")
    implied = client is not None or scheduler is not None or workers is not None
    if engine == "local" and implied:
        raise user_error("a Dask client, --scheduler or --workers needs --engine dask")
    return engine == "dask" or implied


def check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise user_error(f"--batch-size must be at least 1, got {batch_size}")


def partition_format(output_format: str | None) -> str:
    """The predictions format of `-o DIR/`: one file per partition, parquet unless --format says."""
    fmt = (output_format or DEFAULT_FORMAT).lstrip(".")
    if fmt not in WRITERS:
        raise user_error(f"--format must be one of {', '.join(WRITERS)} (default {DEFAULT_FORMAT}), "
                         f"got {output_format}")
    return fmt


# --- evaluate ---------------------------------------------------------------------------------------------
def evaluate(model: Any, data: Any, target: str, metrics: list[str], *, provider: str = "cpu",
             batch_size: int = DEFAULT_BATCH, output: str | None = None, columns: dict[str, list[str]] | None = None,
             sample_weight: str | None = None, checkpoint: str | None = None, checkpoint_every: int = 100,
             resume: bool = False, progress: bool | None = None, fuse_metrics: bool = True,
             engine: str | None = None, client: Any = None, scheduler: str | None = None,
             workers: int | None = None, partition_rows: int | None = None, drop: list[str] | str | None = None,
             on_missing: str = DEFAULT_ON_MISSING, plots: str | None = None, **compile_options: Any) -> dict[str, Any]:
    """Evaluate metrics of a model over a data file (or a glob, directory or list of files), batch by batch.
    Returns the --json object. engine="dask" (or a client, scheduler or workers) evaluates on Dask.
    plots=DIR draws the pictures of the merged states there (runtime/plots.py), adding the metrics they need."""
    dask = wants_dask(engine, client, scheduler, workers)
    check_batch_size(batch_size)
    check_policy(on_missing)
    if not metrics:
        raise user_error("give at least one --metric (e.g. --metric mse)")
    if checkpoint and checkpoint_every < 1:
        raise user_error(f"--checkpoint-every must be at least 1, got {checkpoint_every}")
    if dask and (checkpoint or resume):
        raise user_error("--checkpoint/--resume belong to the local engine; on Dask a lost worker's partitions "
                         "are recomputed by Dask itself")
    if dask:
        from .engine_dask import evaluate_dask, require_dask
        require_dask()
    checkpoints = Checkpoints(checkpoint, checkpoint_every)
    checkpoints.check()  # an unwritable path is an error now, not at the first checkpoint
    loaded = load_model(model, **compile_options)
    if plots is not None:
        from .plots import plot_metrics, pyplot
        pyplot()  # no matplotlib: say so before reading any data
        metrics = [*metrics, *plot_metrics(metrics, pick_output(loaded.proto, output).shape)]
    options = dict(target=target, metrics=metrics, batch_size=batch_size, output=output, columns=columns,
                   sample_weight=sample_weight, fuse_metrics=fuse_metrics and provider not in STATES_PROVIDER,
                   drop=parse_names(drop),
                   on_missing=on_missing)
    if dask:
        partitions = plan_partitions(expand_data(data), partition_rows)
        plan = plan_eval(loaded, first_source(partitions, npy_table=True), **options)
        return with_plots(evaluate_dask(plan, partitions, data, provider=provider, progress=progress,
                                        client=client, scheduler=scheduler, workers=workers), plan, plots)
    source = open_data(data, npy_table=True)  # a glob, directory or list: the files one after another
    if isinstance(source, NpySource):  # a 2-D .npy holds the target as one of its columns
        source = source.as_table()
    plan = plan_eval(loaded, source, **options)
    if checkpoint:
        checkpoints.key = checkpoint_key(loaded, plan.metric_set, data, _identity_options(options))
    return with_plots(evaluate_local(plan, source, data, provider, progress, checkpoints, resume), plan, plots)


def with_plots(result: dict[str, Any], plan: EvalPlan, folder: str | None) -> dict[str, Any]:
    """The result, with the pictures of the merged states written to `folder` (their paths under "plots")."""
    if folder is None:
        return result
    from .plots import write_plots
    return {**result, "plots": write_plots(plan.metric_set, folder)}


def _identity_options(options: dict[str, Any]) -> dict[str, Any]:
    """What, besides the model, metrics and data, makes two evaluations the same one (a checkpoint's key)."""
    return {k: options[k] for k in ("target", "batch_size", "columns", "sample_weight", "output", "drop",
                                    "on_missing")}


def evaluate_local(plan: EvalPlan, source: Source, data: Any, provider: str, progress: bool | None,
                   checkpoints: Checkpoints, resume: bool) -> dict[str, Any]:
    """The eval loop over all the data in this process, with a progress bar and checkpoints."""
    runner = Runner.for_eval(plan.graphs, provider)
    tally = checkpoints.load() if resume else Tally()
    bar = Progress(source.num_rows, progress, "evaluating")
    bar.advance(tally.rows)
    started = time.perf_counter()

    def on_batch(states: dict[str, np.ndarray], rows: int) -> None:
        plan.metric_set.check_states(states)  # labels out of range fail at their batch, before a checkpoint
        bar.advance(rows)
        if checkpoints.path and tally.batches % checkpoints.every == 0:
            checkpoints.save(tally)

    try:
        done = tally.rows + tally.missing_rows  # rows read, whether evaluated or left out
        evaluate_batches(plan.job, runner, source.located(plan.job.batch_size, start=done), tally, on_batch)
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    checkpoints.save(tally)
    base = {"provider": provider, "output": plan.graphs.output.name}
    return eval_result(plan.metric_set, tally, seconds, data, base, {"fused": plan.graphs.kind == FUSED},
                       plan.job.on_missing)


# --- run --------------------------------------------------------------------------------------------------
def run(model: Any, data: Any, output_path: str, *, provider: str = "cpu", batch_size: int = DEFAULT_BATCH,
        outputs: list[str] | None = None, columns: dict[str, list[str]] | None = None,
        progress: bool | None = None, engine: str | None = None, client: Any = None, scheduler: str | None = None,
        workers: int | None = None, partition_rows: int | None = None, output_format: str | None = None,
        drop: list[str] | str | None = None, target: str | None = None, keep: list[str] | str | None = None,
        on_missing: str = DEFAULT_ON_MISSING, **compile_options: Any) -> dict[str, Any]:
    """Run a model over a data file in batches and write its predictions. Returns the --json summary.

    Data may be a glob, a directory or a list of files. `output_path` may be a directory (`predictions/`): one
    file per input partition (--format, default parquet), skipping those already written; engine="dask" runs
    them on Dask. `drop` columns (and a `target`, as eval takes it) are left out of the inputs; `keep` columns
    are copied into the predictions beside the outputs."""
    dask = wants_dask(engine, client, scheduler, workers)
    partitioned = dask or is_directory_output(output_path)
    if dask and not is_directory_output(output_path):
        raise user_error(f"with --engine dask, -o names a directory (one predictions file per partition), e.g. "
                         f"-o predictions/; got {output_path}")
    fmt = partition_format(output_format) if partitioned else format_of(output_path)
    check_batch_size(batch_size)
    select = dict(columns=columns, drop=parse_names(drop), keep=parse_names(keep), target=target,
                  on_missing=check_policy(on_missing))
    if fmt == "npy" and select["keep"]:
        raise user_error("a .npy holds one array; --keep needs predictions in .npz, .parquet or .csv")
    if dask:
        from .engine_dask import require_dask, run_dask
        require_dask()
    if not partitioned:
        check_writable(output_path)  # before the model compiles and the data is read
    loaded = load_model(model, **compile_options)
    if not partitioned:
        return run_local(loaded, data, output_path, provider, batch_size, outputs, select, progress)
    partitions = plan_partitions(expand_data(data), partition_rows)
    job = plan_run(loaded, first_source(partitions, npy_table=False), batch_size, outputs, **select)
    if fmt == "npy" and len(job.names) != 1:
        raise user_error(f"a .npy holds one array, the model has {len(job.names)} outputs; use --format npz")
    paths = output_paths(partitions, output_path, fmt)
    Path(output_path).mkdir(parents=True, exist_ok=True)
    if dask:
        return run_dask(loaded, job, partitions, paths, output_path, provider=provider, progress=progress,
                        client=client, scheduler=scheduler, workers=workers)
    return run_partitions_local(loaded, job, partitions, paths, output_path, provider, progress)


def run_local(loaded: LoadedModel, data: Any, output_path: str, provider: str, batch_size: int,
              outputs: list[str] | None, select: dict[str, Any], progress: bool | None) -> dict:
    """The predict loop over all the data (the files one after another) into one predictions file; `select`:
    plan_run's columns, drop, keep and on_missing."""
    source = open_data(data)
    job = plan_run(loaded, source, batch_size, outputs, **select)
    runner = Runner.for_run(loaded, provider)
    folder = Path(output_path).resolve().parent
    if not folder.is_dir():
        raise user_error(f"cannot write {output_path}: no folder {folder}")
    bar = Progress(source.num_rows, progress, "predicting")
    started = time.perf_counter()
    try:
        tally = predict_batches(job, runner, source.located(batch_size), output_path, Tally(),
                                lambda rows, _: bar.advance(rows))
    finally:
        bar.close()
    return run_result(tally, output_path, provider, job, time.perf_counter() - started)


def run_partitions_local(loaded: LoadedModel, job: RunJob, partitions: list[Partition], paths: list[str],
                         output_dir: str, provider: str, progress: bool | None) -> dict[str, Any]:
    """One predictions file per partition, in this process, one partition after another (the layout that
    --engine dask writes, so either engine can finish what the other started)."""
    runner = Runner.for_run(loaded, provider)
    started = time.perf_counter()
    bar = Progress(len(partitions), progress, "predicting", partitions=True)
    tally = Tally()
    try:
        for p, path in zip(partitions, paths):
            one = predict_partition(job, runner, p, path)
            tally = merge_tallies({}, tally, one)
            bar.advance(one.rows, steps=1)
    finally:
        bar.close()
    return run_result(tally, output_dir, provider, job, time.perf_counter() - started, "local",
                      len(partitions))
