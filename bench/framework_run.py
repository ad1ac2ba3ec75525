"""Figure 6 for bench/run.py: runs bench/framework_bench.py under .bench-venv (torch, torchmetrics, keras)."""
from __future__ import annotations

import json
import subprocess
import sys

from common import ROOT, Deadline

BENCH_PYTHON = ROOT / ".bench-venv" / "bin" / "python"


def run(deadline: Deadline, quick: bool = False) -> dict:
    if not BENCH_PYTHON.exists():
        return {"skipped": "no .bench-venv: run `make bench-env` to install torch==2.13.0, torchmetrics, keras, jax"}
    out = subprocess.run([str(BENCH_PYTHON), str(ROOT / "bench" / "framework_bench.py")], capture_output=True,
                         text=True, timeout=max(60, deadline.left()))
    if out.returncode != 0:
        return {"skipped": "framework bench failed:\n```\n" + out.stderr[-3000:] + "\n```"}
    lines = out.stdout.strip().splitlines()
    rows = json.loads(lines[-1][len("JSON "):])["rows"]
    return {"text": "\n".join(lines[:-1]), "rows": [tuple(r) for r in rows]}


def render(fig: dict) -> tuple[str, list[tuple[str, str, bool | None]]]:
    if "skipped" in fig:
        return fig["skipped"], [("6. frameworks (skipped)", "–", None)]
    return fig["text"], fig["rows"]


if __name__ == "__main__":
    print(render(run(Deadline(600)))[0], file=sys.stdout)
