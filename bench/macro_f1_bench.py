"""Macro F1 update throughput at batch 65,536: modelc's `f1(average="macro")` against torchmetrics'
MulticlassF1Score(average="macro"), with 10 and 1,000 classes (issue 11), on the CPU, one thread each.

Runs under .bench-venv (`make bench-env`: torch, torchmetrics and modelc):
    .bench-venv/bin/python bench/macro_f1_bench.py [--repeats 7] [--classes 10,1000] [--batch 65536]
Prints the median update time of each side (several runs, interleaved), rows per second and the ratio
torchmetrics / modelc (> 1: modelc is faster), and checks that both give the same F1 on the batches updated.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import measure  # noqa: E402


def batches(classes: int, batch: int, count: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(labels int64 [batch], softmax-like scores float32 [batch, classes]) with the true class favoured."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        y = rng.integers(0, classes, batch)
        scores = rng.random((batch, classes), dtype=np.float32)
        scores[np.arange(batch), y] += 0.5
        out.append((y, scores))
    return out


def run(classes: int, batch: int, repeats: int) -> dict[str, float]:
    import torch
    import torchmetrics.classification as tmc

    import modelc
    torch.set_num_threads(1)
    data = batches(classes, batch, 2)
    torch_data = [(torch.from_numpy(y), torch.from_numpy(p)) for y, p in data]
    ours = modelc.metric('f1(average="macro")')
    theirs = tmc.MulticlassF1Score(num_classes=classes, average="macro")
    ours.update(*data[0]), theirs.update(torch_data[0][1], torch_data[0][0])   # sessions built, caches warm
    step = {"i": 0}

    def modelc_update() -> None:
        y, p = data[step["i"] % 2]
        ours.update(y, p)

    def torchmetrics_update() -> None:
        y, p = torch_data[step["i"] % 2]
        theirs.update(p, y)
        step["i"] += 1
    stats = measure({"modelc": modelc_update, "torchmetrics": torchmetrics_update}, repeats, budget_s=120)
    agree = abs(float(theirs.compute()) - ours.result())
    return {"modelc_s": stats["modelc"].median, "torchmetrics_s": stats["torchmetrics"].median, "agree": agree}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--classes", default="10,1000")
    ap.add_argument("--batch", type=int, default=65536)
    args = ap.parse_args()
    print(f"macro F1 update, batch {args.batch:,}, median of up to {args.repeats} runs, 1 thread each")
    print(f"{'classes':>8} {'modelc ms':>10} {'torchmetrics ms':>16} {'modelc rows/s':>14} {'ratio':>7} {'|diff|':>8}")
    for k in (int(c) for c in args.classes.split(",")):
        r = run(k, args.batch, args.repeats)
        ratio = r["torchmetrics_s"] / r["modelc_s"]
        print(f"{k:>8} {1e3 * r['modelc_s']:>10.2f} {1e3 * r['torchmetrics_s']:>16.2f} "
              f"{args.batch / r['modelc_s']:>14,.0f} {ratio:>6.2f}x {r['agree']:>8.1e}")
    print("ratio: torchmetrics time / modelc time (> 1: modelc ahead)")


if __name__ == "__main__":
    main()
