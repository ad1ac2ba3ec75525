"""Figure 1: compile time of `repeat N block(U)` against onnx.helper and torch.onnx.export.

Two series:
- scaling: U = 16 units, N = 1 (fixed cost), 10, 100, 1,000, 10,000 -- small weights (N=10,000 is
  20,000 dense layers, 20 MB of float32), so the time is the compiler's own work and linearity shows;
- weighted: U = 256 units, N = 10, 100, 1,000 (up to 2,000 dense layers, 524 MB of float32).
  N=10,000 at 256 units would be 5.2 GB of weights and is not run.
Each compile is the full `modelc.compile_source` (parse, check, lower, initialize weights, emit,
onnx.checker) returning a ModelProto in memory; nothing is written to disk.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from common import (BENCH, ROOT, Deadline, Stats, call_tree, fmt_ratio, fmt_s, hot_spots_md, log, measure, table,
                    time_once)

SOURCE = """\
layer block(units: int)(x: [batch, units]) {{
    return x -> dense(units, activation=relu) -> dense(units, activation=relu)
}}
model m(x: float32[batch, {units}]) {{
    return x -> {stages}
}}
"""


def repeat_limit() -> int | None:
    """The compiler's cap on one `repeat` stage (compiler/check.py MAX_REPEAT), if it has one."""
    try:
        from modelc.compiler import check
        return int(getattr(check, "MAX_REPEAT"))
    except (ImportError, AttributeError, TypeError, ValueError):
        return None


SCALING_UNITS = 16
SCALING_NS = [1, 10, 100, 1000, 10000]
WEIGHTED_UNITS = 256
WEIGHTED_NS = [10, 100, 1000]
OPSET = 23


def source(n: int, units: int) -> str:
    """`repeat N block(U)`; past the compiler's per-stage cap, a chain of `repeat CAP` stages: the same
    network (N block instances named block, block_1, ... in order), as the cap allows it to be written."""
    cap = repeat_limit() or n
    counts = [cap] * (n // cap) + ([n % cap] if n % cap else [])
    return SOURCE.format(units=units, stages=" -> ".join(f"repeat {c} block({units})" for c in counts))


def weight_bytes(n: int, units: int) -> int:
    return n * 2 * (units * units + units) * 4


# --- the baselines -----------------------------------------------------------------------------
def helper_build(n: int, units: int, seed: int = 0):
    """The same network as one flat graph, built directly with onnx.helper + numpy_helper.

    Weights as modelc draws them by default: kernel glorot_uniform (numpy uniform, float64 -> float32),
    bias zeros. Nodes MatMul -> Add -> Relu per dense, as modelc lowers `dense(units, activation=relu)`.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    limit = math.sqrt(6.0 / (units + units))
    nodes, inits = [], []
    x = "x"
    for i in range(n):
        block = "block" if i == 0 else f"block_{i}"
        for j in range(2):
            path = f"{block}.{'dense' if j == 0 else 'dense_1'}"
            kernel = rng.uniform(-limit, limit, (units, units)).astype(np.float32)
            bias = np.zeros(units, dtype=np.float32)
            inits.append(numpy_helper.from_array(kernel, path + ".kernel"))
            inits.append(numpy_helper.from_array(bias, path + ".bias"))
            mm, add, out = f"/{path}/MatMul", f"/{path}/Add", f"/{path}/Relu"
            nodes.append(helper.make_node("MatMul", [x, path + ".kernel"], [mm], name=mm))
            nodes.append(helper.make_node("Add", [mm, path + ".bias"], [add], name=add))
            nodes.append(helper.make_node("Relu", [add], [out], name=out))
            x = out
    nodes.append(helper.make_node("Identity", [x], ["output"], name="output"))
    graph = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", units])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", units])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="helper")
    model.ir_version = 10
    return model


def modelc_compile(n: int, units: int, inline: bool = False):
    import modelc
    return modelc.compile_source(source(n, units), seed=0, inline=inline)


def sanity_check(n: int, units: int) -> str:
    """modelc's and the helper's models compute the same thing on the same weights (small case)."""
    try:
        import numpy as np
        import onnxruntime as ort
        from onnx import numpy_helper
        a = modelc_compile(n, units)
        b = helper_build(n, units)
        # give the helper model modelc's weights (they are drawn per name), then compare outputs
        weights = {t.name: numpy_helper.to_array(t) for t in a.graph.initializer}
        for t in b.graph.initializer:
            t.CopyFrom(numpy_helper.from_array(weights[t.name], t.name))
        x = np.random.default_rng(1).standard_normal((4, units)).astype(np.float32)
        ya = ort.InferenceSession(a.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        yb = ort.InferenceSession(b.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        same = np.allclose(ya, yb, rtol=1e-5, atol=1e-6)
        return (f"equivalence check (N={n}, {units} units, onnxruntime, modelc's weights in both): "
                f"{'same outputs' if same else 'OUTPUTS DIFFER'}; modelc emits {len(a.graph.node)} graph nodes "
                f"+ {len(a.functions)} function(s), the helper {len(b.graph.node)} graph nodes")
    except Exception as e:  # noqa: BLE001 - a bench note, never fatal
        return f"equivalence check skipped: {type(e).__name__}: {e}"


# --- phase breakdown ---------------------------------------------------------------------------
BREAKDOWN_ROOTS = ["compile_source", "compile_program", "lower_program", "check_shapes"]


def breakdown(n: int, units: int) -> tuple[float, list[list[str]]] | str:
    """Where one compile's time goes: the direct callees of the driver's stages, read from cProfile,
    so the table follows the pipeline as it is now (its internal stages change)."""
    try:
        return call_tree(lambda: modelc_compile(n, units), BREAKDOWN_ROOTS)
    except Exception as e:  # noqa: BLE001
        return f"breakdown unavailable ({type(e).__name__}: {e})"


# --- torch (under .bench-venv) -----------------------------------------------------------------
def bench_python() -> Path | None:
    p = ROOT / ".bench-venv" / "bin" / "python"
    return p if p.exists() else None


def run_torch(configs: list[tuple[int, int]], repeats: int, budget_s: float, timeout_s: float) -> dict:
    py = bench_python()
    if py is None:
        return {"skipped": "no .bench-venv: torch figures skipped (create it with `python3 -m venv .bench-venv && "
                           ".bench-venv/bin/pip install torch==2.13.0 onnx numpy`)"}
    cmd = [str(py), str(BENCH / "torch_bench.py"), json.dumps({"configs": configs, "repeats": repeats,
                                                                "budget_s": budget_s})]
    log(f"torch: {py} ({len(configs)} configs, budget {budget_s:.0f} s)")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"skipped": f"torch worker timed out after {timeout_s:.0f} s"}
    if proc.returncode != 0:
        return {"skipped": f"torch worker failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- the figure --------------------------------------------------------------------------------
@dataclass
class Fig1:
    scaling: dict[int, dict[str, Stats]] = field(default_factory=dict)
    weighted: dict[int, dict[str, Stats]] = field(default_factory=dict)
    breakdowns: dict[tuple[int, int], tuple | str] = field(default_factory=dict)
    torch: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    profile: str = ""


def run(deadline: Deadline, quick: bool = False, with_torch: bool = True) -> Fig1:
    fig = Fig1()
    scaling_ns = [1, 10, 100] if quick else SCALING_NS
    weighted_ns = [10, 30] if quick else WEIGHTED_NS
    # warm-up: imports, the parser cache, onnx and numpy code paths
    time_once(lambda: modelc_compile(3, 8))
    time_once(lambda: helper_build(3, 8))
    fig.notes.append(sanity_check(3, 8))

    for n in scaling_ns:
        log(f"fig1 scaling: N={n} units={SCALING_UNITS}")
        repeats = 7 if n <= 100 else 5 if n <= 1000 else 3
        budget = 20 if n <= 1000 else 60
        fig.scaling[n] = measure({"modelc": lambda: modelc_compile(n, SCALING_UNITS),
                                  "helper": lambda: helper_build(n, SCALING_UNITS)}, repeats, budget, deadline)
        log(f"  modelc {fig.scaling[n]['modelc'].median:.3f} s, helper {fig.scaling[n]['helper'].median:.3f} s")

    for n in weighted_ns:
        log(f"fig1 weighted: N={n} units={WEIGHTED_UNITS}")
        repeats = 5 if n <= 100 else 3
        budget = 20 if n <= 100 else 75
        fig.weighted[n] = measure({"modelc": lambda: modelc_compile(n, WEIGHTED_UNITS),
                                   "modelc --inline": lambda: modelc_compile(n, WEIGHTED_UNITS, inline=True),
                                   "helper": lambda: helper_build(n, WEIGHTED_UNITS)}, repeats, budget, deadline)
        log("  " + ", ".join(f"{k} {v.median:.3f} s" for k, v in fig.weighted[n].items()))

    torch_reserve = 200 if with_torch else 0
    points = [(max(weighted_ns), WEIGHTED_UNITS), (1000 if not quick else 100, SCALING_UNITS)]
    if max(scaling_ns) > points[-1][0]:
        points.append((max(scaling_ns), SCALING_UNITS))
    for n, units in points:
        series = fig.weighted if units == WEIGHTED_UNITS else fig.scaling
        expected = series[n]["modelc"].median * 2.5 if n in series else 60.0  # cProfile slows it down
        reserve = torch_reserve if n > 1000 else 30  # the cheap points always; the 10,000 one if torch keeps its time
        if deadline.left() - reserve < expected:
            fig.breakdowns[(n, units)] = (f"skipped: bench time budget (one compile takes ~{expected:.0f} s; "
                                          f"{max(0.0, deadline.left()):.0f} s left, {reserve} s kept for what follows)")
            continue
        log(f"fig1 breakdown: N={n} units={units}")
        fig.breakdowns[(n, units)] = breakdown(n, units)

    # a profile when the scaling misses its targets (per-block time not constant, or > 2x the helper)
    big = [n for n in fig.scaling if n >= 100]
    if big:
        t_small, t_big = (fig.scaling[min(big)]["modelc"].median / min(big), fig.scaling[max(big)]["modelc"].median / max(big))
        ratio = fig.scaling[max(big)]["modelc"].median / fig.scaling[max(big)]["helper"].median
        if t_big / t_small > 2 or ratio > 2:
            n_prof = 1000 if not quick else 100
            log(f"fig1 profile: N={n_prof} units={SCALING_UNITS}")
            fig.profile = hot_spots_md(f"Hot spots of `modelc.compile_source` for `repeat {n_prof} block({SCALING_UNITS})`",
                                       lambda: modelc_compile(n_prof, SCALING_UNITS), deadline, need_s=60)

    if with_torch:
        configs = [(n, SCALING_UNITS) for n in scaling_ns if n > 1] + [(n, WEIGHTED_UNITS) for n in weighted_ns]
        budget = max(30.0, min(240.0, deadline.left() - 20))
        fig.torch = run_torch(configs, repeats=3, budget_s=budget, timeout_s=budget + 300)
    else:
        fig.torch = {"skipped": "torch figures skipped (--no-torch)"}
    return fig


def _torch_stats(fig: Fig1, n: int, units: int) -> tuple[Stats, Stats] | None:
    for r in fig.torch.get("results", []):
        if r["n"] == n and r["units"] == units and r.get("total"):
            return Stats.from_dict(r["total"]), Stats.from_dict(r["export"])
    return None


def _reps(*stats: Stats) -> str:
    return "/".join(str(s.n) for s in stats)


def render(fig: Fig1) -> tuple[str, list[tuple[str, str, bool | None]]]:
    """Markdown for figure 1 and the summary rows (name, figure, target met)."""
    out: list[str] = []
    summary: list[tuple[str, str, bool | None]] = []
    torch_note = fig.torch.get("skipped")

    # scaling
    ns = sorted(fig.scaling)
    fixed = fig.scaling[1]["modelc"].median if 1 in fig.scaling else 0.0
    fixed_h = fig.scaling[1]["helper"].median if 1 in fig.scaling else 0.0
    rows, per_block, net_per_block = [], {}, {}
    prev = None
    for n in ns:
        s = fig.scaling[n]
        m, h = s["modelc"].median, s["helper"].median
        per_block[n] = m / n
        net = (m - fixed) / (n - 1) if n > 1 else float("nan")
        if n > 1:
            net_per_block[n] = net
        slope = "–"
        if prev is not None and prev[0] > 1 and n > 1:
            a, b = prev[1] - fixed, m - fixed
            slope = f"{math.log(b / a) / math.log(n / prev[0]):.2f}" if a > 0 and b > 0 else "n/a"
        ts = _torch_stats(fig, n, SCALING_UNITS)
        t_total = ts[0].median if ts else float("nan")
        rows.append([f"{n:,}", fmt_s(m), fmt_s(m / n) if n > 1 else "(fixed cost)",
                     fmt_s(net) if n > 1 else "–", slope, fmt_s(h), fmt_ratio(m / h),
                     fmt_ratio((m - fixed) / (h - fixed_h)) if n > 1 and h > fixed_h else "–",
                     fmt_s(t_total) if ts else "–", fmt_ratio(m / t_total) if ts else "–",
                     _reps(s["modelc"], s["helper"], *( [ts[0]] if ts else []))])
        prev = (n, m)
    out.append(f"### 1a. Scaling: `repeat N block({SCALING_UNITS})`, full compile (weights {SCALING_UNITS}×{SCALING_UNITS}, "
               f"{weight_bytes(max(ns), SCALING_UNITS) / 1e6:.0f} MB at N={max(ns):,})\n")
    out.append("Median wall time of `modelc.compile_source` (parse → check → lower → initialize weights → emit → "
               "onnx.checker; ModelProto in memory, not saved). *net/block* = (t(N) − t(1)) / (N − 1), the cost "
               "of one more block with the fixed cost of N=1 taken out; *exponent* = log-log slope of the net time "
               "between successive N (1.0 = linear, 2.0 = quadratic). helper = the same flat graph built with "
               "onnx.helper + numpy_helper (same weight distribution); torch = `nn.Sequential` of 2N × "
               "(Linear+ReLU) built and exported with `torch.onnx.export(dynamo=False)` to memory.\n")
    out.append(table(["N", "modelc", "modelc / block", "net / block", "exponent", "helper", "modelc / helper",
                      "net modelc / net helper", "torch", "modelc / torch", "repeats (modelc/helper/torch)"], rows))
    big = [n for n in net_per_block if n >= 100]
    if len(big) >= 2:
        r_net = max(net_per_block[n] for n in big) / min(net_per_block[n] for n in big)
        r_raw = max(per_block[n] for n in big) / min(per_block[n] for n in big)
        linear = r_net <= 2.0
        out.append(f"\nPer-block time, largest / smallest over N = {', '.join(f'{n:,}' for n in big)}: "
                   f"**{r_net:.2f}×** net (raw t/N: {r_raw:.2f}×); "
                   f"{'roughly constant: linear' if linear else 'NOT constant: compile time grows faster than N'}. "
                   "(N=10 is left out: its net time is the difference of two times of a few ms.)")
        summary.append(("1a. compile time linear in N (net per-block max/min, N≥100)", f"{r_net:.2f}×", linear))
    if max(ns) in fig.scaling:
        s = fig.scaling[max(ns)]
        r = s["modelc"].median / s["helper"].median
        summary.append((f"1a. modelc / onnx.helper at N={max(ns):,}, {SCALING_UNITS} units (target ≤ 2×)", fmt_ratio(r), r <= 2))

    # weighted
    out.append(f"\n### 1b. Weighted: `repeat N block({WEIGHTED_UNITS})`, full compile\n")
    out.append("Same measurement with 256×256 float32 kernels (zero biases); *modelc --inline* emits one flat graph "
               "like the helper's instead of one ONNX function per layer. N=10,000 would be 5.2 GB of weights "
               "and is not run here; the 10,000-block point is the 16-unit run of 1a.\n")
    rows = []
    for n in sorted(fig.weighted):
        s = fig.weighted[n]
        m, mi, h = s["modelc"].median, s["modelc --inline"].median, s["helper"].median
        ts = _torch_stats(fig, n, WEIGHTED_UNITS)
        rows.append([f"{n:,}", f"{weight_bytes(n, WEIGHTED_UNITS) / 1e6:,.0f} MB", fmt_s(m), fmt_s(m / n), fmt_s(mi),
                     fmt_s(h), fmt_ratio(m / h), fmt_ratio(mi / h),
                     fmt_s(ts[0].median) if ts else "–", fmt_s(ts[1].median) if ts else "–",
                     fmt_ratio(m / ts[0].median) if ts else "–",
                     _reps(s["modelc"], s["modelc --inline"], s["helper"], *([ts[0]] if ts else []))])
    out.append(table(["N", "weights", "modelc", "modelc / block", "modelc --inline", "helper", "modelc / helper",
                      "inline / helper", "torch (build+export)", "torch export only", "modelc / torch",
                      "repeats (m/inl/h/t)"], rows))
    if fig.weighted:
        n = max(fig.weighted)
        s = fig.weighted[n]
        r = s["modelc"].median / s["helper"].median
        summary.append((f"1b. modelc / onnx.helper at N={n:,}, {WEIGHTED_UNITS} units (target ≤ 2×)", fmt_ratio(r), r <= 2))
        ts = _torch_stats(fig, n, WEIGHTED_UNITS)
        if ts:
            summary.append((f"1b. modelc / torch.onnx.export at N={n:,}, {WEIGHTED_UNITS} units", fmt_ratio(s["modelc"].median / ts[0].median), None))
    if torch_note:
        out.append(f"\n**torch: {torch_note}**")
    elif fig.torch.get("env"):
        out.append(f"\ntorch worker: {fig.torch['env']}")
    for r in fig.torch.get("results", []):
        if r.get("skipped"):
            out.append(f"\ntorch N={r['n']:,}, {r['units']} units: {r['skipped']}")

    # breakdowns
    for (n, units), b in fig.breakdowns.items():
        out.append(f"\n### 1c. Where the time goes: N={n:,}, {units} units\n")
        if isinstance(b, str):
            out.append(b)
            continue
        total, rows = b
        out.append(f"One `compile_source` under cProfile ({fmt_s(total)} with the profiler, which inflates Python-level "
                   "work against C code such as numpy and protobuf): for each driver stage in bold, the time of each "
                   "function it calls directly (≥ 1% of the total).\n")
        out.append(table(["stage / callee", "time", "share of compile"], rows))
    if fig.profile:
        out.append(fig.profile)
    cap = repeat_limit()
    if cap is not None and max(list(fig.scaling) + list(fig.weighted) + [0]) > cap:
        out.append(f"\nNote: the compiler caps one `repeat` stage at {cap:,} applications (compiler/check.py "
                   f"MAX_REPEAT), so N > {cap:,} is written as a chain of `repeat {cap}` stages "
                   f"(`x -> repeat {cap} block(U) -> repeat {cap} block(U) -> ...`): the same network, the same "
                   "instance and weight names.")
    for note in fig.notes:
        out.append(f"\n{note}")
    return "\n".join(out), summary


if __name__ == "__main__":  # a quick look: python bench/compile_bench.py
    d = Deadline(600)
    f = run(d, quick="--quick" in sys.argv, with_torch="--no-torch" not in sys.argv)
    print(render(f)[0])
