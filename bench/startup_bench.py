"""Figure 4: start-up of the command line, and what `modelc check` / `modelc compile` import.

Wall time of whole processes (interleaved, medians): `.venv/bin/modelc check samples/housing.model`
against `.venv/bin/python -c "import lark"` (the parser library; since issue 13 check runs the standalone
parser generated into grammar/model_parser.py and imports no lark, but the baseline stays the same), and
`modelc compile` against `python -c "import onnx"`. Then, in fresh interpreters, modelc.cli.main runs
check / compile and reports whether onnx and onnxruntime ended up in sys.modules; and
`python -X importtime -m modelc check` lists the costliest imports.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from common import ROOT, Deadline, Stats, fmt_ratio, fmt_s, log, measure, table

VENV_BIN = ROOT / ".venv" / "bin"
SAMPLE = "samples/housing.model"

PROBE = """\
import io, json, sys, contextlib
from modelc.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
    rc = main(sys.argv[1:])
mods = sorted(m for m in sys.modules if m.split(".")[0] in ("onnx", "onnxruntime", "torch", "numpy", "pyarrow", "rich", "lark"))
roots = sorted({m.split(".")[0] for m in mods})
print(json.dumps({"rc": rc, "roots": roots, "output": out.getvalue()[-400:]}))
"""


# Bytecode caches on, as in an installed package: the warm-up run refreshes any stale .pyc (this
# workplace sets PYTHONDONTWRITEBYTECODE, which would recompile every edited module at each start).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env=ENV)


@dataclass
class Fig4:
    stats: dict[str, Stats] = field(default_factory=dict)
    imports: dict[str, dict] = field(default_factory=dict)
    importtime: list[tuple[int, int, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def run(deadline: Deadline, quick: bool = False) -> Fig4:
    fig = Fig4()
    py, modelc_bin = str(VENV_BIN / "python"), str(VENV_BIN / "modelc")
    tmp = Path(tempfile.mkdtemp(prefix="modelc-bench-"))
    out_onnx = str(tmp / "housing.onnx")
    cmds = {
        "modelc check samples/housing.model": [modelc_bin, "check", SAMPLE],
        'python -c "import lark"': [py, "-c", "import lark"],
        "modelc compile samples/housing.model -o …": [modelc_bin, "compile", SAMPLE, "-o", out_onnx],
        'python -c "import onnx"': [py, "-c", "import onnx"],
        'python -c "pass"': [py, "-c", "pass"],
    }
    for name, cmd in cmds.items():  # warm the page cache and check the commands work
        proc = _run(cmd)
        if proc.returncode != 0:
            fig.notes.append(f"`{name}` failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
    log("fig4: start-up")
    fig.stats = measure({k: (lambda c=c: _run(c)) for k, c in cmds.items()}, repeats=5 if quick else 11,
                        budget_s=60, deadline=deadline)

    for what, argv in [("check", ["check", SAMPLE]), ("compile", ["compile", SAMPLE, "-o", out_onnx])]:
        proc = _run([py, "-c", PROBE, *argv])
        try:
            fig.imports[what] = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            fig.imports[what] = {"rc": proc.returncode, "roots": [], "output": proc.stderr[-300:], "error": True}

    proc = _run([py, "-X", "importtime", "-m", "modelc", "check", SAMPLE])
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line[len("import time:"):].split("|")
        try:
            rows.append((int(parts[0]), int(parts[1]), parts[2].rstrip()))
        except ValueError:
            continue
    top_level = [r for r in rows if not r[2].startswith("  ")]   # imports made by modelc itself, or the root
    fig.importtime = sorted(top_level, key=lambda r: -r[1])[:8]
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
    return fig


def render(fig: Fig4) -> tuple[str, list[tuple[str, str, bool | None]]]:
    s = fig.stats
    check, lark = s["modelc check samples/housing.model"].median, s['python -c "import lark"'].median
    comp, onnx_ = s["modelc compile samples/housing.model -o …"].median, s['python -c "import onnx"'].median
    bare = s['python -c "pass"'].median
    ratios = {"modelc check samples/housing.model": check / lark,
              "modelc compile samples/housing.model -o …": comp / onnx_}
    rows = [[f"`{k}`", fmt_s(v.median), fmt_ratio(ratios[k]) if k in ratios else "–", fmt_ratio(v.median / bare), v.n]
            for k, v in s.items()]
    out = ["Whole-process wall time (subprocess, interleaved, median, after one warm-up run each; bytecode caches "
           "on, as in an installed package). The ratio compares `modelc check` with `import lark` and `modelc compile` "
           "with `import onnx`.\n",
           table(["command", "wall time", "ratio to its baseline", "/ bare python", "repeats"], rows)]
    out.append("\nWhat the commands import (a fresh interpreter runs `modelc.cli.main([...])`, then reads `sys.modules`):\n")
    rows = []
    for what, info in fig.imports.items():
        roots = info.get("roots", [])
        rows.append([f"`modelc {what}`", str(info.get("rc")), ", ".join(roots) or "none of onnx, onnxruntime, torch, lark, "
                     "numpy, pyarrow, rich", "yes" if "onnx" in roots else "no", "yes" if "onnxruntime" in roots else "no"])
    out.append(table(["command", "exit", "heavy packages imported", "onnx?", "onnxruntime?"], rows))
    if fig.importtime:
        out.append("\nCostliest imports of `python -X importtime -m modelc check samples/housing.model` "
                   "(cumulative, top-level entries):\n")
        out.append(table(["module", "self", "cumulative"], [[f"`{m.strip()}`", f"{a / 1e3:.1f} ms", f"{c / 1e3:.1f} ms"]
                                                             for a, c, m in fig.importtime]))
    out += [f"\n{n}" for n in fig.notes]
    chk, cmp_ = fig.imports.get("check", {}), fig.imports.get("compile", {})
    summary = [
        ("4. `modelc check` start-up / `import lark` (target ≤ 3×)", fmt_ratio(check / lark), check / lark <= 3),
        ("4. `modelc check` imports neither onnx nor onnxruntime",
         "ok" if chk.get("rc") == 0 and not {"onnx", "onnxruntime"} & set(chk.get("roots", [])) else
         f"imports {', '.join(sorted({'onnx', 'onnxruntime'} & set(chk.get('roots', [])))) or '?'} (exit {chk.get('rc')})",
         chk.get("rc") == 0 and not {"onnx", "onnxruntime"} & set(chk.get("roots", []))),
        ("4. `modelc compile` does not import onnxruntime",
         "ok" if cmp_.get("rc") == 0 and "onnxruntime" not in cmp_.get("roots", []) else
         f"imports onnxruntime (exit {cmp_.get('rc')})" if "onnxruntime" in cmp_.get("roots", []) else f"exit {cmp_.get('rc')}",
         cmp_.get("rc") == 0 and "onnxruntime" not in cmp_.get("roots", [])),
        ("4. `modelc compile` start-up / `import onnx`", fmt_ratio(comp / onnx_), None),
    ]
    return "\n".join(out), summary


if __name__ == "__main__":
    f = run(Deadline(600), quick="--quick" in sys.argv)
    print(render(f)[0])
