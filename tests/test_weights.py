"""Weights: params -> file -> compile -> outputs round trip, and every strictness error."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from safetensors.numpy import save_file

import modelc
from helpers import run_cli

SOURCE = """
layer scale(units: int)(x: [..., n]) {
    param w: [n, units] = ones
    return x @ w
}
model m(x: float32[batch, 3]) {
    y = x -> dense(4, activation=relu) -> scale(2)
    return y
}
"""


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "m.model"
    path.write_text(SOURCE)
    return path


def weights_for(params: list[dict], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {p["name"]: rng.normal(size=p["shape"]).astype(p["dtype"]) for p in params}


def predict(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("fmt", ["safetensors", "npz"])
def test_round_trip_params_file_compile_outputs(model_file, tmp_path, fmt):
    listed = run_cli("params", model_file, "--json")
    assert listed.returncode == 0, listed.stderr
    params = json.loads(listed.stdout)
    assert params == [{"name": "dense.kernel", "shape": [3, 4], "dtype": "float32"},
                      {"name": "dense.bias", "shape": [4], "dtype": "float32"},
                      {"name": "scale.w", "shape": [4, 2], "dtype": "float32"}]
    w = weights_for(params)
    wfile = tmp_path / f"w.{fmt}"
    save_file(w, str(wfile)) if fmt == "safetensors" else np.savez(wfile, **w)
    out = tmp_path / "m.onnx"
    result = run_cli("compile", model_file, "-o", out, "--weights", wfile)
    assert result.returncode == 0, result.stderr
    x = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    want = np.maximum(x @ w["dense.kernel"] + w["dense.bias"], 0) @ w["scale.w"]
    np.testing.assert_allclose(predict(out, x), want, rtol=1e-5, atol=1e-6)
    stored = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(out).graph.initializer}
    for name, value in w.items():
        np.testing.assert_array_equal(stored[name], value)
    assert all(t.HasField("raw_data") for t in onnx.load(out).graph.initializer)


def write_and_compile(model_file, tmp_path, weights, *flags):
    wfile = tmp_path / "w.safetensors"
    save_file(weights, str(wfile))
    return run_cli("compile", model_file, "-o", tmp_path / "o.onnx", "--weights", wfile, *flags)


def test_missing_weight_is_named(model_file, tmp_path):
    w = weights_for(modelc.params(model_file))
    del w["scale.w"]
    result = write_and_compile(model_file, tmp_path, w)
    assert result.returncode == 1
    assert "weight 'scale.w' [4, 2] float32 is missing from" in result.stderr
    assert "--init-missing" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o.onnx").exists()


def test_init_missing_initializes_only_the_missing(model_file, tmp_path):
    w = weights_for(modelc.params(model_file))
    del w["scale.w"]
    result = write_and_compile(model_file, tmp_path, w, "--init-missing")
    assert result.returncode == 0, result.stderr
    stored = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(tmp_path / "o.onnx").graph.initializer}
    np.testing.assert_array_equal(stored["dense.kernel"], w["dense.kernel"])
    np.testing.assert_array_equal(stored["scale.w"], np.ones((4, 2), np.float32))


def test_extra_weight_is_named_with_a_suggestion(model_file, tmp_path):
    w = weights_for(modelc.params(model_file))
    w["dense.kernal"] = w["dense.kernel"]
    result = write_and_compile(model_file, tmp_path, w)
    assert result.returncode == 1
    assert "weight 'dense.kernal' in" in result.stderr and "did you mean 'dense.kernel'?" in result.stderr


def test_misshaped_weight_is_named(model_file, tmp_path):
    w = weights_for(modelc.params(model_file))
    w["dense.bias"] = np.zeros(5, np.float32)
    result = write_and_compile(model_file, tmp_path, w)
    assert result.returncode == 1
    assert "weight 'dense.bias' has shape [5]" in result.stderr and "expected [4]" in result.stderr


def test_mistyped_weight_is_named(model_file, tmp_path):
    w = weights_for(modelc.params(model_file))
    w["dense.bias"] = w["dense.bias"].astype(np.float64)
    result = write_and_compile(model_file, tmp_path, w)
    assert result.returncode == 1
    assert "weight 'dense.bias' has dtype float64" in result.stderr and "expected float32" in result.stderr


def test_all_problems_reported_at_once(model_file, tmp_path):
    w = weights_for(modelc.params(model_file))
    del w["scale.w"]
    w["dense.bias"] = np.zeros(5, np.float32)
    w["extra"] = np.zeros(1, np.float32)
    result = write_and_compile(model_file, tmp_path, w)
    assert result.returncode == 1
    assert result.stderr.count("error:") == 3


def test_npz_with_pickled_objects_is_refused(model_file, tmp_path):
    wfile = tmp_path / "w.npz"
    np.savez(wfile, **{"dense.kernel": np.array([{"a": 1}], dtype=object)})
    result = run_cli("compile", model_file, "-o", tmp_path / "o.onnx", "--weights", wfile)
    assert result.returncode == 1 and "cannot read weights" in result.stderr and "Traceback" not in result.stderr


def test_unknown_weights_format(model_file, tmp_path):
    wfile = tmp_path / "w.pt"
    wfile.write_bytes(b"\x80\x04")
    result = run_cli("compile", model_file, "-o", tmp_path / "o.onnx", "--weights", wfile)
    assert result.returncode == 1 and "must be .safetensors or .npz" in result.stderr


def test_float16_model_weights_are_float16(tmp_path):
    proto = modelc.compile_source("model m(x: float16[batch, 3]) { return x -> dense(2) }")
    assert {onnx.helper.tensor_dtype_to_np_dtype(t.data_type) for t in proto.graph.initializer} == {np.dtype(np.float16)}
    x = np.ones((2, 3), np.float16)
    (y,) = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert y.dtype == np.float16 and y.shape == (2, 2)


def test_large_models_go_to_external_data(tmp_path, monkeypatch):
    """Over the 2 GB protobuf limit weights move to OUT.onnx.data; the limit is lowered here to test it."""
    from modelc.compiler import serialize
    monkeypatch.setattr(serialize, "EXTERNAL_DATA_BYTES", 1024)
    proto = modelc.compile_source("model m(x: float32[batch, 64]) { return x -> dense(64) -> dense(8) }")
    out = tmp_path / "big.onnx"
    modelc.save(proto, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.onnx", "big.onnx.data"]
    stored = onnx.load(str(out), load_external_data=False)
    external = {t.name for t in stored.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL}
    assert external == {"dense.kernel", "dense_1.kernel"}  # the tensors over onnx's 1 KB threshold
    assert all(e.value == "big.onnx.data" for t in stored.graph.initializer for e in t.external_data
               if e.key == "location")
    x = np.random.default_rng(0).normal(size=(3, 64)).astype(np.float32)
    want = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_array_equal(predict(out, x), want[0])


@pytest.mark.parametrize("external", [False, True])
def test_streamed_file_equals_the_api_model(tmp_path, monkeypatch, external):
    """`modelc compile` writes protobuf fields around the numpy buffers itself (compiler/serialize.py);
    onnx must read back exactly the model the API builds, inline or as external data."""
    from modelc.compiler import driver, serialize
    source = "model m(x: float32[batch, 32]) { return x -> dense(64, activation=relu) -> dense(3) }"
    want = modelc.compile_source(source, seed=4)
    if external:
        monkeypatch.setattr(serialize, "EXTERNAL_DATA_BYTES", 1024)
    compiled = driver.compile_for_saving(driver.load_source(source), seed=4)
    out = tmp_path / "m.onnx"
    compiled.save(out)
    assert (tmp_path / "m.onnx.data").exists() == external
    got = onnx.load(str(out))
    onnx.checker.check_model(str(out), full_check=True)
    assert [i.name for i in got.graph.input] == ["x"]
    assert [t.name for t in got.graph.initializer] == [t.name for t in want.graph.initializer]
    for a, b in zip(got.graph.initializer, want.graph.initializer):
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(a), onnx.numpy_helper.to_array(b))
    x = np.random.default_rng(0).normal(size=(4, 32)).astype(np.float32)
    np.testing.assert_array_equal(predict(out, x), ort.InferenceSession(
        want.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0])
    if not external:
        onnx_file, api_file = tmp_path / "onnx.onnx", tmp_path / "api.onnx"
        onnx.save_model(want, str(onnx_file))
        modelc.save(want, api_file)  # the API's writer also streams the raw bytes (serialize.write_attached)
        assert out.read_bytes() == onnx_file.read_bytes() == api_file.read_bytes()  # byte for byte onnx's


@pytest.mark.parametrize("tensor", [
    onnx.numpy_helper.from_array(np.array(["a", "bc"], dtype=object), "labels"),   # string_data
    onnx.helper.make_tensor("w", onnx.TensorProto.FLOAT, [2], [1.0, 2.0]),         # float_data
    onnx.helper.make_tensor("q", onnx.TensorProto.INT4, [3], [1, -2, 3]),          # int4 packed in int32_data
], ids=["string", "float_data", "int4"])
def test_save_keeps_typed_initializers_as_onnx_save_does(tmp_path, tensor):
    """A tensor held in typed fields is written as it is: byte for byte what onnx.save writes."""
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", [tensor.name], ["y"])], "g", [],
                                   [onnx.helper.make_tensor_value_info("y", tensor.data_type, list(tensor.dims))],
                                   [tensor])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 21)])
    onnx.save_model(model, str(tmp_path / "onnx.onnx"))
    modelc.save(model, tmp_path / "api.onnx")
    assert (tmp_path / "api.onnx").read_bytes() == (tmp_path / "onnx.onnx").read_bytes()
    got = onnx.load(str(tmp_path / "api.onnx")).graph.initializer[0]
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(got), onnx.numpy_helper.to_array(tensor))


# --- random weights are never silent: run, eval and compare refuse them unless asked; compile says so -----
NO_WEIGHTS = "error: no weights: pass --weights FILE, or --init-missing to use random weights\n"


@pytest.fixture
def data_file(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, x=rng.normal(size=(20, 3)).astype(np.float32), y=rng.normal(size=(20, 2)).astype(np.float32))
    return path


RUNTIME_COMMANDS = {"run": ["-o", "p.npz"], "eval": ["--target", "y", "--metric", "mse"], "compare": []}


@pytest.mark.parametrize("command", RUNTIME_COMMANDS)
def test_runtime_commands_refuse_a_model_without_weights(model_file, data_file, tmp_path, command):
    args = [command, model_file, "--data", data_file, *RUNTIME_COMMANDS[command]]
    refused = run_cli(*args, cwd=tmp_path)
    assert (refused.returncode, refused.stdout, refused.stderr) == (1, "", NO_WEIGHTS)
    assert run_cli(*args, "--init-missing", cwd=tmp_path).returncode == 0
    save_file(weights_for(modelc.params(model_file)), str(tmp_path / "w.safetensors"))
    assert run_cli(*args, "--weights", tmp_path / "w.safetensors", cwd=tmp_path).returncode == 0


def test_the_api_refuses_a_model_without_weights(model_file, data_file, tmp_path):
    with pytest.raises(modelc.ModelcError) as refused:
        modelc.evaluate(str(model_file), str(data_file), "y", ["mse"])
    assert str(refused.value) == NO_WEIGHTS.rstrip("\n")
    with pytest.raises(modelc.ModelcError, match="^error: no weights: pass --weights FILE"):
        modelc.run(str(model_file), str(data_file), str(tmp_path / "p.npz"))
    seeded = modelc.evaluate(str(model_file), str(data_file), "y", ["mse"], init_missing=True, seed=4)
    compiled = tmp_path / "m.onnx"
    assert run_cli("compile", model_file, "-o", compiled, "--seed", "4").returncode == 0
    assert seeded["metrics"] == modelc.evaluate(str(compiled), str(data_file), "y", ["mse"])["metrics"]


def test_a_model_without_weights_needs_none(tmp_path, data_file):
    model = tmp_path / "act.model"
    model.write_text("model act(x: float32[batch, 3]) {\n    return sigmoid(x)\n}\n")
    result = run_cli("eval", model, "--data", data_file, "--target", "x", "--metric", "mse", "--json")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    compiled = run_cli("compile", model, "-o", tmp_path / "act.onnx")
    assert (compiled.returncode, compiled.stderr) == (0, "")


def test_compile_says_how_many_weights_it_initialized(model_file, tmp_path):
    out = tmp_path / "o.onnx"
    result = run_cli("compile", model_file, "-o", out, "--seed", "7")
    assert result.returncode == 0
    assert result.stderr == "initialized 3 weights from --seed 7 (no --weights given)\n"
    assert result.stdout == f"wrote {out} (3 weights, 1 layer functions, opset 23)\n"
    w = weights_for(modelc.params(model_file))
    del w["scale.w"]
    partial = write_and_compile(model_file, tmp_path, w, "--init-missing")
    wfile = tmp_path / "w.safetensors"
    assert partial.returncode == 0
    assert partial.stderr == f"initialized 1 weight from --seed 0 (missing from {wfile})\n"
    full = write_and_compile(model_file, tmp_path, weights_for(modelc.params(model_file)))
    assert full.stderr == ""
    assert full.stdout == f"wrote {tmp_path / 'o.onnx'} (3 weights from {wfile}, 1 layer functions, opset 23)\n"
