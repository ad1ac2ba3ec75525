"""run and eval: batches from a data file through a session; metric states fused into the model's graph."""
from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import onnx

from ..compiler import driver
from ..compiler.source import Diagnostic, ModelcError
from ..compiler.types import TensorType
from .columns import feeds_for, plan_columns
from .data import NpySource, Source, prefetch
from .metrics import NP_TYPES, MetricSet, metric_definitions
from .session import Session, TensorSpec, tensor_specs

DEFAULT_BATCH = 1024


def user_error(message: str) -> ModelcError:
    return ModelcError(Diagnostic(None, message))


@dataclass
class LoadedModel:
    proto: onnx.ModelProto
    programs: list[driver.Program] = field(default_factory=list)
    source: str = ""


def load_model(model: Any, *, model_name: str | None = None, weights: str | None = None, seed: int = 0,
               init_missing: bool = False, imports: tuple[str, ...] = ()) -> LoadedModel:
    """A .model (compiled here), an .onnx file, or an onnx.ModelProto; --import files add metrics."""
    programs = [driver.load_file(p) for p in imports]
    if isinstance(model, onnx.ModelProto):
        return LoadedModel(model, programs, "<proto>")
    path = str(model)
    if path.endswith(".model"):
        program = driver.load_file(path)
        proto = driver.compile_program(program, model_name, weights, seed, None, False, init_missing)
        return LoadedModel(proto, [program, *programs], path)
    try:
        proto = onnx.load(path)
    except (OSError, onnx.onnx_cpp2py_export.checker.ValidationError, Exception) as e:  # noqa: BLE001
        raise user_error(f"cannot read model {path}: {e}") from None
    return LoadedModel(proto, programs, path)


def pick_output(proto: onnx.ModelProto, name: str | None) -> TensorSpec:
    outputs = tensor_specs(proto.graph.output)
    if name is None:
        if len(outputs) > 1:
            raise user_error(f"the model has {len(outputs)} outputs ({', '.join(o.name for o in outputs)}); "
                             "pick one with --output NAME")
        return outputs[0]
    for o in outputs:
        if o.name == name:
            return o
    raise user_error(f"the model has no output '{name}'; outputs: {', '.join(o.name for o in outputs)}")


def _type_of(spec: TensorSpec, batch_dim: Any) -> TensorType:
    dtype = NP_TYPES.get(spec.dtype)
    if dtype is None:
        raise user_error(f"output '{spec.name}' has dtype {spec.dtype}, which metrics do not take")
    return TensorType(dtype, (batch_dim, *spec.shape[1:]))


def fuse(proto: onnx.ModelProto, states: onnx.ModelProto, output: str) -> onnx.ModelProto:
    """Model and metric-state graph as one: a batch goes in, only the small states come out."""
    from onnx import compose
    states = compose.add_prefix(states, "metric:")
    fused = compose.merge_models(proto, states, io_map=[(output, "metric:y_pred")],
                                 outputs=[o.name for o in states.graph.output])
    return fused


class Progress:
    """A rich progress bar on stderr, quiet when stderr is not a terminal."""

    def __init__(self, total: int | None, enabled: bool | None = None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar = None
        if self.enabled:
            from rich.progress import (BarColumn, Progress as Bar, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)
            from rich.console import Console
            self.bar = Bar(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,} rows"),
                           TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                           console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task("evaluating", total=total, rate="")
            self.bar.start()
        self.start = time.perf_counter()

    def advance(self, rows: int, done: int) -> None:
        if self.bar is not None:
            rate = done / max(time.perf_counter() - self.start, 1e-9)
            self.bar.update(self.task, advance=rows, rate=f"{rate:,.0f} rows/s")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only when the block succeeds."""
    final = Path(path)
    tmp = final.with_name(f".{final.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def _nan_rows(feeds: dict[str, np.ndarray]) -> int:
    rows = None
    for v in feeds.values():
        if v.dtype.kind == "f" and v.size:
            bad = np.isnan(v).reshape(len(v), -1).any(axis=1)
            rows = bad if rows is None else rows | bad
    return int(rows.sum()) if rows is not None else 0


def target_type(source: Source, target: str, y_pred: TensorType) -> TensorType:
    shape = source.shape_of(target)
    return TensorType(y_pred.dtype, (y_pred.shape[0], *shape))


def _checkpoint_key(model: LoadedModel, data: str, target: str, metrics: list[str], batch_size: int) -> str:
    return json.dumps([model.source, str(data), target, metrics, batch_size,
                       len(model.proto.SerializeToString())])


def model_inputs(proto: onnx.ModelProto) -> list[TensorSpec]:
    """The graph inputs that data feeds (not those an initializer fills)."""
    weights = {t.name for t in proto.graph.initializer}
    return [i for i in tensor_specs(proto.graph.input) if i.name not in weights]


@dataclass
class EvalSetup:
    """What an evaluation builds before its loop, for either engine."""

    inputs: list[TensorSpec]
    plan: Any                              # columns.ColumnPlan
    output: TensorSpec                     # the model output that is y_pred
    metric_set: MetricSet
    states: onnx.ModelProto                # the metric-state graph alone
    fused: onnx.ModelProto | None          # model and states as one graph, where the opset allows


def plan_evaluation(loaded: LoadedModel, source: Source, target: str, metrics: list[str], output: str | None,
                    columns: dict[str, list[str]] | None, sample_weight: str | None,
                    fuse_metrics: bool) -> EvalSetup:
    proto = loaded.proto
    inputs = model_inputs(proto)
    plan = plan_columns(source, inputs, target, sample_weight, columns)
    out_spec = pick_output(proto, output)
    y_pred = _type_of(out_spec, "batch")
    y_true = target_type(source, target, y_pred)
    metric_set = MetricSet(metrics, metric_definitions(*loaded.programs))
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    states = metric_set.state_graph(y_true, y_pred, sample_weight is not None, max(opset, 17), proto.ir_version)
    fused = fuse(proto, states, out_spec.name) if fuse_metrics and opset >= 17 else None
    return EvalSetup(inputs, plan, out_spec, metric_set, states, fused)


def evaluate(model: Any, data: str, target: str, metrics: list[str], *, provider: str = "cpu",
             batch_size: int = DEFAULT_BATCH, output: str | None = None, columns: dict[str, list[str]] | None = None,
             sample_weight: str | None = None, checkpoint: str | None = None, checkpoint_every: int = 100,
             resume: bool = False, progress: bool | None = None, fuse_metrics: bool = True,
             engine: str | None = None, client: Any = None, scheduler: str | None = None,
             workers: int | None = None, partition_rows: int | None = None,
             **compile_options: Any) -> dict[str, Any]:
    """Evaluate metrics of a model over a data file (or a glob, directory or list of files), batch by batch.
    Returns the --json object. engine="dask" (or a client, scheduler or workers) evaluates on Dask."""
    from .distributed import evaluate_dask, wants_dask
    if wants_dask(engine, client, scheduler, workers):
        return evaluate_dask(model, data, target, metrics, provider=provider, batch_size=batch_size, output=output,
                             columns=columns, sample_weight=sample_weight, checkpoint=checkpoint, resume=resume,
                             progress=progress, fuse_metrics=fuse_metrics, client=client, scheduler=scheduler,
                             workers=workers, partition_rows=partition_rows, **compile_options)
    if batch_size < 1:
        raise user_error(f"--batch-size must be at least 1, got {batch_size}")
    if not metrics:
        raise user_error("give at least one --metric (e.g. --metric mse)")
    loaded = model if isinstance(model, LoadedModel) else load_model(model, **compile_options)
    proto = loaded.proto
    from .partitions import open_data
    source = open_data(data, npy_table=True)  # a glob, directory or list: the files one after another
    if isinstance(source, NpySource):  # a 2-D .npy holds the target as one of its columns
        source = source.as_table()
    setup = plan_evaluation(loaded, source, target, metrics, output, columns, sample_weight, fuse_metrics)
    inputs, plan, out_spec, metric_set = setup.inputs, setup.plan, setup.output, setup.metric_set
    if setup.fused is not None:
        session = Session(setup.fused, provider)
        prefix, model_session, state_session = "metric:", None, None
    else:  # an older opset: two sessions, predictions cross to the host
        prefix, session = "", None
        model_session, state_session = Session(proto, provider), Session(setup.states, provider)

    rows = batches = nan_inputs = 0
    key = _checkpoint_key(loaded, data, target, metrics, batch_size)
    if resume and checkpoint and Path(checkpoint).exists():
        saved = np.load(checkpoint, allow_pickle=False)
        if str(saved["__key__"]) != key:
            raise user_error(f"checkpoint {checkpoint} belongs to another evaluation (model, data, metrics or "
                             "batch size differ); remove it or drop --resume")
        rows, batches, nan_inputs = (int(saved[k]) for k in ("__rows__", "__batches__", "__nan_inputs__"))
        metric_set.load_state_dict({k: saved[k] for k in saved.files if not k.startswith("__")})
    bar = Progress(source.num_rows, progress)
    bar.advance(rows, rows)
    started = time.perf_counter()
    def prepare(batch: dict[str, np.ndarray]) -> tuple[int, dict, dict, int]:
        """Host-side work on one batch; runs in the prefetch thread, beside the model."""
        n = len(next(iter(batch.values()))) if batch else 0
        if n == 0:
            return 0, {}, {}, 0
        feeds = feeds_for(batch, plan, inputs)
        truth = np.asarray(batch[target])
        if truth.dtype.kind in "OUS":
            raise user_error(f"target '{target}' has dtype {truth.dtype}; metrics need numbers")
        truth = truth.astype(out_spec.dtype if out_spec.dtype.kind == "f" else np.float64)
        extra = {f"{prefix}y_true": truth}
        if sample_weight is not None:
            extra[f"{prefix}sample_weight"] = np.asarray(batch[sample_weight], dtype=np.float64)
        return n, feeds, extra, _nan_rows(feeds)

    try:
        for n, feeds, extra, nan_rows in prefetch(map(prepare, source.batches(batch_size, start=rows))):
            if n == 0:
                continue
            nan_inputs += nan_rows
            if session is not None:
                result = session.run({**feeds, **extra})
                metric_set.accumulate({k[len(prefix):]: v for k, v in result.items()})
            else:
                predictions = model_session.run(feeds, [out_spec.name])[out_spec.name]
                metric_set.accumulate(state_session.run({"y_pred": predictions, **extra}))
            rows += n
            batches += 1
            bar.advance(n, rows)
            if checkpoint and batches % checkpoint_every == 0:
                save_checkpoint(checkpoint, key, rows, batches, nan_inputs, metric_set)
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    if checkpoint:
        save_checkpoint(checkpoint, key, rows, batches, nan_inputs, metric_set)
    results = metric_set.results()
    if rows == 0:  # undefined, as Metric.result() says: not the 0 that divide_no_nan would give
        import warnings
        warnings.warn(f"{data} has no rows: metrics are undefined", RuntimeWarning, stacklevel=2)
        results = {spec: float("nan") for spec in results}
    return {
        "metrics": results, "samples": rows, "batches": batches, "provider": provider,
        "output": out_spec.name, "seconds": round(seconds, 6),
        "rows_per_second": round(rows / seconds, 1) if seconds > 0 else None,
        "nan_predictions": metric_set.nan_predictions(), "nan_input_rows": nan_inputs,
        "fused": session is not None,
    }


def save_checkpoint(path: str, key: str, rows: int, batches: int, nan_inputs: int, metric_set: MetricSet) -> None:
    arrays = {"__key__": np.array(key), "__rows__": np.array(rows), "__batches__": np.array(batches),
              "__nan_inputs__": np.array(nan_inputs), **metric_set.state_dict()}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
