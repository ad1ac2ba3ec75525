"""torch.onnx.export of nn.Sequential(2N x (Linear(U, U), ReLU)): the torch side of figure 1.

Runs under .bench-venv (torch==2.13.0, CPU build), started by bench/compile_bench.py:
    .bench-venv/bin/python bench/torch_bench.py '{"configs": [[N, U], ...], "repeats": 3, "budget_s": 120}'
Prints one JSON line on stdout. Uses the TorchScript exporter (dynamo=False), which needs no onnxscript.
"""
from __future__ import annotations

import io
import json
import platform
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Stats, time_once  # noqa: E402

OPSET = 18  # the TorchScript exporter's well-trodden opset; the graph is MatMul/Gemm + Relu either way


def build(n: int, units: int):
    import torch
    layers = []
    for _ in range(2 * n):
        layers += [torch.nn.Linear(units, units), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers).eval()


def export(model, units: int) -> bytes:
    import torch
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, units),), buf, dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                          opset_version=OPSET)
    return buf.getvalue()


def main() -> None:
    cfg = json.loads(sys.argv[1])
    import torch
    torch.manual_seed(0)
    results = []
    last: dict[int, tuple[int, float]] = {}
    start = time.perf_counter()
    budget = float(cfg["budget_s"])
    # warm-up: the exporter's first call pays for imports and registrations
    export(build(2, 8), 8)
    # cheapest first, so a tight budget still gets the small points
    for n, units in sorted(cfg["configs"], key=lambda c: c[0] * c[1] * c[1]):
        left = budget - (time.perf_counter() - start)
        prev = last.get(units)
        estimate = prev[1] * n / prev[0] if prev else 0.0  # linear guess from the last size of this width
        if left <= 0 or estimate > left:
            results.append({"n": n, "units": units,
                            "skipped": f"torch time budget spent (~{estimate:.0f} s needed, {max(left, 0):.0f} s left)"})
            continue
        total, exp = Stats(), Stats()
        t0 = time.perf_counter()
        for r in range(int(cfg["repeats"])):
            if r > 0:
                spent = time.perf_counter() - t0
                if spent + spent / r > min(left, budget / 3):
                    break
            t = time.perf_counter()
            model = build(n, units)
            built = time.perf_counter() - t
            e = time_once(lambda m=model: export(m, units))
            del model
            total.times.append(built + e)
            exp.times.append(e)
        results.append({"n": n, "units": units, "total": total.as_dict(), "export": exp.as_dict()})
        last[units] = (n, total.median)
    env = (f"{sys.executable}, Python {platform.python_version()}, torch {torch.__version__}, "
           f"{torch.get_num_threads()} intra-op threads, TorchScript exporter (dynamo=False), opset {OPSET}")
    print(json.dumps({"results": results, "env": env}))


if __name__ == "__main__":
    main()
