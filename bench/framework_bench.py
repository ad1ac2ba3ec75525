"""Against the frameworks (run under .bench-venv, which has torch==2.13.0, torchmetrics and keras+jax):
inference throughput of a compiled graph vs torch eager and vs torch.onnx.export on onnxruntime, and
metric update throughput vs torchmetrics and Keras' metrics, each against numpy computing the same states.

    .bench-venv/bin/python bench/framework_bench.py --metrics    # the metric updates alone (~1 minute)
    .venv/bin/python bench/framework_bench.py --numpy-only       # modelc vs numpy only, no torch or jax
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402

from typing import Callable  # noqa: E402

from common import fmt_ratio, log, table  # noqa: E402

MLP = """
model mlp(x: float32[batch, 64]) {
    return x -> dense(256, activation=relu) -> dense(256, activation=relu) -> dense(10)
}
"""
BATCHES = (1, 16, 256, 4096, 16384)


def per_call(fn, seconds: float = 0.6, repeats: int = 5) -> float:
    """Median over `repeats` windows of the mean time per call in a window of about `seconds`."""
    fn()
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 0.05:
        fn()
        n += 1
    calls = max(1, int(n * seconds / 0.05 / repeats))
    windows = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        windows.append((time.perf_counter() - t) / calls)
    return float(np.median(windows))


def inference() -> str:
    import onnx
    import onnxruntime as ort
    import torch
    import modelc

    torch.set_num_threads(2)
    proto = modelc.compile_source(MLP, seed=0)
    w = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    layers = []
    for i, name in enumerate(["dense", "dense_1", "dense_2"]):
        linear = torch.nn.Linear(*w[f"{name}.kernel"].shape)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(w[f"{name}.kernel"].T.copy()))
            linear.bias.copy_(torch.from_numpy(w[f"{name}.bias"]))
        layers += [linear] + ([torch.nn.ReLU()] if i < 2 else [])
    net = torch.nn.Sequential(*layers).eval()
    exported = Path(os.environ.get("TMPDIR", "/tmp")) / "modelc_bench_torch_mlp.onnx"
    torch.onnx.export(net, (torch.zeros(2, 64),), str(exported), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}}, dynamo=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    ours = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    theirs = ort.InferenceSession(str(exported), options, providers=["CPUExecutionProvider"])
    rows = []
    rng = np.random.default_rng(0)
    for batch in BATCHES:
        x = rng.normal(size=(batch, 64)).astype(np.float32)
        tx = torch.from_numpy(x)
        with torch.inference_mode():
            expected = net(tx).numpy()
        np.testing.assert_allclose(ours.run(None, {"x": x})[0], expected, rtol=1e-4, atol=1e-5)
        t_ours = per_call(lambda: ours.run(None, {"x": x}))
        t_export = per_call(lambda: theirs.run(None, {"x": x}))

        def eager() -> None:
            with torch.inference_mode():
                net(tx)
        t_eager = per_call(eager)
        rows.append([f"{batch:,}", f"{batch / t_ours:,.0f}", f"{batch / t_eager:,.0f}", f"{batch / t_export:,.0f}",
                     fmt_ratio(t_eager / t_ours), fmt_ratio(t_export / t_ours)])
        SUMMARY.append([f"6. inference batch {batch:,}: torch eager / modelc, torch export / modelc",
                        f"{fmt_ratio(t_eager / t_ours)}, {fmt_ratio(t_export / t_ours)}", None])
        log(f"inference batch {batch}")
    return "\n".join([
        "### Inference throughput: compiled graph vs torch",
        "MLP 64 → 256 → 256 → 10 (ReLU), same weights in all three (outputs checked equal to 1e-4); "
        "2 threads each; rows/s, median of 5 windows. Ratios > 1 mean modelc is faster.",
        "", table(["batch", "modelc ONNX (ort)", "torch eager", "torch.onnx.export (ort)", "modelc vs eager",
                   "modelc vs export"], rows)])


def interleaved(fns: dict[str, "Callable[[], None]"], seconds: float = 0.3, repeats: int = 7) -> dict[str, float]:
    """Time per call of each function in its fastest window, the windows taken in turn: on a shared machine the
    fastest window is the one least disturbed by other processes, and a busy moment slows all sides alike."""
    calls = {}
    for name, fn in fns.items():
        fn()
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < 0.03:
            fn()
            n += 1
        calls[name] = max(1, int(n * seconds / 0.03 / repeats))
    windows: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            windows[name].append((time.perf_counter() - t) / calls[name])
    return {name: float(np.min(w)) for name, w in windows.items()}


def numpy_states(y: np.ndarray, p: np.ndarray) -> dict:
    """The same states as modelc's metrics, computed with vectorized numpy: what a careful user writes by hand."""
    def precision() -> None:
        predicted = p > 0.5
        np.count_nonzero(predicted & (y == 1))
        np.count_nonzero(predicted)

    def recall() -> None:
        positive = y == 1
        np.count_nonzero((p > 0.5) & positive)
        np.count_nonzero(positive)

    def auc() -> None:   # 200 bins of equal width: positives and negatives per bin
        index = np.clip(np.floor(p * 200), 0, 199).astype(np.int64)
        positive = (y == 1).astype(np.float64)
        np.bincount(index, positive, 200)
        np.bincount(index, 1.0 - positive, 200)

    def mse() -> None:
        error = y - p
        np.sum(error * error, dtype=np.float64)

    return {"precision": precision, "recall": recall, "auc": auc, "mse": mse}


def metric_updates(frameworks: bool = True) -> str:
    """frameworks=False: modelc against numpy alone, with neither torch nor jax imported (their idle worker
    threads slow every other computation in the process on a small machine)."""
    if not frameworks:
        return numpy_only()
    import keras
    import torch
    import torchmetrics
    import modelc

    torch.set_num_threads(2)
    rows = []
    for n in (1_024, 65_536):
        rng = np.random.default_rng(0)
        y = rng.integers(0, 2, n).astype(np.float32)
        p = rng.uniform(size=n).astype(np.float32)
        ty, tp = torch.from_numpy(y).long(), torch.from_numpy(p)
        ky, kp = keras.ops.convert_to_tensor(y), keras.ops.convert_to_tensor(p)
        cases = {
            "precision": (torchmetrics.classification.BinaryPrecision(), keras.metrics.Precision()),
            "recall": (torchmetrics.classification.BinaryRecall(), keras.metrics.Recall()),
            "auc": (torchmetrics.classification.BinaryAUROC(thresholds=200), keras.metrics.AUC(num_thresholds=200)),
            "mse": (torchmetrics.MeanSquaredError(), keras.metrics.MeanSquaredError()),
        }
        by_hand = numpy_states(y, p)
        for spec, (tm, km) in cases.items():
            ours = modelc.metric(spec)
            target = ty.float() if spec == "mse" else ty
            # modelc and numpy in turn first, after a pause: torch's and XLA's worker threads spin for a while
            # after their calls and would take the core from whichever side ran next
            time.sleep(0.5)
            t = interleaved({"modelc": lambda: ours.update(y, p), "numpy": by_hand[spec]})
            t.update(interleaved({"torchmetrics": lambda: tm.update(tp, target)}))
            t.update(interleaved({"keras": lambda: km.update_state(ky, kp)}))
            t_ours, t_tm, t_keras, t_numpy = t["modelc"], t["torchmetrics"], t["keras"], t["numpy"]
            within = 4 if spec == "auc" else 2
            rows.append([f"{n:,}", spec, f"{t_ours * 1e6:,.0f}", f"{t_tm * 1e6:,.0f}", f"{t_keras * 1e6:,.0f}",
                         f"{t_numpy * 1e6:,.1f}", fmt_ratio(t_tm / t_ours), fmt_ratio(t_keras / t_ours),
                         fmt_ratio(t_ours / t_numpy)])
            if n == 65_536:
                SUMMARY.append([f"6. {spec} update at 65,536: ahead of torchmetrics and Keras",
                                f"{fmt_ratio(t_tm / t_ours)}, {fmt_ratio(t_keras / t_ours)}",
                                t_tm > t_ours and t_keras > t_ours])
                SUMMARY.append([f"6. {spec} update at 65,536: within {within}× of numpy computing the same states",
                                fmt_ratio(t_ours / t_numpy), t_ours <= within * t_numpy])
            log(f"metric {spec} batch {n}")
    return "\n".join([
        "### Metric update throughput vs torchmetrics and Keras (jax backend)",
        "µs per `update` on the CPU, the fastest of 7 windows taken in turn. 'vs' columns: the framework's time / "
        "modelc's (> 1: modelc is faster). Last column: modelc / vectorized numpy computing the same states "
        "(precision, recall: two `count_nonzero`; auc: the bin of each score and two weighted `bincount` of 200 "
        "bins; mse: the float64 sum of the float32 squared errors); the targets are 2× (4× for auc) at 65,536.",
        "", table(["batch", "metric", "modelc µs", "torchmetrics µs", "keras µs", "numpy (same states) µs",
                   "torchmetrics / modelc", "keras / modelc", "modelc / numpy"], rows)])


def numpy_only() -> str:
    import modelc

    rows = []
    for n in (1_024, 65_536):
        rng = np.random.default_rng(0)
        y = rng.integers(0, 2, n).astype(np.float32)
        p = rng.uniform(size=n).astype(np.float32)
        by_hand = numpy_states(y, p)
        for spec in ("precision", "recall", "auc", "mse"):
            ours = modelc.metric(spec)
            t = interleaved({"modelc": lambda: ours.update(y, p), "numpy": by_hand[spec]})
            rows.append([f"{n:,}", spec, f"{t['modelc'] * 1e6:,.1f}", f"{t['numpy'] * 1e6:,.1f}",
                         fmt_ratio(t["modelc"] / t["numpy"])])
    return "\n".join(["### Metric update vs numpy computing the same states (no framework in the process)", "",
                      table(["batch", "metric", "modelc µs", "numpy µs", "modelc / numpy"], rows)])


def main() -> None:
    """Under .bench-venv, as a subprocess of bench/run.py: markdown, then one JSON line of summary rows."""
    import json
    frameworks = "--numpy-only" not in sys.argv
    text = [metric_updates(frameworks)] if "--metrics" in sys.argv or not frameworks else \
        [inference(), metric_updates()]
    print("\n\n".join(text))
    print("JSON " + json.dumps({"rows": SUMMARY}))


SUMMARY: list = []

if __name__ == "__main__":
    main()
