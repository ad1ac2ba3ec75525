"""The command line: each command, exit codes, start-up cost (what `check` imports)."""
from __future__ import annotations

import json
import subprocess
import sys

import onnx
import pytest

from helpers import run_cli


def test_check_ok(tmp_path):
    result = run_cli("check", "samples/housing.model")
    assert result.returncode == 0 and "ok" in result.stdout and result.stderr == ""


def test_compile_writes_a_checked_model(tmp_path):
    out = tmp_path / "h.onnx"
    result = run_cli("compile", "samples/housing.model", "-o", out)
    assert result.returncode == 0, result.stderr
    onnx.checker.check_model(onnx.load(out), full_check=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_failed_compile_keeps_the_previous_output(tmp_path):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous")
    bad = tmp_path / "bad.model"
    bad.write_text("model m(x: float32[2]) { return y }")
    assert run_cli("compile", bad, "-o", out).returncode == 1
    assert out.read_bytes() == b"previous"


def test_summary_table():
    result = run_cli("summary", "samples/housing.model")
    assert result.returncode == 0, result.stderr
    for text in ("residual_2 (residual)", "[batch, 30]", "1,860", "Total params: 5,889"):
        assert text in result.stdout


def test_params_json_and_text():
    rows = json.loads(run_cli("params", "samples/housing.model", "--json").stdout)
    assert rows[0] == {"name": "my_dense.kernel", "shape": [8, 30], "dtype": "float32"}
    assert [r["name"] for r in rows][-2:] == ["dense.kernel", "dense.bias"]
    text = run_cli("params", "samples/housing.model").stdout.splitlines()
    assert len(text) == len(rows) and text[2].split()[0] == "residual.dense.kernel"


def test_model_selection(tmp_path):
    path = tmp_path / "two.model"
    path.write_text("model a(x: float32[2]) { return x * 2 }\nmodel b(x: float32[3]) { return x + 1 }")
    result = run_cli("compile", path, "-o", tmp_path / "o.onnx")
    assert result.returncode == 1 and "holds 2 models (a, b); pick one with --model NAME" in result.stderr
    assert run_cli("compile", path, "-o", tmp_path / "o.onnx", "--model", "b").returncode == 0
    assert onnx.load(tmp_path / "o.onnx").graph.name == "b"
    wrong = run_cli("compile", path, "--model", "c")
    assert wrong.returncode == 1 and "no model named 'c'" in wrong.stderr


def test_usage_errors_exit_2():
    assert run_cli("compile").returncode == 2
    assert run_cli("frobnicate").returncode == 2


def test_missing_file_is_a_user_error():
    result = run_cli("check", "no/such.model")
    assert result.returncode == 1 and "cannot read no/such.model" in result.stderr


def test_bad_opset_is_a_user_error(tmp_path):
    result = run_cli("compile", "samples/housing.model", "-o", tmp_path / "o.onnx", "--opset", "12")
    assert result.returncode == 1 and "--opset must be between 17" in result.stderr


def _modules_after(*argv: str) -> set[str]:
    code = ("import sys; from modelc.cli import main; rc = main(list(sys.argv[1:])); "
            "print('MODULES', ' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('onnx', 'onnxruntime', 'numpy'))))")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("MODULES"))
    return {m.split(".")[0] for m in line.split()[1:]}


def test_check_imports_neither_onnx_nor_onnxruntime():
    assert _modules_after("check", "samples/housing.model") == set()


def test_compile_does_not_import_onnxruntime(tmp_path):
    loaded = _modules_after("compile", "samples/housing.model", "-o", str(tmp_path / "h.onnx"))
    assert "onnx" in loaded and "onnxruntime" not in loaded


def test_unwritable_outputs_are_user_errors(tmp_path):
    (tmp_path / "folder").mkdir()
    for args, message in [(("compile", "samples/housing.model", "-o", tmp_path / "no" / "m.onnx"),
                           f"no folder {tmp_path / 'no'}"),
                          (("compile", "samples/housing.model", "-o", tmp_path / "folder"), "it is a folder")]:
        result = run_cli(*args)
        assert result.returncode == 1 and "cannot write" in result.stderr and message in result.stderr
        assert "internal error" not in result.stderr and ".tmp" not in result.stderr


def test_float16_compile_of_a_model_with_an_embedding(tmp_path):
    result = run_cli("compile", "samples/wide_deep.model", "--dtype", "float16", "-o", tmp_path / "w.onnx")
    assert result.returncode == 0, result.stderr
    model = onnx.load(tmp_path / "w.onnx")
    table = next(t for t in model.graph.initializer if t.name == "embedding.embeddings")
    assert table.data_type == onnx.TensorProto.FLOAT16


@pytest.mark.parametrize("output", ["model.keras", "model.safetensors", "other.onnx"])
def test_import_never_overwrites_its_input_or_writes_two_outputs_to_one_name(tmp_path, output):
    keras_file = tmp_path / "model.keras"
    keras_file.write_bytes(b"a trained model")
    result = run_cli("import", keras_file, "-o", tmp_path / output)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert keras_file.read_bytes() == b"a trained model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]
