"""Keras' words understood (compiler/keras_names.py): did-you-mean suggests modelc's name for a Keras layer,
metric or keyword, weight files named as Keras names them get modelc's names, and docs/language.md lists the
same table."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import ROOT, run_cli
from modelc.compiler.keras_names import (KERAS_DEFAULT_NAMES, KERAS_KEYWORDS, KERAS_LAYERS, KERAS_METRICS,
                                         modelc_weight_name, snake_case)
from modelc.compiler.layers import BUILTIN_LAYERS
from modelc.runtime.prelude import prelude_definitions


def grouped(table: dict[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for keras, ours in table.items():
        out.setdefault(ours, []).append(keras)
    return out


def markdown_table() -> str:
    """The table of docs/language.md §11.5, as the module holds it."""
    rows = ["| modelc | Keras |", "|--------|-------|"]
    for kind, table in (("layer", KERAS_LAYERS), ("metric", KERAS_METRICS)):
        rows += [f"| {kind} `{ours}` | " + ", ".join(f"`{k}`" for k in keras) + " |"
                 for ours, keras in grouped(table).items()]
    rows += [f"| keyword `{ours}=` of " + ", ".join(f"`{c}`" for c in callees) + f" | `{keras}=` |"
             for keras, (ours, callees) in KERAS_KEYWORDS.items()]
    return "\n".join(rows) + "\n"


def test_the_docs_list_the_table():
    assert markdown_table() in (ROOT / "docs" / "language.md").read_text()


def test_every_modelc_name_exists():
    metrics = {d.name: d for d in prelude_definitions() if d.kind == "metric"}
    assert set(KERAS_LAYERS.values()) <= set(BUILTIN_LAYERS)
    assert set(KERAS_METRICS.values()) <= set(metrics)
    for keras, (ours, callees) in KERAS_KEYWORDS.items():
        for callee in callees:
            params = [name for name, _, _ in BUILTIN_LAYERS[callee].hparams] if callee in BUILTIN_LAYERS \
                else [p.name for p in metrics[callee].hparams]
            assert ours in params and keras not in params, (keras, callee)


def test_keras_default_names_as_keras_makes_them():
    keras = pytest.importorskip("keras_oracle").keras  # the jax backend, as the other Keras tests
    from keras.src.utils.naming import to_snake_case
    assert keras is not None
    for name in KERAS_LAYERS:
        assert snake_case(name) == to_snake_case(name), name
    assert KERAS_DEFAULT_NAMES["batch_normalization"] == "batch_norm"


def test_keras_weight_names_translate():
    assert modelc_weight_name("batch_normalization_1/gamma") == "batch_norm_1.gamma"
    assert modelc_weight_name("lstm/lstm_cell/kernel") == "lstm.lstm_cell.kernel"
    assert modelc_weight_name("dense.kernel") == "dense.kernel"


MODEL = """\
model m(x: float32[N, 4]) {
    return x -> BatchNormalization() -> Dense(2)
}
"""


def test_cli_keras_layer_names(tmp_path):
    path = tmp_path / "m.model"
    path.write_text(MODEL)
    result = run_cli("check", str(path))
    assert result.returncode == 1
    assert result.stderr == (
        f"{path}:2:17: error: undefined name 'BatchNormalization'; did you mean 'batch_norm' "
        "(Keras' BatchNormalization)?\n"
        "    return x -> BatchNormalization() -> Dense(2)\n"
        "                ^^^^^^^^^^^^^^^^^^\n"
        f"{path}:2:41: error: undefined name 'Dense'; did you mean 'dense' (Keras' Dense)?\n"
        "    return x -> BatchNormalization() -> Dense(2)\n"
        "                                        ^^^^^\n"
        "2 errors\n")


@pytest.mark.parametrize("spec,message", [
    ("mean_squared_eror", "unknown metric 'mean_squared_eror'; did you mean 'mean_squared_error'?"),
    ("R2Scor", "unknown metric 'R2Scor'; did you mean 'R2Score'?"),
    ("huber(delta=2, threshold=1)", "metric 'huber(delta=2, threshold=1)': huber has no parameter 'delta'; did "
                                    "you mean 'threshold' (Keras' delta)?\n"),
    ("mse(delta=2)", "metric 'mse(delta=2)': mse has no parameter 'delta'; it takes no arguments\n"),
    ("huber(delt=2)", "metric 'huber(delt=2)': huber has no parameter 'delt'; did you mean 'delta'?\n"),
    ("AUC(num_tresholds=201)", "metric 'AUC(num_tresholds=201)': auc has no parameter 'num_tresholds'; did you "
                               "mean 'num_thresholds'?\n"),
])
def test_cli_keras_metric_names(tmp_path, spec, message):
    """Keras' names are aliases (tests/test_metrics_regression.py checks their values); a misspelt one, or a
    Keras keyword where the metric has no such parameter, gets a suggestion."""
    model, data = tmp_path / "m.model", tmp_path / "d.npz"
    model.write_text("model m(x: float32[N, 4]) {\n    return x -> dense(1)\n}\n")
    onnx_file = tmp_path / "m.onnx"
    assert run_cli("compile", str(model), "-o", str(onnx_file)).returncode == 0
    np.savez(data, x=np.ones((3, 4), np.float32), y=np.ones(3, np.float32))
    result = run_cli("eval", str(onnx_file), "--data", str(data), "--target", "y", "--metric", spec)
    assert result.returncode == 1
    assert result.stderr.startswith("error: " + message)


def test_cli_keras_weight_names(tmp_path):
    model, weights = tmp_path / "m.model", tmp_path / "w.npz"
    model.write_text("model m(x: float32[N, 4]) {\n    return x -> batch_norm -> dense(2)\n}\n")
    np.savez(weights, **{"batch_normalization/gamma": np.ones(4, np.float32),
                         "dense/kernel": np.ones((4, 2), np.float32)})
    result = run_cli("compile", str(model), "--weights", str(weights), "--init-missing", "-o",
                     str(tmp_path / "m.onnx"))
    assert result.returncode == 1
    assert result.stderr == (
        f"error: weight 'batch_normalization/gamma' in {weights} is not a parameter of the model; did you mean "
        "'batch_norm.gamma'?\n"
        f"error: weight 'dense/kernel' in {weights} is not a parameter of the model; did you mean 'dense.kernel'?\n"
        f"error: {weights} names weights as Keras does ('batch_normalization/gamma'): modelc joins a weight's path "
        "with '.' and names a built-in layer's instances after the layer, so 'batch_normalization/gamma' is "
        "'batch_norm.gamma' in modelc (`modelc params MODEL` lists the names it expects)\n")
