"""Every sample compiles, passes full_check, runs on onnxruntime and the reference evaluator."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx.reference import ReferenceEvaluator

import modelc

from helpers import ROOT, SAMPLES, random_feeds, run_cli


def run_ort(proto: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_sample_compiles_and_runs(path):
    proto = modelc.compile_file(path, seed=0)
    onnx.checker.check_model(proto, full_check=True)
    feeds = random_feeds(proto)
    got = run_ort(proto, feeds)
    want = ReferenceEvaluator(proto).run(None, feeds)
    for name, g, w in zip([o.name for o in proto.graph.output], got, want):
        assert g.shape == w.shape, name
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, err_msg=name)
        assert np.isfinite(g).all(), name


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_functions_and_inline_give_identical_outputs(path):
    functions = modelc.compile_file(path, seed=3)
    inline = modelc.compile_file(path, seed=3, inline=True)
    assert not inline.functions
    onnx.checker.check_model(inline, full_check=True)
    feeds = random_feeds(functions, batch=7)
    for a, b in zip(run_ort(functions, feeds), run_ort(inline, feeds)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_compile_is_reproducible_bit_for_bit(path, tmp_path):
    first, second, other = tmp_path / "a.onnx", tmp_path / "b.onnx", tmp_path / "c.onnx"
    for out, seed in ((first, 7), (second, 7), (other, 8)):
        result = run_cli("compile", path, "-o", out, "--seed", seed)
        assert result.returncode == 0, result.stderr
    assert first.read_bytes() == second.read_bytes()
    if modelc.params(path):
        assert first.read_bytes() != other.read_bytes()


def test_housing_matches_numpy_from_the_formula():
    proto = modelc.compile_file("samples/housing.model", seed=1)
    w = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    x = np.random.default_rng(5).normal(size=(9, 8)).astype(np.float32)

    def elu(z):
        return np.where(z > 0, z, np.expm1(z))

    h = np.maximum(x @ w["my_dense.kernel"] + w["my_dense.bias"], 0)
    for r in ("residual", "residual_1", "residual_2"):
        a = elu(h @ w[f"{r}.dense.kernel"] + w[f"{r}.dense.bias"])
        h = h + elu(a @ w[f"{r}.dense_1.kernel"] + w[f"{r}.dense_1.bias"])
    want = np.exp(np.concatenate([x, h], axis=1) @ w["dense.kernel"] + w["dense.bias"])
    (got,) = run_ort(proto, {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_housing_structure_names_and_functions():
    proto = modelc.compile_file("samples/housing.model")
    assert [i.name for i in proto.graph.input] == ["x"]
    assert [o.name for o in proto.graph.output] == ["y"]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == 8
    assert sorted(f.name for f in proto.functions) == ["exponential", "my_dense", "residual"]
    calls = [n.name for n in proto.graph.node if n.domain == "modelc.layers"]
    assert calls == ["my_dense", "residual", "residual_1", "residual_2", "exponential"]
    assert all(n.doc_string.startswith("samples/housing.model:") or "housing.model:" in n.doc_string
               for n in proto.graph.node)
    inline = modelc.compile_file("samples/housing.model", inline=True)
    assert "residual_1/dense/MatMul" in [n.name for n in inline.graph.node]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["modelc.version"] == modelc.__version__ and len(meta["modelc.source_sha256"]) == 64


def test_wide_deep_has_two_inputs_and_two_outputs():
    proto = modelc.compile_file("samples/wide_deep.model")
    assert [i.name for i in proto.graph.input] == ["features", "categories"]
    assert [o.name for o in proto.graph.output] == ["score", "aux"]
    score, aux = run_ort(proto, random_feeds(proto, batch=4))
    assert score.shape == (4, 1) and aux.shape == (4, 3)
    np.testing.assert_allclose(aux.sum(axis=1), 1.0, rtol=1e-5)


def test_repeat_shared_ties_weights():
    text = """
    model m(x: float32[batch, 4]) {
        y = x -> repeat 3 shared dense(4, activation=tanh)
        z = x -> repeat 2 dense(4)
        return y, z
    }"""
    names = [t.name for t in modelc.compile_source(text).graph.initializer]
    assert names == ["dense.kernel", "dense.bias", "dense_1.kernel", "dense_1.bias", "dense_2.kernel",
                     "dense_2.bias"]
    proto = modelc.compile_source(text)
    w = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    y = x
    for _ in range(3):
        y = np.tanh(y @ w["dense.kernel"] + w["dense.bias"])
    z = (x @ w["dense_1.kernel"] + w["dense_1.bias"]) @ w["dense_2.kernel"] + w["dense_2.bias"]
    got_y, got_z = run_ort(proto, {"x": x})
    np.testing.assert_allclose(got_y, y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_z, z, rtol=1e-5, atol=1e-6)


def test_unnamed_outputs_are_output_and_output_1():
    proto = modelc.compile_source("model m(x: float32[2]) { return x * 2, x + 1, x }")
    assert [o.name for o in proto.graph.output] == ["output", "output_1", "x"]
    x = np.array([1.0, 2.0], dtype=np.float32)
    doubled, plus_one, same = run_ort(proto, {"x": x})
    np.testing.assert_array_equal(doubled, x * 2)
    np.testing.assert_array_equal(plus_one, x + 1)
    np.testing.assert_array_equal(same, x)


@pytest.mark.parametrize("opset", [17, 18, 21, 23])
def test_opsets_down_to_17(opset):
    proto = modelc.compile_file("samples/tensor_ops.model", opset=opset)
    assert proto.opset_import[0].version == opset
    feeds = random_feeds(proto)
    base = run_ort(modelc.compile_file("samples/tensor_ops.model"), feeds)
    for a, b in zip(run_ort(proto, feeds), base):
        np.testing.assert_allclose(a, b, rtol=1e-6)


# --- make demo: housing.model with the shipped trained weights, on demo_data.py's houses ---------------------
DEMO_WEIGHTS = "samples/housing.safetensors"


def demo_r2(weights: str, tmp_path) -> tuple[float, str]:
    """make demo's compile and eval, with `weights`: the r2 and the compile line."""
    data, out = tmp_path / "houses.parquet", tmp_path / "housing.onnx"
    subprocess.run([sys.executable, "samples/demo_data.py", str(data)], check=True, capture_output=True)
    compiled = run_cli("compile", "samples/housing.model", "-o", out, "--weights", weights)
    assert (compiled.returncode, compiled.stderr) == (0, "")
    result = run_cli("eval", out, "--data", data, "--target", "price", "--metric", "r2", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["metrics"]["r2"], compiled.stdout


def test_the_demo_evaluates_the_shipped_trained_weights(tmp_path):
    r2, line = demo_r2(DEMO_WEIGHTS, tmp_path)
    assert r2 > 0.5
    assert line == f"wrote {tmp_path / 'housing.onnx'} (16 weights from {DEMO_WEIGHTS}, 3 layer functions, opset 23)\n"
    demo = (ROOT / "Makefile").read_text().split("\ndemo:")[1].split("\n\n")[0]
    assert f"modelc compile samples/housing.model -o out/housing.onnx --weights {DEMO_WEIGHTS}" in demo
