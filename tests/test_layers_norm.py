"""Normalization layers (batch_norm, group_norm, rms_norm, unit_norm) against Keras 3 itself: the Keras layer's
weights, randomized, go to .safetensors under modelc's names, the program is compiled with them as a user would
(`modelc.compile_file(path, weights=...)`), and onnxruntime's outputs must match Keras' within float32 rounding;
then the misuse of each layer as golden diagnostics."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx.reference import ReferenceEvaluator
from safetensors.numpy import save_file

import modelc

from keras_oracle import keras

RTOL, ATOL = 1e-5, 1e-6


def keras_weights(layer: "keras.layers.Layer", instance: str, seed: int = 0,
                  scale: float = 1.0) -> dict[str, np.ndarray]:
    """Randomize a built Keras layer's weights (variances positive; the others N(0, scale)) and return them under
    modelc's names: Keras' variable path with the layer's name replaced by the modelc instance and `/` by `.`."""
    rng = np.random.default_rng(seed)
    out = {}
    for v in layer.weights:
        shape = tuple(v.shape)
        value = rng.uniform(0.5, 2.0, shape) if "variance" in v.path else rng.normal(0.0, scale, shape)
        v.assign(value.astype("float32"))
        out[instance + "." + v.path.split("/", 1)[1].replace("/", ".")] = value.astype(np.float32)
    return out


def compile_run(tmp_path: Path, src: str, weights: dict[str, np.ndarray], feeds: dict[str, np.ndarray],
                opset: int | None = None, reference: bool = True) -> list[np.ndarray]:
    """Compile `src` with `weights` bound from a .safetensors file; run on onnxruntime (and, checked to agree,
    on onnx's reference evaluator)."""
    path = tmp_path / "t.model"
    path.write_text(src)
    wpath = None
    if weights:
        wpath = tmp_path / "w.safetensors"
        save_file(weights, str(wpath))
    proto = modelc.compile_file(path, weights=None if wpath is None else str(wpath), opset=opset)
    got = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    if reference:
        for a, r in zip(got, ReferenceEvaluator(proto).run(None, feeds)):
            np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-5)
    return got


def check_against_keras(tmp_path: Path, layer: "keras.layers.Layer", stage: str, shape: tuple[int, ...],
                        instance: str) -> None:
    x = np.random.default_rng(1).normal(0.5, 2.0, shape).astype(np.float32)
    layer.build(shape)
    weights = keras_weights(layer, instance)
    want = keras.ops.convert_to_numpy(layer(x, training=False))
    dims = ", ".join(["batch", *map(str, shape[1:])])
    src = f"model m(x: float32[{dims}]) {{\n    return x -> {stage}\n}}\n"
    (got,) = compile_run(tmp_path, src, weights, {"x": x})
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


SHAPES_AXES = [((3, 5), -1), ((3, 4, 5), -1), ((3, 4, 5), 1), ((2, 4, 4, 3), -1), ((2, 3, 4, 4), 1),
               ((2, 4, 3, 5), 2)]
CENTER_SCALE = [(True, True), (False, True), (True, False), (False, False)]


@pytest.mark.parametrize("shape,axis", SHAPES_AXES, ids=lambda v: str(v))
@pytest.mark.parametrize("center,scale", CENTER_SCALE, ids=["cs", "s", "c", "none"])
def test_batch_norm_matches_keras(tmp_path, shape, axis, center, scale):
    layer = keras.layers.BatchNormalization(axis=axis, epsilon=0.01, center=center, scale=scale)
    flags = f", center={str(center).lower()}, scale={str(scale).lower()}"
    check_against_keras(tmp_path, layer, f"batch_norm(axis={axis}, epsilon=0.01{flags})", shape, "batch_norm")


def test_batch_norm_defaults_keep_their_weight_names(tmp_path):
    layer = keras.layers.BatchNormalization()
    check_against_keras(tmp_path, layer, "batch_norm", (3, 4, 4, 6), "batch_norm")
    (tmp_path / "p.model").write_text("model m(x: float32[batch, 2, 3]) {\n"
                                      "    return x -> batch_norm(axis=1, scale=false)\n}\n")
    assert [p["name"] for p in modelc.params(tmp_path / "p.model")] == [
        "batch_norm.beta", "batch_norm.moving_mean", "batch_norm.moving_variance"]


GROUPS = [((3, 6), 3, -1), ((3, 5, 6), 2, -1), ((3, 6, 5), 3, 1), ((2, 4, 4, 8), 4, -1), ((2, 4, 4, 8), -1, -1),
          ((2, 8, 3, 3), 2, 1), ((2, 4, 4, 8), 1, -1)]


@pytest.mark.parametrize("shape,groups,axis", GROUPS, ids=lambda v: str(v))
@pytest.mark.parametrize("center,scale", CENTER_SCALE[:2] + CENTER_SCALE[3:], ids=["cs", "s", "none"])
def test_group_norm_matches_keras(tmp_path, shape, groups, axis, center, scale):
    layer = keras.layers.GroupNormalization(groups=groups, axis=axis, center=center, scale=scale)
    flags = f", center={str(center).lower()}, scale={str(scale).lower()}"
    check_against_keras(tmp_path, layer, f"group_norm({groups}, axis={axis}{flags})", shape, "group_norm")


def test_group_norm_with_an_unknown_length(tmp_path):
    layer = keras.layers.GroupNormalization(groups=2)
    x = np.random.default_rng(2).normal(size=(2, 7, 4)).astype(np.float32)
    layer.build(x.shape)
    weights = keras_weights(layer, "group_norm")
    src = "model m(x: float32[batch, n, 4]) {\n    return x -> group_norm(2)\n}\n"
    (got,) = compile_run(tmp_path, src, weights, {"x": x})
    np.testing.assert_allclose(got, keras.ops.convert_to_numpy(layer(x)), rtol=RTOL, atol=ATOL)


RMS = [((3, 6), -1, 1e-6), ((3, 4, 6), -1, 1e-6), ((2, 3, 4, 6), -1, 0.1), ((3, 4, 6), [1, 2], 1e-6),
       ((3, 4, 6), [-2, -1], 0.5)]


@pytest.mark.parametrize("shape,axis,epsilon", RMS, ids=lambda v: str(v))
def test_rms_norm_matches_keras(tmp_path, shape, axis, epsilon):
    layer = keras.layers.RMSNormalization(axis=axis, epsilon=epsilon)
    check_against_keras(tmp_path, layer, f"rms_norm(axis={axis}, epsilon={epsilon})", shape, "rms_norm")


UNIT = [((3, 6), -1), ((3, 4, 6), 1), ((3, 4, 6), [1, 2]), ((2, 3, 4, 5), 2), ((2, 3, 4, 5), [-1, 1])]


@pytest.mark.parametrize("shape,axis", UNIT, ids=lambda v: str(v))
def test_unit_norm_matches_keras(tmp_path, shape, axis):
    check_against_keras(tmp_path, keras.layers.UnitNormalization(axis=axis), f"unit_norm(axis={axis})", shape,
                        "unit_norm")


def test_unit_norm_of_zeros_is_zeros(tmp_path):
    src = "model m(x: float32[batch, 3]) {\n    return x -> unit_norm\n}\n"
    (got,) = compile_run(tmp_path, src, {}, {"x": np.zeros((2, 3), np.float32)})
    assert not np.isnan(got).any() and not got.any()


def test_norms_in_one_pipeline_at_opset_17(tmp_path):
    src = ("model m(x: float32[batch, 4, 8]) {\n    return x -> batch_norm(axis=1) -> group_norm(4) -> rms_norm"
           " -> unit_norm\n}\n")
    x = np.random.default_rng(3).normal(size=(2, 4, 8)).astype(np.float32)
    (got,) = compile_run(tmp_path, src, {}, {"x": x}, opset=17)  # the reference evaluator agrees
    np.testing.assert_allclose(np.sqrt((got ** 2).sum(-1)), 1.0, rtol=1e-5)


# --- diagnostics --------------------------------------------------------------
def rendered(text: str) -> str:
    return "\n".join(d.render() for d in modelc.check_source(text, file="t.model"))


DIAGNOSTICS = [
    ("batch_norm_axis_out_of_range", "return x -> batch_norm(axis=3)",
     "t.model:2:17: error: batch_norm: axis 3 is out of range for rank 3 (input float32[batch, 4, 6])\n"
     "    return x -> batch_norm(axis=3)\n"
     "                ^^^^^^^^^^^^^^^^^^"),
    ("batch_norm_batch_axis", "return x -> batch_norm(axis=0)",
     "t.model:2:17: error: batch_norm cannot normalize along the batch axis 0 of float32[batch, 4, 6]\n"
     "    return x -> batch_norm(axis=0)\n"
     "                ^^^^^^^^^^^^^^^^^^"),
    ("batch_norm_axis_list", "return x -> batch_norm(axis=[1, 2])",
     "t.model:2:17: error: batch_norm hyperparameter 'axis' expects an int, got list\n"
     "    return x -> batch_norm(axis=[1, 2])\n"
     "                ^^^^^^^^^^^^^^^^^^^^^^^"),
    ("group_norm_groups_do_not_divide", "return x -> group_norm(4)",
     "t.model:2:17: error: group_norm groups (4) must divide the 6 channels of its axis\n"
     "    return x -> group_norm(4)\n"
     "                ^^^^^^^^^^^^^"),
    ("group_norm_default_groups", "return x -> group_norm",
     "t.model:2:17: error: group_norm groups (32) must divide the 6 channels of its axis\n"
     "    return x -> group_norm\n"
     "                ^^^^^^^^^^"),
    ("group_norm_zero_groups", "return x -> group_norm(0)",
     "t.model:2:17: error: group_norm groups must be >= 1 (or -1 for one per channel), got 0\n"
     "    return x -> group_norm(0)\n"
     "                ^^^^^^^^^^^^^"),
    ("rms_norm_not_trailing", "return x -> rms_norm(axis=1)",
     "t.model:2:17: error: rms_norm normalizes trailing axes (Keras multiplies its scale against them), got "
     "axis=1 for float32[batch, 4, 6]\n"
     "    return x -> rms_norm(axis=1)\n"
     "                ^^^^^^^^^^^^^^^^"),
    ("unit_norm_bad_axis", "return x -> unit_norm(axis=\"last\")",
     "t.model:2:17: error: unit_norm axis must be an int or a list of ints, got 'last'\n"
     "    return x -> unit_norm(axis=\"last\")\n"
     "                ^^^^^^^^^^^^^^^^^^^^^^"),
    ("batch_norm_integer_input", "return cast(x, int32) -> batch_norm",
     "t.model:2:30: error: batch_norm expects a floating-point input, got int32[batch, 4, 6]\n"
     "    return cast(x, int32) -> batch_norm\n"
     "                             ^^^^^^^^^^"),
]


@pytest.mark.parametrize("body,want", [pytest.param(b, w, id=i) for i, b, w in DIAGNOSTICS])
def test_norm_diagnostics(body, want):
    assert rendered(f"model m(x: float32[batch, 4, 6]) {{\n    {body}\n}}\n") == want


def test_group_norm_needs_known_sizes_after_its_axis():
    src = "model m(x: float32[batch, 4, n, k]) {\n    return x -> group_norm(2, axis=1)\n}\n"
    assert rendered(src) == (
        "t.model:2:17: error: group_norm needs known sizes after its axis 1 (at most one unknown), "
        "got float32[batch, 4, n, k]\n"
        "    return x -> group_norm(2, axis=1)\n"
        "                ^^^^^^^^^^^^^^^^^^^^^")
