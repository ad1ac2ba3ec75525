"""`--report report.html` on `compare` and `eval`: one self-contained page (styles inline, no script, nothing
fetched) from the same dict that `--json` prints, so the page and the JSON cannot disagree.

A reader decides from it whether a model may move to a platform: the verdict first, then the outputs side by
side, each side's error histogram, the task metrics and their differences, the per-layer divergence, latency.
"""
from __future__ import annotations

import html
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..compiler.files import atomic_write
from ..version import __version__

STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2933; margin: 0;
       background: #f5f7fa; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 32px 0 8px; }
.meta { color: #52606d; font-size: 13px; }
.verdict { display: inline-block; padding: 6px 14px; border-radius: 6px; font-weight: 600; margin: 16px 0 0; }
.agree { background: #e3f9e5; color: #05400a; } .disagree { background: #ffe3e3; color: #610404; }
table { border-collapse: collapse; background: white; box-shadow: 0 1px 2px rgba(0,0,0,.08); margin: 4px 0 8px; }
th, td { padding: 6px 12px; border-bottom: 1px solid #e4e7eb; text-align: right; white-space: nowrap; }
th { background: #f0f4f8; font-weight: 600; } td.name, th.name { text-align: left; }
tr.bad td { background: #fff5f5; } .num { font-variant-numeric: tabular-nums; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
figure { background: white; margin: 0; padding: 12px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
figcaption { font-size: 13px; color: #52606d; margin-bottom: 4px; }
.note { color: #52606d; font-size: 13px; max-width: 800px; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _number(value: Any) -> str:
    """Numbers as the --json output holds them, to 7 significant digits; lists (per class) joined."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_number(v) for v in value) + "]"
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.7g}"
    return _e(value) if value is not None else "–"


def _table(headers: list[str], rows: list[tuple[list[str], bool]], table_id: str, names: int = 1) -> str:
    """rows: (cells already escaped, whether the row is a failure); the first `names` columns are names."""
    head = "".join(f'<th class="{"name" if i < names else ""}">{_e(h)}</th>' for i, h in enumerate(headers))
    body = "".join(f'<tr class="{"bad" if bad else ""}">'
                   + "".join(f'<td class="{"name" if i < names else "num"}">{c}</td>' for i, c in enumerate(cells))
                   + "</tr>" for cells, bad in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _histogram(histogram: dict[str, Any], caption: str) -> str:
    """The share of elements per decade of absolute error, as an inline SVG bar chart."""
    counts, edges = histogram["counts"], histogram["upper_edges"]
    labels = ["0"] + [f"≤1e{round(math.log10(e))}" for e in edges[1:-1]] + [">1e2"]
    total = max(sum(counts), 1)
    step, bar = 28, 24
    width, height = step * len(counts), 150
    bars = []
    for i, (count, label) in enumerate(zip(counts, labels)):
        h = round(110 * count / total)
        x = i * step + 2
        bars.append(f'<rect x="{x}" y="{120 - h}" width="{bar}" height="{h}" fill="#3e7cb1">'
                    f'<title>{_e(label)}: {count:,}</title></rect>'
                    f'<text x="{x + bar / 2}" y="{134}" font-size="7" text-anchor="middle">{_e(label)}</text>')
        if count:
            share = 100 * count / total
            bars.append(f'<text x="{x + bar / 2}" y="{116 - h}" font-size="8" text-anchor="middle">'
                        f'{"<1" if share < 1 else f"{share:.0f}"}%</text>')
    return (f'<figure><figcaption>{_e(caption)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" '
            f'width="{width}" height="{height}" role="img">{"".join(bars)}'
            f'<text x="0" y="148" font-size="9" fill="#52606d">absolute error</text></svg></figure>')


def _error_rows(per_output: dict[str, dict[str, Any]]) -> list[tuple[list[str], bool]]:
    rows = []
    for name, sides in per_output.items():
        for side, s in sides.items():
            rows.append(([_e(name), _e(side), _number(s["max_abs"]), _number(s["max_rel"]), _number(s["mean_abs"]),
                          f'{s["out_of_tolerance"]:,}', f'{s["share_out_of_tolerance"]:.3%}', str(s["nan"]),
                          str(s["inf"])], s["out_of_tolerance"] > 0))
    return rows


def _metric_rows(metrics: dict[str, dict[str, Any]], differences: dict[str, dict[str, Any]],
                 sides: list[str]) -> list[tuple[list[str], bool]]:
    names = list(next(iter(metrics.values())))
    return [([_e(name)] + [_number(metrics[s][name]) for s in sides]
             + [_number(differences.get(s, {}).get(name)) for s in sides[1:]], False) for name in names]


def _page(title: str, subtitle: str, sections: list[str]) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>'
            f'<body><main><h1>{_e(title)}</h1><div class="meta">{subtitle} · modelc {_e(__version__)} · {stamp}'
            f'</div>{"".join(sections)}</main></body></html>')


def compare_page(report: dict[str, Any], model: str, data: str) -> str:
    sides, reference = report["sides"], report["reference"]
    verdict = ("agree", "every side agrees with " + reference) if report["agree"] else \
        ("disagree", "some sides disagree with " + reference)
    sections = [f'<div class="verdict {verdict[0]}" id="verdict">{_e(verdict[1])} (rtol {report["rtol"]:g}, '
                f'atol {report["atol"]:g})</div>']
    headers = ["output", "side", "max abs", "max rel", "mean abs", "out of tol", "share", "NaN", "Inf"]
    sections.append(f"<h2>Outputs against {_e(reference)}</h2>"
                    + _table(headers, _error_rows(report["outputs"]), "outputs", names=2))
    charts = [_histogram(s["error_histogram"], f"{name} · {side}") for name, per in report["outputs"].items()
              for side, s in per.items() if "error_histogram" in s]
    if charts:
        sections.append('<h2>Error histograms</h2><p class="note">The share of output elements per decade of '
                        f'absolute error against {_e(reference)}.</p><div class="charts">{"".join(charts)}</div>')
    if report.get("metrics"):
        metric_sides = list(report["metrics"])
        headers = ["metric", *metric_sides, *(f"{s} − {metric_sides[0]}" for s in metric_sides[1:])]
        sections.append("<h2>Task metrics</h2>" + _table(
            headers, _metric_rows(report["metrics"], report["metric_differences"], metric_sides), "metrics"))
    sections.append(_layers_section(report))
    headers = ["side", "p50 ms", "p90 ms", "p99 ms", "rows/s"]
    rows = [([_e(s), *(f'{report["latency"][s][k]:.3f}' for k in ("p50_ms", "p90_ms", "p99_ms")),
              f'{report["latency"][s]["rows_per_second"]:,.0f}'], False) for s in sides]
    sections.append("<h2>Latency per batch</h2>" + _table(headers, rows, "latency"))
    subtitle = (f"{_e(model)} on {_e(data)} · {report['samples']:,} samples in {report['batches']} batches · "
                f"sides: {_e(', '.join(sides))}")
    return _page("modelc compare", subtitle, sections)


def _layers_section(report: dict[str, Any]) -> str:
    if not report.get("layers"):
        return ""
    first = report.get("first_diverging_layer")
    headers = ["layer", "side", "max abs", "max rel", "mean abs", "out of tol", "share", "NaN", "Inf"]
    note = (f"The first layer whose output leaves the tolerance: <b>{_e(first)}</b>." if first
            else "No layer's output leaves the tolerance.")
    return (f'<h2>Layers</h2><p class="note" id="first-diverging">{note}</p>'
            + _table(headers, _error_rows(report["layers"]), "layers", names=2))


def eval_page(result: dict[str, Any], model: str, data: list[str] | str) -> str:
    rows = [([_e(name), _number(value)], False) for name, value in result["metrics"].items()]
    facts = [("provider", result["provider"]), ("samples", f'{result["samples"]:,}'), ("batches", result["batches"]),
             ("rows/s", f'{result.get("rows_per_second") or 0:,.0f}'), ("NaN predictions", result["nan_predictions"]),
             ("rows with NaN inputs", result["nan_input_rows"])]
    sections = ["<h2>Metrics</h2>" + _table(["metric", "value"], rows, "metrics"),
                "<h2>Run</h2>" + _table(["", ""], [([_e(k), _e(v)], False) for k, v in facts], "run")]
    data_text = ", ".join(data) if isinstance(data, list) else data
    return _page("modelc eval", f"{_e(model)} on {_e(data_text)}", sections)


def write_page(path: str | Path, page: str) -> None:
    with atomic_write(Path(path)) as (tmp,):
        tmp.write_text(page, encoding="utf-8")
