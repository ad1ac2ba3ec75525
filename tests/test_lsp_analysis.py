"""The language server's incremental analysis (editor/analysis.py) against the compiler run afresh: after any
sequence of edits, the diagnostics a document kept up to date reports equal those of the same text analysed
from scratch, and hold what `modelc check` reports (none when it reports none); and a one-line edit parses
and lowers only what it touched."""
from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelc.compiler import driver
from modelc.compiler.parse import parse_text
from modelc.compiler.source import ModelcError
from modelc.editor import analysis
from modelc.editor.analysis import Document, split_chunks

ROOT = Path(__file__).resolve().parents[1]

PROGRAM = """\
# blocks
layer scaled(alpha: float = 0.5)(x) = alpha * x

layer residual(units: int)(x: [batch, units]) {
    h = x -> dense(units, activation=elu) -> scaled(alpha=0.5)
    return x + h
}

model small(x: float32[batch, 8]) {
    h = x -> dense(16, activation=relu) -> repeat 2 residual(16)
    return h -> dense(1)
}

model other(x: float32[batch, 4]) {
    y = x -> residual(4) -> scaled
    return y
}

metric mae2(y_true, y_pred) {
    state total = sum(abs(y_true - y_pred))
    state n = count(y_pred)
    return total / n
}
"""

# Edits a user makes: each (old, new) replaces the first `old` (when present).
EDITS = [("residual(16)", "residual(17)"), ("residual(17)", "residual(16)"), ("dense(1)", "dense(1) -> residual(3)"),
         ("scaled(alpha=0.5)", "scaled(alpa=0.5)"), ("scaled(alpa=0.5)", "scaled(alpha=0.5)"),
         ("layer scaled", "layer scaler"), ("layer scaler", "layer scaled"), ("units: int", "units: int, k: int = 2"),
         ("\nmodel other", "\n\n\nmodel other"), ("# blocks\n", ""), ("", "# a comment\n"),
         ("return x + h", "return x + hh"), ("return x + hh", "return x + h"), ("h = x -> dense(16", "h = x -> de"),
         ("h = x -> de,", "h = x -> dense(16,"), ("    return y\n}", "    return y\n"), ("    return y\n\n", "    return y\n}\n"),
         ("model small", "model other"), ("state n", "state total"), ("{\n    y =", "{\n    y = y\n    y =")]


def oracle(text: str, path: str) -> list[tuple] | None:
    """`modelc check`: the driver's diagnostics, as (line, col, end_line, end_col, message); None for a syntax
    error (the driver parses the whole file and stops at the first, the server parses each definition)."""
    try:
        parse_text(text, path)
    except ModelcError:
        return None
    try:
        diagnostics = driver.check_shapes(driver.load_source(text, path))
    except ModelcError as e:
        diagnostics = e.diagnostics
    return sorted(key(d) for d in diagnostics)


def key(d) -> tuple:
    return (d.span.line, d.span.col, d.span.end_line, d.span.end_col, d.message)


def test_every_sample_analyses_clean_as_modelc_check_does():
    for path in [*sorted((ROOT / "samples").rglob("*.model")), ROOT / "runtime" / "prelude.model"]:
        text = path.read_text()
        assert oracle(text, str(path)) == []
        assert Document(str(path)).update(text) == [], path
        assert "".join(split_chunks(text)) == text


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(EDITS), min_size=1, max_size=6))
def test_edits_analysed_incrementally_equal_a_fresh_analysis_and_modelc_check(tmp_path, edits):
    path = str(tmp_path / "program.model")
    doc, text = Document(path), PROGRAM
    doc.update(text)
    for old, new in edits:
        text = text.replace(old, new, 1) if old else new + text
        kept = sorted(key(d) for d in doc.update(text))
        assert kept == sorted(key(d) for d in Document(path).update(text)), (old, new)
        expected = oracle(text, path)
        assert set(expected or []) <= set(kept), (old, new)
        assert (kept == []) == (expected == []), (old, new)


def test_a_one_line_edit_parses_one_chunk_and_lowers_only_the_models_it_touches(tmp_path, monkeypatch):
    doc = Document(str(tmp_path / "program.model"))
    doc.update(PROGRAM)
    parsed, lowered = [], []
    real_parse, real_lower = analysis.parse_chunk, Document.lower
    monkeypatch.setattr(analysis, "parse_chunk", lambda text, *a: parsed.append(text) or real_parse(text, *a))
    monkeypatch.setattr(Document, "lower", lambda self, model, *a: lowered.append(model.name) or
                        real_lower(self, model, *a))
    text = PROGRAM.replace("h -> dense(1)", "h -> dense(2)")
    doc.update(text)
    assert len(parsed) == 1 and parsed[0].startswith("model small") and lowered == ["small"]
    parsed.clear(), lowered.clear()
    text = "\n\n" + text.replace("residual(4)", "residual(5)")   # lines below the top move: kept, not parsed
    doc.update(text)
    assert [p.split("\n")[2] for p in parsed[:1]] == ["# blocks"] and parsed[1].startswith("model other")
    assert len(parsed) == 2 and lowered == ["other"]
    parsed.clear(), lowered.clear()
    doc.update(text.replace("activation=elu", "activation=tanh"))   # a layer both models use
    assert len(parsed) == 1 and parsed[0].startswith("layer residual") and lowered == ["small", "other"]
