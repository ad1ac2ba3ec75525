"""GPU checks: run only where onnxruntime-gpu sees a CUDA device (`make gpu`); skipped cleanly elsewhere."""
from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import SAMPLES, run_cli

ort = pytest.importorskip("onnxruntime")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers(),
                                 reason="needs onnxruntime-gpu and a CUDA device")]


@pytest.fixture(scope="module")
def houses(tmp_path_factory):
    path = tmp_path_factory.mktemp("gpu") / "houses.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.normal(size=(50_000, 8)).astype(np.float32), price=rng.gamma(2.0, size=50_000))
    return path


def test_cuda_session_is_really_cuda():
    import modelc
    from modelc.runtime.session import Session
    session = Session(modelc.compile_file("samples/housing.model"), "cuda")
    assert session._ort.get_providers()[0] == "CUDAExecutionProvider"


def test_eval_on_cuda_equals_cpu(houses):
    results = {}
    for provider in ("cpu", "cuda"):
        out = run_cli("eval", "samples/housing.model", "--init-missing", "--data", houses, "--target", "price", "--metric", "mse",
                      "--metric", "mae", "--metric", "r2", "--provider", provider, "--json", "--batch-size", "8192")
        assert out.returncode == 0, out.stderr
        results[provider] = json.loads(out.stdout)
    assert results["cuda"]["fused"]
    for spec, value in results["cpu"]["metrics"].items():
        assert results["cuda"]["metrics"][spec] == pytest.approx(value, rel=1e-4)


@pytest.mark.parametrize("path", [p for p in SAMPLES if p.stem in ("housing", "classifier", "wide_deep")],
                         ids=lambda p: p.stem)
def test_compare_cpu_cuda_agree_on_samples(path, tmp_path):
    import modelc
    from helpers import random_feeds
    proto = modelc.compile_file(path)
    feeds = random_feeds(proto, batch=256)
    data = tmp_path / "data.npz"
    np.savez(data, **feeds)
    out = run_cli("compare", path, "--data", data, "--providers", "cpu,cuda", "--rtol", "1e-3", "--atol", "1e-4",
                  "--json")
    assert out.returncode == 0, out.stdout + out.stderr
