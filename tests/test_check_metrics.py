"""Every loaded file goes through check.py, metric bodies included; the compiler's tables are the one home
of their vocabularies (compiler/types.py, functions.py, operators.py, states.py, initializers.py); the prelude ships
checked (runtime/prelude.json) so that evaluating with built-in metrics never loads the parser."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import modelc
from helpers import ROOT, run_cli
from modelc import ModelcError
from modelc.compiler import driver
from modelc.runtime.metrics import Metric, MetricSet, metric_definitions, parse_spec


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def rendered(text: str) -> str:
    return "\n".join(d.render() for d in modelc.check_source(text, file="m.model"))


# --- (a) the final part of a metric may only do what numpy runs on the merged states -------------------
SOFTPLUS_IN_RETURN = """\
metric smooth(y_true, y_pred) {
    state total = sum(y_pred)
    return softplus(total)
}
"""


def test_return_calling_a_function_without_numpy_is_a_check_error():
    assert rendered(SOFTPLUS_IN_RETURN) == (
        "m.model:3:12: error: softplus() cannot run on the merged states; after the states a metric may call "
        "abs, argmax, average_classes, average_outputs, binned_auc, by_threshold, cast, clip, concat, cumsum, exp, "
        "log, max, mean, min, reshape, sigmoid, sqrt, sum, tanh, transpose, trapz, where\n"
        "    return softplus(total)\n"
        "           ^^^^^^^^^^^^^^^")


def test_cli_check_reports_softplus_in_a_return(tmp_path):
    write(tmp_path / "m.model", SOFTPLUS_IN_RETURN)
    result = run_cli("check", "m.model", cwd=tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("m.model:3:12: error: softplus() cannot run on the merged states")
    assert result.stderr.endswith("    return softplus(total)\n           ^^^^^^^^^^^^^^^\n1 error\n")


@pytest.mark.parametrize("body, expected", [
    ("    state s = sum(cumsum(y_pred))\n    return s",
     "m.model:2:19: error: cumsum() runs only on the merged states: use it after a metric's states, in its return "
     "or a statement that reads a state\n    state s = sum(cumsum(y_pred))\n                  ^^^^^^"),
    ("    state s = mean(y_pred)\n    return s",
     "m.model:2:15: error: a state is one of sum(...), count(...), min(...), max(...), bincount(...); compute the "
     "value in a statement before it\n    state s = mean(y_pred)\n              ^^^^^^^^^^^^"),
    ("    e = y_true - y_pred\n    state s = sum(e)\n    return s / e",
     "m.model:4:16: error: 'e' is not known after the states; a return reads states and hyperparameters\n"
     "    return s / e\n               ^"),
    ("    state s = sum(y_pred)\n    return s -> relu",
     "m.model:3:12: error: this expression cannot be evaluated on merged states\n    return s -> relu\n"
     "           ^^^^^^^^^"),
    ("    n = count(y_pred)\n    state s = sum(y_pred)\n    return s",
     "m.model:2:9: error: count() declares a state: write `state NAME = count(...)` in a metric\n"
     "    n = count(y_pred)\n        ^^^^^"),
    ("    state s = bincount(cast(y_pred, int64), 3, weight=y_true)\n    return s",
     "m.model:2:48: error: bincount has no parameter 'weight'; did you mean 'weights'?\n"
     "    state s = bincount(cast(y_pred, int64), 3, weight=y_true)\n                                               "
     "^^^^^^^^^^^^^"),
])
def test_metric_body_errors(body, expected):
    assert rendered(f"metric m(y_true, y_pred) {{\n{body}\n}}\n") == expected


def test_final_part_may_read_a_state_declared_after_it():
    ok = "metric m(y_true, y_pred) {\n    state a = sum(y_pred)\n    r = a / b\n    state b = count(y_pred)\n" \
         "    return r\n}\n"
    assert rendered(ok) == ""


# --- (b) an --import'ed metric file is checked when it loads, before any ONNX -------------------------
BAD_LIB = """\
metric max_error(y_true, y_pred) {
    state worst = max(abs(y_true - y_pedr))
    return worst
}
"""
BAD_LIB_DIAGNOSTIC = ("{lib}:2:36: error: undefined name 'y_pedr'; did you mean 'y_pred'?\n"
                      "    state worst = max(abs(y_true - y_pedr))\n"
                      "                                   ^^^^^^")


def test_metric_file_with_an_error_fails_to_load(tmp_path, monkeypatch):
    lib = write(tmp_path / "lib.model", BAD_LIB)
    from modelc.compiler import emit
    monkeypatch.setattr(emit, "emit_model", lambda *a, **k: pytest.fail("ONNX was built"))
    with pytest.raises(ModelcError) as caught:
        metric_definitions(driver.load_file(lib))
    assert str(caught.value) == BAD_LIB_DIAGNOSTIC.format(lib=lib)


def test_cli_check_points_into_the_imported_metric_file(tmp_path):
    write(tmp_path / "lib.model", BAD_LIB)
    write(tmp_path / "main.model", 'import "lib.model"\nmodel m(x: float32[batch, 1]) {\n    return x\n}\n')
    result = run_cli("check", "main.model", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == BAD_LIB_DIAGNOSTIC.format(lib="lib.model") + "\n1 error\n"


def test_cli_eval_import_points_into_the_imported_metric_file(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["batch"])
    y = helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["batch"])
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, tmp_path / "id.onnx")
    np.savez(tmp_path / "data.npz", x=np.arange(4.0), label=np.arange(4.0))
    write(tmp_path / "lib.model", BAD_LIB)
    result = run_cli("eval", "id.onnx", "--data", "data.npz", "--target", "label", "--import", "lib.model",
                     "--metric", "max_error", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert BAD_LIB_DIAGNOSTIC.format(lib="lib.model") in result.stderr


@pytest.mark.parametrize("lib, metric", [(BAD_LIB, "max_error"), (SOFTPLUS_IN_RETURN, "smooth")])
def test_cli_eval_reports_a_bad_import_before_reading_any_data(tmp_path, lib, metric):
    """The import is checked when it loads: the data file (absent here) is never opened, no batch runs."""
    write(tmp_path / "lib.model", lib)
    write(tmp_path / "m.model", "model m(x: float32[batch, 1]) {\n    return x\n}\n")
    result = run_cli("eval", "m.model", "--data", "absent.npz", "--target", "y", "--import", "lib.model",
                     "--metric", metric, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr and "absent.npz" not in result.stderr
    assert result.stderr.startswith("lib.model:") and "^" in result.stderr


def test_a_metric_may_call_a_layer_of_its_file(tmp_path):
    lib = write(tmp_path / "lib.model", "layer sq(x) = x * x\n\nmetric msq(y_true, y_pred) {\n"
                "    e = sq(y_true - y_pred)\n    state total = sum(e)\n    state n = count(e)\n"
                "    return total / n\n}\n")
    definitions = metric_definitions(driver.load_file(lib))
    m = Metric("msq", definitions)
    m.update(np.array([1.0, 2.0, 4.0]), np.array([1.0, 0.0, 1.0]))
    assert m.result() == pytest.approx((0 + 4 + 9) / 3)
    with pytest.raises(ModelcError, match="unknown metric 'sq'"):  # a layer is no metric
        Metric("sq", definitions)


# --- metric specs: parsed by the grammar's second start rule -------------------------------------------
def test_metric_specs():
    assert parse_spec("mse") == ("mse", [], {})
    assert parse_spec(" huber(threshold=2) ") == ("huber", [], {"threshold": 2})
    assert parse_spec('auc(bins=-3, spacing="logit")') == ("auc", [], {"bins": -3, "spacing": "logit"})
    assert parse_spec("m(1.5, [1, 2], true)") == ("m", [1.5, [1, 2], True], {})


def test_single_quotes_in_a_spec_get_a_hint():
    with pytest.raises(ModelcError) as caught:
        MetricSet(["auc(spacing='logit')"])
    assert caught.value.diagnostics[0].message.endswith(
        "strings take double quotes, as in the language: auc(spacing=\"logit\") (in a shell: "
        "--metric 'auc(spacing=\"logit\")')")


@pytest.mark.parametrize("spec, message", [
    ("huber(threshold=", "cannot read metric 'huber(threshold=' (unexpected end of file; expected an expression)"),
    ("huber(threshold=x+1)", "cannot read metric 'huber(threshold=x+1)' (an argument is a number, a string"),
    ("huber(threshold=1, threshold=2)", "cannot read metric 'huber(threshold=1, threshold=2)' (huber got "
                                        "'threshold' twice)"),
    ("huber(thresh=2)", "metric 'huber(thresh=2)': huber has no parameter 'thresh'; did you mean 'threshold'?"),
    ("msee", "unknown metric 'msee'; did you mean 'mse'?"),
])
def test_bad_metric_specs_are_diagnostics(spec, message):
    with pytest.raises(ModelcError) as caught:
        MetricSet([spec])
    (d,) = caught.value.diagnostics
    assert d.span is None and d.message.startswith(message)


# --- the prelude ships checked, and loads without the parser ------------------------------------------
def test_prelude_json_is_the_checked_prelude():
    from modelc.runtime.prelude import PRELUDE_JSON, REGENERATE, fresh_prelude_json
    assert PRELUDE_JSON.read_text(encoding="utf-8") == fresh_prelude_json(), \
        f"runtime/prelude.json is stale: regenerate it with `{REGENERATE}`"


def test_prelude_spans_point_into_prelude_model():
    from modelc.runtime.prelude import PRELUDE, prelude_definitions
    mse = next(d for d in prelude_definitions() if d.name == "mse")
    assert mse.loc.file == str(PRELUDE)
    assert PRELUDE.read_text().split("\n")[mse.loc.line - 1].startswith("metric mse(")


def test_builtin_metrics_load_no_parser():
    code = ("import sys\n"
            "from modelc.compiler.types import TensorType\n"
            "from modelc.runtime.metrics import MetricSet\n"
            "MetricSet(['mse']).state_graph(TensorType('float32', ('batch',)), TensorType('float32', ('batch',)), "
            "False)\n"
            "print(sorted(m for m in sys.modules if m == 'lark' or m.startswith(('lark.', 'modelc.compiler.parse', "
            "'modelc.compiler.check', 'modelc.compiler.driver'))))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout == "[]\n"


def test_cli_eval_of_an_onnx_file_loads_no_parser(tmp_path):
    """`modelc eval model.onnx` with built-in metrics, as a user runs it: no lark, no parse/check/driver."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch"])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "d.npz", x=np.linspace(-1, 1, 50, dtype=np.float32), t=np.zeros(50, np.float32))
    code = ("import sys\nfrom modelc.cli import main\n"
            "rc = main(['eval', 'm.onnx', '--data', 'd.npz', '--target', 't', '--metric', 'mse', '--metric', "
            "'auc', '--json'])\n"
            "print(sorted(m for m in sys.modules if m == 'lark' or m.startswith(('lark.', 'modelc.compiler.parse', "
            "'modelc.compiler.check', 'modelc.compiler.driver'))), rc, file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.stderr.strip().endswith("[] 0"), result.stderr
    assert json.loads(result.stdout)["metrics"]["mse"] == pytest.approx(np.mean(np.maximum(
        np.linspace(-1, 1, 50, dtype=np.float32), 0) ** 2), rel=1e-6)


def test_metric_works_with_the_shipped_prelude():
    m = Metric("mse")
    m.update(np.array([1.0, 2.0]), np.array([1.5, 2.5]))
    assert m.result() == 0.25


# --- one home per vocabulary --------------------------------------------------------------------------
def test_dtype_table_matches_onnx_and_numpy():
    from modelc.compiler.types import DTYPES, dtype_name, numpy_dtype
    for name, d in DTYPES.items():
        assert helper.tensor_dtype_to_np_dtype(d.onnx) == numpy_dtype(name), name
        assert numpy_dtype(name).itemsize == d.itemsize and dtype_name(numpy_dtype(name)) == name
    assert dtype_name(np.uint8) is None


def test_activation_layers_come_from_the_function_table():
    from modelc.compiler.layers import BUILTIN_LAYERS
    from modelc.compiler.functions import FUNCTIONS
    for name in ("relu", "sigmoid", "tanh", "softplus", "softmax"):
        assert BUILTIN_LAYERS[name].doc == FUNCTIONS[name].doc
    assert BUILTIN_LAYERS["softmax"].hparams == [("axis", "int", -1)]


def test_merge_state_follows_each_rule():
    from modelc.compiler.states import merge_state
    a, b = np.array([1.0, 5.0]), np.array([3.0, 2.0])
    assert merge_state("sum", a, b).tolist() == [4.0, 7.0]
    assert merge_state("min", a, b).tolist() == [1.0, 2.0]
    assert merge_state("max", a, b).tolist() == [3.0, 5.0]


def test_prelude_json_is_package_data():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"modelc.runtime" = ["*.model", "*.json",' in text
    assert json.loads((ROOT / "runtime" / "prelude.json").read_text())["definitions"]


# --- an error inside a built-in metric is the spec's: never a line of the installed prelude.model ----------
@pytest.mark.parametrize("spec, message", [
    ("mse", "error: metric 'mse' on y_true [batch], y_pred [batch, 3]: cannot broadcast [batch] and [batch, 3]\n"),
    ("binary_crossentropy", "error: metric 'binary_crossentropy' on y_true [batch], y_pred [batch, 3]: cannot "
                            "broadcast [batch] and [batch, 3]\n"),
    ("huber(treshold=2)", "error: metric 'huber(treshold=2)': huber has no parameter 'treshold'; did you mean "
                          "'threshold'?\n"),
])
def test_cli_eval_reports_a_prelude_error_at_the_spec(tmp_path, spec, message):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, tmp_path / "id.onnx")
    np.savez(tmp_path / "data.npz", x=np.ones((4, 3), np.float32), label=np.arange(4) % 3)
    result = run_cli("eval", "id.onnx", "--data", "data.npz", "--target", "label", "--metric", spec, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == message


def test_metric_api_reports_a_prelude_error_at_the_spec():
    with pytest.raises(ModelcError) as caught:
        Metric("mae").update(np.array([0, 1]), np.array([[0.1, 0.9], [0.3, 0.7]]))
    (d,) = caught.value.diagnostics
    assert d.span is None and d.source_line is None
    assert d.message == "metric 'mae' on y_true [batch], y_pred [batch, 2]: cannot broadcast [batch] and [batch, 2]"
