"""On-demand benchmark: `modelc eval` of an .onnx against a bare numpy + onnxruntime loop, both as fresh processes.

    python bench/eval_bench.py [--rows N] [--repeats K] [--modelc-python PATH] [--workdir DIR] [--no-profile]

Data: N rows x 8 float32 features in one .npz (`x` [N, 8], `y` [N]), seeded. Model: an 8->30->30->1 MLP
written as a .model, compiled once with `modelc compile --seed 0`; both sides run the same .onnx in
batches of 4,096 rows on the CPU provider. Throughput = rows / wall time of the whole process (start to
exit: interpreter start, imports, loading, inference), K alternating runs per side after one untimed warm-up
each; the target is modelc/bare >= 0.9x. Then: what `python -X importtime -m modelc eval x.onnx` imports
(is lark or modelc.compiler among them?), and a cProfile of the modelc process, top 15 by cumulative time.

The bench itself uses only the standard library; the data and the bare loop run under the modelc python
(default: sys.executable, with the `modelc` console script next to it). Scratch files go to
bench/.scratch-eval (or --workdir) and are reused between runs; never run by the test suite.
"""
from __future__ import annotations

import argparse
import json
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import fmt_ratio, table  # noqa: E402  (pure stdlib helpers)

MODEL = """# 8 -> 30 -> 30 -> 1 regressor (bench/eval_bench.py)
model mlp(x: float32[batch, 8]) {
    y = x -> dense(30, activation=relu) -> dense(30, activation=relu) -> dense(1)
    return y
}
"""
GEN = """import sys, numpy as np
rows, path = int(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(0)
x = rng.standard_normal((rows, 8), dtype=np.float32)
y = (x @ rng.standard_normal(8).astype(np.float32) + 0.1 * rng.standard_normal(rows, dtype=np.float32)).astype(np.float32)
np.savez(path, x=x, y=y)  # stored, not deflated: both sides read plain bytes
"""
# The bare baseline: what a user would write by hand with numpy and onnxruntime, nothing else.
BARE = """import sys, numpy as np, onnxruntime as ort
model, data, bs = sys.argv[1], sys.argv[2], int(sys.argv[3])
arrays = np.load(data)
x, y = arrays["x"], arrays["y"]
sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
name = sess.get_inputs()[0].name
sse, n = 0.0, len(y)
for lo in range(0, n, bs):
    pred = sess.run(None, {name: x[lo:lo + bs]})[0].reshape(-1)
    err = (y[lo:lo + bs] - pred).astype(np.float64)
    sse += float(np.dot(err, err))
print(repr(sse / n))
"""
IMPORT_BUILTINS = ("<built-in method builtins.exec>", "<built-in method builtins.__import__>")
HEAVY = ["lark", "modelc.compiler", "onnx", "onnxruntime", "numpy", "pyarrow", "rich"]


def run(cmd: list[str]) -> tuple[float, str, str]:
    """Wall time of a whole process, start to exit; stdout, stderr. Fails loudly on a non-zero exit."""
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"eval_bench: {' '.join(cmd)} exited {p.returncode}:\n{p.stderr[-3000:]}")
    return wall, p.stdout, p.stderr


def log(msg: str) -> None:
    print(f"[eval_bench] {msg}", file=sys.stderr, flush=True)


def importtime(stderr: str) -> list[tuple[int, int, int, str]]:
    """`-X importtime` lines as (depth, self us, cumulative us, module); depth 0 = imported from the top."""
    rows = []
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "[us]" not in line:
            self_us, cum_us, name = line[len("import time:"):].split("|", 2)
            stripped = name[1:]  # one space after the bar, then two per nesting level
            rows.append(((len(stripped) - len(stripped.lstrip())) // 2, int(self_us), int(cum_us), stripped.strip()))
    return rows


def outermost_ms(rows: list[tuple[int, int, int, str]], pkg: str) -> float:
    """Cumulative ms of a package's modules that no other module of it imported (the lines come children first)."""
    total, stack = 0, []  # walking backwards, a parent comes before its children; stack[d]: is that ancestor in pkg
    for depth, _, cum, name in reversed(rows):
        del stack[depth:]
        hit = name == pkg or name.startswith(pkg + ".")
        if hit and not any(stack):
            total += cum
        stack.append(hit)
    return total / 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per side, alternating (default 5)")
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--modelc-python", default=sys.executable, help="python of the venv holding modelc")
    ap.add_argument("--workdir", default=str(HERE / ".scratch-eval"), help="scratch folder (default bench/.scratch-eval)")
    ap.add_argument("--no-profile", action="store_true", help="skip the cProfile of the modelc process")
    args = ap.parse_args()
    py = str(Path(args.modelc_python).absolute())        # not resolved: a venv's python is a symlink
    modelc = str(Path(py).parent / "modelc")              # the console script of that same venv
    if not Path(modelc).exists():
        sys.exit(f"eval_bench: no modelc console script at {modelc}")
    work = Path(args.workdir).absolute()
    work.mkdir(parents=True, exist_ok=True)
    for name, text in (("mlp.model", MODEL), ("gen.py", GEN), ("bare.py", BARE)):
        (work / name).write_text(text)

    # 1. data and model, made once (and reused while the row count is the same)
    data, onnx_path = work / f"data-{args.rows}.npz", work / "mlp.onnx"
    if not data.exists():
        log(f"writing {data.name} ({args.rows:,} x 8 float32)")
        run([py, str(work / "gen.py"), str(args.rows), str(data)])
    run([modelc, "compile", str(work / "mlp.model"), "--seed", "0", "-o", str(onnx_path)])
    eval_args = ["eval", str(onnx_path), "--data", str(data), "--target", "y",
                 "--batch-size", str(args.batch_size), "--metric", "mse", "--json"]
    sides = {"modelc eval": [modelc, *eval_args],
             "bare numpy + onnxruntime": [py, str(work / "bare.py"), str(onnx_path), str(data), str(args.batch_size)]}

    def once(side: str) -> tuple[float, float, dict]:
        wall, out, _ = run(sides[side])
        if side == "modelc eval":
            result = json.loads(out)
            return wall, float(result["metrics"]["mse"]), result
        return wall, float(out.strip()), {}

    # 2. one untimed warm-up per side (page cache, .pyc files), then K alternating timed runs
    times: dict[str, list[float]] = {s: [] for s in sides}
    mse: dict[str, set[float]] = {s: set() for s in sides}
    inner = []  # modelc's own rows/s from --json: the loop alone, without start-up
    for r in range(args.repeats + 1):
        for side in sides:
            wall, value, result = once(side)
            mse[side].add(value)
            if r > 0:
                times[side].append(wall)
                if result:
                    inner.append(result.get("rows_per_second") or float("nan"))
        if r:
            log(f"round {r}/{args.repeats}: " + ", ".join(f"{s} {times[s][-1]:.2f} s" for s in sides))

    # 3. the two sides must compute the same mse
    m1, m2 = min(mse["modelc eval"]), min(mse["bare numpy + onnxruntime"])
    if not all(abs(a - m2) <= 1e-5 * abs(m2) for a in mse["modelc eval"] | mse["bare numpy + onnxruntime"]):
        sys.exit(f"eval_bench: FAIL: mse disagree beyond rtol 1e-5: modelc {sorted(mse['modelc eval'])}, "
                 f"bare {sorted(mse['bare numpy + onnxruntime'])}")

    # 4. throughput = rows / whole-process wall time; medians, min/max
    med = {s: statistics.median(t) for s, t in times.items()}
    rows = [[f"`{s}`", f"{med[s]:.2f} s", f"{min(t):.2f} / {max(t):.2f} s", f"{args.rows / med[s]:,.0f}",
             f"{args.rows / max(t):,.0f} – {args.rows / min(t):,.0f}", len(t)] for s, t in times.items()]
    ratio = med["bare numpy + onnxruntime"] / med["modelc eval"]
    print(f"## modelc eval vs bare onnxruntime: {args.rows:,} rows x 8 float32, batch {args.batch_size}, 8-30-30-1 MLP\n")
    print(table(["process", "median wall", "min / max", "rows/s (median)", "rows/s range", "runs"], rows))
    print(f"\nmse: modelc {m1!r}, bare {m2!r} (agree to rtol 1e-5)")
    print(f"modelc's own in-process rate (--json rows_per_second, median): {statistics.median(inner):,.0f} rows/s")
    print(f"**throughput modelc / bare: {fmt_ratio(ratio)}** (target >= 0.9x: {'met' if ratio >= 0.9 else 'MISSED'})\n")

    # 5. imports of `modelc eval x.onnx` (python -m modelc is the console script's main(), via runpy)
    _, _, err = run([py, "-X", "importtime", "-m", "modelc", *eval_args])
    imp = importtime(err)
    top = [r for r in imp if r[0] == 0]
    print(f"## Imports of `modelc eval mlp.onnx` (-X importtime)\n\n{len(imp)} modules; top-level entries "
          f"(cumulative) sum to {sum(r[2] for r in top) / 1e3:.0f} ms. Costliest top-level:\n")
    print(table(["module", "cumulative ms"], [[f"`{r[3]}`", f"{r[2] / 1e3:.1f}"] for r in sorted(top, key=lambda r: -r[2])[:8]]))
    found = []
    for pkg in HEAVY:
        hits = [r for r in imp if r[3] == pkg or r[3].startswith(pkg + ".")]
        found.append([f"`{pkg}`", "yes" if hits else "no", f"{outermost_ms(imp, pkg):.1f}" if hits else "–", len(hits)])
    print("\n" + table(["package", "imported", "cumulative ms (outermost entries, with what they import)", "modules"],
                       found))
    compiler = [r[3] for r in imp if r[3].startswith("modelc.compiler")]
    heavy_hit = any(r[3] == "lark" or r[3].startswith("lark.") for r in imp) or bool(compiler)
    print(f"\nmodelc.compiler modules imported: {', '.join(compiler) or 'none'}")
    print(f"\n**eval of .onnx imports lark/compiler: {'YES' if heavy_hit else 'NO'}**\n")

    # 6. where the modelc process spends its time: cProfile of one whole run, top 15 cumulative
    if not args.no_profile:
        prof = work / "eval.prof"
        run([py, "-m", "cProfile", "-o", str(prof), "-m", "modelc", *eval_args])
        stats = pstats.Stats(str(prof))
        machinery = [kv for kv in stats.stats.items() if kv[0][2] == "_find_and_load"]
        entries = sorted((kv for kv in stats.stats.items()  # (cc, nc, tottime, cumtime, callers); import/runpy frames left out
                          if not kv[0][0].startswith(("<frozen", "<string>")) and kv[0][2] not in IMPORT_BUILTINS),
                         key=lambda kv: -kv[1][3])[:15]
        prows = [[f"`{Path(f).parent.name}/{Path(f).name}:{line}({fn})`" if f != "~" else f"`{fn}`", f"{nc:,}", f"{tt:.2f}", f"{ct:.2f}"]
                 for (f, line, fn), (_, nc, tt, ct, _) in entries]
        print(f"## cProfile of `python -m modelc eval mlp.onnx` ({stats.total_tt:.2f} s), top 15 cumulative\n\n"
              f"(import machinery frames left out: all imports together, `_find_and_load`, "
              f"{sum(v[3] for k, v in machinery):.2f} s cumulative)\n")
        print(table(["function", "calls", "own s", "cumulative s"], prows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
