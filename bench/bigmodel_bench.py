"""On-demand benchmark: `modelc run` and `modelc eval` of a 2.2 GB model (weights in ONNX external data) against
onnxruntime loading the same file directly, each a fresh process: peak RSS and wall time, medians of K runs.

    python bench/bigmodel_bench.py [--repeats K] [--rows N] [--modelc-python PATH] [--workdir DIR]

Model: x [batch, 16384] -> dense(16384) -> dense(17152) -> dense(4), 549.6 million float32 weights (2.2 GB)
written once to big.safetensors, and compiled once with `modelc compile --weights big.safetensors` (over 2 GB
the weights go to big.onnx.data). Data: N rows. Sides: the .onnx through `modelc run` and `modelc eval`, and the
.model with its .safetensors through `modelc eval` (compiled in the process; its weights are handed to
onnxruntime as arrays).
The bare side is what a user writes by hand: `onnxruntime.InferenceSession(path)` and one `run` per batch, with
onnxruntime's defaults and with pre-packing off (as modelc runs a model with external data: session.py).
Peak RSS is the child's ru_maxrss, read by a small wrapper process that runs only that child. The target of
issue 13: eval peaks below 1.5x the weights' size. All sides must agree on the predictions (mse).

Uses only the standard library itself; scratch files (2.2 GB) go to bench/.scratch-big (or --workdir) and are
reused between runs; never run by the test suite.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import fmt_ratio, table  # noqa: E402  (pure stdlib helpers)

WIDTH, HIDDEN = 16384, 17152
MODEL = f"""# 2.2 GB of float32 weights (bench/bigmodel_bench.py)
model big(x: float32[batch, {WIDTH}]) {{
    y = x -> dense({WIDTH}) -> dense({HIDDEN}) -> dense(4)
    return y
}}
"""
WEIGHTS = f"""import sys, numpy as np
from safetensors.numpy import save_file
rng = np.random.default_rng(1)
shapes = {{"dense.kernel": ({WIDTH}, {WIDTH}), "dense.bias": ({WIDTH},), "dense_1.kernel": ({WIDTH}, {HIDDEN}),
          "dense_1.bias": ({HIDDEN},), "dense_2.kernel": ({HIDDEN}, 4), "dense_2.bias": (4,)}}
save_file({{k: (rng.standard_normal(s, dtype=np.float32) / np.sqrt(s[0])).astype(np.float32) for k, s in shapes.items()}},
          sys.argv[1])
"""
GEN = f"""import sys, numpy as np
rows, path = int(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(0)
np.savez(path, x=rng.standard_normal((rows, {WIDTH}), dtype=np.float32),
         t=rng.standard_normal((rows, 4), dtype=np.float32))
"""
BARE = """import sys, numpy as np, onnxruntime as ort
model, data, bs = sys.argv[1], sys.argv[2], int(sys.argv[3])
arrays = np.load(data)
x, t = arrays["x"], arrays["t"]
options = ort.SessionOptions()
for entry in sys.argv[4:]:  # session config entries KEY=VALUE
    options.add_session_config_entry(*entry.split("=", 1))
sess = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
sse = 0.0
for lo in range(0, len(x), bs):
    pred = sess.run(None, {"x": x[lo:lo + bs]})[0]
    sse += float(((pred - t[lo:lo + bs]).astype(np.float64) ** 2).sum())
print(repr(sse / t.size))
"""
NO_PREPACK = "session.disable_prepacking=1"  # what modelc sets for a model with external data (session.py)
MEASURE = """import json, resource, subprocess, sys, time
start = time.perf_counter()
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"rc": r.returncode, "seconds": time.perf_counter() - start, "stdout": r.stdout,
                  "stderr": r.stderr[-3000:], "rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def log(msg: str) -> None:
    print(f"[bigmodel_bench] {msg}", file=sys.stderr, flush=True)


def measure(py: str, cmd: list[str]) -> dict:
    """One fresh process: exit code, wall seconds, stdout and peak RSS (MB); fails loudly on a non-zero exit."""
    out = subprocess.run([py, "-c", MEASURE, *cmd], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    if result["rc"] != 0:
        sys.exit(f"bigmodel_bench: {' '.join(cmd)} exited {result['rc']}:\n{result['stderr']}")
    return result


def prepare(py: str, modelc: str, work: Path, rows: int) -> tuple[Path, Path]:
    """The model (compiled once, weights external) and the data, reused while they exist."""
    for name, text in (("big.model", MODEL), ("gen.py", GEN), ("bare.py", BARE), ("weights.py", WEIGHTS)):
        (work / name).write_text(text)
    onnx_path, data, weights = work / "big.onnx", work / f"data-{rows}.npz", work / "big.safetensors"
    if not weights.exists():
        log("writing big.safetensors (2.2 GB of random weights)")
        measure(py, [py, str(work / "weights.py"), str(weights)])
    if not (work / "big.onnx.data").exists():
        log("compiling big.model with big.safetensors")
        r = measure(py, [modelc, "compile", str(work / "big.model"), "--weights", str(weights), "-o", str(onnx_path)])
        log(f"compiled in {r['seconds']:.1f} s, peak RSS {r['rss_mb']:,.0f} MB")
    if not data.exists():
        measure(py, [py, str(work / "gen.py"), str(rows), str(data)])
    return onnx_path, data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="runs per side, alternating (default 3)")
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--modelc-python", default=sys.executable, help="python of the venv holding modelc")
    ap.add_argument("--workdir", default=str(HERE / ".scratch-big"), help="scratch folder (default bench/.scratch-big)")
    args = ap.parse_args()
    py = str(Path(args.modelc_python).absolute())        # not resolved: a venv's python is a symlink
    modelc = str(Path(py).parent / "modelc")
    work = Path(args.workdir).absolute()
    work.mkdir(parents=True, exist_ok=True)
    onnx_path, data = prepare(py, modelc, work, args.rows)
    weights_mb = (work / "big.onnx.data").stat().st_size / 2**20
    bs = str(args.batch_size)
    bare = [py, str(work / "bare.py"), str(onnx_path), str(data), bs]
    sides = {"onnxruntime directly": bare, "onnxruntime directly, no prepacking": [*bare, NO_PREPACK],
             "modelc run": [modelc, "run", str(onnx_path), "--data", str(data), "-o", str(work / "preds.npz"),
                            "--batch-size", bs],
             "modelc eval": [modelc, "eval", str(onnx_path), "--data", str(data), "--target", "t", "--metric", "mse",
                             "--batch-size", bs, "--json"],
             "modelc eval of the .model": [modelc, "eval", str(work / "big.model"), "--weights",
                                           str(work / "big.safetensors"), "--data", str(data), "--target", "t",
                                           "--metric", "mse", "--batch-size", bs, "--json"]}
    results: dict[str, list[dict]] = {s: [] for s in sides}
    for r in range(args.repeats):
        for side, cmd in sides.items():
            results[side].append(measure(py, cmd))
        log(f"round {r + 1}/{args.repeats}: " + ", ".join(
            f"{s} {results[s][-1]['seconds']:.1f} s {results[s][-1]['rss_mb']:,.0f} MB" for s in sides))
    report(results, weights_mb, args)
    return 0


def report(results: dict[str, list[dict]], weights_mb: float, args: argparse.Namespace) -> None:
    bare_mse = float(results["onnxruntime directly"][0]["stdout"].strip())
    eval_mse = json.loads(results["modelc eval"][0]["stdout"])["metrics"]["mse"]
    source_mse = json.loads(results["modelc eval of the .model"][0]["stdout"])["metrics"]["mse"]
    if max(abs(bare_mse - eval_mse), abs(bare_mse - source_mse)) > 1e-4 * abs(bare_mse):
        sys.exit(f"bigmodel_bench: FAIL: mse disagree: onnxruntime {bare_mse!r}, modelc eval {eval_mse!r}, "
                 f"of the .model {source_mse!r}")
    rss = {s: statistics.median(r["rss_mb"] for r in runs) for s, runs in results.items()}
    wall = {s: statistics.median(r["seconds"] for r in runs) for s, runs in results.items()}
    base = "onnxruntime directly"
    rows = [[f"`{s}`", f"{rss[s]:,.0f} MB", f"{rss[s] / weights_mb:.2f}x", fmt_ratio(rss[s] / rss[base]),
             f"{wall[s]:.1f} s", fmt_ratio(wall[s] / wall[base]), len(runs)] for s, runs in results.items()]
    print(f"## A {weights_mb / 1024:.2f} GiB model (external data): {args.rows} rows, batch {args.batch_size}, "
          f"medians of {args.repeats} fresh processes\n")
    print(table(["process", "peak RSS", "/ weights", "RSS / onnxruntime", "wall", "wall / onnxruntime", "runs"],
                rows))
    print(f"\nmse: onnxruntime {bare_mse!r}, modelc eval {eval_mse!r}, of the .model {source_mse!r}")
    ok = rss["modelc eval"] < 1.5 * weights_mb
    print(f"**eval peak / weights: {rss['modelc eval'] / weights_mb:.2f}x** (target < 1.5x: {'met' if ok else 'MISSED'})")


if __name__ == "__main__":
    sys.exit(main())
