"""Sub-commands run and eval: MODEL (.model or .onnx) over a data file, in batches."""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

from .runtime.defaults import (DEFAULT_BATCH, DEFAULT_CALIBRATION_ROWS, DEFAULT_FORMAT, DEFAULT_ON_MISSING,
                               ON_MISSING, PREDICTION_FORMATS, PROVIDERS)
from .version import DISTRIBUTION


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a .model or .onnx file")
    p.add_argument("--data", required=True, action="append",
                   help=".npz, .npy, .csv or .parquet; a glob ('data/part-*.parquet'), a directory, or repeated")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    p.add_argument("--provider", default="cpu", choices=list(PROVIDERS),
                   help="; ".join(f"{k}: {v}" for k, v in PROVIDERS.items()))
    p.add_argument("--columns", action="append", default=[], metavar="INPUT=C1,C2",
                   help="which columns feed a model input (repeatable)")
    p.add_argument("--drop", action="append", default=[], metavar="COL[,COL]",
                   help="columns left out of the model inputs (repeatable)")
    p.add_argument("--on-missing", choices=list(ON_MISSING), default=DEFAULT_ON_MISSING,
                   help="a row with an empty, NA, null or NaN input or target cell: "
                        + "; ".join(f"{k}: {v}" for k, v in ON_MISSING.items()) + f" (default {DEFAULT_ON_MISSING})")
    p.add_argument("--engine", choices=["local", "dask"], default=None,
                   help=f"local (this process, default) or dask (one task per partition; "
                        f"pip install '{DISTRIBUTION}[dask]')")
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler, e.g. tcp://host:8786 (--engine dask)")
    p.add_argument("--workers", type=int, metavar="N", help="a local Dask cluster of N worker processes")
    p.add_argument("--partition-rows", type=int, metavar="N",
                   help="split Parquet files of more rows into tasks of whole row groups (default 1048576)")
    p.add_argument("--model", dest="model_name", help="which model of a .model file")
    add_import_root(p)
    p.add_argument("--weights", help=".safetensors or .npz weights for a .model")
    p.add_argument("--init-missing", action="store_true",
                   help="random weights (from --seed) for a .model without --weights, or for those --weights lacks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")


def add_import_root(p: argparse.ArgumentParser) -> None:
    """--import-root DIR, on every command that reads a .model file."""
    p.add_argument("--import-root", metavar="DIR",
                   help="imports may read only files inside DIR (for programs you do not trust)")


def _compile_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"model_name": args.model_name, "weights": args.weights, "init_missing": args.init_missing,
            "seed": args.seed}


def _data(args: argparse.Namespace) -> Any:
    return args.data[0] if len(args.data) == 1 else args.data


def _engine_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"engine": args.engine, "scheduler": args.scheduler, "workers": args.workers,
            "partition_rows": args.partition_rows}


def _row_options(args: argparse.Namespace) -> dict[str, Any]:
    """Which columns are left out of the inputs, and what becomes of rows with missing values."""
    return {"drop": args.drop, "on_missing": args.on_missing}


def cmd_run(args: argparse.Namespace) -> int:
    from .runtime.columns import parse_columns
    from .runtime.engine import PartitionErrors, run
    if not args.output.endswith("/"):   # -o DIR/ writes one file per partition
        from .compiler.files import check_writable
        check_writable(args.output, (args.model, *args.data))
    try:
        with warnings_shown():
            summary = run(args.model, _data(args), args.output, provider=args.provider, batch_size=args.batch_size,
                          outputs=args.outputs or None, columns=parse_columns(args.columns), progress=args.progress,
                          output_format=args.format, target=args.target, keep=args.keep, **_row_options(args),
                          **_engine_options(args), **_compile_options(args))
    except PartitionErrors as e:
        if args.json:
            print(json.dumps(e.result))
        raise
    if args.json:
        print(json.dumps(summary))
    elif "partitions" in summary:
        print(f"wrote {summary['output']}: {summary['samples']:,} rows, {summary['written']} of "
              f"{summary['partitions']} partition files ({summary['skipped']} already there) on "
              f"{summary['engine']} ({summary['rows_per_second'] or 0:,.0f} rows/s)")
    else:
        print(f"wrote {summary['output']}: {summary['samples']:,} rows in {summary['batches']} batches on "
              f"{summary['provider']} ({summary['rows_per_second'] or 0:,.0f} rows/s)")
    if not args.json and "skipped_rows" in summary:
        print(f"skipped {summary['skipped_rows']:,} rows with missing values (--on-missing skip)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .runtime.columns import parse_columns
    from .runtime.engine import PartitionErrors, evaluate
    from .runtime.model import load_model
    if args.checkpoint:  # refused before the model compiles (evaluate() checks again, for the API)
        from .compiler.files import check_writable
        check_writable(args.checkpoint)
    loaded = load_model(args.model, imports=tuple(args.imports), **_compile_options(args))
    failed = None
    with warnings_shown():
        try:
            result = evaluate(loaded, _data(args), args.target, args.metrics, provider=args.provider,
                              batch_size=args.batch_size, output=args.output, columns=parse_columns(args.columns),
                              sample_weight=args.sample_weight, checkpoint=args.checkpoint,
                              checkpoint_every=args.checkpoint_every, resume=args.resume, progress=args.progress,
                              plots=args.plots, **_row_options(args), **_engine_options(args))
        except PartitionErrors as e:  # the other partitions' metrics are shown, then the failures, exit 1
            result, failed = e.result, e
    _show(args, result, print_table)
    if failed is not None:
        raise failed
    return 0


@contextmanager
def warnings_shown() -> Iterator[None]:
    """Warnings (of any thread: the prefetch thread reads the data) as `warning: ...` lines on stderr, each once,
    when the block ends, however it ends."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for message in dict.fromkeys(str(w.message) for w in caught):
                print(f"warning: {message}", file=sys.stderr)


def is_matrix(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(r, list) and len(r) == len(value[0])
                                                           for r in value)


def grid(matrix: list[list[Any]]) -> Any:
    """A confusion matrix as rows (true classes) by columns (predicted), not a wrapped list."""
    from rich.table import Table
    table = Table(show_header=True, header_style="dim", box=None, padding=(0, 1))
    table.add_column("true\\pred", style="dim", justify="right")
    for j in range(len(matrix[0])):
        table.add_column(str(j), justify="right")
    for i, row in enumerate(matrix):
        table.add_row(str(i), *(f"{v:.6g}" if isinstance(v, float) else str(v) for v in row))
    return table


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for spec, value in result["metrics"].items():
        shown = f"{value:.6g}" if isinstance(value, float) else json.dumps(value)
        table.add_row(escape(spec), grid(value) if is_matrix(value) else escape(shown))
    console = Console()
    console.print(table)
    if result.get("plots"):
        console.print(f"plots: {escape(', '.join(result['plots']))}")
    rate = result.get("rows_per_second") or 0
    console.print(f"{result['samples']:,} samples in {result['batches']} batches on {result['provider']}, "
                  f"{rate:,.0f} rows/s; NaN predictions: {result['nan_predictions']}; "
                  f"rows with NaN inputs: {result['nan_input_rows']}")
    for key, what in (("nan_target_rows", "rows with a NaN target"), ("skipped_rows", "rows skipped (missing values)")):
        if key in result:
            console.print(f"{what}: {result[key]:,}")


def cmd_compare(args: argparse.Namespace) -> int:
    from .runtime.columns import parse_columns
    from .runtime.compare import compare
    with warnings_shown():
        report = compare(args.model, args.data, providers=_split(args.providers), variants=_split(args.variants),
                         rtol=args.rtol, atol=args.atol, batch_size=args.batch_size, max_batches=args.max_batches,
                         target=args.target, metrics=args.metrics, output=args.output,
                         columns=parse_columns(args.columns), layers=args.layers, save_outputs=args.save_outputs,
                         against=args.against, imports=tuple(args.imports), calibration_rows=args.calibration_rows,
                         **_compile_options(args))
    _show(args, report, print_comparison)
    return 0 if report["agree"] else 3


def _show(args: argparse.Namespace, result: dict[str, Any], print_human: Any) -> None:
    """eval's and compare's result: the --report page if asked for, then JSON or the tables."""
    if args.report:
        from .api import write_report
        write_report(result, args.report, args.model, args.data)
    if args.json:
        print(json.dumps(result))
    else:
        print_human(result)


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def print_comparison(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(title=escape(f"outputs vs {report['reference']} (rtol {report['rtol']:g}, atol {report['atol']:g})"))
    for column in ("output", "side", "max abs", "max rel", "mean abs", "out of tol", "worst at", "value",
                   escape(report["reference"]), "NaN", "Inf"):  # the baseline's value, headed by its label
        table.add_column(column, no_wrap=True)
    for name, per in {**report["outputs"], **{f"layer {k}": v for k, v in report["layers"].items()}}.items():
        for side, s in per.items():
            worst = s["worst"] or {"index": "", "value": float("nan"), "reference": float("nan")}
            table.add_row(escape(name), escape(side), f"{s['max_abs']:.3g}", f"{s['max_rel']:.3g}",
                          f"{s['mean_abs']:.3g}", f"{s['out_of_tolerance']:,} ({s['share_out_of_tolerance']:.3%})",
                          escape(str(worst["index"])), _shown(worst["value"]), _shown(worst["reference"]),
                          str(s["nan"]), str(s["inf"]))
    for layer, holder in report["same_value_as"].items():  # an identity layer: its input's value, not a copy
        table.add_row(escape(f"layer {layer}"), escape(f"same value as {holder}"))
    console.print(table)
    timing = Table(title="latency per batch")
    for column in ("side", "p50 ms", "p90 ms", "p99 ms", "rows/s"):
        timing.add_column(column)
    for side, t in report["latency"].items():
        timing.add_row(escape(side), f"{t['p50_ms']:.3f}", f"{t['p90_ms']:.3f}", f"{t['p99_ms']:.3f}",
                       f"{t['rows_per_second']:,.0f}")
    console.print(timing)
    for side, values in report["metrics"].items():
        console.print(escape(f"{side}: " + ", ".join(f"{k} = {v}" for k, v in values.items())))
    if report["first_diverging_layer"]:
        console.print(escape(f"first diverging layer: {report['first_diverging_layer']}"))
    for side, layer in report["first_nonfinite_layer"].items():
        if layer:
            console.print(escape(f"first layer with a NaN or Inf on {side}: {layer}"))
    console.print("verdict: " + ("all sides agree within tolerance" if report["agree"] else "sides DISAGREE"))


def _shown(value: Any) -> str:
    """A compared value: a number to 7 digits, text (string outputs) as it is."""
    from rich.markup import escape
    return f"{value:.7g}" if isinstance(value, (int, float)) else escape(str(value))


def add_runtime_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("run", help="inference over batches, predictions to a file")
    _common(p)
    p.add_argument("-o", "--output", required=True, help="predictions: .npz, .npy, .parquet or .csv")
    p.add_argument("--outputs", action="append", default=[], help="model outputs to write (default: all)")
    p.add_argument("--format", choices=PREDICTION_FORMATS,
                   help=f"with -o DIR/: each partition's predictions file (default {DEFAULT_FORMAT})")
    p.add_argument("--target", help="a label column, left out of the inputs (as eval takes it)")
    p.add_argument("--keep", action="append", default=[], metavar="COL[,COL]",
                   help="columns copied from the data into the predictions, beside the outputs (repeatable)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_run)

    p = sub.add_parser("eval", help="streaming metrics over batches")
    _common(p)
    p.add_argument("--target", required=True, help="column or array with the true values")
    p.add_argument("--metric", dest="metrics", action="append", required=True,
                   help='a metric spec, e.g. mse or "huber(threshold=2)" (repeatable)')
    p.add_argument("--output", help="which model output is y_pred (when the model has several)")
    p.add_argument("--sample-weight", help="column or array of sample weights")
    p.add_argument("--import", dest="imports", action="append", default=[],
                   help=".model file whose metrics to use (repeatable)")
    p.add_argument("--report", metavar="PAGE.html", help="also write the results as one self-contained web page")
    p.add_argument("--checkpoint", help="save the metric states here every --checkpoint-every batches")
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--plots", metavar="DIR", help="write ROC, PR, confusion-matrix and reliability pictures "
                   "(SVG and PNG) here; needs matplotlib (the plots extra)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_eval)
    add_compare_command(sub)


def add_compare_command(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("compare", help="one model across providers, precisions or compile options")
    p.add_argument("model", help="a .model or .onnx file")
    p.add_argument("--data", required=True, help=".npz, .npy, .csv or .parquet")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    p.add_argument("--providers", help=f"comma-separated: {', '.join(PROVIDERS)} (default cpu,reference; with "
                   "--variants, cpu)")
    p.add_argument("--variants", help="comma-separated: fp32, fp16, bf16, functions, inline, int8, int8-static, "
                   "opsetN (.model only); "
                   "every provider runs every variant, each side labelled provider/variant (cpu/fp16)")
    p.add_argument("--calibration-rows", type=int, default=DEFAULT_CALIBRATION_ROWS, metavar="N",
                   help=f"int8-static: calibrate on the first N rows of --data (default {DEFAULT_CALIBRATION_ROWS})")
    p.add_argument("--rtol", type=float)
    p.add_argument("--atol", type=float)
    p.add_argument("--max-batches", type=int, help="stop after this many batches")
    p.add_argument("--target", help="column or array of true values, for --metric")
    p.add_argument("--metric", dest="metrics", action="append", default=[], help="task metric per side")
    p.add_argument("--output", help="which output the metrics read")
    p.add_argument("--layers", action="store_true", help="compare every layer's output; name the first that diverges")
    p.add_argument("--save-outputs", metavar="DIR", help="write inputs and every side's outputs (npz)")
    p.add_argument("--against", metavar="DIR", help="compare against outputs saved with --save-outputs")
    p.add_argument("--columns", action="append", default=[], metavar="INPUT=C1,C2")
    p.add_argument("--import", dest="imports", action="append", default=[])
    p.add_argument("--report", metavar="PAGE.html", help="also write the comparison as one self-contained web page")
    p.add_argument("--model", dest="model_name")
    add_import_root(p)
    p.add_argument("--weights")
    p.add_argument("--init-missing", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_compare)
