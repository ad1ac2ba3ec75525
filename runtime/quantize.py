"""int8 quantization of a compiled model with onnxruntime.quantization: dynamic (weights only) or static
(weights and activations, calibrated on the first rows of a data file read by the runtime's own readers)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.inliner

from ..compiler.files import scratch_folder
from ..compiler.source import user_error
from .columns import feeds_for, plan_columns
from .defaults import DEFAULT_CALIBRATION_ROWS
from .model import model_inputs
from .partitions import open_data
from .session import TensorSpec

QUANTIZE_MODES = {  # --quantize / compare variant -> what it does
    "int8": "dynamic: MatMul/Gemm/Conv weights to int8, activations quantized per batch at run time",
    "int8-static": "static: int8 weights, uint8 activations (QDQ), ranges calibrated on --calibration-rows rows",
}
OP_TYPES = ["MatMul", "Gemm", "Conv"]  # the operators whose weights are quantized


class _NoPreprocessAdvice(logging.Filter):
    """The quantizer logs advice to run its shape pre-processing on every call; our graphs carry their shapes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-process" not in record.getMessage()


class CalibrationRows:
    """onnxruntime's CalibrationDataReader over the first `limit` rows of `data`, one feed dict per batch;
    `rows` counts what it handed out (the static variant uses exactly the rows asked for)."""

    def __init__(self, data: Any, inputs: list[TensorSpec], limit: int, columns: dict[str, list[str]] | None = None,
                 target: str | None = None, batch_size: int = 64):
        self.data, source = data, open_data(data)
        self.plan = plan_columns(source, inputs, target, None, columns)  # the target column is no input
        self.inputs, self.limit, self.rows = inputs, limit, 0
        self.batches = source.batches(min(batch_size, limit))

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.rows >= self.limit:
            return None
        batch = next(self.batches, None)
        if batch is None:
            return None
        feeds = feeds_for(batch, self.plan, self.inputs)
        take = min(len(next(iter(feeds.values()))), self.limit - self.rows)
        self.rows += take
        return {k: v[:take] for k, v in feeds.items()} if take else self.get_next()


def quantize(proto: onnx.ModelProto, mode: str, calibrate: Any = None, rows: int = DEFAULT_CALIBRATION_ROWS,
             columns: dict[str, list[str]] | None = None, target: str | None = None,
             workdir: str | None = None) -> onnx.ModelProto:
    """The model quantized to int8 (`mode`: a key of QUANTIZE_MODES). Layer functions are inlined first:
    the quantizer only sees the main graph. Its temporary files stay in a folder under `workdir`.

    Raises:
        ModelcError: an unknown mode, int8-static without calibration data, too few rows.
    """
    if mode not in QUANTIZE_MODES:
        raise user_error(f"unknown quantization '{mode}'; use {' or '.join(QUANTIZE_MODES)}")
    if mode == "int8-static" and calibrate is None:
        raise user_error("int8-static needs calibration data: --calibrate DATA (compile) or --data (compare)")
    if rows < 1:
        raise user_error(f"--calibration-rows must be at least 1, got {rows}")
    from onnxruntime import quantization as q
    flat = onnx.inliner.inline_local_functions(proto)
    quiet = _NoPreprocessAdvice()
    logging.getLogger().addFilter(quiet)
    try:
        quantized = _run_quantizer(q, flat, CalibrationRows(calibrate, model_inputs(flat), rows, columns, target)
                                   if mode == "int8-static" else None, workdir)
    finally:
        logging.getLogger().removeFilter(quiet)
    # the quantizer signs the model as its own: it stays modelc's, with its source and seed (metadata kept)
    quantized.producer_name, quantized.producer_version = proto.producer_name, proto.producer_version
    return quantized


def _run_quantizer(q: Any, flat: onnx.ModelProto, reader: CalibrationRows | None,
                   workdir: str | None) -> onnx.ModelProto:
    with scratch_folder(workdir, "quantize") as tmp:
        src, out = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(flat, str(src))
        if reader is None:  # dynamic
            q.quantize_dynamic(src, out, op_types_to_quantize=OP_TYPES, weight_type=q.QuantType.QInt8)
        else:
            # NOTE: batch_norm folded into its Conv first (ORT's pre-processing), so that Conv -> Relu fuses into
            # one QLinearConv; uint8 activations with int8 weights: the x86 kernels' fast path (bench/int8_bench.py:
            # int8 activations or no folding ran the resnet sample at about half the fp32 speed)
            from onnxruntime.quantization.shape_inference import quant_pre_process
            folded = Path(tmp) / "folded.onnx"
            quant_pre_process(str(src), str(folded), skip_symbolic_shape=True)
            q.quantize_static(folded, out, reader, op_types_to_quantize=OP_TYPES, quant_format=q.QuantFormat.QDQ,
                              activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8)
            if reader.rows < reader.limit:
                raise user_error(f"--calibration-rows {reader.limit}: {reader.data} has only {reader.rows} rows")
        return onnx.load(str(out))
