"""Models whose outputs are not numbers, and the user's broken models and folders, through the command line
(issue 13, defects 6 and 9): text outputs are written as text in every format, anything but a tensor is refused
naming the file, and each broken .onnx, folder or model shape is exit 1 with what is wrong, never a traceback."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from onnx import TensorProto, helper

from helpers import run_cli

NAMES = np.array(["cat", "dog", "émeu", "a longer label"])


def string_model(path, names=tuple(NAMES)) -> None:
    """label[batch, 2] = names[int(x)] (text) and score = relu(x): a text output beside a number one."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])
    label = helper.make_tensor_value_info("label", TensorProto.STRING, ["batch", 2])
    score = helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 2])
    names = helper.make_tensor("names", TensorProto.STRING, [len(names)], [n.encode() for n in names])
    nodes = [helper.make_node("Constant", [], ["names"], value=names),
             helper.make_node("Cast", ["x"], ["index"], to=TensorProto.INT64),
             helper.make_node("Gather", ["names", "index"], ["label"]),
             helper.make_node("Relu", ["x"], ["score"])]
    graph = helper.make_graph(nodes, "g", [x], [label, score])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


@pytest.fixture
def data(tmp_path):
    x = np.array([[0, 1], [2, 3], [3, 0], [1, 1], [2, 2]], np.float32)
    np.savez(tmp_path / "d.npz", x=x)
    return x


@pytest.mark.parametrize("fmt", ["npz", "parquet", "csv"])
def test_text_outputs_are_written_as_text(tmp_path, data, fmt):
    string_model(tmp_path / "s.onnx")
    out = tmp_path / f"p.{fmt}"
    result = run_cli("run", tmp_path / "s.onnx", "--data", tmp_path / "d.npz", "-o", out, "--batch-size", "2")
    assert result.returncode == 0, result.stderr
    labels, scores = NAMES[data.astype(np.int64)], np.maximum(data, 0)   # the oracle, from the formula
    if fmt == "npz":
        with np.load(out, allow_pickle=False) as z:   # no objects: a fixed-width unicode array
            assert z["label"].dtype.kind == "U" and z["label"].tolist() == labels.tolist()
            np.testing.assert_array_equal(z["score"], scores)
        return
    table = pq.read_table(out) if fmt == "parquet" else pcsv.read_csv(out)
    for j in range(2):
        assert table.column(f"label_{j}").to_pylist() == labels[:, j].tolist()
        np.testing.assert_array_equal(table.column(f"score_{j}").to_numpy(), scores[:, j])


def test_text_outputs_compare_exactly(tmp_path, data):
    string_model(tmp_path / "s.onnx")
    result = run_cli("compare", tmp_path / "s.onnx", "--data", tmp_path / "d.npz", "--providers", "cpu,reference",
                     "--json", "--save-outputs", tmp_path / "golden")
    assert result.returncode == 0, result.stderr
    label = json.loads(result.stdout)["outputs"]["label"]["reference"]
    assert label["elements"] == 10 and label["out_of_tolerance"] == 0
    # the same model with "dog" renamed, against the saved outputs: the three cells naming it differ
    string_model(tmp_path / "renamed.onnx", NAMES[:1].tolist() + ["hound"] + NAMES[2:].tolist())
    result = run_cli("compare", tmp_path / "renamed.onnx", "--data", tmp_path / "d.npz", "--providers", "cpu",
                     "--json", "--against", tmp_path / "golden")
    label = json.loads(result.stdout)["outputs"]["label"]["cpu"]
    assert label["out_of_tolerance"] == int((data == 1).sum()) == 3
    assert label["worst"] == {"index": [0, 1], "value": "hound", "reference": "dog"}


def test_an_output_that_is_not_a_tensor_is_refused(tmp_path, data):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])
    seq = helper.make_value_info("parts", helper.make_sequence_type_proto(
        helper.make_tensor_type_proto(TensorProto.FLOAT, ["batch", 2])))
    graph = helper.make_graph([helper.make_node("SequenceConstruct", ["x", "x"], ["parts"])], "g", [x], [seq])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "seq.onnx")
    for command in (["run", tmp_path / "seq.onnx", "-o", tmp_path / "p.npz"], ["compare", tmp_path / "seq.onnx"]):
        result = run_cli(*command, "--data", tmp_path / "d.npz")
        assert result.returncode == 1, result.stderr
        assert result.stderr.strip() == (f"error: {tmp_path / 'seq.onnx'}: the model's 'parts' is a sequence, not a "
                                         "tensor: modelc feeds and writes tensors (numbers, booleans, strings) only")
    assert not (tmp_path / "p.npz").exists()


def test_an_onnx_file_without_outputs_is_refused(tmp_path, data):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])
    onnx.save(helper.make_model(helper.make_graph([], "g", [x], []), opset_imports=[helper.make_opsetid("", 17)]),
              tmp_path / "none.onnx")
    for command in (["run", "-o", tmp_path / "p.npz"], ["eval", "--target", "x", "--metric", "mse"], ["compare"]):
        result = run_cli(command[0], tmp_path / "none.onnx", "--data", tmp_path / "d.npz", *command[1:])
        assert result.returncode == 1, result.stderr
        assert f"error: {tmp_path / 'none.onnx'} has no outputs: there is nothing to run or compare" in result.stderr


def test_compare_on_a_broken_onnx_file(tmp_path, data):
    (tmp_path / "broken.onnx").write_bytes(b"\x08\x07garbage that is no protobuf \xff\xff\xff")
    result = run_cli("compare", tmp_path / "broken.onnx", "--data", tmp_path / "d.npz")
    assert result.returncode == 1 and "internal error" not in result.stderr
    assert f"cannot read model {tmp_path / 'broken.onnx'}" in result.stderr


@pytest.mark.parametrize("folder, why", [
    ({}, "no meta.json there"),
    ({"meta.json": "{not json"}, "is not what --save-outputs writes (Expecting property name"),
    ({"meta.json": "[1, 2]"}, "is not what --save-outputs writes (no 'reference' in it)"),
    ({"meta.json": '{"sides": []}'}, "is not what --save-outputs writes (no 'reference' in it)"),
    ({"meta.json": '{"reference": "../../elsewhere"}'}, "names no stored outputs ('reference': '../../elsewhere')"),
    ({"meta.json": '{"reference": "cpu"}'}, "cannot read"),
    ({"meta.json": '{"reference": "cpu"}', "cpu.npz": "PK not a zip"}, "cannot read"),
])
def test_compare_against_a_bad_golden_folder(tmp_path, data, folder, why):
    string_model(tmp_path / "s.onnx")
    golden = tmp_path / "golden"
    golden.mkdir()
    for name, text in folder.items():
        (golden / name).write_text(text)
    result = run_cli("compare", tmp_path / "s.onnx", "--data", tmp_path / "d.npz", "--providers", "cpu",
                     "--against", golden)
    assert result.returncode == 1 and "internal error" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"error: --against {golden}: ") and why in result.stderr, result.stderr


def test_layers_nested_past_onnxruntimes_function_limit_run(tmp_path, data):
    """onnxruntime refuses functions nested over 100 deep: the outer calls of a 121-deep chain are expanded
    inline, the inner 100 stay functions, and the model runs."""
    lines = ["layer l0(x) = x -> relu"] + [f"layer l{i}(x) = x -> l{i - 1} -> relu" for i in range(1, 121)]
    (tmp_path / "deep.model").write_text("\n".join(lines) + "\nmodel m(x: float32[batch, 2]) = x - 1 -> l120\n")
    result = run_cli("compile", tmp_path / "deep.model", "-o", tmp_path / "deep.onnx")
    assert result.returncode == 0, result.stderr
    proto = onnx.load(tmp_path / "deep.onnx")
    assert len(proto.functions) == 100
    result = run_cli("run", tmp_path / "deep.onnx", "--data", tmp_path / "d.npz", "-o", tmp_path / "p.npz")
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "p.npz")["output"], np.maximum(data - 1, 0))
