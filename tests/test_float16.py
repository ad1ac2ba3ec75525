"""compile --dtype float16: what float16 cannot hold is named, kept float32 and computed in float32."""
from pathlib import Path

import numpy as np
import onnxruntime as ort

from helpers import run_cli

# the issue's third defect: a normalization variance of 332,817, over float16's 65,504
CONSTANT = """model m(x: float32[batch, 3]) {
    y = x -> normalization(mean=10.0, variance=332817.0) -> dense(2)
    return y
}
"""
WEIGHTS = """layer scaled(x: [batch, n]) {
    param s: [n] = ones
    return x * s
}
model m(x: float32[batch, 3]) {
    y = x -> normalization() -> scaled() -> dense(2)
    return y
}
"""
CONSTANT_WARNING = ("warning: constant 'normalization.variance' overflows float16 (largest magnitude 332817): "
                    "kept in float32")


def outputs(path: Path, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def compile_both(tmp_path: Path, source: str, *extra: str) -> tuple[str, np.ndarray, np.ndarray]:
    """stderr of the float16 compile, and the float32 and float16 models' outputs on the same rows."""
    (tmp_path / "m.model").write_text(source)
    r32 = run_cli("compile", tmp_path / "m.model", "-o", tmp_path / "m32.onnx", *extra)
    r16 = run_cli("compile", tmp_path / "m.model", "--dtype", "float16", "-o", tmp_path / "m16.onnx", *extra)
    assert r32.returncode == 0 and r16.returncode == 0, r32.stderr + r16.stderr
    x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32) * 100
    return r16.stderr, outputs(tmp_path / "m32.onnx", x), outputs(tmp_path / "m16.onnx", x.astype(np.float16))


def test_float16_constant_overflow_is_named_and_kept_float32(tmp_path):
    stderr, y32, y16 = compile_both(tmp_path, CONSTANT)
    assert stderr.splitlines()[0] == CONSTANT_WARNING
    assert "RuntimeWarning" not in stderr
    assert np.isfinite(y16).all()
    np.testing.assert_allclose(y16.astype(np.float32), y32, rtol=1e-2, atol=1e-3)


def test_float16_weight_overflow_is_named_and_kept_float32(tmp_path):
    np.savez(tmp_path / "w.npz", **{
        "normalization.mean": np.array([1, 2, 3], np.float32),
        "normalization.variance": np.array([332817, 4, 9], np.float32),
        "scaled.s": np.array([1e-3, 1e5, 1], np.float32),  # inside a layer function
        "dense.kernel": np.full((3, 2), 1e-3, np.float32), "dense.bias": np.zeros(2, np.float32)})
    stderr, y32, y16 = compile_both(tmp_path, WEIGHTS, "--weights", tmp_path / "w.npz")
    assert stderr.splitlines() == [
        "warning: weight 'normalization.variance' overflows float16 (largest magnitude 332817): kept in float32",
        "warning: weight 'scaled.s' overflows float16 (largest magnitude 100000): kept in float32"]
    assert np.isfinite(y16).all()
    np.testing.assert_allclose(y16.astype(np.float32), y32, rtol=1e-2, atol=1e-3 * np.abs(y32).max())


def test_float16_underflow_is_named(tmp_path):
    (tmp_path / "m.model").write_text(CONSTANT.replace("mean=10.0, variance=332817.0", "mean=1e-9, variance=4.0"))
    r = run_cli("compile", tmp_path / "m.model", "--dtype", "float16", "-o", tmp_path / "m.onnx")
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[0] == ("warning: constant 'normalization.mean' underflows float16 "
                                        "(smallest nonzero magnitude 1e-09): kept in float32")


def test_strict_float16_refuses_an_overflow(tmp_path):
    (tmp_path / "m.model").write_text(CONSTANT)
    r = run_cli("compile", tmp_path / "m.model", "--dtype", "float16", "--strict-float16", "-o", tmp_path / "m.onnx")
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1] == ("error: constant 'normalization.variance' overflows float16 (largest "
                                         "magnitude 332817): --strict-float16 refuses to keep it in float32")
    assert not (tmp_path / "m.onnx").exists()


def test_float16_that_fits_says_nothing(tmp_path):
    stderr, _, y16 = compile_both(tmp_path, CONSTANT.replace("332817.0", "4.0"))
    assert "float16" not in stderr and np.isfinite(y16).all()
