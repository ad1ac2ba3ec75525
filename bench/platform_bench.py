"""On-demand benchmark: each platform provider's throughput beside onnxruntime's CPU provider, and the cost
of the bridge to Node.js and the browser.

    python bench/platform_bench.py [--rounds K] [--iters R] [--providers cpu,openvino,node,wasm]

Models: samples/housing.model (trained weights) and samples/resnet.model (the CNN sample, seeded random
weights), at batch 64 and 4,096. In each of K rounds every provider runs R batches (after warm-up), providers in
alternating order; the medians of the rounds are reported. Throughput is rows per second end to end (Python's
`Session.run`: for node and wasm that includes moving the batch through the pipe or the page and back). The
bridge's own cost is end to end against the time onnxruntime-node's or onnxruntime-web's own `session.run`
took inside the process or page on the same batches (target: the bridge adds at most 20%).
Never run by the test suite; needs `make platforms` (and chromium for wasm).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import cpu_count, cpu_model, fmt_ratio, table  # noqa: E402  (pure stdlib helpers)

import modelc  # noqa: E402
from modelc.runtime.session import Session  # noqa: E402

ROOT = HERE.parent
MODELS = {"housing": (ROOT / "samples/housing.model", ROOT / "samples/housing.safetensors"),
          "resnet": (ROOT / "samples/resnet.model", None)}
BATCHES = (64, 4096)


def feeds_for(proto, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for value in proto.graph.input:
        dims = [d.dim_value if d.HasField("dim_value") else batch for d in value.type.tensor_type.shape.dim]
        out[value.name] = rng.normal(size=dims).astype(np.float32)
    return out


def one_round(session: Session, feeds: dict[str, np.ndarray], iters: int) -> tuple[float, float]:
    """(median seconds end to end, median seconds inside the platform's own session.run) per batch."""
    outer, inner = [], []
    for _ in range(iters):
        start = time.perf_counter()
        session.run(feeds)
        outer.append(time.perf_counter() - start)
        platform = session._platform
        inner.append(platform.last_ms / 1e3 if platform is not None and platform.last_ms else float("nan"))
    return statistics.median(outer), statistics.median(inner)


def bench_model(name: str, providers: list[str], rounds: int, iters: int, batches: tuple[int, ...] = BATCHES
                ) -> list[list[str]]:
    source, weights = MODELS[name]
    proto = modelc.compile_file(source, weights=str(weights) if weights else None)
    rows = []
    for batch in batches:
        feeds = feeds_for(proto, batch)
        sessions = {p: Session(proto, p) for p in providers}
        for session in sessions.values():
            for _ in range(3):
                session.run(feeds)  # warm-up: first runs allocate and, in the page, compile the wasm
        results: dict[str, list[tuple[float, float]]] = {p: [] for p in providers}
        for r in range(rounds):
            for p in (providers if r % 2 == 0 else providers[::-1]):
                results[p].append(one_round(sessions[p], feeds, iters))
        cpu = statistics.median(t for t, _ in results["cpu"])
        for p in providers:
            outer = statistics.median(t for t, _ in results[p])
            inner = statistics.median(i for _, i in results[p])
            bridge = f"+{outer / inner - 1:.0%}" if inner == inner else "–"
            rows.append([name, str(batch), p, f"{batch / outer:,.0f}", fmt_ratio(cpu / outer),
                         f"{outer * 1e3:.2f}", f"{inner * 1e3:.2f}" if inner == inner else "–", bridge])
        print(f"{name} batch {batch} done", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--providers", default="cpu,openvino,node,wasm")
    parser.add_argument("--models", default="housing,resnet")
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)), help="batch sizes, comma-separated")
    args = parser.parse_args()
    providers = args.providers.split(",")
    if providers[0] != "cpu":
        providers.insert(0, "cpu")
    rows = [row for name in args.models.split(",") for row in bench_model(name, providers, args.rounds, args.iters,
                                                                tuple(int(b) for b in args.batches.split(",")))]
    print(f"# platform bench: {cpu_model()}, {cpu_count()}; medians of {args.rounds} rounds x {args.iters} batches\n")
    print(table(["model", "batch", "provider", "rows/s", "vs cpu", "ms/batch end to end", "ms inside run",
                 "bridge"], rows))


if __name__ == "__main__":
    main()
