"""`modelc summary` and `modelc params` on an .onnx file (compiler/onnx_file.py): the graph's inputs,
outputs, layer functions and weights, the same rows as for the .model it came from."""
from __future__ import annotations

import json

from helpers import run_cli

MODEL = """\
layer block(units: int)(x) {
    return x -> dense(units, activation=relu)
}

model m(x: float32[N, 4]) {
    return x -> batch_norm -> block(3) -> dense(2)
}
"""


def compiled(tmp_path, *options: str) -> tuple[str, str]:
    model, out = tmp_path / "m.model", tmp_path / "m.onnx"
    model.write_text(MODEL)
    assert run_cli("compile", str(model), "-o", str(out), *options).returncode == 0
    return str(model), str(out)


def test_cli_params_of_an_onnx_file_are_those_of_its_model(tmp_path):
    model, out = compiled(tmp_path)
    result = run_cli("params", out, "--json")
    assert result.returncode == 0 and result.stderr == ""
    assert json.loads(result.stdout) == json.loads(run_cli("params", model, "--json").stdout)
    text = run_cli("params", out)
    assert text.returncode == 0
    assert text.stdout == run_cli("params", model).stdout
    assert text.stdout.splitlines()[4] == "block.dense.kernel          [4, 3]           float32"


def test_cli_summary_of_an_onnx_file(tmp_path):
    _, out = compiled(tmp_path)
    result = run_cli("summary", out)
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].strip() == 'Model: "m"'
    rows = [[cell.strip() for cell in line.strip("│").split("│")] for line in lines if line.startswith("│")]
    assert [r for r in rows if "(" in r[0]][:5] == [
        ["x (Input)", "float32[N, 4]", "0"], ["batch_norm (ops)", "", "16"], ["block (block)", "", "15"],
        ["dense (ops)", "", "8"], ["output (Output)", "float32[N, 2]", ""]]
    assert ["block.dense.kernel", "[4, 3]", "float32"] in rows
    assert lines[-4:] == ["Total params: 39 (156 B)", "Weights: 8", "Layer functions: block",
                          f"Made by modelc {modelc_version()}, opset 23"]


def test_cli_summary_of_an_inlined_onnx_file(tmp_path):
    _, out = compiled(tmp_path, "--inline")
    result = run_cli("summary", out)
    assert result.returncode == 0
    assert "│ block (ops)" in result.stdout and "Layer functions: none\n" in result.stdout


def test_cli_summary_and_params_of_a_file_that_is_not_onnx(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xfd\x00garbage")
    for command in ("summary", "params"):
        result = run_cli(command, str(bad))
        assert result.returncode == 1
        assert result.stderr.startswith(f"error: cannot read {bad}: not an ONNX model (")
        assert "utf-8" not in result.stderr and "Traceback" not in result.stderr


def modelc_version() -> str:
    from modelc.version import __version__
    return __version__


def test_cli_compile_tidy_onnx(tmp_path):
    """Producer set; every constant named after the layer that uses it, its source location as doc string."""
    import onnx
    model, out = tmp_path / "c.model", tmp_path / "c.onnx"
    model.write_text("model m(x: float32[N, 4]) {\n    return x -> dense(3) -> gelu\n}\n")
    result = run_cli("compile", str(model), "-o", str(out))
    assert result.returncode == 0
    proto = onnx.load(str(out))
    assert (proto.producer_name, proto.producer_version) == ("modelc", modelc_version())
    constants = [(n.name, list(n.output), n.doc_string) for n in proto.graph.node if n.op_type == "Constant"]
    assert constants == [("gelu/Constant", ["/gelu/Constant"], f"{model}:2:29"),
                         ("gelu/Constant_1", ["/gelu/Constant_1"], f"{model}:2:29"),
                         ("gelu/Constant_2", ["/gelu/Constant_2"], f"{model}:2:29")]
    assert all(n.doc_string for n in proto.graph.node if n.op_type != "Identity")
