"""`--provider openvino`: OpenVINO's own runtime reading the ONNX model (its ONNX front end), on the CPU.

Why not onnxruntime's OpenVINO execution provider: it ships as `onnxruntime-openvino`, a second build of the
`onnxruntime` module that cannot be installed beside the CPU build modelc depends on, and it lags onnxruntime's
releases. The `openvino` package installs beside it, and it is what an Intel deployment runs.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import onnx
import onnx.inliner

from ..compiler.source import user_error
from ..version import DISTRIBUTION


class OpenVinoBackend:
    provider = "openvino"

    def __init__(self, model: onnx.ModelProto, threads: int | None = None):
        # importing openvino sends usage telemetry unless a consent file in the user's home says no (and forks
        # a process to send it); modelc never lets it: with its telemetry package unimportable, OpenVINO uses
        # its own stub
        sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
        try:
            import openvino as ov
        except ImportError:
            raise user_error(f"provider 'openvino' needs OpenVINO: pip install '{DISTRIBUTION}[platforms]' (or "
                             "`make platforms`)") from None
        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": threads or min(os.cpu_count() or 1, 8),
                  "INFERENCE_PRECISION_HINT": "f32"}  # OpenVINO's CPU default may be bf16 where the CPU has it
        if model.functions:  # OpenVINO's ONNX front end has no model-local functions: modelc's layers go inline
            model = onnx.inliner.inline_local_functions(model)
        try:
            read = core.read_model(model.SerializeToString(), b"")
            self._compiled = core.compile_model(read, "CPU", config)
        except Exception as e:  # OpenVINO raises RuntimeError/OpConversionFailure with the operator's name
            raise user_error(f"provider 'openvino' could not load the model: {_first_lines(str(e))}") from None
        self._request = self._compiled.create_infer_request()
        # a port may carry several tensor names (inlining adds some): the graph's output names pick the port
        self._ports = {name: port for port in self._compiled.outputs for name in port.get_names()}
        self.version = ov.get_version()
        self.last_ms = 0.0

    def run(self, feeds: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
        try:
            results = self._request.infer({k: np.ascontiguousarray(v) for k, v in feeds.items()},
                                          share_inputs=True)
        except Exception as e:
            raise user_error(f"inference failed on openvino: {_first_lines(str(e))}") from None
        # the request's buffers are reused by the next batch: copy what is kept
        return [np.array(results[self._ports[n]]) for n in names]


def _first_lines(message: str, count: int = 4) -> str:
    return " ".join(line.strip() for line in message.strip().splitlines()[:count])
