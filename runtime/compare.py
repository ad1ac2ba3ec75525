"""`modelc compare`: one model across providers, precisions and compile options, on the same batches.

Reports per output the error statistics against the first side (max absolute and relative
difference, mean error, share out of tolerance, the worst element with both values, NaN/Inf
counts), per side the latency percentiles and throughput and the task metrics, and, with
--layers, the first layer whose output diverges.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..compiler.files import atomic_write
from ..compiler.source import ModelcError, user_error
from .columns import ColumnPlan, feeds_for, plan_columns
from .data import NpySource, Source, open_source
from .defaults import DEFAULT_BATCH, DEFAULT_CALIBRATION_ROWS
from .engine import check_batch_size
from .metrics import Metric, metric_definitions
from .model import model_inputs
from .quantize import quantize
from .session import Session, TensorSpec

VARIANTS = {  # name -> compile options
    "fp32": {}, "fp16": {"dtype": "float16"}, "bf16": {"dtype": "bfloat16"}, "fp64": {"dtype": "float64"},
    "functions": {}, "inline": {"inline": True},
    "int8": {"quantize": "int8"}, "int8-static": {"quantize": "int8-static"},  # fp32 compiled, then quantize.py
}
FP16_TOLERANCE = (1e-2, 1e-3)  # (rtol, atol) when a half-precision variant takes part
# the error histogram's bins: exactly equal, then one decade each from 1e-12 up, then everything above 100
ERROR_DECADES = np.array([10.0 ** k for k in range(-12, 3)])


@dataclass
class OutputStats:
    """Streaming error statistics of one output of one side against the first side."""

    elements: int = 0
    out_of_tolerance: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    sum_abs: float = 0.0
    worst: dict[str, Any] = field(default_factory=dict)
    nan: int = 0
    inf: int = 0
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(len(ERROR_DECADES) + 2, np.int64))

    def update(self, got: np.ndarray, ref: np.ndarray, row0: int, rtol: float, atol: float) -> None:
        got, ref = got.astype(np.float64), ref.astype(np.float64)
        if got.shape != ref.shape:
            raise user_error(f"shapes differ: {list(got.shape)} vs {list(ref.shape)}")
        self.nan += int(np.isnan(got).sum())
        self.inf += int(np.isinf(got).sum())
        both_nan = np.isnan(got) & np.isnan(ref)
        diff = np.where(both_nan, 0.0, np.abs(got - ref))
        diff = np.where(np.isnan(diff), np.inf, diff)  # NaN on one side only is a disagreement
        # relative error only where the reference is not within atol of 0 (relu zeros would read as infinite)
        rel = np.where(np.abs(ref) >= max(atol, 1e-30), diff / np.maximum(np.abs(ref), 1e-30), 0.0)
        bad = diff > atol + rtol * np.abs(ref)
        self.elements += diff.size
        self.out_of_tolerance += int(bad.sum())
        finite = diff[np.isfinite(diff)]
        self.sum_abs += float(finite.sum())
        flat = diff.ravel()
        bins = np.where(flat == 0, 0, 1 + np.searchsorted(ERROR_DECADES, flat, side="left"))
        self.histogram += np.bincount(bins, minlength=len(self.histogram))
        if diff.size:
            k = int(np.argmax(diff))
            if diff.flat[k] > self.max_abs or not self.worst:
                index = np.unravel_index(k, diff.shape)
                self.worst = {"index": [row0 + int(index[0]), *map(int, index[1:])],
                              "value": float(got.flat[k]), "reference": float(ref.flat[k])}
            self.max_abs = max(self.max_abs, float(diff.flat[k]))
            self.max_rel = max(self.max_rel, float(np.where(np.isfinite(rel), rel, np.inf).max()))

    def as_dict(self) -> dict[str, Any]:
        return {"max_abs": self.max_abs, "max_rel": self.max_rel,
                "mean_abs": self.sum_abs / self.elements if self.elements else 0.0,
                "out_of_tolerance": self.out_of_tolerance,
                "share_out_of_tolerance": self.out_of_tolerance / self.elements if self.elements else 0.0,
                "worst": self.worst, "nan": self.nan, "inf": self.inf, "elements": self.elements,
                "error_histogram": {"upper_edges": [0.0, *ERROR_DECADES.tolist(), float("inf")],
                                    "counts": self.histogram.tolist()}}


@dataclass
class Side:
    label: str
    session: Session
    times: list[float] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    saved: dict[str, list[np.ndarray]] = field(default_factory=dict)


def _percentiles(times: list[float]) -> dict[str, float]:
    if not times:
        return {"p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0}
    p = np.percentile(np.array(times) * 1e3, [50, 90, 99])
    return {"p50_ms": float(p[0]), "p90_ms": float(p[1]), "p99_ms": float(p[2])}


def build_sides(model: str, providers: list[str], variants: list[str] | None, layers: bool,
                compile_options: dict[str, Any]) -> tuple[list[tuple[str, onnx.ModelProto, str]], dict[str, str],
                                                          dict[str, str]]:
    """(label, proto, provider) per side; for --layers {graph value: layer path} and, for a layer whose
    output is an earlier layer's value (an identity layer: dropout), {layer path: that earlier layer}."""
    is_source = str(model).endswith(".model")
    if (variants or layers) and not is_source:
        raise user_error("--variants and --layers need a .model file (they recompile it)")
    layer_of: dict[str, str] = {}
    same_value: dict[str, str] = {}
    if not is_source:
        proto = onnx.load(str(model))
        return [(p, proto, p) for p in providers], layer_of, same_value
    from ..compiler import driver
    program = driver.load_file(model)
    name = compile_options.get("model_name")
    base = {"model": name, "weights": compile_options.get("weights"), "seed": compile_options.get("seed", 0),
            "init_missing": compile_options.get("init_missing", False), "layer_outputs": layers,
            "require_weights": True}
    if layers:
        lowered = driver.lower_program(program, name)
        for r in lowered.layers:  # an identity layer (dropout) holds its input's value: the first holder reports it
            if r.value in layer_of:
                same_value[r.path] = layer_of[r.value]
            elif r.value:
                layer_of[r.value] = r.path
    if not variants:
        proto = driver.compile_program(program, **base)
        return [(p, proto, p) for p in providers], layer_of, same_value
    protos = {}
    for v in variants:
        if v in VARIANTS:
            options = VARIANTS[v]
        elif v.startswith("opset") and v[5:].isdigit():
            options = {"opset": int(v[5:])}
        else:
            raise user_error(f"unknown variant '{v}'; use fp32, fp16, bf16, fp64, functions, inline, int8, "
                             "int8-static or opsetN")
        protos[v] = driver.compile_program(program, **base, **{k: o for k, o in options.items() if k != "quantize"})
        if "quantize" in options:  # int8: the fp32 model quantized, calibrated on --data (quantize.py)
            protos[v] = quantize(protos[v], options["quantize"], **compile_options.get("calibration", {}))
    # the full cross product: every provider runs every variant, compiled once
    return [(f"{p}/{v}", protos[v], p) for p in providers for v in variants], layer_of, same_value


def compare(model: str, data: str, *, providers: list[str] | None = None, variants: list[str] | None = None,
            rtol: float | None = None, atol: float | None = None, batch_size: int = DEFAULT_BATCH,
            max_batches: int | None = None, target: str | None = None, metrics: list[str] | None = None,
            output: str | None = None, columns: dict[str, list[str]] | None = None, layers: bool = False,
            save_outputs: str | None = None, against: str | None = None, imports: tuple[str, ...] = (),
            calibration_rows: int = DEFAULT_CALIBRATION_ROWS, **compile_options: Any) -> dict[str, Any]:
    # variants are compared on cpu unless --providers names more: each provider runs each variant (cross product)
    providers = providers or (["cpu"] if variants else ["cpu", "reference"])
    check_batch_size(batch_size)
    if max_batches is not None and max_batches < 1:
        raise user_error(f"--max-batches must be at least 1, got {max_batches}")
    if rtol is None or atol is None:
        half = any(v in ("fp16", "bf16") for v in variants or [])
        default = FP16_TOLERANCE if half else (1e-4, 1e-5)
        rtol, atol = (default[0] if rtol is None else rtol), (default[1] if atol is None else atol)
    calibration = {"calibrate": data, "rows": calibration_rows, "columns": columns, "target": target}  # int8-static
    specs, layer_of, same_value = build_sides(model, providers, variants, layers,
                                              {**compile_options, "calibration": calibration})
    if len(specs) + (1 if against else 0) < 2:
        raise user_error("compare needs two sides: several --providers, several --variants, or --against DIR")
    sides = [Side(label, _session(label, proto, provider)) for label, proto, provider in specs]
    inputs = model_inputs(specs[0][1])
    source = open_source(str(data))
    if target is not None and isinstance(source, NpySource):
        source = source.as_table()
    plan = plan_columns(source, inputs, target, None, columns)
    outputs = sides[0].session.output_names
    task_output = output or (outputs[0] if metrics else None)
    if metrics:
        definitions = _metric_definitions(model, imports)
        for side in sides:
            side.metrics = [Metric(m, definitions) for m in metrics]
    golden = _load_golden(against, outputs) if against else None
    run = Comparison(sides, golden, outputs, rtol, atol, target, task_output, bool(save_outputs))
    run.over(source, plan, inputs, batch_size, max_batches)
    if run.rows == 0:  # agreeing on nothing must not pass a gate
        raise user_error(f"{data} has no rows to compare")
    reference_label = f"golden:{against}" if golden is not None else sides[0].label
    report = _report(sides, run.compared, run.stats, layer_of, same_value, reference_label, run.rows, run.batches,
                     rtol, atol, task_output)
    if save_outputs:
        _save(save_outputs, sides, run.saved_inputs, report)
    return report


def _session(label: str, proto: onnx.ModelProto, provider: str) -> Session:
    """The side's session; a provider that cannot run a variant (bf16 on cpu) is named with the side."""
    try:
        return Session(proto, provider)
    except ModelcError as e:
        raise user_error(f"compare side {label}: {e.diagnostics[0].message}") from None


def _metric_definitions(model: str, imports: tuple[str, ...]) -> dict[str, Any]:
    """The prelude's metrics, then the model file's, then the --import files'."""
    paths = ([model] if str(model).endswith(".model") else []) + list(imports)
    if not paths:
        return metric_definitions()
    from ..compiler import driver
    return metric_definitions(*(driver.load_file(p) for p in paths))


class Comparison:
    """The sides run batch by batch on the same feeds; each compared side's outputs streamed into statistics
    against the reference (the first side, or the saved golden outputs)."""

    def __init__(self, sides: list[Side], golden: dict[str, np.ndarray] | None, outputs: list[str], rtol: float,
                 atol: float, target: str | None, task_output: str | None, save: bool):
        self.sides, self.golden, self.outputs = sides, golden, outputs
        self.rtol, self.atol, self.target, self.task_output, self.save = rtol, atol, target, task_output, save
        self.compared = sides if golden is not None else sides[1:]
        self.stats = {o: {s.label: OutputStats() for s in self.compared} for o in outputs}
        self.saved_inputs: dict[str, list[np.ndarray]] = {}
        self.rows = self.batches = 0

    def over(self, source: Source, plan: ColumnPlan, inputs: list[TensorSpec], batch_size: int,
             max_batches: int | None) -> None:
        for batch in source.batches(batch_size):
            if max_batches is not None and self.batches >= max_batches:
                break
            feeds = feeds_for(batch, plan, inputs)
            n = len(next(iter(feeds.values())))
            if n:
                self.one_batch(batch, feeds, n)

    def one_batch(self, batch: dict[str, np.ndarray], feeds: dict[str, np.ndarray], n: int) -> None:
        results = [self.run_side(side, batch, feeds) for side in self.sides]
        reference = {o: self.golden[o][self.rows:self.rows + n] for o in self.outputs} \
            if self.golden is not None else results[0]
        for side, result in zip(self.sides, results):
            if side in self.compared:
                for o in self.outputs:
                    self.stats[o][side.label].update(result[o], reference[o], self.rows, self.rtol, self.atol)
        if self.save:
            for k, v in feeds.items():
                self.saved_inputs.setdefault(k, []).append(v)
        self.rows += n
        self.batches += 1

    def run_side(self, side: Side, batch: dict[str, np.ndarray], feeds: dict[str, np.ndarray]) -> dict:
        side_inputs = {i.name: i.dtype for i in side.session.inputs}
        cast = {k: v.astype(side_inputs.get(k, v.dtype)) for k, v in feeds.items()}
        start = time.perf_counter()
        result = side.session.run(cast)
        side.times.append(time.perf_counter() - start)
        for m in side.metrics:
            m.update(batch[self.target], result[self.task_output])
        if self.save:
            for k, v in result.items():
                side.saved.setdefault(k, []).append(v)
        return result


def _report(sides: list[Side], compared: list[Side], stats: dict, layer_of: dict[str, str],
            same_value: dict[str, str], reference: str, rows: int, batches: int, rtol: float, atol: float,
            task_output: str | None) -> dict[str, Any]:
    outputs = {o: {label: s.as_dict() for label, s in per.items()} for o, per in stats.items()}
    agree = all(s["out_of_tolerance"] == 0 for per in outputs.values() for s in per.values())
    diverging = _first_layer(outputs, layer_of, lambda s: s["out_of_tolerance"] > 0)
    nonfinite = {side.label: _first_layer({v: {side.label: per[side.label]} for v, per in outputs.items()
                                           if side.label in per}, layer_of, lambda s: s["nan"] + s["inf"] > 0)
                 for side in compared}
    model_outputs = {o: v for o, v in outputs.items() if o not in layer_of}
    metrics = {s.label: {m.spec: m.result() for m in s.metrics} for s in sides if s.metrics}
    metric_diff = {}
    if metrics:
        first = metrics[sides[0].label]
        for label, values in metrics.items():
            metric_diff[label] = {k: _difference(v, first[k]) for k, v in values.items()}
    return {
        "agree": agree, "reference": reference, "rtol": rtol, "atol": atol, "samples": rows, "batches": batches,
        "sides": [s.label for s in sides],
        "outputs": model_outputs,
        "layers": {layer_of[v]: outputs[v] for v in layer_of if v in outputs} if layer_of else {},
        "same_value_as": same_value,  # identity layers: no output of their own, so no row of their own
        "first_diverging_layer": diverging,
        "first_nonfinite_layer": nonfinite,  # per side: the first layer with a NaN or an Inf (with --layers)
        "latency": {s.label: {**_percentiles(s.times),
                              "rows_per_second": rows / sum(s.times) if sum(s.times) else 0.0} for s in sides},
        "metrics": metrics, "metric_differences": metric_diff, "task_output": task_output,
    }


def _first_layer(outputs: dict, layer_of: dict[str, str], hit: Any) -> str | None:
    """The first layer, in graph order, one of whose sides' statistics `hit` selects; None if none does."""
    for value, path in layer_of.items():
        if value in outputs and any(hit(s) for s in outputs[value].values()):
            return path
    return None


def _difference(a: Any, b: Any) -> Any:
    try:
        return (np.asarray(a, np.float64) - np.asarray(b, np.float64)).tolist()
    except (TypeError, ValueError):
        return None


def _load_golden(folder: str, outputs: list[str]) -> dict[str, np.ndarray]:
    meta_path = Path(folder) / "meta.json"
    if not meta_path.exists():
        raise user_error(f"--against {folder}: no meta.json there; write one with --save-outputs {folder}")
    meta = json.loads(meta_path.read_text())
    with np.load(Path(folder) / f"{meta['reference']}.npz", allow_pickle=False) as z:
        missing = [o for o in outputs if o not in z.files]
        if missing:
            raise user_error(f"--against {folder}: the stored outputs lack '{missing[0]}'")
        return {o: z[o] for o in outputs}


def _save(folder: str, sides: list[Side], inputs: dict[str, list[np.ndarray]], report: dict[str, Any]) -> None:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name, arrays in [("inputs", inputs), *((s.label, s.saved) for s in sides)]:
        with atomic_write(out / f"{name.replace('/', '_')}.npz") as (tmp,):
            with open(tmp, "wb") as f:
                np.savez(f, **{k: np.concatenate(v) for k, v in arrays.items()})
    with atomic_write(out / "meta.json") as (tmp,):
        tmp.write_text(json.dumps({"reference": sides[0].label.replace("/", "_"), "sides": report["sides"],
                                   "samples": report["samples"], "rtol": report["rtol"], "atol": report["atol"]}))
