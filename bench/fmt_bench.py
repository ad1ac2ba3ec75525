"""`modelc fmt` throughput on the generated 5,000-line file (bench/gen_big_model.py, the text the language
server's bench edits too), against parsing alone, measured in the same run: the formatter is a parse plus
a printer, so the ratio says what the printing and the placing of comments cost on top.

    .venv/bin/python bench/fmt_bench.py [--lines 5000] [--repeats 7]

Prints the median of the repeats (round-robin, so a busy machine slows every side alike) as seconds, lines/s
and MB/s, for: parse (compiler.parse.parse_text), fmt (editor.fmt.format_source, the same text), fmt of text
already formatted (what `fmt --check` in CI meets), and `modelc fmt --check` as a fresh process (start-up
included).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, fmt_ratio, fmt_s, measure, table, time_once
from gen_big_model import generate

from modelc.compiler.parse import parse_text
from modelc.editor.fmt import find_comments, format_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    text = generate(args.lines)
    formatted = format_source(text)
    assert format_source(formatted) == formatted
    lines, mb = text.count("\n"), len(text.encode()) / 1e6
    modelc = str(Path(sys.executable).parent / "modelc")
    with tempfile.TemporaryDirectory(dir=ROOT / "bench") as scratch:
        path = Path(scratch) / "big.model"
        path.write_text(formatted)
        cli = [modelc, "fmt", "--check", str(path)]
        time_once(lambda: subprocess.run(cli, check=True, capture_output=True))   # warm the caches
        stats = measure({
            "parse (baseline)": lambda: parse_text(text),
            "find comments": lambda: find_comments(text),
            "fmt": lambda: format_source(text),
            "fmt, already formatted": lambda: format_source(formatted),
            "modelc fmt --check (process)": lambda: subprocess.run(cli, check=True, capture_output=True),
        }, repeats=args.repeats, budget_s=120)
    base = stats["parse (baseline)"].median
    rows = [[name, fmt_s(s.median), f"{lines / s.median:,.0f}", f"{mb / s.median:.2f}", fmt_ratio(s.median / base),
             str(s.n)] for name, s in stats.items()]
    print(f"{lines:,} lines, {mb:.2f} MB, {len(find_comments(text))} comments; {len(formatted.splitlines()):,} "
          f"lines formatted")
    print(table(["", "median", "lines/s", "MB/s", "× parse", "runs"], rows))


if __name__ == "__main__":
    main()
