"""Models whose weights are ONNX external data (issue 13, defect 4: over 2 GB a compiled model keeps its weights in
FILE.onnx.data): run, eval and compare read them from the file through onnxruntime and never load them into
the proto, so a 2.2 GB model runs (bench/bigmodel_bench.py measures one). Here the threshold is lowered so a small
model goes external; the numbers are checked against numpy from the formula and against the same model with its
weights inline."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx.external_data_helper import uses_external_data

import modelc
from modelc import cli
from modelc.compiler import serialize

SOURCE = """model m(x: float32[batch, 6]) {
    y = x -> dense(5, activation=relu) -> dense(3)
    return y
}
"""


@pytest.fixture
def models(tmp_path, monkeypatch):
    """The same model and weights (seed 3) compiled twice: weights inline, and every weight external."""
    source = tmp_path / "m.model"
    source.write_text(SOURCE)
    inline, external = tmp_path / "inline.onnx", tmp_path / "ext" / "m.onnx"
    external.parent.mkdir()
    assert cli.main(["compile", str(source), "--init-missing", "--seed", "3", "-o", str(inline)]) == 0
    with monkeypatch.context() as patch:
        patch.setattr(serialize, "EXTERNAL_DATA_BYTES", 0)   # the 2 GB threshold, lowered for a small model
        patch.setattr(serialize, "INLINE_BYTES", 1)
        assert cli.main(["compile", str(source), "--init-missing", "--seed", "3", "-o", str(external)]) == 0
    weightless = onnx.load(str(external), load_external_data=False)
    assert (tmp_path / "ext" / "m.onnx.data").exists()
    assert all(uses_external_data(t) for t in weightless.graph.initializer)
    return inline, external


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, x=rng.normal(size=(37, 6)).astype(np.float32), t=rng.normal(size=(37, 3)).astype(np.float32))
    return path


def formula(inline, x):
    """The model by hand: dense(5, relu) then dense(3), with the weights of the inline file."""
    w = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(inline)).graph.initializer}
    hidden = np.maximum(x @ w["dense.kernel"] + w["dense.bias"], 0)
    return hidden @ w["dense_1.kernel"] + w["dense_1.bias"]


def never_load_external_data(monkeypatch):
    """Any load of an external tensor's bytes into a proto (onnx.load, load_external_data_for_model) fails."""
    def refuse(*args, **kwargs):
        raise AssertionError("the runtime loaded external data into a proto")
    import onnx.external_data_helper as helper
    monkeypatch.setattr(helper, "load_external_data_for_tensor", refuse)


def test_external_data_runs_and_evaluates_without_loading_it(models, data, tmp_path, monkeypatch, capsys):
    inline, external = models
    x, t = np.load(data)["x"], np.load(data)["t"]
    want = formula(inline, x)
    never_load_external_data(monkeypatch)
    for model, out in ((inline, tmp_path / "inline.npz"), (external, tmp_path / "ext.npz")):
        assert cli.main(["run", str(model), "--data", str(data), "-o", str(out), "--batch-size", "8"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "ext.npz")["y"], want, rtol=1e-5, atol=1e-6)
    # external data runs without onnxruntime's pre-packing (session.py): another GEMM, float32 last bits may move
    np.testing.assert_allclose(np.load(tmp_path / "ext.npz")["y"], np.load(tmp_path / "inline.npz")["y"], rtol=1e-6)
    capsys.readouterr()
    results = {}
    for model in (inline, external):
        assert cli.main(["eval", str(model), "--data", str(data), "--target", "t", "--metric", "mse",
                         "--metric", "mae", "--batch-size", "8", "--json"]) == 0, capsys.readouterr().err
        results[model] = json.loads(capsys.readouterr().out)
    assert results[external]["fused"] is True
    for name, value in results[inline]["metrics"].items():
        np.testing.assert_allclose(results[external]["metrics"][name], value, rtol=1e-6)
    np.testing.assert_allclose(results[external]["metrics"]["mse"], np.mean((want - t) ** 2), rtol=1e-5)
    np.testing.assert_allclose(results[external]["metrics"]["mae"], np.mean(np.abs(want - t)), rtol=1e-5)


def test_external_data_compares_from_any_folder(models, data, tmp_path, monkeypatch, capsys):
    """compare on cpu and the reference evaluator (which reads the weights into a copy for itself), run from
    another working folder: the data file is found beside the model, not beside the caller."""
    inline, external = models
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli.main(["compare", str(external), "--data", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["agree"] is True and report["samples"] == 37


def test_a_model_over_2_gb_compiled_in_memory_runs_with_its_weights_beside_the_proto(models, data, tmp_path,
                                                                                  monkeypatch, capsys):
    """run/eval of a .model over the threshold: the weights stay numpy arrays, declared in the proto and handed
    to onnxruntime as they are (session.ExternalWeights), on cpu and on the reference evaluator."""
    from modelc.runtime.model import load_model
    inline, _ = models
    source = tmp_path / "m.model"
    x, t = np.load(data)["x"], np.load(data)["t"]
    want = formula(inline, x)
    monkeypatch.setattr(serialize, "EXTERNAL_DATA_BYTES", 0)
    loaded = load_model(str(source), init_missing=True, seed=3)
    assert loaded.external.arrays.keys() == {t.name for t in loaded.proto.graph.initializer}
    assert not any(t.raw_data for t in loaded.proto.graph.initializer)
    out = tmp_path / "p.npz"
    assert cli.main(["run", str(source), "--init-missing", "--seed", "3", "--data", str(data), "-o", str(out)]) == 0
    np.testing.assert_allclose(np.load(out)["y"], want, rtol=1e-5, atol=1e-6)
    capsys.readouterr()
    for provider in ("cpu", "reference"):
        assert cli.main(["eval", str(source), "--init-missing", "--seed", "3", "--data", str(data), "--target", "t",
                         "--metric", "mse", "--provider", provider, "--json"]) == 0, capsys.readouterr().err
        result = json.loads(capsys.readouterr().out)
        np.testing.assert_allclose(result["metrics"]["mse"], np.mean((want - t) ** 2), rtol=1e-5)
    # metric states in a graph of their own (no fusion): the weights go to the model's session only
    split = modelc.evaluate(str(source), str(data), "t", ["mse"], init_missing=True, seed=3, fuse_metrics=False,
                            progress=False)
    assert split["fused"] is False
    np.testing.assert_allclose(split["metrics"]["mse"], np.mean((want - t) ** 2), rtol=1e-5)


def test_dask_refuses_weights_held_in_memory_with_what_to_do():
    from modelc.compiler.source import ModelcError
    from modelc.runtime.engine_dask import model_on_workers
    from modelc.runtime.session import ExternalWeights
    with pytest.raises(ModelcError, match="compile it first"):
        with model_on_workers(None, [], "cpu", "predict", None, ExternalWeights(arrays={"w": np.zeros(1)})):
            pass


@pytest.mark.parametrize("damage", ["missing", "truncated", "outside"])
def test_external_data_that_is_not_there_is_named_before_onnxruntime_reads(models, data, tmp_path, damage, capsys):
    _, external = models
    weights = external.parent / "m.onnx.data"
    if damage == "missing":
        weights.unlink()
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:50])
    else:  # a location that leaves the model's folder
        proto = onnx.load(str(external), load_external_data=False)
        for entry in proto.graph.initializer[0].external_data:
            if entry.key == "location":
                entry.value = "../../secret.data"
        external.write_bytes(proto.SerializeToString())
    assert cli.main(["run", str(external), "--data", str(data), "-o", str(tmp_path / "p.npz")]) == 1
    said = {"missing": "which is missing", "truncated": "which holds 50",
            "outside": "points outside the model's folder ('../../secret.data')"}[damage]
    err = capsys.readouterr().err
    assert "cannot read model" in err and str(external) in err and said in err, err
