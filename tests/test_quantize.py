"""int8 quantization (runtime/quantize.py): compare's int8 and int8-static variants, compile --quantize, and the
calibration rows the static variant reads."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from helpers import run_cli
from modelc import cli
from modelc.runtime import compare, quantize

WIDE_MLP = """
model wide(x: float32[batch, 64]) {
    return x -> repeat 3 dense(512, activation=relu) -> dense(4) -> softmax
}
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Images for the classifier sample, rows for the wide MLP, labels for both (300 rows)."""
    folder = tmp_path_factory.mktemp("quantize")
    rng = np.random.default_rng(0)
    images = folder / "images.npz"
    np.savez(images, image=rng.random((300, 8, 8, 1), dtype=np.float32), label=rng.integers(0, 10, 300))
    rows = folder / "rows.npz"
    np.savez(rows, x=rng.normal(size=(300, 64)).astype(np.float32), label=rng.integers(0, 4, 300))
    (folder / "wide.model").write_text(WIDE_MLP)
    return {"classifier": ("samples/classifier.model", images), "wide": (folder / "wide.model", rows)}


@pytest.mark.parametrize("sample", ["classifier", "wide"])
def test_compare_int8_reports_task_metrics_next_to_fp32(data, sample):
    model, path = data[sample]
    result = run_cli("compare", model, "--init-missing", "--data", path, "--variants", "fp32,int8,int8-static",
                     "--target", "label", "--metric", "accuracy", "--calibration-rows", "100", "--batch-size", "64",
                     "--rtol", "0.5", "--atol", "0.05", "--json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert report["sides"] == ["cpu/fp32", "cpu/int8", "cpu/int8-static"]
    assert set(report["metrics"]) == set(report["sides"])
    for side in ("cpu/int8", "cpu/int8-static"):
        out = next(iter(report["outputs"].values()))[side]
        assert out["nan"] == out["inf"] == 0 and 0 < out["max_abs"] < 0.05  # quantized: close, not equal
        difference = report["metric_differences"][side]["accuracy"]
        assert difference == pytest.approx(report["metrics"][side]["accuracy"]
                                           - report["metrics"]["cpu/fp32"]["accuracy"])
    assert report["metric_differences"]["cpu/fp32"]["accuracy"] == 0


def test_static_variant_uses_exactly_the_rows_asked_for(data, tmp_path, monkeypatch):
    counted = []  # rows of every feed the quantizer pulled from the reader
    get_next = quantize.CalibrationRows.get_next

    def counting(self):
        feeds = get_next(self)
        if feeds is not None:
            counted.append(len(next(iter(feeds.values()))))
        return feeds
    monkeypatch.setattr(quantize.CalibrationRows, "get_next", counting)
    model, path = data["wide"]
    out = tmp_path / "wide.int8.onnx"
    code = cli.main(["compile", str(model), "--init-missing", "--quantize", "int8-static", "--calibrate", str(path),
                     "--calibration-rows", "100", "-o", str(out)])
    assert code == 0
    assert sum(counted) == 100 and len(counted) == 2  # 64 + 36 of the 300 rows, and nothing more
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wide.int8.onnx"]  # the quantizer's files are gone


@pytest.mark.parametrize("mode", ["int8", "int8-static"])
def test_compile_quantize_writes_a_model_that_runs(data, tmp_path, mode):
    model, path = data["classifier"]
    out = tmp_path / "classifier.int8.onnx"
    calibrate = ["--calibrate", path, "--calibration-rows", "50"] if mode == "int8-static" else []
    result = run_cli("compile", model, "--init-missing", "--quantize", mode, *calibrate, "-o", out)
    assert result.returncode == 0, result.stderr
    rows = f", calibrated on 50 rows of {path}" if calibrate else ""
    assert result.stdout == f"wrote {out} ({mode}{rows}, opset 23)\n"
    proto = onnx.load(str(out))
    ops = {n.op_type for n in proto.graph.node}
    assert ({"MatMulInteger", "DynamicQuantizeLinear"} if mode == "int8" else {"QuantizeLinear"}) <= ops
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    with np.load(path) as z:
        (probs,) = session.run(None, {"image": z["image"][:64]})
    assert probs.shape == (64, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-3)


@pytest.mark.parametrize("args, message", [
    (["--quantize", "int8-static"],
     "error: --quantize int8-static needs --calibrate DATA: the rows its activation ranges come from\n"),
    (["--quantize", "int8", "--calibrate", "{data}"],
     "error: --calibrate is for --quantize int8-static (int8 quantizes the weights only: no data)\n"),
    (["--quantize", "int8", "--dtype", "float16"],
     "error: --quantize int8 quantizes a float32 model; leave out --dtype float16\n"),
    (["--quantize", "int8-static", "--calibrate", "{data}", "--calibration-rows", "1000"],
     "error: --calibration-rows 1000: {data} has only 300 rows\n"),
    (["--quantize", "int8-static", "--calibrate", "{data}", "--calibration-rows", "0"],
     "error: --calibration-rows must be at least 1, got 0\n"),
])
def test_compile_quantize_errors(data, tmp_path, args, message):
    model, path = data["classifier"]
    args = [str(path) if a == "{data}" else a for a in args]
    result = run_cli("compile", model, "--init-missing", *args, "-o", tmp_path / "out.onnx")
    assert result.returncode == 1
    assert result.stderr.replace("initialized 10 weights from --seed 0 (no --weights given)\n", "") \
        == message.replace("{data}", str(path))
    assert not (tmp_path / "out.onnx").exists()


def test_compare_unknown_variant_lists_int8(data):
    model, path = data["classifier"]
    result = run_cli("compare", model, "--init-missing", "--data", path, "--variants", "fp32,int4")
    assert result.returncode == 1
    assert result.stderr == ("error: unknown variant 'int4'; use fp32, fp16, bf16, fp64, functions, inline, int8, "
                             "int8-static or opsetN\n")


def test_compare_int8_agrees_under_its_default_tolerance(data):
    """Without --rtol/--atol an int8 variant gets int8's tolerance, not fp32's: quantized outputs are close,
    and the verdict says so (exit 0) while the figures still show they differ."""
    model, path = data["classifier"]
    result = run_cli("compare", model, "--init-missing", "--data", path, "--variants", "fp32,int8", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["rtol"], report["atol"]) == compare.INT8_TOLERANCE
    assert report["agree"] and 0 < report["outputs"]["probs"]["cpu/int8"]["max_abs"] < report["atol"]


def test_a_quantized_model_stays_modelcs_and_its_int8_weights_count(data, tmp_path):
    """summary and params on a quantized .onnx: int8 weights named as such and counted in the size; the model
    signed by modelc with its metadata, as the float model was."""
    model, _ = data["classifier"]
    out = tmp_path / "q.onnx"
    assert run_cli("compile", model, "--init-missing", "--quantize", "int8", "-o", out).returncode == 0
    proto = onnx.load(str(out))
    assert proto.producer_name == "modelc" and any(p.key == "modelc.source" for p in proto.metadata_props)
    params = json.loads(run_cli("params", out, "--json").stdout)
    int8 = [p for p in params if p["dtype"] == "int8"]
    assert int8 and all(p["name"].endswith(("_quantized", "_zero_point")) for p in int8)
    nbytes = sum(onnx.numpy_helper.to_array(t).nbytes for t in proto.graph.initializer)
    summary = run_cli("summary", out).stdout
    from modelc.compiler.summary import human_size
    assert f"({human_size(nbytes)})" in summary and "Made by modelc" in summary
