"""A generated, valid .model file of about N lines (5,000 by default): the input of the editor benchmarks
(bench/fmt_bench.py, the language server's latency bench), so both measure the same text.

The file is parse_bench.py's four layer shapes (custom params, built-in pipelines, one-expression layers,
slices), each with its comment, in groups of eight; after each group a small model applies the group's
layers in a pipeline long enough to wrap, with a trailing comment. Every definition is independent of the
next group's, so an edit in one group leaves the others' checks valid.

    python bench/gen_big_model.py OUT.model [--lines 5000]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parse_bench import NAMES, TEMPLATES  # noqa: E402  (one home for the layer shapes)

GROUP = 8  # layers per model


def model_text(group: int, layers: list[str]) -> str:
    stages = " -> ".join(layers)
    return (f"# model {group}: the group's layers in turn\n"
            f"model m_{group}(x: float32[batch, 32]) {{\n"
            f"    h = x -> {stages}  # {len(layers)} layers\n"
            f"    return h -> dense(4)\n"
            f"}}\n")


def generate(lines: int = 5000) -> str:
    """About `lines` lines (at least that many) of valid source, ending with a whole model."""
    parts: list[str] = []
    count, i = 0, 0
    while count < lines:
        names = []
        for _ in range(GROUP):
            k = i % len(TEMPLATES)
            parts.append(TEMPLATES[k].format(i=i) + "\n")
            names.append(f"{NAMES[k]}_{i}")
            i += 1
        parts.append(model_text(i // GROUP, names) + "\n")
        count = sum(p.count("\n") for p in parts)
    return "".join(parts).rstrip("\n") + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("out")
    parser.add_argument("--lines", type=int, default=5000)
    args = parser.parse_args()
    text = generate(args.lines)
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"wrote {args.out}: {text.count(chr(10))} lines, {len(text.encode()):,} bytes")


if __name__ == "__main__":
    main()
