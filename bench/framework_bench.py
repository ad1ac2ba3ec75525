"""Against the frameworks (run under .bench-venv, which has torch==2.13.0, torchmetrics and keras+jax):
inference throughput of a compiled graph vs torch eager and vs torch.onnx.export on onnxruntime, and
metric update throughput vs torchmetrics and Keras' metrics, each against a numpy count."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402

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


def metric_updates() -> str:
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

        def numpy_count() -> None:
            predicted = p > 0.5
            np.count_nonzero(predicted & (y == 1))
            np.count_nonzero(predicted)
        t_numpy = per_call(numpy_count)
        for spec, (tm, km) in cases.items():
            ours = modelc.metric(spec)
            target = ty.float() if spec == "mse" else ty
            t_ours = per_call(lambda: ours.update(y, p))
            t_tm = per_call(lambda: tm.update(tp, target))
            t_keras = per_call(lambda: km.update_state(ky, kp))
            rows.append([f"{n:,}", spec, f"{t_ours * 1e6:,.0f}", f"{t_tm * 1e6:,.0f}", f"{t_keras * 1e6:,.0f}",
                         f"{t_numpy * 1e6:,.1f}", fmt_ratio(t_tm / t_ours), fmt_ratio(t_keras / t_ours),
                         fmt_ratio(t_ours / t_numpy)])
            if n == 65_536:
                SUMMARY.append([f"6. {spec} update at 65,536: ahead of torchmetrics and Keras",
                                f"{fmt_ratio(t_tm / t_ours)}, {fmt_ratio(t_keras / t_ours)}",
                                t_tm > t_ours and t_keras > t_ours])
            SUMMARY.append([f"6. {spec} update at {n:,}: within 2× of a numpy count", fmt_ratio(t_ours / t_numpy),
                            t_ours <= 2 * t_numpy])
            log(f"metric {spec} batch {n}")
    return "\n".join([
        "### Metric update throughput vs torchmetrics and Keras (jax backend)",
        "µs per `update` on the CPU, median of 5 windows. 'vs' columns: the framework's time / modelc's "
        "(> 1: modelc is faster). Last column: modelc / a plain vectorized numpy count (`p > 0.5`, two "
        "`count_nonzero`).",
        "", table(["batch", "metric", "modelc µs", "torchmetrics µs", "keras µs", "numpy count µs",
                   "torchmetrics / modelc", "keras / modelc", "modelc / numpy"], rows)])


def main() -> None:
    """Under .bench-venv, as a subprocess of bench/run.py: markdown, then one JSON line of summary rows."""
    import json
    text = [inference(), metric_updates()]
    print("\n\n".join(text))
    print("JSON " + json.dumps({"rows": SUMMARY}))


SUMMARY: list = []

if __name__ == "__main__":
    main()
