"""modelc compare: error statistics against numpy, verdicts and exit codes, layers, goldens, variants."""
from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

import modelc
from helpers import run_cli


@pytest.fixture(scope="module")
def houses(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 8)).astype(np.float32)
    price = rng.gamma(2.0, size=600)
    path = folder / "houses.npz"
    np.savez(path, x=x, price=price)
    return path, x, price


def compare_json(*args):
    result = run_cli("compare", *args, "--json")
    assert "Traceback" not in result.stderr
    return result.returncode, (json.loads(result.stdout) if result.stdout.strip() else None), result.stderr


def predict(proto, x, names=None):
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(names, {"x": x.astype(session.get_inputs()[0].type == "tensor(float16)" and np.float16
                                             or np.float32)})


def test_cpu_and_reference_agree_and_report_everything(houses):
    path, x, price = houses
    code, report, err = compare_json("samples/housing.model", "--init-missing", "--data", path, "--providers", "cpu,reference",
                                     "--target", "price", "--metric", "mse", "--batch-size", "128")
    assert code == 0, err
    assert report["agree"] and report["samples"] == 600 and report["batches"] == 5
    stats = report["outputs"]["y"]["reference"]
    assert stats["out_of_tolerance"] == 0 and stats["elements"] == 600 and stats["nan"] == 0
    for side in ("cpu", "reference"):
        assert set(report["latency"][side]) == {"p50_ms", "p90_ms", "p99_ms", "rows_per_second"}
    (y,) = predict(modelc.compile_file("samples/housing.model"), x)
    # y_true arrives in y_pred's dtype and the error is computed there (Keras); only the sum is float64
    error = price.astype(np.float32) - y[:, 0]
    mse = float(np.sum((error * error).astype(np.float64)) / len(error))
    assert report["metrics"]["cpu"]["mse"] == pytest.approx(mse, rel=1e-9)
    assert report["metrics"]["reference"]["mse"] == pytest.approx(mse, rel=1e-5)


def test_fp16_variant_statistics_match_numpy_and_the_verdict_fails_at_tight_tolerance(houses):
    path, x, _ = houses
    code, report, err = compare_json("samples/housing.model", "--init-missing", "--data", path, "--variants", "fp32,fp16",
                                     "--rtol", "1e-6", "--atol", "0", "--layers")
    assert code == 3, err
    assert not report["agree"]
    fp32 = modelc.compile_file("samples/housing.model", layer_outputs=True)
    fp16 = modelc.compile_file("samples/housing.model", layer_outputs=True, dtype="float16")
    names = [o.name for o in fp32.graph.output]
    a = dict(zip(names, predict(fp32, x)))
    b = dict(zip(names, predict(fp16, x)))
    diff = np.abs(b["y"].astype(np.float64) - a["y"].astype(np.float64))
    stats = report["outputs"]["y"]["cpu/fp16"]
    assert stats["max_abs"] == pytest.approx(diff.max(), rel=1e-12)
    assert stats["mean_abs"] == pytest.approx(diff.mean(), rel=1e-9)
    assert stats["out_of_tolerance"] == int((diff > 1e-6 * np.abs(a["y"])).sum())
    worst = np.unravel_index(np.argmax(diff), diff.shape)
    assert stats["worst"]["index"] == [int(i) for i in worst]
    assert stats["worst"]["value"] == pytest.approx(float(b["y"][worst]))
    rows = modelc.summary("samples/housing.model")
    first = next(r["path"] for r in rows
                 if (np.abs(b[r["value"]].astype(np.float64) - a[r["value"]]) > 1e-6 * np.abs(a[r["value"]])).any())
    assert report["first_diverging_layer"] == first


def test_fp16_default_tolerance_agrees(houses):
    path, _, _ = houses
    code, report, _ = compare_json("samples/housing.model", "--init-missing", "--data", path, "--variants", "fp32,fp16")
    assert report["rtol"] == 1e-2 and report["atol"] == 1e-3
    assert code in (0, 3) and report["outputs"]["y"]["cpu/fp16"]["max_rel"] < 0.05


@pytest.mark.parametrize("variants", ["functions,inline", "opset17,opset23"])
def test_compile_variants_agree(houses, variants):
    path, _, _ = houses
    code, report, err = compare_json("samples/housing.model", "--init-missing", "--data", path, "--variants", variants)
    assert code == 0, err
    assert report["outputs"]["y"]["cpu/" + variants.split(",")[1]]["max_abs"] == 0.0


def test_saved_goldens_and_against(houses, tmp_path):
    path, _, _ = houses
    golden = tmp_path / "golden"
    code, _, err = compare_json("samples/housing.model", "--init-missing", "--data", path, "--save-outputs", golden)
    assert code == 0, err
    assert {p.name for p in golden.iterdir()} == {"inputs.npz", "cpu.npz", "reference.npz", "meta.json"}
    with np.load(golden / "inputs.npz") as z:
        assert z["x"].shape == (600, 8)
    code, report, _ = compare_json("samples/housing.model", "--init-missing", "--data", path, "--providers", "cpu", "--against", golden)
    assert code == 0 and report["reference"] == f"golden:{golden}"
    code, report, _ = compare_json("samples/housing.model", "--init-missing", "--data", path, "--providers", "cpu", "--against", golden,
                                   "--seed", "9")
    assert code == 3 and report["outputs"]["y"]["cpu"]["out_of_tolerance"] > 0


def test_user_errors(houses, tmp_path):
    path, _, _ = houses
    out = tmp_path / "h.onnx"
    assert run_cli("compile", "samples/housing.model", "-o", out).returncode == 0
    for args, message in [((out, "--data", path, "--layers"), "need a .model file"),
                          (("samples/housing.model", "--init-missing", "--data", path, "--providers", "cpu"), "needs two sides"),
                          (("samples/housing.model", "--init-missing", "--data", path, "--variants", "fp8,fp32"), "unknown variant"),
                          (("samples/housing.model", "--init-missing", "--data", path, "--providers", "cpu,cuda"), "cuda")]:
        result = run_cli("compare", *args)
        if "cuda" in message and "CUDAExecutionProvider" in ort.get_available_providers():
            continue
        assert result.returncode == 1, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr


def test_nothing_compared_is_not_agreement(houses, tmp_path):
    empty = tmp_path / "empty.npz"
    np.savez(empty, x=np.zeros((0, 8), np.float32))
    path, _, _ = houses
    for args, message in [((empty,), "no rows to compare"), ((path, "--batch-size", "0"), "--batch-size must be"),
                          ((path, "--max-batches", "0"), "--max-batches must be")]:
        result = run_cli("compare", "samples/housing.model", "--init-missing", "--data", *args)
        assert result.returncode == 1 and message in result.stderr, result.stderr


def test_every_provider_runs_every_variant_and_each_side_is_labelled(houses):
    path, _, _ = houses
    args = ("samples/housing.model", "--init-missing", "--data", path, "--providers", "cpu,reference",
            "--variants", "fp32,fp16")
    code, report, err = compare_json(*args)
    assert code == 0, err
    sides = ["cpu/fp32", "cpu/fp16", "reference/fp32", "reference/fp16"]
    assert report["sides"] == sides and report["reference"] == "cpu/fp32"
    assert list(report["outputs"]["y"]) == sides[1:] and list(report["latency"]) == sides
    assert report["outputs"]["y"]["reference/fp32"]["max_rel"] < 1e-5
    text = run_cli("compare", *args).stdout
    assert "outputs vs cpu/fp32" in text and "┃ cpu/fp32 " in text and "┃ reference " not in text
    help_text = run_cli("compare", "--help").stdout
    assert "every provider runs every variant" in " ".join(help_text.split())


IDENTITY = """model bnd(x: float32[batch, 8]) {
    y = x -> dense(3) -> batch_norm -> dropout(0.5) -> dense(2)
    return y
}
"""


def test_layers_map_one_to_one_and_an_identity_layer_is_the_same_value(houses, tmp_path):
    path, _, _ = houses
    model = tmp_path / "bnd.model"
    model.write_text(IDENTITY)
    code, report, err = compare_json(model, "--init-missing", "--data", path, "--layers")
    assert code == 0, err
    assert list(report["layers"]) == ["dense", "batch_norm", "dense_1"]
    assert {k: v["reference"]["elements"] for k, v in report["layers"].items()} == \
        {"dense": 1800, "batch_norm": 1800, "dense_1": 1200}
    assert report["same_value_as"] == {"dropout": "batch_norm"}
    names = [o.name for o in modelc.compile_file(model, layer_outputs=True).graph.output]
    assert len(names) == len(set(names)) == 4
    text = run_cli("compare", model, "--init-missing", "--data", path, "--layers").stdout
    assert "layer batch_norm" in text and "same value as batch_norm" in text


def test_a_provider_that_cannot_run_a_variant_is_named_with_the_operator(houses):
    path, _, _ = houses
    result = run_cli("compare", "samples/housing.model", "--init-missing", "--data", path,
                     "--providers", "cpu,reference", "--variants", "fp32,bf16")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: compare side cpu/bf16: provider 'cpu' cannot run this model: "
                                    "onnxruntime has no cpu kernel for "), result.stderr
    assert "with its tensor types; use another provider or precision" in result.stderr
    for variants in ("fp32,fp16", "fp32,bf16", "fp32,fp64"):
        code, report, err = compare_json("samples/housing.model", "--init-missing", "--data", path,
                                         "--providers", "reference", "--variants", variants)
        assert code in (0, 3), err
        assert report["sides"] == ["reference/fp32", "reference/" + variants[5:]]


def test_the_first_layer_with_a_nan_or_inf_is_named(tmp_path):
    """fp16 overflows in `grow` (e**12 > 65504) and not before it: compare names that layer for that side."""
    model = tmp_path / "m.model"
    model.write_text("layer amplify(x) = x * 4.0\nlayer grow(x) = exp(x)\n"
                     "model m(x: float32[batch, 4]) {\n    return x -> amplify -> grow -> relu\n}\n")
    np.savez(tmp_path / "d.npz", x=np.linspace(-3, 3, 64 * 4, dtype=np.float32).reshape(64, 4))
    code, report, err = compare_json(model, "--data", tmp_path / "d.npz", "--variants", "fp32,fp16", "--layers",
                                     "--init-missing")
    assert code == 3, err
    assert report["first_nonfinite_layer"] == {"cpu/fp16": "grow"}
    assert report["layers"]["grow"]["cpu/fp16"]["inf"] > 0 == report["layers"]["amplify"]["cpu/fp16"]["inf"]
