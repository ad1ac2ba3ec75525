"""The benchmark: `make bench` (= .venv/bin/python bench/run.py) writes bench/REPORT.md.

Run on demand, never by the test suite. Every figure is a ratio against a baseline measured in the
same run, from medians of repeats (the machine is small, shared and noisy). About 12 minutes on 2 cores.

    .venv/bin/python bench/run.py                 # everything, writes bench/REPORT.md
    .venv/bin/python bench/run.py --quick         # small sizes, a smoke test (~1 minute)
    .venv/bin/python bench/run.py --only 2,4      # some figures
    .venv/bin/python bench/run.py --no-torch      # skip the torch.onnx.export comparison

The torch comparison runs in .bench-venv (torch==2.13.0 CPU, onnx, numpy), in a subprocess;
without that venv its figures are skipped, and the report says so.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import (ROOT, Deadline, cpu_count, cpu_model, git_state, load_average, log, mem_total,  # noqa: E402
                    python_desc, table, verdict, versions)

PACKAGES = ["modelc", "onnx", "onnxruntime", "numpy", "lark", "protobuf", "ml_dtypes"]


def ensure_modelc() -> None:
    """Re-run under the project's .venv when this interpreter cannot import modelc."""
    try:
        import modelc  # noqa: F401
    except ImportError:
        venv_python = ROOT / ".venv" / "bin" / "python"
        if venv_python.exists() and Path(sys.executable).resolve() != venv_python.resolve():
            os.execv(str(venv_python), [str(venv_python), *sys.argv])
        sys.exit("bench: cannot import modelc; run `make bench` (it installs the project into .venv)")


def machine_section(torch_env: str | None, started: str, load_start: str) -> str:
    rows = [["CPU", cpu_model()], ["cores", cpu_count()], ["memory", mem_total()],
            ["load average at start / end", f"{load_start} / {load_average()}"],
            ["Python", python_desc()],
            ["packages (.venv)", ", ".join(f"{k} {v}" for k, v in versions(PACKAGES).items())],
            ["torch side (.bench-venv)", torch_env or "not run"],
            ["modelc source", f"git {git_state()}"], ["started", started]]
    return table(["", ""], rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke test of the bench itself")
    ap.add_argument("--only", default="1,2,3,4,5,6,7", help="comma-separated figures to run (default: all)")
    ap.add_argument("--no-torch", action="store_true", help="skip the torch.onnx.export comparison")
    ap.add_argument("--budget", type=float, default=780.0,
                    help="soft limit in seconds; past it each measurement takes one repeat (default 780)")
    ap.add_argument("-o", "--output", default=str(HERE / "REPORT.md"), help="report path (default bench/REPORT.md)")
    args = ap.parse_args()
    ensure_modelc()
    os.chdir(ROOT)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    deadline = Deadline(args.budget)
    started = dt.datetime.now().isoformat(timespec="seconds")
    load_start = load_average()

    import compile_bench
    import dask_bench
    import framework_run
    import parse_bench
    import runtime_bench
    import startup_bench
    import weights_bench

    # run order: cheap and noise-sensitive first, the long compile series (and torch) last
    plan = [("4", "4. Start-up and imports of the command line", startup_bench),
            ("2", "2. Parse + check throughput", parse_bench),
            ("3", "3. A 1 GB model: compile + save against numpy writing the same bytes", weights_bench),
            ("1", "1. Compile time of `repeat N block(U)`", compile_bench),
            ("5", "5. Runtime: eval end to end, fused metric states, memory on data larger than RAM", runtime_bench),
            ("6", "6. Against the frameworks: inference vs torch, metric updates vs torchmetrics and Keras",
             framework_run),
            ("7", "7. Evaluation on Dask: workers, per-task overhead, bytes per task", dask_bench)]
    sections: dict[str, str] = {}
    summary: list[tuple[str, str, bool | None]] = []
    torch_env = None
    for key, title, module in plan:
        if key not in only:
            continue
        t = time.perf_counter()
        log(f"figure {key} ({deadline.elapsed():.0f} s into the bench)")
        try:
            if module is compile_bench:
                fig = module.run(deadline, quick=args.quick, with_torch=not args.no_torch)
                torch_env = fig.torch.get("env") or fig.torch.get("skipped")
            else:
                fig = module.run(deadline, quick=args.quick)
            text, rows = module.render(fig)
        except Exception:  # noqa: BLE001 - one broken figure must not lose the others
            text, rows = "**failed:**\n\n```\n" + traceback.format_exc()[-3000:] + "\n```", [(f"{key} (failed)", "–", False)]
        took = time.perf_counter() - t
        sections[key] = f"## {title}\n\n{text}\n\n*(figure {key} took {took:.0f} s)*\n"
        summary.extend(rows)

    total = deadline.elapsed()
    summary.sort(key=lambda r: r[0][:1])  # by figure, keeping each figure's order
    parts = [
        "# modelc benchmark\n",
        f"Written by `bench/run.py`{' --quick (small sizes: not the real figures)' if args.quick else ''}; "
        f"the whole bench took **{total:.0f} s** ({total / 60:.1f} min). Reproduce with `make bench` "
        "(`.venv/bin/python bench/run.py`); the torch comparison needs `.bench-venv` (see bench/run.py). "
        "Every figure is a median over repeats (the repeat count is given; fewer when a run is long) and is "
        "read as a ratio against a baseline measured in the same run: absolute times on this shared 2-core "
        "machine move with its load.\n",
        "## Machine\n", machine_section(torch_env, started, load_start), "",
        "## Summary\n",
        table(["figure", "measured", "target"],
              [[name, value, "–" if ok is None else verdict(ok)] for name, value, ok in summary]), "",
    ]
    parts += [sections[k] for k in ["1", "2", "3", "4", "5", "6", "7"] if k in sections]
    out = Path(args.output)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    os.replace(tmp, out)
    log(f"wrote {out} in {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
