"""One run interface over onnxruntime (cpu, cuda) and onnx's ReferenceEvaluator (the oracle)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from ..compiler.source import user_error
from ..version import DISTRIBUTION
from .defaults import PROVIDERS

ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
PLATFORMS = {"openvino": "platform_openvino.OpenVinoBackend",   # other runtimes, each behind run(feeds, names)
             "node": "platform_js.NodeBackend", "wasm": "platform_js.WasmBackend"}
assert set(PROVIDERS) == {*ORT_PROVIDERS, "reference", *PLATFORMS}
# OpenVINO's CPU plugin computes float64 in float32: the model runs there, its metric states (float64 sums, which
# lose digits in float32) run beside it on onnxruntime's CPU provider, in a graph of their own
STATES_PROVIDER = {"openvino": "cpu"}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: np.dtype
    shape: tuple[int | str | None, ...]


# ONNX value types that are not tensors, in words: modelc feeds and writes tensors only.
NOT_TENSORS = {"sequence_type": "a sequence", "map_type": "a map", "optional_type": "an optional value",
               "sparse_tensor_type": "a sparse tensor", None: "of no declared type"}


def tensor_specs(values: Any) -> list[TensorSpec]:
    """Name, numpy dtype and shape of graph inputs or outputs; anything but a tensor is refused by name."""
    out = []
    for v in values:
        kind = v.type.WhichOneof("value")
        if kind != "tensor_type" or v.type.tensor_type.elem_type == onnx.TensorProto.UNDEFINED:
            raise user_error(f"the model's '{v.name}' is {NOT_TENSORS.get(kind, 'a tensor of no element type')}, "
                             "not a tensor: modelc feeds and writes tensors (numbers, booleans, strings) only")
        t = v.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim)
        out.append(TensorSpec(v.name, np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)), dims))
    return out


def refuse_what_the_reference_ignores(model: onnx.ModelProto) -> None:
    """onnx's ReferenceEvaluator runs RNN, LSTM and GRU with their default activations only, whatever the
    `activations` attribute says: a wrong answer without a word. Refuse those models instead."""
    for node in [*model.graph.node, *(n for f in model.functions for n in f.node)]:
        if node.op_type in ("RNN", "LSTM", "GRU") and any(a.name == "activations" for a in node.attribute):
            used = next(a for a in node.attribute if a.name == "activations").strings
            raise user_error(f"the reference evaluator ignores the activations of ONNX's {node.op_type} (node "
                             f"'{node.name}' uses {', '.join(sorted({u.decode() for u in used}))}) and would give "
                             "wrong numbers; run this model with --provider cpu or cuda")


def _load_failure(provider: str, message: str) -> str:
    """onnxruntime's NOT_IMPLEMENTED (no kernel for an op with these types: bfloat16 on cpu) in the user's words."""
    missing = re.search(r"NOT_IMPLEMENTED : Could not find an implementation for (\w+)\((\d+)\) node with name "
                        r"'([^']*)'", message)
    if missing is None:
        return f"onnxruntime could not load the model on {provider}: {message}"
    op, version, node = missing.groups()
    return (f"provider '{provider}' cannot run this model: onnxruntime has no {provider} kernel for {op} "
            f"(opset {version}, node '{node}') with its tensor types; use another provider or precision")


@dataclass(eq=False)
class ExternalWeights:
    """Weights a model's proto declares as external initializers but does not hold, so that no protobuf (2 GB
    at most) ever carries them: onnxruntime reads them from `folder` (the model file's folder, where its .data
    file lies; memory-mapped), or is handed `arrays` (a .model over 2 GB compiled in this process) as they are."""

    folder: str | None = None
    arrays: dict[str, np.ndarray] | None = None


def with_external_data(model: onnx.ModelProto, external: ExternalWeights | None) -> onnx.ModelProto:
    """A copy of the model with its external weights in it, for onnx's reference evaluator (the oracle, which
    reads weights from the proto); the model itself when it has none."""
    if external is None:
        return model
    from onnx import numpy_helper
    from onnx.external_data_helper import load_external_data_for_model
    loaded = onnx.ModelProto()
    loaded.CopyFrom(model)
    if external.folder:
        load_external_data_for_model(loaded, external.folder)
    for t in loaded.graph.initializer:
        if external.arrays and t.name in external.arrays:
            t.ClearField("external_data")
            t.data_location = onnx.TensorProto.DEFAULT
            t.raw_data = numpy_helper.from_array(external.arrays[t.name]).raw_data
    return loaded


def _options(ort: Any, threads: int | None, external: ExternalWeights | None) -> tuple[Any, list[Any]]:
    """onnxruntime's session options, and the OrtValues of in-memory external weights (kept alive with the
    session: onnxruntime uses their memory without a copy)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or min(os.cpu_count() or 1, 8)
    options.log_severity_level = 3
    held: list[Any] = []
    if external is None:
        return options, held
    if external.folder:
        options.add_session_config_entry("session.model_external_initializers_file_folder_path", external.folder)
    if external.arrays:
        held = [ort.OrtValue.ortvalue_from_numpy(a) for a in external.arrays.values()]
        options.add_external_initializers(list(external.arrays), held)
    # pre-packing would hold a packed copy of each weight beside the mapped one while loading (1.5x the
    # weights' size for a model of two big layers); without it the weights are held once (about 1x)
    options.add_session_config_entry("session.disable_prepacking", "1")
    return options, held


class Session:
    """`run(feeds) -> {name: array}` on the provider asked for, or a clear error; never a silent fall-back."""

    def __init__(self, model: onnx.ModelProto, provider: str = "cpu", threads: int | None = None,
                 external: ExternalWeights | None = None):
        """`external`: where the weights the proto declares but does not hold are (ExternalWeights)."""
        if provider not in PROVIDERS:
            raise user_error(f"unknown provider '{provider}'; expected one of "
                                               f"{', '.join(PROVIDERS)}")
        self.provider = provider
        self.inputs = tensor_specs(model.graph.input)
        self.outputs = tensor_specs(model.graph.output)
        self.output_names = [o.name for o in self.outputs]
        self._platform = None
        if provider in PLATFORMS:  # the model, weights included, goes to the platform once
            self._platform = platform_backend(provider)(with_external_data(model, external), threads)
            return
        if provider == "reference":
            from onnx.reference import ReferenceEvaluator
            refuse_what_the_reference_ignores(model)
            self._ref = ReferenceEvaluator(with_external_data(model, external))
            return
        try:
            import onnxruntime as ort
        except ImportError:
            raise user_error(f"onnxruntime is not installed: pip install '{DISTRIBUTION}[cpu]' (or "
                             f"'{DISTRIBUTION}[gpu]' for CUDA), or use --provider reference") from None
        wanted = ORT_PROVIDERS[provider]
        if wanted not in ort.get_available_providers():
            raise user_error(f"provider '{provider}' is not available in this onnxruntime "
                             f"({', '.join(ort.get_available_providers())}); for cuda install "
                             f"onnxruntime-gpu (pip install '{DISTRIBUTION}[gpu]') on a machine with a GPU")
        options, self._held = _options(ort, threads, external)
        chosen = [wanted] if provider == "cpu" else [wanted, "CPUExecutionProvider"]
        try:
            self._ort = ort.InferenceSession(model.SerializeToString(), options, providers=chosen)
        except Exception as e:  # onnxruntime raises its own exception types
            raise user_error(_load_failure(provider, str(e))) from None
        if self._ort.get_providers()[0] != wanted:  # onnxruntime falls back silently: refuse
            raise user_error(f"provider '{provider}' did not load (onnxruntime chose "
                                               f"{self._ort.get_providers()})")

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        names = outputs or self.output_names
        if self.provider == "reference":
            values = self._ref.run(names, feeds)
        elif self._platform is not None:
            values = self._platform.run(feeds, names)
        elif self.provider == "cuda":
            values = self._run_bound(feeds, names)
        else:
            try:
                values = self._ort.run(names, feeds)
            except Exception as e:
                raise user_error(f"inference failed on {self.provider}: {e}") from None
        return {n: np.asarray(v) for n, v in zip(names, values)}

    def _run_bound(self, feeds: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
        """CUDA with IOBinding: each input crosses to the device once; the outputs asked for (with a
        fused metric graph, only the small states) are bound to host memory and come back, nothing else."""
        binding = self._ort.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for name in names:
            binding.bind_output(name, "cpu")
        try:
            self._ort.run_with_iobinding(binding)
        except Exception as e:
            raise user_error(f"inference failed on cuda: {e}") from None
        return binding.copy_outputs_to_cpu()


def platform_backend(provider: str) -> type:
    """The backend class of a platform provider, imported only when asked for (each brings its own runtime)."""
    import importlib
    module, name = PLATFORMS[provider].split(".")
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)
