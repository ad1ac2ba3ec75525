"""A model as the runtime holds it: loaded (compiled here when it is a .model), its inputs and the output
metrics read, the metric-state graph fused into it, and the one `Runner` that runs it in a process.

The Runner is the only code that knows whether metric states run fused into the model's graph (one
session; only the small states leave it, which keeps predictions on a GPU) or split (two sessions, for
opsets below 17 where onnx.compose cannot merge, or when fusion is turned off).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..compiler.files import regular_input
from ..compiler.source import ModelcError, user_error
from .metrics import MetricSet, metric_types
from .session import STATES_PROVIDER, ExternalWeights, Session, TensorSpec, tensor_specs

STATE_PREFIX = "metric:"        # the state graph's names inside a fused graph
FUSED, SPLIT, PREDICT = "fused", "split", "predict"


@dataclass
class LoadedModel:
    proto: onnx.ModelProto
    programs: list[Any] = field(default_factory=list)   # the .model file and --import files, for their metrics
    source: str = ""
    external: ExternalWeights | None = None  # weights the proto declares but does not hold (over 2 GB)


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
        return LoadedModel(runnable(model, "the model"), programs, "<proto>")
    path = str(model)
    if path.endswith(".model"):
        from ..compiler import driver
        program = driver.load_file(path)
        compiled = driver.compile_for_saving(program, model_name, weights, seed, None, False, init_missing,
                                             require_weights=True)
        proto, external = _weights_beside(compiled)
        return LoadedModel(proto, [program, *programs], path, external)
    regular_input(path, "model")
    try:  # weights in external data stay there: onnxruntime reads them from the file (session.py)
        proto = onnx.load(path, load_external_data=False)
    except Exception as e:  # noqa: BLE001 - onnx raises OSError, DecodeError or its own types
        raise user_error(f"cannot read model {path}: {e}") from None
    return LoadedModel(runnable(proto, path), programs, path, external_of(proto, path))


def runnable(proto: onnx.ModelProto, source: str) -> onnx.ModelProto:
    """The model, unless it has no outputs or inputs and outputs that are not tensors: refused naming it."""
    if not proto.graph.output:
        raise user_error(f"{source} has no outputs: there is nothing to run or compare")
    try:
        tensor_specs(proto.graph.input)
        tensor_specs(proto.graph.output)
    except ModelcError as e:
        raise user_error(f"{source}: {e.diagnostics[0].message}") from None
    return proto


def external_of(proto: onnx.ModelProto, path: str) -> ExternalWeights | None:
    """A model file's weights in external data: in its folder (their locations are relative to it), each
    checked to lie inside a file there before onnxruntime reads it."""
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data
    folder = Path(path).resolve().parent
    tensors = [t for t in proto.graph.initializer if uses_external_data(t)]
    for t in tensors:
        info = ExternalDataInfo(t)
        data = Path(os.path.normpath(folder / info.location))  # a symlinked data file is the user's to make
        if folder not in data.parents:
            raise user_error(f"cannot read model {path}: weight '{t.name}' points outside the model's folder "
                             f"('{info.location}')")
        size = data.stat().st_size if data.is_file() else None
        offset, length = info.offset or 0, info.length or 0
        if size is None or offset + length > size:
            held = "which is missing" if size is None else f"which holds {size}"
            raise user_error(f"cannot read model {path}: weight '{t.name}' needs {length} bytes at offset {offset} "
                             f"of {data}, {held}")
    return ExternalWeights(folder=str(folder)) if tensors else None


def _weights_beside(compiled: Any) -> tuple[onnx.ModelProto, ExternalWeights | None]:
    """A .model compiled here: its weights attached to the proto, or, over the 2 GB a protobuf holds (the
    threshold at which compile writes external data), declared in it and handed to onnxruntime as arrays."""
    from ..compiler import serialize
    if sum(a.nbytes for a in compiled.arrays.values()) <= serialize.EXTERNAL_DATA_BYTES:
        return compiled.with_weights(), None
    return serialize.declare_external(compiled.proto, compiled.slots, compiled.arrays), \
        ExternalWeights(arrays=compiled.arrays)


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
    """Model and metric-state graph as one: a batch goes in, only the small states come out.

    Weights in external data stay there: onnx's checker (which merge_models runs) would look for their file
    from the working folder, so they pass the merge as typed graph inputs and come back as the same
    initializers after it, still pointing at the model's data file."""
    from onnx import compose
    from onnx.external_data_helper import uses_external_data
    external = [t for t in proto.graph.initializer if uses_external_data(t)]
    listed = {i.name for i in proto.graph.input}
    added = {t.name for t in external} - listed
    if external:
        proto = _weights_as_inputs(proto, external, added)
    states = compose.add_prefix(states, STATE_PREFIX)
    fused = compose.merge_models(proto, states, io_map=[(output, f"{STATE_PREFIX}y_pred")],
                                 outputs=[o.name for o in states.graph.output])
    if external:
        inputs = [i for i in fused.graph.input if i.name not in added]
        del fused.graph.input[:]
        fused.graph.input.extend(inputs)
        fused.graph.initializer.extend(external)
    return fused


def _weights_as_inputs(proto: onnx.ModelProto, external: list[onnx.TensorProto], added: set[str]) -> onnx.ModelProto:
    """A copy (cheap: the weights are not in it) with the external weights as typed graph inputs instead."""
    names = {t.name for t in external}
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    kept = [t for t in out.graph.initializer if t.name not in names]
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept)
    out.graph.input.extend(onnx.helper.make_tensor_value_info(t.name, t.data_type, t.dims)
                           for t in external if t.name in added)
    return out


@dataclass
class EvalGraphs:
    """What an evaluation runs: the graphs and how to run them."""

    kind: str                       # FUSED or SPLIT
    protos: list[onnx.ModelProto]   # [fused] or [model, states]
    output: TensorSpec              # the model output that is y_pred
    external: ExternalWeights | None = None  # the model's weights outside its proto (LoadedModel.external)


def eval_graphs(loaded: LoadedModel, metric_set: MetricSet, output: TensorSpec, target_shape: tuple[int, ...],
                weighted: bool | tuple, fuse_metrics: bool, max_rows: int | None = None) -> EvalGraphs:
    """The metric-state graph for these types (batches of at most `max_rows` rows), fused into the model's graph
    where the opset allows."""
    proto = loaded.proto
    y_true, y_pred = metric_types(f"output '{output.name}'", output.dtype, output.shape[1:], target_shape)
    opset = opset_of(proto)
    states = metric_set.state_graph(y_true, y_pred, weighted, max(opset, 17), proto.ir_version, max_rows)
    # with external data the model graph is weightless: the fused graph's weights still point at the file
    if fuse_metrics and opset >= 17:
        return EvalGraphs(FUSED, [fuse(proto, states, output.name)], output, loaded.external)
    return EvalGraphs(SPLIT, [proto, states], output, loaded.external)


class Runner:
    """A model's onnxruntime sessions in one process, built once and used by every batch and task there.

    kind: FUSED (model and metric states in one graph), SPLIT (two sessions) or PREDICT (the model alone).
    """

    def __init__(self, protos: list[onnx.ModelProto | bytes], provider: str, kind: str, output: str | None = None,
                 threads: int | None = None, external: ExternalWeights | None = None):
        self.kind, self.output = kind, output
        # external weights belong to the model, the first graph (a SPLIT's state graph has none)
        self.sessions = [Session(p if isinstance(p, onnx.ModelProto) else onnx.load_from_string(p),
                                 STATES_PROVIDER.get(provider, provider) if i else provider, threads,
                                 None if i else external) for i, p in enumerate(protos)]

    @classmethod
    def for_eval(cls, graphs: EvalGraphs, provider: str, threads: int | None = None) -> "Runner":
        return cls(graphs.protos, provider, graphs.kind, graphs.output.name, threads, graphs.external)

    @classmethod
    def for_run(cls, loaded: LoadedModel, provider: str, threads: int | None = None) -> "Runner":
        return cls([loaded.proto], provider, PREDICT, None, threads, loaded.external)

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
