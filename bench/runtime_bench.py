"""Runtime figures: eval end to end vs bare session.run, fused vs unfused metric states,
metric update throughput vs a vectorized numpy count, and peak memory on a 4 GB .npy."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from common import ROOT, Deadline, fmt_ratio, fmt_s, log, measure, table, verdict

HOUSING = ROOT / "samples" / "housing.model"


def eval_vs_bare(deadline: Deadline, rows: int = 1_000_000, batch: int = 65_536) -> tuple[str, float, float]:
    import onnxruntime as ort
    import modelc
    from modelc.runtime.engine import evaluate
    from modelc.runtime.model import LoadedModel

    proto = modelc.compile_file(HOUSING, seed=0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 8)).astype(np.float32)
    price = rng.gamma(2.0, size=rows)
    folder = Path(tempfile.mkdtemp(prefix="modelc-bench-"))
    data = folder / "houses.npz"
    np.savez(data, x=x, price=price)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    batches = [x[i:i + batch] for i in range(0, rows, batch)]
    loaded = LoadedModel(proto, [], str(HOUSING))
    metrics = ["mse", "mae", "r2"]

    def bare() -> None:
        for b in batches:
            session.run(None, {"x": b})

    def fused() -> dict:
        return evaluate(loaded, str(data), "price", metrics, batch_size=batch, progress=False)

    def unfused() -> dict:
        return evaluate(loaded, str(data), "price", metrics, batch_size=batch, progress=False, fuse_metrics=False)

    log(f"eval vs bare session.run over {rows:,} rows")
    stats = measure({"bare": bare, "fused": fused, "unfused": unfused}, repeats=5, budget_s=90, deadline=deadline)
    base = stats["bare"].median
    rows_md = []
    for name, label in (("bare", "bare session.run, batches in memory (model only)"),
                        ("fused", "modelc eval: read .npz + infer + mse, mae, r2 (states fused into the graph)"),
                        ("unfused", "same, metric states in a second session (predictions cross to the host)")):
        s = stats[name]
        rows_md.append([label, fmt_s(s.median), f"{rows / s.median:,.0f}", fmt_ratio(base / s.median), str(s.n)])
    ratio = base / stats["fused"].median
    gain = stats["unfused"].median / stats["fused"].median
    return "\n".join([
        "### Evaluation end to end vs bare `session.run`",
        f"{rows:,} rows × 8 float32 features, batch {batch:,}, samples/housing.model, CPU provider, 2 threads. "
        "Throughput ratio = bare time / eval time (1.00× = as fast as bare inference).",
        "", table(["what", "median", "rows/s", "throughput vs bare", "repeats"], rows_md), "",
        f"Target: eval reaches ≥ 90% of bare throughput: {verdict(ratio >= 0.9)} ({ratio:.0%}).",
        f"Fusing the metric states into the model's graph: {gain:.2f}× faster than running them in a second "
        "session (on the CPU the predictions only cross host memory; on a GPU they would cross the bus).",
    ]), ratio, gain


# VmHWM, not ru_maxrss: ru_maxrss survives exec, so a child would inherit the parent's peak.
PEAK_SCRIPT = """
import sys, json
from modelc.runtime.engine import evaluate
result = evaluate(sys.argv[1], sys.argv[2], "8", ["mse", "mae"], batch_size=65536, progress=False, init_missing=True)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"rss_mb": hwm / 1024, "samples": result["samples"], "seconds": result["seconds"]}))
"""


def peak_memory(deadline: Deadline, gigabytes: float = 4.0) -> tuple[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="modelc-bench-big-"))
    model = folder / "small.model"
    model.write_text("model small(x: float32[batch, 8]) { return x -> dense(1) }\n")
    rows = int(gigabytes * 2**30 / (9 * 4))
    path = folder / "big.npy"
    log(f"writing a {gigabytes:.0f} GB .npy ({rows:,} rows × 9 float32)")
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, 9))
    chunk = 1 << 22
    rng = np.random.default_rng(0)
    block = rng.normal(size=(chunk, 9)).astype(np.float32)
    for lo in range(0, rows, chunk):
        array[lo:lo + chunk] = block[: min(chunk, rows - lo)]
    array.flush()
    del array
    log("evaluating it in a fresh process")
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(model), str(path)], capture_output=True, text=True)
    path.unlink()
    if out.returncode != 0:
        return f"### Peak memory on a {gigabytes:g} GB .npy\nfailed: {out.stderr[-2000:]}", float("nan")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    size_mb = rows * 9 * 4 / 2**20
    return "\n".join([
        f"### Peak memory on a {gigabytes:g} GB .npy",
        f"`evaluate()` of mse and mae over {result['samples']:,} rows ({size_mb:,.0f} MiB on disk), batch 65,536, "
        f"in a fresh process: peak RSS **{result['rss_mb']:,.0f} MiB** ({result['rss_mb'] / size_mb:.1%} of the file), "
        f"{result['seconds']:.1f} s. Target < 1 GiB: {verdict(result['rss_mb'] < 1024)}.",
    ]), result["rss_mb"]


def run(deadline: Deadline, quick: bool = False) -> dict:
    text_eval, ratio, gain = eval_vs_bare(deadline, rows=200_000 if quick else 1_000_000)
    text_memory, rss = peak_memory(deadline, gigabytes=0.25 if quick else 4.0)
    return {"text": [text_eval, text_memory], "ratio": ratio, "gain": gain, "rss": rss, "quick": quick}


def render(fig: dict) -> tuple[str, list[tuple[str, str, bool | None]]]:
    size = "0.25 GB" if fig["quick"] else "4 GB"
    rows = [("5. eval end to end / bare session.run throughput (target ≥ 90%)", f"{fig['ratio']:.0%}",
             fig["ratio"] >= 0.9),
            ("5. fused metric states vs a second session", f"{fig['gain']:.2f}× faster", None),
            (f"5. peak RSS evaluating a {size} .npy (target < 1 GiB)", f"{fig['rss']:,.0f} MiB", fig["rss"] < 1024)]
    return "\n\n".join(fig["text"]), rows


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    print(render(run(Deadline(600)))[0])
