"""On-demand benchmark: int8 (dynamic) and int8-static against fp32, throughput at batch 64 on the CPU provider.

    python bench/int8_bench.py [--rounds K] [--iters R] [--rows N] [--workdir DIR]

Models: an 8-layer 1,024-wide MLP (1024 -> 8 x dense(1024, relu) -> dense(10) -> softmax) and
samples/resnet.model, both with seeded random weights (--init-missing). Each variant is quantized by
runtime/quantize.py (int8-static calibrated on the first 256 rows). Throughput: K rounds, in each round every
variant runs R batches of 64 rows, in alternating order; the median rows/s per variant, and int8/fp32 as the
ratio of medians measured in the same run (target >= 1.5x). Accuracy delta: `modelc compare --variants
fp32,int8,int8-static --metric accuracy` on N rows labelled with the fp32 model's top-1 class, so fp32 scores 1
and a variant's delta is the share of rows whose class quantization flips. Never run by the test suite.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import cpu_count, cpu_model, fmt_ratio, table, verdict  # noqa: E402  (pure stdlib helpers)

from modelc.compiler import driver  # noqa: E402
from modelc.runtime.compare import compare  # noqa: E402
from modelc.runtime.quantize import quantize  # noqa: E402

MLP = """# 8 x 1,024-wide MLP (bench/int8_bench.py)
model mlp(x: float32[batch, 1024]) {
    return x -> repeat 8 dense(1024, activation=relu) -> dense(10) -> softmax
}
"""
VARIANTS = ["fp32", "int8", "int8-static"]
BATCH = 64


def prepare(model: Path, shape: tuple[int, ...], rows: int, work: Path) -> tuple[dict, Path]:
    """{variant: onnx bytes} and the data file: random inputs, labels = fp32's top-1 class."""
    proto = driver.compile_program(driver.load_file(str(model)), init_missing=True)
    name = proto.graph.input[0].name
    x = np.random.default_rng(0).standard_normal((rows, *shape)).astype(np.float32)
    fp32 = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    label = np.concatenate([fp32.run(None, {name: x[i:i + BATCH]})[0].argmax(1) for i in range(0, rows, BATCH)])
    data = work / f"{model.stem}.npz"
    np.savez(data, **{name: x, "label": label})
    protos = {"fp32": proto, "int8": quantize(proto, "int8"),
              "int8-static": quantize(proto, "int8-static", data, 256, workdir=str(work))}
    return {v: p.SerializeToString() for v, p in protos.items()}, data


def throughput(models: dict, feed: dict, rounds: int, iters: int) -> dict[str, float]:
    """Median rows/s per variant over `rounds` rounds, the order of the variants alternating round to round."""
    sessions = {v: ort.InferenceSession(b, providers=["CPUExecutionProvider"]) for v, b in models.items()}
    for s in sessions.values():  # warm-up
        s.run(None, feed)
    rates: dict[str, list[float]] = {v: [] for v in sessions}
    for k in range(rounds):
        for v in (VARIANTS if k % 2 == 0 else VARIANTS[::-1]):
            start = time.perf_counter()
            for _ in range(iters):
                sessions[v].run(None, feed)
            rates[v].append(BATCH * iters / (time.perf_counter() - start))
    return {v: statistics.median(r) for v, r in rates.items()}


def one_model(model: Path, shape: tuple[int, ...], args: argparse.Namespace, work: Path) -> list[list[str]]:
    models, data = prepare(model, shape, args.rows, work)
    with np.load(data) as z:
        name = [k for k in z.files if k != "label"][0]
        feed, labels = {name: z[name][:BATCH]}, z["label"]
    rate = throughput(models, feed, args.rounds, args.iters)
    report = compare(str(model), str(data), providers=["cpu"], variants=VARIANTS, target="label",
                     metrics=["accuracy"], batch_size=BATCH, rtol=1.0, atol=1.0, init_missing=True)
    rows = []
    for v in VARIANTS:
        ratio = rate[v] / rate["fp32"]
        delta = report["metric_differences"][f"cpu/{v}"]["accuracy"]
        target = "" if v == "fp32" else verdict(ratio >= 1.5)
        out = next(iter(report["outputs"].values())).get(f"cpu/{v}", {"max_abs": 0.0})
        rows.append([model.name, v, f"{rate[v]:,.0f}", fmt_ratio(ratio), target, f"{delta:+.4f}",
                     f"{out['max_abs']:.2g}", str(len(set(labels.tolist())))])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--workdir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="int8-bench-", dir=args.workdir) as tmp:
        work = Path(tmp)
        (work / "mlp.model").write_text(MLP)
        rows = one_model(work / "mlp.model", (1024,), args, work)
        rows += one_model(HERE.parent / "samples" / "resnet.model", (32, 32, 3), args, work)
    print(f"CPU: {cpu_model()}, {cpu_count()}; onnxruntime {ort.__version__}; batch {BATCH}, "
          f"{args.rounds} rounds x {args.iters} batches\n")
    print(table(["model", "variant", "rows/s (median)", "vs fp32", "≥ 1.5×", "accuracy Δ vs fp32",
                 "max abs Δ of the output", "classes in the labels"], rows))


if __name__ == "__main__":
    main()
