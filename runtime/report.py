"""What a job shows and returns, whichever engine ran it: the progress bar, and the --json result of eval
and run built from the job's merged tally (with the failed partitions, when some failed)."""
from __future__ import annotations

import sys
import time
import warnings
from typing import Any

from ..compiler.source import Diagnostic, ModelcError
from .metrics import MetricSet
from .defaults import DEFAULT_ON_MISSING
from .tasks import RunJob, Tally


class Progress:
    """A rich progress bar on stderr, quiet when stderr is not a terminal: rows for a job read in one stream,
    finished partitions (and their rows) for a job cut into partitions."""

    def __init__(self, total: int | None, enabled: bool | None, what: str, partitions: bool = False):
        self.bar: Any = None
        self.rows = 0
        self.start = time.perf_counter()
        if not (sys.stderr.isatty() if enabled is None else enabled):
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn, \
            TimeRemainingColumn
        counts = [MofNCompleteColumn(), TextColumn("partitions"), TextColumn("{task.fields[rows]:,} rows")] \
            if partitions else [TextColumn("{task.fields[rows]:,} rows"), TextColumn("{task.fields[rate]}")]
        self.bar = Bar(TextColumn(what), BarColumn(), *counts, TimeElapsedColumn(),
                       *([] if partitions else [TimeRemainingColumn()]), console=Console(stderr=True), transient=True)
        self.task = self.bar.add_task(what, total=total, rows=0, rate="")
        self.bar.start()

    def advance(self, rows: int | None, steps: int | None = None) -> None:
        """`rows` more rows done, in `steps` bar steps (default: the rows themselves)."""
        self.rows += rows or 0
        if self.bar is not None:
            rate = self.rows / max(time.perf_counter() - self.start, 1e-9)
            self.bar.update(self.task, advance=rows if steps is None else steps, rows=self.rows,
                            rate=f"{rate:,.0f} rows/s")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


class PartitionErrors(ModelcError):
    """Some partitions failed; `result` holds what the others gave (metrics over them, or their files)."""

    def __init__(self, result: dict[str, Any], failed: list[dict[str, str]], total: int, what: str):
        self.result, self.failed = result, failed
        lines = [Diagnostic(None, f["error"]) for f in failed]
        lines.append(Diagnostic(None, f"{len(failed)} of {total} partitions failed (listed above); {what}"))
        super().__init__(lines)


def _rate(rows: int, seconds: float) -> float | None:
    return round(rows / seconds, 1) if seconds > 0 else None


def _data_counts(tally: Tally, on_missing: str) -> dict[str, int]:
    """Counts of messy data, at the end of --json, present only where they can say something: rows left out
    by --on-missing skip, and rows whose target is NaN when some are (clean data keeps the keys it had)."""
    counts = {"skipped_rows": tally.missing_rows} if on_missing == "skip" else {}
    return {**counts, **({"nan_target_rows": tally.nan_targets} if tally.nan_targets else {})}


def eval_result(metric_set: MetricSet, tally: Tally, seconds: float, data: Any, base: dict[str, Any],
                after: dict[str, Any], on_missing: str = DEFAULT_ON_MISSING) -> dict[str, Any]:
    """The --json object of eval: the metrics over the merged states, counts, and what ran them (`base`
    after the counts, `after` then the counts of messy data at the end)."""
    metric_set.accumulate(tally.states)
    results = metric_set.results()
    if tally.rows == 0:  # undefined, as Metric.result() says: not the 0 that divide_no_nan would give
        warnings.warn(f"{data} has no rows: metrics are undefined", RuntimeWarning, stacklevel=3)
        results = {spec: float("nan") for spec in results}
    result = {"metrics": results, "samples": tally.rows, "batches": tally.batches, **base,
              "seconds": round(seconds, 6), "rows_per_second": _rate(tally.rows, seconds),
              "nan_predictions": metric_set.nan_predictions(), "nan_input_rows": tally.nan_inputs, **after,
              **_data_counts(tally, on_missing)}
    if tally.failed:
        total = after["partitions"]
        raise PartitionErrors(result, tally.failed, total,
                              f"the metrics are over the other {total - len(tally.failed)} partitions only")
    return result


def run_result(tally: Tally, output: str, provider: str, job: RunJob, seconds: float,
               engine: str | None = None, partitions: int = 0, after: dict[str, Any] | None = None) -> dict[str, Any]:
    """The --json object of run; an `engine` with `partitions` for `-o DIR/`, then the engine's `after`, then
    the kept columns (--keep) and the counts of messy data."""
    result: dict[str, Any] = {"output": str(output), "samples": tally.rows, "batches": tally.batches,
                              "provider": provider, "outputs": job.names}
    data = {**({"kept": job.plan.keep} if job.plan.keep else {}), **_data_counts(tally, job.on_missing)}
    if engine is None:
        return {**result, "seconds": round(seconds, 6), "rows_per_second": _rate(tally.rows, seconds), **data}
    result.update(engine=engine, partitions=partitions, written=tally.written, skipped=tally.skipped,
                  failed_partitions=tally.failed, seconds=round(seconds, 6),
                  rows_per_second=_rate(tally.rows, seconds) if tally.rows else None, **(after or {}), **data)
    if tally.failed:
        raise PartitionErrors(result, tally.failed, partitions,
                              "the others' predictions are written; a rerun skips them and retries these")
    return result
