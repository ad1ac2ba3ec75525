"""The language server's latency: diagnostics after a one-line edit in a generated 5,000-line file.

`modelc lsp` runs as its own process and pygls' client talks to it over stdio, as an editor does. Each of 100
edits changes one line (incremental sync) and the time runs from the didChange sent to the publishDiagnostics
of that version received. Three kinds of edits take turns: a number in a layer's body (its model is lowered
again), a typo and its fix (a name error appears, then goes), and a line break inserted in a model (every
definition below moves down a line). The baseline, measured in the same run: the whole file analysed afresh
(what a server without the per-definition cache would do on every edit), in this process.

    .venv/bin/python bench/lsp_bench.py [--lines 5000] [--edits 100]

The file: the four layer shapes of parse_bench.py (custom weights, built-in pipelines, one element-wise
expression, slices), each group of four followed by a model that applies them, until the file holds --lines
lines (a file that `modelc check` passes).
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, fmt_ratio, fmt_s, log, median_seconds, table
from parse_bench import NAMES, TEMPLATES

TARGET_MEDIAN_S = 0.050
TIMEOUT_S = 60.0


def generate(lines: int) -> str:
    """Groups of the four layers and a model applying them, up to `lines` lines."""
    parts, i, count = [], 0, 0
    while count < lines:
        group = "".join(t.format(i=i) for t in TEMPLATES) + "\n"
        stages = " -> ".join(f"{name}_{i}" + ("(32)" if name in ("gated", "stack") else "") for name in NAMES)
        group += f"model m_{i}(x: float32[batch, 32]) {{\n    h = x -> {stages}\n    y = h -> dense(8)\n    return y\n}}\n\n"
        parts.append(group)
        count += group.count("\n")
        i += 1
    return "".join(parts)


def edits(text: str, n: int) -> list[tuple[int, str, str, str]]:
    """(0-based line, old, new, kind) for n one-line edits spread over the file; a typo is fixed by the next."""
    lines = text.split("\n")
    rates = [k for k, line in enumerate(lines) if "dropout(0.1)" in line]
    norms = [k for k, line in enumerate(lines) if "layer_norm" in line]
    models = [k for k, line in enumerate(lines) if line.startswith("    y = h -> dense(8)")]
    out: list[tuple[int, str, str, str]] = []
    step = 0
    while len(out) < n:
        kind = ("number", "typo", "newline")[step % 3]
        pick = (step * 7919) % 97 / 97   # spread over the file, the same every run
        if kind == "number":
            k = rates[int(pick * len(rates))]
            out += [(k, "dropout(0.1)", "dropout(0.2)", kind), (k, "dropout(0.2)", "dropout(0.1)", kind)]
        elif kind == "typo":
            k = norms[int(pick * len(norms))]
            out += [(k, "layer_norm", "layer_nrm", kind), (k, "layer_nrm", "layer_norm", kind)]
        else:
            k = models[int(pick * len(models))]
            out.append((k, "y = h", "y =\n        h", kind))
            out.append((k, "y =\n        h", "y = h", kind))
        step += 1
    return out[:n]


async def drive(path: Path, text: str, plan: list[tuple[int, str, str, str]]) -> tuple[float, list[tuple[str, float]]]:
    """Open the file, then apply each edit and time its diagnostics: (time to the first diagnostics, per edit)."""
    from lsprotocol import types as T
    from pygls.lsp.client import LanguageClient
    from pygls.uris import from_fs_path

    client = LanguageClient("lsp-bench", "1")
    published: asyncio.Queue = asyncio.Queue()
    client.feature(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)(lambda params: published.put_nowait((time.perf_counter(), params)))
    await client.start_io(sys.executable, "-m", "modelc", "lsp", cwd=str(ROOT))
    await asyncio.wait_for(client.initialize_async(T.InitializeParams(capabilities=T.ClientCapabilities())), TIMEOUT_S)
    client.initialized(T.InitializedParams())
    uri = from_fs_path(str(path))

    async def wait(version: int) -> tuple[float, list]:
        while True:
            at, params = await asyncio.wait_for(published.get(), TIMEOUT_S)
            if params.version == version:
                return at, params.diagnostics

    start = time.perf_counter()
    client.text_document_did_open(T.DidOpenTextDocumentParams(T.TextDocumentItem(uri=uri, language_id="modelc", version=1, text=text)))
    at, diagnostics = await wait(1)
    assert not diagnostics, f"the generated file has errors: {diagnostics[:3]}"
    opened, times = at - start, []
    for version, (line, old, new, kind) in enumerate(plan, start=2):
        times.append((kind, await edit(client, T, uri, version, text.split("\n"), line, old, new, wait)))
        text = apply(text, line, old, new)
    await asyncio.wait_for(client.shutdown_async(None), TIMEOUT_S)
    client.exit(None)
    await asyncio.wait_for(client.stop(), TIMEOUT_S)
    return opened, times


async def edit(client, T, uri: str, version: int, lines: list[str], line: int, old: str, new: str, wait) -> float:
    """One incremental change replacing `old` (which may end on the next line) on `line`; seconds to diagnostics."""
    first, *second = old.split("\n")
    col = lines[line].index(first)
    end_line, end_col = (line + 1, lines[line + 1].index(second[0]) + len(second[0])) if second else \
        (line, col + len(old))
    change = T.TextDocumentContentChangePartial(range=T.Range(T.Position(line, col), T.Position(end_line, end_col)),
                                                text=new)
    sent = time.perf_counter()
    client.text_document_did_change(T.DidChangeTextDocumentParams(T.VersionedTextDocumentIdentifier(version=version, uri=uri),
                                                                  [change]))
    at, diagnostics = await wait(version)
    expect_error = "layer_nrm" in new
    assert bool(diagnostics) == expect_error, (new, diagnostics[:2])
    return at - sent


def apply(text: str, line: int, old: str, new: str) -> str:
    lines = text.split("\n")
    head, rest = "\n".join(lines[:line]), "\n".join(lines[line:])
    return head + ("\n" if line else "") + rest.replace(old, new, 1)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


def fresh_analysis(path: Path, text: str, repeats: int = 3) -> float:
    """The baseline: the whole file analysed from scratch (parse, name check, every model lowered)."""
    from modelc.editor.analysis import Document
    return median_seconds(lambda: Document(str(path)).update(text), repeats)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--edits", type=int, default=100)
    args = parser.parse_args()
    text = generate(args.lines)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.model"
        path.write_text(text)
        log(f"{text.count(chr(10))} lines, {len(text.encode()) / 1e3:.0f} kB, {text.count('model m_')} models; "
            f"{args.edits} edits through `modelc lsp` over stdio")
        opened, times = asyncio.run(drive(path, text, edits(text, args.edits)))
        baseline = fresh_analysis(path, text)
    report(opened, times, baseline)
    overall = statistics.median(t for _, t in times)
    return 0 if overall <= TARGET_MEDIAN_S else 1


def report(opened: float, times: list[tuple[str, float]], baseline: float) -> None:
    rows = []
    for kind in ("number", "typo", "newline", "all"):
        values = [t for k, t in times if kind in (k, "all")]
        median = statistics.median(values)
        rows.append([kind, str(len(values)), fmt_s(median), fmt_s(p99(values)), fmt_ratio(baseline / median)])
    print(table(["edit", "n", "median", "p99", "fresh analysis / median"], rows))
    overall = statistics.median(t for _, t in times)
    print(f"\nopen (first diagnostics): {fmt_s(opened)}; the whole file analysed afresh: {fmt_s(baseline)}")
    print(f"median {fmt_s(overall)} against the target of {fmt_s(TARGET_MEDIAN_S)}: "
          f"{'met' if overall <= TARGET_MEDIAN_S else 'MISSED'}")


if __name__ == "__main__":
    sys.exit(main())
