"""Shared helpers of the benchmark: timing with repeats and budgets, machine facts, markdown.

Pure standard library, so bench/torch_bench.py can import it under .bench-venv too.
"""
from __future__ import annotations

import gc
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


class Deadline:
    """A soft limit on the whole bench: past it, every measurement takes a single repeat."""

    def __init__(self, seconds: float):
        self.start = time.perf_counter()
        self.seconds = seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()


NO_DEADLINE = Deadline(float("inf"))


@dataclass
class Stats:
    times: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")

    @property
    def spread(self) -> float:
        """(max - min) / median: how noisy the repeats were."""
        if len(self.times) < 2:
            return 0.0
        return (max(self.times) - min(self.times)) / self.median

    def as_dict(self) -> dict:
        return {"times": self.times, "median": self.median, "n": self.n}

    @classmethod
    def from_dict(cls, d: dict) -> "Stats":
        return cls(list(d["times"]))


def time_once(fn: Callable[[], object]) -> float:
    gc.collect()
    t = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - t
    del result
    gc.collect()
    return elapsed


def median_seconds(work: Callable[[], object], repeats: int) -> float:
    """The median of `repeats` timed calls of `work`."""
    return statistics.median(time_once(work) for _ in range(repeats))


def measure(fns: dict[str, Callable[[], object]], repeats: int, budget_s: float,
            deadline: Deadline = NO_DEADLINE) -> dict[str, Stats]:
    """Run the functions round-robin (interleaved, so drift on a shared machine hits them alike).

    Every function runs at least once; another round starts only while fewer than `repeats`
    rounds ran, the rounds so far took less than `budget_s`, and the bench deadline is not past.
    """
    out = {k: Stats() for k in fns}
    start = time.perf_counter()
    for r in range(repeats):
        if r > 0:
            spent = time.perf_counter() - start
            per_round = spent / r
            if spent + per_round > budget_s or deadline.left() < per_round:
                break
        for name, fn in fns.items():
            out[name].times.append(time_once(fn))
    return out


# --- machine ----------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count() -> str:
    logical = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = logical
    return f"{usable} usable ({logical} logical)"


def mem_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "?"


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def versions(names: list[str]) -> dict[str, str]:
    from importlib import metadata
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = "not installed"
    return out


def git_state() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return f"{rev}{' + uncommitted changes' if dirty else ''}" if rev else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def python_desc() -> str:
    return f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})"


# --- formatting -------------------------------------------------------------------------------
def fmt_s(seconds: float) -> str:
    if seconds != seconds:  # nan
        return "n/a"
    if seconds >= 10:
        return f"{seconds:.1f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 0.01:
        return f"{seconds * 1e3:.0f} ms"
    return f"{seconds * 1e3:.2f} ms"


def fmt_ratio(r: float) -> str:
    if r != r:
        return "n/a"
    return f"{r:.2f}×" if r < 100 else f"{r:.0f}×"


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**MISSED**"


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --- profiles of missed targets ---------------------------------------------------------------
def _where(filename: str, line: int, func: str) -> str:
    path = filename
    for base in (str(ROOT) + "/", ):
        if path.startswith(base):
            path = path[len(base):]
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif "/lib/python3" in path:
        path = "stdlib/" + path.split("/lib/python3", 1)[1].split("/", 1)[-1]
    if filename == "~":
        return func  # a built-in
    return f"{path}:{line} ({func})"


def hot_spots(fn: Callable[[], object], top: int = 8) -> tuple[float, list[list[str]]]:
    """cProfile one call; the functions with the most own time, as table rows."""
    import cProfile
    import pstats
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.runcall(fn)
    total = time.perf_counter() - t
    stats = pstats.Stats(prof)
    rows = []
    entries = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])  # (cc, nc, tottime, cumtime, callers)
    for (filename, line, func), (cc, nc, tt, ct, callers) in entries[:top]:
        where = _where(filename, line, func)
        if filename == "~" and callers:  # a built-in: name its costliest caller
            (cf, cl, cfn), _ = max(callers.items(), key=lambda kv: kv[1][2])
            where += f" ← {_where(cf, cl, cfn)}"
        rows.append([f"`{where}`", f"{nc:,}", fmt_s(tt), fmt_s(ct)])
    return total, rows


def hot_spots_md(title: str, fn: Callable[[], object], deadline: "Deadline", top: int = 8,
                 need_s: float = 30.0) -> str:
    if deadline.left() < need_s:
        return f"\n{title}: profile skipped (bench time budget spent)."
    try:
        total, rows = hot_spots(fn, top)
    except Exception as e:  # noqa: BLE001
        return f"\n{title}: profile failed ({type(e).__name__}: {e})."
    return (f"\n{title} — cProfile, {total:.2f} s under the profiler, top {top} by own time:\n\n"
            + table(["function", "calls", "own time", "cumulative"], rows))


def call_tree(fn: Callable[[], object], roots: list[str], min_share: float = 0.01) -> tuple[float, list[list[str]]]:
    """cProfile one call; for each function named in `roots` (first match by name), the time of each of its
    direct callees as called from it: where its time goes, whatever the internal stages are called now."""
    import cProfile
    import pstats
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.runcall(fn)
    total = time.perf_counter() - t
    stats = pstats.Stats(prof)
    stats.calc_callees()
    rows = []
    for root in roots:
        key = next((k for k in stats.stats if k[2] == root and k[0] != "~"), None)
        if key is None:
            continue
        root_ct = stats.stats[key][3]
        own = stats.stats[key][2]
        rows.append([f"**`{_where(*key)}`**", fmt_s(root_ct), f"{root_ct / total:.0%}"])
        callees = stats.all_callees.get(key, {})
        for callee, value in sorted(callees.items(), key=lambda kv: -kv[1][3]):
            ct = value[3]
            if ct < min_share * total:
                continue
            rows.append([f"↳ `{_where(*callee)}`", fmt_s(ct), f"{ct / total:.0%}"])
        if own >= min_share * total:
            rows.append(["↳ (own code)", fmt_s(own), f"{own / total:.0%}"])
    return total, rows
