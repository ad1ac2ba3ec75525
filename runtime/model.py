"""A model as the runtime holds it: loaded (compiled here when it is a .model), its inputs and the output
metrics read, the metric-state graph fused into it, and the one `Runner` that runs it in a process.

The Runner is the only code that knows whether metric states run fused into the model's graph (one
session; only the small states leave it, which keeps predictions on a GPU) or split (two sessions, for
opsets below 17 where onnx.compose cannot merge, or when fusion is turned off).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from ..compiler.source import user_error
from .metrics import MetricSet, metric_types
from .session import Session, TensorSpec, tensor_specs

STATE_PREFIX = "metric:"        # the state graph's names inside a fused graph
FUSED, SPLIT, PREDICT = "fused", "split", "predict"


@dataclass
class LoadedModel:
    proto: onnx.ModelProto
    programs: list[Any] = field(default_factory=list)   # the .model file and --import files, for their metrics
    source: str = ""


def load_model(model: Any, *, model_name: str | None = None, weights: str | None = None, seed: int = 0,
               init_missing: bool = False, imports: tuple[str, ...] = ()) -> LoadedModel:
    """A .model (compiled here), an .onnx file, or an onnx.ModelProto; --import files add metrics.
    Only a .model or an --import brings in the compiler: an .onnx file never parses anything."""
    if isinstance(model, LoadedModel):
        return model
    programs = []
    if imports:
        from ..compiler import driver
        programs = [driver.load_file(p) for p in imports]
    if isinstance(model, onnx.ModelProto):
        return LoadedModel(model, programs, "<proto>")
    path = str(model)
    if path.endswith(".model"):
        from ..compiler import driver
        program = driver.load_file(path)
        proto = driver.compile_program(program, model_name, weights, seed, None, False, init_missing,
                                       require_weights=True)
        return LoadedModel(proto, [program, *programs], path)
    try:
        proto = onnx.load(path)
    except Exception as e:  # noqa: BLE001 - onnx raises OSError, DecodeError or its own types
        raise user_error(f"cannot read model {path}: {e}") from None
    return LoadedModel(proto, programs, path)


def model_inputs(proto: onnx.ModelProto) -> list[TensorSpec]:
    """The graph inputs that data feeds (not those an initializer fills)."""
    weights = {t.name for t in proto.graph.initializer}
    return [i for i in tensor_specs(proto.graph.input) if i.name not in weights]


def pick_output(proto: onnx.ModelProto, name: str | None) -> TensorSpec:
    """The output metrics read: the only one, or the one named with --output."""
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


def pick_outputs(proto: onnx.ModelProto, names: list[str] | None) -> list[str]:
    """The outputs `run` writes: those named, or all."""
    known = [o.name for o in tensor_specs(proto.graph.output)]
    unknown = [n for n in names or [] if n not in known]
    if unknown:
        raise user_error(f"the model has no output '{unknown[0]}'; outputs: {', '.join(known)}")
    return names or known


def opset_of(proto: onnx.ModelProto) -> int:
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def fuse(proto: onnx.ModelProto, states: onnx.ModelProto, output: str) -> onnx.ModelProto:
    """Model and metric-state graph as one: a batch goes in, only the small states come out."""
    from onnx import compose
    states = compose.add_prefix(states, STATE_PREFIX)
    return compose.merge_models(proto, states, io_map=[(output, f"{STATE_PREFIX}y_pred")],
                                outputs=[o.name for o in states.graph.output])


@dataclass
class EvalGraphs:
    """What an evaluation runs: the graphs and how to run them."""

    kind: str                       # FUSED or SPLIT
    protos: list[onnx.ModelProto]   # [fused] or [model, states]
    output: TensorSpec              # the model output that is y_pred


def eval_graphs(loaded: LoadedModel, metric_set: MetricSet, output: TensorSpec, target_shape: tuple[int, ...],
                weighted: bool, fuse_metrics: bool, max_rows: int | None = None) -> EvalGraphs:
    """The metric-state graph for these types (batches of at most `max_rows` rows), fused into the model's graph
    where the opset allows."""
    proto = loaded.proto
    y_true, y_pred = metric_types(f"output '{output.name}'", output.dtype, output.shape[1:], target_shape)
    opset = opset_of(proto)
    states = metric_set.state_graph(y_true, y_pred, weighted, max(opset, 17), proto.ir_version, max_rows)
    if fuse_metrics and opset >= 17:
        return EvalGraphs(FUSED, [fuse(proto, states, output.name)], output)
    return EvalGraphs(SPLIT, [proto, states], output)


class Runner:
    """A model's onnxruntime sessions in one process, built once and used by every batch and task there.

    kind: FUSED (model and metric states in one graph), SPLIT (two sessions) or PREDICT (the model alone).
    """

    def __init__(self, protos: list[onnx.ModelProto | bytes], provider: str, kind: str, output: str | None = None,
                 threads: int | None = None):
        self.kind, self.output = kind, output
        self.sessions = [Session(p if isinstance(p, onnx.ModelProto) else onnx.load_from_string(p), provider, threads)
                         for p in protos]

    @classmethod
    def for_eval(cls, graphs: EvalGraphs, provider: str, threads: int | None = None) -> "Runner":
        return cls(graphs.protos, provider, graphs.kind, graphs.output.name, threads)

    @property
    def output_names(self) -> list[str]:
        return self.sessions[0].output_names

    def states(self, feeds: dict[str, np.ndarray], extra: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One batch's metric states; `extra` holds y_true (and sample_weight) under the state graph's names."""
        if self.kind == FUSED:
            result = self.sessions[0].run({**feeds, **{STATE_PREFIX + k: v for k, v in extra.items()}})
            return {k[len(STATE_PREFIX):]: v for k, v in result.items()}
        predictions = self.sessions[0].run(feeds, [self.output])[self.output]  # type: ignore[list-item]
        return self.sessions[1].run({"y_pred": predictions, **extra})

    def predict(self, feeds: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
        return self.sessions[0].run(feeds, names)
