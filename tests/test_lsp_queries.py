"""The language server's answers (editor/queries.py) on a document, without the protocol: hover, definition,
completion by context and the outline. Shapes are checked against `modelc summary`'s (the lowered model's
rows) and signatures against the compiler's tables."""
from __future__ import annotations

from pathlib import Path

from modelc.compiler import driver
from modelc.compiler.initializers import INITIALIZERS
from modelc.compiler.layers import BUILTIN_LAYERS
from modelc.editor import queries as Q
from modelc.editor.analysis import Document
from modelc.editor.vocabulary import ACTIVATIONS, prelude_metrics

ROOT = Path(__file__).resolve().parents[1]
HOUSING = ROOT / "samples" / "housing.model"


def opened(path: Path, text: str | None = None) -> Document:
    doc = Document(str(path))
    assert doc.update(path.read_text() if text is None else text) == []
    return doc


def at(doc: Document, needle: str, offset: int = 0, nth: int = 0) -> tuple[int, int]:
    """1-based (line, col) of the nth line holding `needle`, `offset` characters into it."""
    hits = [(i + 1, line.index(needle) + 1 + offset) for i, line in enumerate(doc.lines) if needle in line]
    return hits[nth]


def labels(doc: Document, line: int, col: int) -> list[str]:
    return [w.label for w in Q.completions(doc, line, col)]


def test_hover_on_values_weights_and_stages_matches_the_summary():
    doc = opened(HOUSING)
    rows = {row.path: str(row.output) for row in driver.lower_program(driver.load_file(HOUSING)).layers}
    assert Q.hover(doc, *at(doc, "h = x -> my_dense")).code == f"h: {rows['residual_2']}"
    assert Q.hover(doc, *at(doc, "y = concat")).code == f"y: {rows['exponential']}"
    # a weight of a user layer, as the one model instantiates it (8 inputs, 30 units)
    assert Q.hover(doc, *at(doc, "x @ kernel", 4)).code == "kernel: float32[8, 30]"
    assert Q.hover(doc, *at(doc, "(units: int)", 1)).code == "units: 30"            # as `repeat 3 residual(30)` binds it
    assert Q.hover(doc, *at(doc, "(x: float32", 1)).code == "x: float32[batch, 8]"  # a model input
    stage = Q.hover(doc, *at(doc, "repeat 3 residual", 10))
    assert stage.code.startswith("layer residual(units: int)(x: [batch, units])") and rows["residual_2"] in stage.code
    assert stage.doc == "A block of layers A, B, C used as one layer D, then D, D, D"   # its comment


def test_hover_on_built_ins_and_keywords_shows_the_tables():
    doc = opened(HOUSING)
    dense = Q.hover(doc, *at(doc, "dense(units, activation=elu)"))
    assert BUILTIN_LAYERS["dense"].doc in dense.doc
    assert all(name in dense.code for name, _, _ in BUILTIN_LAYERS["dense"].hparams)
    keyword = Q.hover(doc, *at(doc, "activation=elu"))
    assert keyword.code == "activation: layer = linear" and "dense" in keyword.doc
    init = Q.hover(doc, *at(doc, "glorot_normal"))
    assert init.code == "glorot_normal" and "initializer" in init.doc
    metric = Q.hover(doc, *at(doc, "metric huber", 8))
    assert "replaces the built-in metric" in metric.doc and prelude_metrics()["huber"][1] in metric.doc


def test_definition_of_locals_layers_keywords_and_imports():
    doc = opened(HOUSING)
    kernel = Q.definition(doc, *at(doc, "x @ kernel", 4))
    assert (kernel.line, kernel.col) == at(doc, "param kernel")
    layer = Q.definition(doc, *at(doc, "-> my_dense", 3))
    assert (layer.line, layer.col) == at(doc, "my_dense(units", 0)
    keyword = Q.definition(doc, *at(doc, "activation=relu"))   # my_dense's hyperparameter
    assert (keyword.line, keyword.col) == at(doc, "activation: layer")
    imports = opened(ROOT / "samples" / "imports.model")
    target = Q.definition(imports, *at(imports, "import", 3))
    assert Path(target.file) == (ROOT / "samples" / "lib" / "blocks.model")
    swiglu = Q.definition(imports, *at(imports, "swiglu(24)"))
    assert Path(swiglu.file).name == "blocks.model" and swiglu.line == 3


def test_completion_follows_the_context(tmp_path):
    path = tmp_path / "m.model"
    text = ("layer block(units: int, act: layer = relu)(x: [batch, n]) {\n    param w: [n, units] = glorot_uniform\n"
            "    return act(x @ w)\n}\n\nmodel m(x: float32[batch, 4]) {\n    y = x -> block(4, act=\n"
            "    z = block(4, \n    return y\n}\nlayer other(x) {\n    param v: [4, 4] = \n}\nmetric \n")
    doc = Document(str(path))
    doc.update(text)   # typing: the model, `other` and the metric do not parse yet; `block` does
    act = labels(doc, 7, len(doc.lines[6]) + 1)                                     # block(4, act=
    assert set(ACTIVATIONS) <= set(act) and "block" in act and "dense" not in act
    hparams = labels(doc, 8, len(doc.lines[7]) + 1)                                 # block(4,
    assert hparams[:3] == ["units", "act", "name"] and "exp" in hparams
    body = labels(doc, 9, 5)                                                        # a statement's start
    assert body[:3] == ["param", "state", "return"] and {"x", "y", "z"} <= set(body)
    assert set(labels(doc, 12, len(doc.lines[11]) + 1)) == set(INITIALIZERS)       # param v: [...] =
    assert set(prelude_metrics()) <= set(labels(doc, 14, len("metric ") + 1))       # metric
    assert labels(doc, 5, 1) == ["layer", "model", "metric", "import"]              # a top-level line


def test_completion_of_types_in_headers(tmp_path):
    doc = Document(str(tmp_path / "h.model"))
    doc.update("layer f(units: \nmodel g(x: \nlayer k(a: int)(x: \n")
    assert "int" in labels(doc, 1, 16) and "float32" in labels(doc, 1, 16)   # not yet known which group
    assert "float32" in labels(doc, 2, 12) and "int" not in labels(doc, 2, 12)
    assert "float32" in labels(doc, 3, 20) and "layer" not in labels(doc, 3, 20)


def test_outline():
    doc = opened(HOUSING)
    outline = Q.symbols(doc)
    assert [(s.name, s.kind) for s in outline] == [("exponential", "layer"), ("my_dense", "layer"),
                                                   ("residual", "layer"), ("housing", "model"),
                                                   ("huber", "metric"), ("precision", "metric")]
    my_dense = outline[1]
    assert [(c.name, c.kind) for c in my_dense.children] == [("units", "hyperparameter"), ("activation", "hyperparameter"),
                                                              ("x", "input"), ("kernel", "weight"), ("bias", "weight")]
