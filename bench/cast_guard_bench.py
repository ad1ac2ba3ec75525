"""On-demand benchmark: what the cast guard of `run`/`eval`/`compare` (runtime/columns.py `guard_casts`: float64
values past float32's range, int64 past its exact integers) costs against the feeds it guards.

    python bench/cast_guard_bench.py [--rows N] [--repeats K]

Data: N rows x 8 float64 columns (seeded normals, in range: the common case, one joined reduction a batch),
in batches of 1,024 (the default) and 65,536 rows. Baseline, measured in the same run: `feeds_for`, which
stacks and casts the same columns into the float32 [batch, 8] input. Prints the median of K runs of each and
the ratio guard/feeds; never run by the test suite.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_seconds  # noqa: E402

from modelc.runtime.columns import ColumnPlan, feeds_for, guard_casts
from modelc.runtime.session import TensorSpec


class _File:
    path = "bench.parquet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    columns = {f"f{j}": rng.normal(size=args.rows) for j in range(8)}
    plan = ColumnPlan(inputs={"x": list(columns)}, stacked={"x": True})
    inputs = [TensorSpec("x", np.dtype(np.float32), ("batch", 8))]
    print(f"{args.rows:,} rows x 8 float64 columns -> float32[batch, 8], median of {args.repeats}")
    for size in (1024, 65536):
        batches = [{k: v[i:i + size] for k, v in columns.items()} for i in range(0, args.rows, size)]
        located = [(_File(), i * size, b) for i, b in enumerate(batches)]
        guard = median_seconds(lambda: [None for _ in guard_casts(iter(located), plan, inputs)], args.repeats)
        feeds = median_seconds(lambda: [feeds_for(b, plan, inputs) for b in batches], args.repeats)
        print(f"batch {size:>6,}: guard {guard * 1e3:7.1f} ms, feeds {feeds * 1e3:7.1f} ms, "
              f"guard/feeds {guard / feeds:.2f}x")


if __name__ == "__main__":
    main()
