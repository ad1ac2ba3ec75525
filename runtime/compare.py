"""`modelc compare`: one model across providers, precisions and compile options, on the same batches.

Reports per output the error statistics against the first side (max absolute and relative
difference, mean error, share out of tolerance, the worst element with both values, NaN/Inf
counts), per side the latency percentiles and throughput and the task metrics, and, with
--layers, the first layer whose output diverges.
"""
from __future__ import annotations

import json
import time
from itertools import islice
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..compiler.array_files import NpzArchive, read_rows
from ..compiler.files import atomic_write
from ..compiler.source import ModelcError, user_error
from .columns import ColumnPlan, feeds_for, guard_casts, plan_columns
from .data import NpySource, Source, open_source
from .defaults import DEFAULT_BATCH, DEFAULT_CALIBRATION_ROWS
from .engine import check_batch_size
from .metrics import Metric, metric_definitions
from .model import external_of, load_model, model_inputs
from .quantize import quantize
from .session import ExternalWeights, Session, TensorSpec

VARIANTS = {  # name -> compile options
    "fp32": {}, "fp16": {"dtype": "float16"}, "bf16": {"dtype": "bfloat16"}, "fp64": {"dtype": "float64"},
    "functions": {}, "inline": {"inline": True},
    "int8": {"quantize": "int8"}, "int8-static": {"quantize": "int8-static"},  # fp32 compiled, then quantize.py
}
FP16_TOLERANCE = (1e-2, 1e-3)  # (rtol, atol) when a half-precision variant takes part
# with an int8 variant: 8-bit weights (and activations) move outputs by a few hundredths of their range (softmax
# outputs of the samples: at most 0.04 absolute); the task metrics' differences are what decides
INT8_TOLERANCE = (1e-1, 5e-2)
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
        if got.dtype.kind in "OUS" or ref.dtype.kind in "OUS":   # text: equal or not, no tolerance
            return self.update_text(got.astype(str), ref.astype(str), row0)
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

    def update_text(self, got: np.ndarray, ref: np.ndarray, row0: int) -> None:
        if got.shape != ref.shape:
            raise user_error(f"shapes differ: {list(got.shape)} vs {list(ref.shape)}")
        bad = got != ref
        self.elements += bad.size
        self.out_of_tolerance += int(bad.sum())
        if bad.any() and not self.worst:
            index = np.unravel_index(int(np.argmax(bad)), bad.shape)
            self.worst = {"index": [row0 + int(index[0]), *map(int, index[1:])],
                          "value": str(got[index]), "reference": str(ref[index])}

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
        proto = load_model(model).proto  # its external data, if any, stays on disk
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
        given = set(variants or [])
        default = INT8_TOLERANCE if given & {"int8", "int8-static"} else \
            FP16_TOLERANCE if given & {"fp16", "bf16"} else (1e-4, 1e-5)
        rtol, atol = (default[0] if rtol is None else rtol), (default[1] if atol is None else atol)
    calibration = {"calibrate": data, "rows": calibration_rows, "columns": columns, "target": target}  # int8-static
    specs, layer_of, same_value = build_sides(model, providers, variants, layers,
                                              {**compile_options, "calibration": calibration})
    if len(specs) + (1 if against else 0) < 2:
        raise user_error("compare needs two sides: several --providers, several --variants, or --against DIR")
    external = None if str(model).endswith(".model") else external_of(specs[0][1], str(model))
    sides = [Side(label, _session(label, proto, provider, external)) for label, proto, provider in specs]
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
    golden = Golden(against, sides[0].session.outputs) if against else None
    run = Comparison(sides, golden, outputs, rtol, atol, target, task_output, bool(save_outputs))
    try:
        run.over(source, plan, inputs, batch_size, max_batches)
    finally:
        if golden is not None:
            golden.archive.close()
    if run.rows == 0:  # agreeing on nothing must not pass a gate
        raise user_error(f"{data} has no rows to compare")
    reference_label = f"golden:{against}" if golden is not None else sides[0].label
    report = _report(sides, run.compared, run.stats, layer_of, same_value, reference_label, run.rows, run.batches,
                     rtol, atol, task_output)
    if save_outputs:
        _save(save_outputs, sides, run.saved_inputs, report)
    return report


def _session(label: str, proto: onnx.ModelProto, provider: str, external: ExternalWeights | None) -> Session:
    """The side's session; a provider that cannot run a variant (bf16 on cpu) is named with the side."""
    try:
        return Session(proto, provider, external=external)
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

    def __init__(self, sides: list[Side], golden: "Golden | None", outputs: list[str], rtol: float,
                 atol: float, target: str | None, task_output: str | None, save: bool):
        self.sides, self.golden, self.outputs = sides, golden, outputs
        self.rtol, self.atol, self.target, self.task_output, self.save = rtol, atol, target, task_output, save
        self.compared = sides if golden is not None else sides[1:]
        self.stats = {o: {s.label: OutputStats() for s in self.compared} for o in outputs}
        self.saved_inputs: dict[str, list[np.ndarray]] = {}
        self.rows = self.batches = 0

    def over(self, source: Source, plan: ColumnPlan, inputs: list[TensorSpec], batch_size: int,
             max_batches: int | None) -> None:
        located = source.located(batch_size)
        for _, _, batch in guard_casts(islice(located, max_batches) if max_batches else located, plan, inputs):
            if max_batches is not None and self.batches >= max_batches:
                break
            feeds = feeds_for(batch, plan, inputs)
            n = len(next(iter(feeds.values())))
            if n:
                self.one_batch(batch, feeds, n)

    def one_batch(self, batch: dict[str, np.ndarray], feeds: dict[str, np.ndarray], n: int) -> None:
        results = [self.run_side(side, batch, feeds) for side in self.sides]
        reference = self.golden.take(n) if self.golden is not None else results[0]
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


class Golden:
    """The outputs stored by --save-outputs DIR, read by --against DIR batch by batch in step with the data:
    names and shapes are checked from the headers first, and only a batch's rows are ever held."""

    def __init__(self, folder: str, outputs: list[TensorSpec]):
        self.folder = folder
        meta_path = Path(folder) / "meta.json"
        if not meta_path.is_file():
            raise user_error(f"--against {folder}: no meta.json there; write one with --save-outputs {folder}")
        try:
            reference = json.loads(meta_path.read_text(encoding="utf-8"))["reference"]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
            why = "no 'reference' in it" if isinstance(e, (KeyError, TypeError)) else e
            raise user_error(f"--against {folder}: {meta_path} is not what --save-outputs writes ({why})") from None
        if not isinstance(reference, str) or Path(reference).name != reference or not reference:
            raise user_error(f"--against {folder}: {meta_path} names no stored outputs ('reference': {reference!r})")
        try:
            self.archive = NpzArchive(str(Path(folder) / f"{reference}.npz"))
        except ModelcError as e:
            raise user_error(f"--against {folder}: {e.diagnostics[0].message}") from None
        headers = self.archive.headers
        for spec in outputs:
            if spec.name not in headers:
                raise user_error(f"--against {folder}: the stored outputs lack '{spec.name}'")
            stored = headers[spec.name].shape
            if len(stored) != len(spec.shape) or any(isinstance(w, int) and w != g
                                                     for w, g in zip(spec.shape[1:], stored[1:])):
                raise user_error(f"--against {folder}: stored output '{spec.name}' has shape {list(stored)}, the "
                                 f"model gives [{', '.join(str(d) for d in spec.shape)}]")
        self.headers = {o.name: headers[o.name] for o in outputs}
        self.rows = min(h.shape[0] for h in self.headers.values()) if self.headers else 0
        self.handles = {name: self.archive.open(name) for name in self.headers}
        self.taken = 0

    def take(self, n: int) -> dict[str, np.ndarray]:
        """The next `n` rows of every stored output."""
        if self.taken + n > self.rows:
            raise user_error(f"--against {self.folder}: the stored outputs have {self.rows} rows, the data more")
        self.taken += n
        return {name: read_rows(f, self.headers[name], n, f"{self.archive.path}: array '{name}'")
                for name, f in self.handles.items()}


def _no_objects(array: np.ndarray) -> np.ndarray:
    """Text as fixed-width unicode: an object array would be pickled, and --against loads no pickle."""
    return array.astype(str) if array.dtype.hasobject else array


def _save(folder: str, sides: list[Side], inputs: dict[str, list[np.ndarray]], report: dict[str, Any]) -> None:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name, arrays in [("inputs", inputs), *((s.label, s.saved) for s in sides)]:
        with atomic_write(out / f"{name.replace('/', '_')}.npz") as (tmp,):
            with open(tmp, "wb") as f:
                np.savez(f, **{k: _no_objects(np.concatenate(v)) for k, v in arrays.items()})
    with atomic_write(out / "meta.json") as (tmp,):
        tmp.write_text(json.dumps({"reference": sides[0].label.replace("/", "_"), "sides": report["sides"],
                                   "samples": report["samples"], "rtol": report["rtol"], "atol": report["atol"]}))
