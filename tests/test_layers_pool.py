"""Pooling and shape layers against Keras 3 itself (jax backend): each case compiles a one-layer model, runs it
on onnxruntime and on onnx's ReferenceEvaluator, and compares both with the same Keras layer called on the same
input (float32 within 1e-5 relative). Then a small CNN end to end through `modelc compile --weights`, the
Transposes onnxruntime leaves between consecutive pools, and the golden diagnostics of the family."""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from safetensors.numpy import save_file

import modelc

from helpers import run_cli
from keras_oracle import keras
from oracles import assert_matches, run_ort, run_reference

L = keras.layers


# --- the oracle ------------------------------------------------------------------------------------
def literal(v: Any) -> str:
    """A Python hyperparameter value as .model source."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(literal(i) for i in v) + "]"
    return repr(v)


def keras_value(v: Any) -> Any:
    return tuple(keras_value(i) for i in v) if isinstance(v, list) else v


def check_layer(name: str, hp: dict[str, Any], keras_layer: Any, shape: tuple[int, ...], dims: str | None = None,
                dtype: str = "float32", reference: bool = True, tol: tuple[float, float] | None = None) -> None:
    """modelc's `name(**hp)` on an input of `shape` (declared with `dims`, default the shape with a symbolic
    batch) against `keras_layer` on the same input, on onnxruntime and (unless `reference` is false) on the
    reference evaluator."""
    args = ", ".join(f"{k}={literal(v)}" for k, v in hp.items())
    declared = dims or ", ".join(["batch", *map(str, shape[1:])])
    src = f"model m(x: {dtype}[{declared}]) {{\n    return x -> {name}({args})\n}}\n"
    rng = np.random.default_rng(len(src))
    x = (rng.normal(size=shape) * 3).astype(dtype) if dtype.startswith("float") \
        else rng.integers(0, 256, size=shape).astype(dtype)
    want = np.asarray(keras_layer(x))
    proto = modelc.compile_source(src)
    for runner in (run_ort, run_reference) if reference else (run_ort,):
        (got,) = runner(proto, {"x": x})
        assert_matches(got, want, f"{name}({args}) on {runner.__name__}", tol)


# --- pooling ---------------------------------------------------------------------------------------
SPATIAL = {1: (7,), 2: (7, 6), 3: (5, 4, 5)}
POOL_GRID = [  # (pool_size, strides): odd, even and mixed windows; default, 1, 2 and mixed strides
    (2, None), (3, None), (2, 1), (3, 2), ("mixed", None), ("mixed", "mixed"),
]


def spatial_shape(n: int, fmt: str, channels: int = 3, batch: int = 2) -> tuple[int, ...]:
    return (batch, *SPATIAL[n], channels) if fmt == "channels_last" else (batch, channels, *SPATIAL[n])


def expand(v: Any, n: int) -> Any:
    return [2, 3, 1][:n] if v == "mixed" else v


POOL_CASES = [
    pytest.param(kind, n, pool, strides, padding, fmt, id=f"{kind}{n}d-k{pool}-s{strides}-{padding}-{fmt[9:]}")
    for kind, n, (pool, strides), padding, fmt in itertools.product(
        ("max", "avg"), (1, 2, 3), POOL_GRID, ("valid", "same"), ("channels_last", "channels_first"))
    if fmt == "channels_last" or (pool, strides) in ((3, 2), ("mixed", "mixed"))
]


@pytest.mark.parametrize("kind, n, pool, strides, padding, fmt", POOL_CASES)
def test_pool_matches_keras(kind: str, n: int, pool: Any, strides: Any, padding: str, fmt: str) -> None:
    hp = {"pool_size": expand(pool, n), "padding": padding, "data_format": fmt}
    if strides is not None:
        hp["strides"] = expand(strides, n)
    cls = getattr(L, f"{'Max' if kind == 'max' else 'Average'}Pooling{n}D")
    # onnx 1.23's reference MaxPool with all strides 1 takes a 2-D-only path that misreads pads (its
    # output has the wrong shape); onnxruntime is still checked against Keras there
    reference = not (kind == "max" and padding == "same" and strides == 1)
    check_layer(f"{kind}_pool{n}d", hp, cls(**{k: keras_value(v) for k, v in hp.items()}), spatial_shape(n, fmt),
                reference=reference)


def test_pool_with_unknown_spatial_dims() -> None:
    """auto_pad, not pads computed from sizes: a model over images of any size pools like Keras."""
    hp = {"pool_size": 3, "strides": 2, "padding": "same"}
    check_layer("avg_pool2d", hp, L.AveragePooling2D(3, 2, "same"), (2, 9, 5, 3), dims="batch, h, w, 3")
    check_layer("max_pool2d", hp, L.MaxPooling2D(3, 2, "same"), (2, 4, 7, 3), dims="batch, h, w, 3")
    hp = {"pool_size": [2, 3], "strides": 1, "padding": "same"}  # stride 1: explicit pads, known without sizes
    check_layer("avg_pool2d", hp, L.AveragePooling2D((2, 3), 1, "same"), (2, 5, 4, 3), dims="batch, h, w, 3")


def test_pool_defaults_match_keras() -> None:
    check_layer("max_pool2d", {}, L.MaxPooling2D(), (2, 6, 5, 3))
    check_layer("max_pool1d", {}, L.MaxPooling1D(), (2, 7, 3))
    check_layer("max_pool3d", {}, L.MaxPooling3D(), (2, 4, 5, 4, 2))


@pytest.mark.parametrize("kind, n, fmt, keepdims", [
    pytest.param(kind, n, fmt, keep, id=f"{kind}{n}d-{fmt[9:]}-keep{keep}")
    for kind, n, fmt, keep in itertools.product(("avg", "max"), (1, 2, 3), ("channels_last", "channels_first"),
                                                (False, True))])
def test_global_pool_matches_keras(kind: str, n: int, fmt: str, keepdims: bool) -> None:
    cls = getattr(L, f"Global{'Max' if kind == 'max' else 'Average'}Pooling{n}D")
    hp = {"data_format": fmt, "keepdims": keepdims}
    check_layer(f"global_{kind}_pool{n}d", hp, cls(**hp), spatial_shape(n, fmt))


# --- padding, cropping, upsampling -----------------------------------------------------------------
@pytest.mark.parametrize("padding", [1, 0, [2, 0]])
def test_zero_padding1d_matches_keras(padding: Any) -> None:
    check_layer("zero_padding1d", {"padding": padding}, L.ZeroPadding1D(keras_value(padding)), (2, 5, 3))


@pytest.mark.parametrize("padding, fmt", [(2, "channels_last"), ([1, 2], "channels_last"),
                                          ([[0, 1], [2, 3]], "channels_last"), ([[1, 0], [0, 2]], "channels_first")])
def test_zero_padding2d_matches_keras(padding: Any, fmt: str) -> None:
    check_layer("zero_padding2d", {"padding": padding, "data_format": fmt},
                L.ZeroPadding2D(keras_value(padding), data_format=fmt), spatial_shape(2, fmt))


@pytest.mark.parametrize("cropping", [1, [0, 2], [3, 0]])
def test_cropping1d_matches_keras(cropping: Any) -> None:
    check_layer("cropping1d", {"cropping": cropping}, L.Cropping1D(keras_value(cropping)), (2, 7, 3))


@pytest.mark.parametrize("cropping, fmt", [(1, "channels_last"), ([2, 1], "channels_last"),
                                           ([[0, 3], [1, 0]], "channels_last"), ([[1, 2], [0, 1]], "channels_first")])
def test_cropping2d_matches_keras(cropping: Any, fmt: str) -> None:
    check_layer("cropping2d", {"cropping": cropping, "data_format": fmt},
                L.Cropping2D(keras_value(cropping), data_format=fmt), spatial_shape(2, fmt))


def test_cropping_with_unknown_steps() -> None:
    check_layer("cropping1d", {"cropping": [2, 0]}, L.Cropping1D((2, 0)), (2, 6, 3), dims="batch, t, 3")


@pytest.mark.parametrize("size", [2, 3])
def test_upsampling1d_matches_keras(size: int) -> None:
    check_layer("upsampling1d", {"size": size}, L.UpSampling1D(size), (2, 4, 3))


@pytest.mark.parametrize("size, fmt, interpolation", [
    (2, "channels_last", "nearest"), ([3, 2], "channels_last", "nearest"), ([1, 3], "channels_first", "nearest"),
    (2, "channels_last", "bilinear"), ([3, 2], "channels_last", "bilinear"), (4, "channels_first", "bilinear"),
    ([1, 3], "channels_first", "bilinear")])
def test_upsampling2d_matches_keras(size: Any, fmt: str, interpolation: str) -> None:
    hp = {"size": size, "data_format": fmt, "interpolation": interpolation}
    # bilinear: jax sums w0 * x0 + w1 * x1, onnxruntime another order; where the sum nearly cancels (inputs
    # ~|9|, output ~0.3) that is a few ulps of the inputs: 1e-5 absolute
    tol = (1e-5, 1e-5) if interpolation == "bilinear" else None
    check_layer("upsampling2d", hp, L.UpSampling2D(keras_value(size), fmt, interpolation), spatial_shape(2, fmt),
                tol=tol)


# --- shape and scale -------------------------------------------------------------------------------
@pytest.mark.parametrize("dims, shape", [([2, 1], (2, 4, 3)), ([3, 1, 2], (2, 4, 3, 5)), ([1, 2], (2, 4, 3))])
def test_permute_matches_keras(dims: list[int], shape: tuple[int, ...]) -> None:
    check_layer("permute", {"dims": dims}, L.Permute(tuple(dims)), shape)


@pytest.mark.parametrize("n", [1, 3])
def test_repeat_vector_matches_keras(n: int) -> None:
    check_layer("repeat_vector", {"n": n}, L.RepeatVector(n), (2, 5))


def test_rescaling_a_scalar_by_one_item_lists() -> None:
    import onnxruntime as ort
    proto = modelc.compile_source("model m(x: float32[]) { return x -> rescaling([2.0], offset=[1.0]) }")
    (y,) = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": np.array(3.0, np.float32)})
    assert y.shape == () and float(y) == 7.0


@pytest.mark.parametrize("scale, offset, dtype", [(1 / 255, 0.0, "float32"), (2, -1, "float32"),
                                                  (1 / 127.5, -1.0, "int32"), ([0.5, 2.0, -1.0], [1.0, 0.0, 3.0],
                                                                               "float32")])
def test_rescaling_matches_keras(scale: Any, offset: Any, dtype: str) -> None:
    check_layer("rescaling", {"scale": scale, "offset": offset}, L.Rescaling(scale, offset), (2, 4, 3), dtype=dtype)


@pytest.mark.parametrize("name, hp, keras_layer, shape", [
    ("zero_padding2d", {"padding": [1, 2]}, L.ZeroPadding2D((1, 2)), (2, 3, 4, 2)),
    ("cropping1d", {"cropping": [1, 2]}, L.Cropping1D((1, 2)), (2, 6, 2)),
    ("upsampling2d", {"size": [2, 1]}, L.UpSampling2D((2, 1)), (2, 3, 4, 2)),
    ("permute", {"dims": [2, 1]}, L.Permute((2, 1)), (2, 3, 4)),
    ("repeat_vector", {"n": 2}, L.RepeatVector(2), (2, 3)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_shape_layers_keep_integer_dtypes(name: str, hp: dict, keras_layer: Any, shape: tuple[int, ...]) -> None:
    check_layer(name, hp, keras_layer, shape, dtype="int32")


# --- end to end: a small CNN through `modelc compile --weights` ------------------------------------
CNN = """\
model cnn(image: float32[batch, 12, 10, 3]) {
    return image -> rescaling(1 / 255) -> zero_padding2d(1) -> max_pool2d(2)
                 -> avg_pool2d(3, strides=1, padding="same") -> upsampling2d(2, interpolation="bilinear")
                 -> cropping2d([[1, 1], [0, 2]]) -> max_pool2d(3, strides=2, padding="same")
                 -> global_avg_pool2d -> dense(4) -> repeat_vector(2) -> permute([2, 1])
                 -> global_max_pool1d(keepdims=true)
}
"""


def keras_cnn() -> tuple[Any, Any]:
    inputs = keras.Input((12, 10, 3))
    dense = L.Dense(4)
    z = L.Rescaling(1 / 255)(inputs)
    for lay in (L.ZeroPadding2D(1), L.MaxPooling2D(2), L.AveragePooling2D(3, 1, "same"),
                L.UpSampling2D(2, interpolation="bilinear"), L.Cropping2D(((1, 1), (0, 2))),
                L.MaxPooling2D(3, 2, "same"), L.GlobalAveragePooling2D(), dense, L.RepeatVector(2),
                L.Permute((2, 1)), L.GlobalMaxPooling1D(keepdims=True)):
        z = lay(z)
    return keras.Model(inputs, z), dense


def test_cnn_compiles_with_weights_and_matches_keras(tmp_path) -> None:
    keras.utils.set_random_seed(5)
    model, dense = keras_cnn()
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in dense.weights)
    save_file({"dense.kernel": kernel, "dense.bias": bias}, tmp_path / "cnn.safetensors")
    (tmp_path / "cnn.model").write_text(CNN)
    out = tmp_path / "cnn.onnx"
    result = run_cli("compile", tmp_path / "cnn.model", "--weights", tmp_path / "cnn.safetensors", "-o", out)
    assert result.returncode == 0, result.stderr
    image = np.random.default_rng(1).uniform(0, 255, size=(3, 12, 10, 3)).astype(np.float32)
    want = np.asarray(model.predict(image, verbose=0))
    proto = onnx.load(str(out))
    for runner in (run_ort, run_reference):
        (got,) = runner(proto, {"image": image})
        assert_matches(got, want, f"cnn on {runner.__name__}")


def test_transposes_between_consecutive_pools_cancel(tmp_path) -> None:
    """channels_last pools are Transpose -> NCHW pool -> Transpose; between two pools (an element-wise op
    between them included) onnxruntime's optimizer cancels the pair, leaving only the outer two."""
    src = """\
model m(x: float32[batch, 16, 16, 3]) {
    return x -> max_pool2d(2) -> relu -> avg_pool2d(2) -> max_pool2d(3, strides=1, padding="same")
}
"""
    proto = modelc.compile_source(src)
    assert [n.op_type for n in proto.graph.node].count("Transpose") == 6
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    optimized = onnx.load(str(tmp_path / "optimized.onnx"))
    assert [n.op_type for n in optimized.graph.node].count("Transpose") == 2


# --- diagnostics -----------------------------------------------------------------------------------
def rendered(text: str) -> str:
    return "\n".join(d.render() for d in modelc.check_source(text, file="t.model"))


def program(shape: str, stage: str) -> str:
    return f"model m(x: float32[{shape}]) {{\n    return x -> {stage}\n}}\n"


DIAGNOSTICS = [
    ("pool_larger_than_valid_input", program("batch, 3, 8, 2", "max_pool2d(4)"),
     't.model:2:17: error: max_pool2d pool_size [4, 4] is larger than the input (3 along spatial axis 0 of '
     'float32[batch, 3, 8, 2]) with padding="valid"; use padding="same" or a smaller kernel'),
    ("pool_wrong_rank", program("batch, 8, 2", "max_pool2d(2)"),
     "t.model:2:17: error: max_pool2d expects a rank-4 input [batch, height, width, channels], "
     "got float32[batch, 8, 2]"),
    ("pool_wrong_rank_channels_first", program("batch, 2, 8, 8", 'avg_pool3d(2, data_format="channels_first")'),
     "t.model:2:17: error: avg_pool3d expects a rank-5 input [batch, channels, depth, height, width], "
     "got float32[batch, 2, 8, 8]"),
    ("global_pool_wrong_rank", program("batch, 8", "global_avg_pool1d"),
     "t.model:2:17: error: global_avg_pool1d expects a rank-3 input [batch, steps, channels], got float32[batch, 8]"),
    ("bad_padding_string", program("batch, 8, 8, 2", 'max_pool2d(2, padding="full")'),
     "t.model:2:17: error: max_pool2d padding must be \"valid\" or \"same\", got 'full'"),
    ("bad_data_format", program("batch, 8, 8, 2", 'global_max_pool2d(data_format="nhwc")'),
     "t.model:2:17: error: global_max_pool2d data_format must be \"channels_last\" or \"channels_first\", "
     "got 'nhwc'"),
    ("bad_pool_size", program("batch, 8, 8, 2", "avg_pool2d([2, 2, 2])"),
     "t.model:2:17: error: avg_pool2d pool_size must be an int or a list of 2 ints, each >= 1, got [2, 2, 2]"),
    ("zero_strides", program("batch, 8, 2", "max_pool1d(2, strides=0)"),
     "t.model:2:17: error: max_pool1d strides must be an int >= 1, got 0"),
    ("permute_not_a_permutation", program("batch, 4, 3", "permute([1, 1])"),
     "t.model:2:17: error: permute dims must be a permutation of 1..2 (the axes after the batch axis, counted "
     "from 1) for input float32[batch, 4, 3], got [1, 1]"),
    ("permute_zero_based", program("batch, 4, 3", "permute([0, 1])"),
     "t.model:2:17: error: permute dims must be a permutation of 1..2 (the axes after the batch axis, counted "
     "from 1) for input float32[batch, 4, 3], got [0, 1]"),
    ("permute_not_ints", program("batch, 4, 3", 'permute([2, "a"])'),
     "t.model:2:17: error: permute dims must be a permutation of 1..2 (the axes after the batch axis, counted "
     "from 1) for input float32[batch, 4, 3], got [2, 'a']"),
    ("permute_floats", program("batch, 4, 3", "permute([1.0, 2])"),
     "t.model:2:17: error: permute dims must be a permutation of 1..2 (the axes after the batch axis, counted "
     "from 1) for input float32[batch, 4, 3], got [1.0, 2]"),
    ("cropping_more_than_size", program("batch, 6, 5, 2", "cropping2d([[1, 1], [3, 2]])"),
     "t.model:2:17: error: cropping2d crops 3 + 2 from axis 2 of size 5, leaving nothing "
     "(input float32[batch, 6, 5, 2])"),
    ("cropping_bad_form", program("batch, 6, 5, 2", "cropping2d([[1, 1], [3, 2], [0, 0]])"),
     "t.model:2:17: error: cropping2d cropping must be an int, a list of 2 ints or a list of 2 [before, after] "
     "pairs, got [[1, 1], [3, 2], [0, 0]]"),
    ("negative_padding", program("batch, 6, 2", "zero_padding1d([-1, 2])"),
     "t.model:2:17: error: zero_padding1d padding must be an int or a list of 2 ints, each >= 0, got [-1, 2]"),
    ("bad_interpolation", program("batch, 6, 5, 2", 'upsampling2d(interpolation="bicubic")'),
     "t.model:2:17: error: upsampling2d interpolation must be \"nearest\" or \"bilinear\", got 'bicubic'"),
    ("repeat_vector_wrong_rank", program("batch, 4, 3", "repeat_vector(2)"),
     "t.model:2:17: error: repeat_vector expects a rank-2 input [batch, features], got float32[batch, 4, 3]"),
    ("rescaling_list_length", program("batch, 4, 3", "rescaling([1.0, 2.0])"),
     "t.model:2:17: error: rescaling scale must be a number or a list of numbers, one per element of the last "
     "axis (input float32[batch, 4, 3]), got [1.0, 2.0]"),
    ("avg_pool_needs_pool_size", program("batch, 8, 2", "avg_pool1d"),
     "t.model:2:17: error: avg_pool1d needs its hyperparameter 'pool_size'"),
    ("upsampling_int64", "model m(x: int64[batch, 8, 2]) {\n    return x -> upsampling1d\n}\n",
     "t.model:2:17: error: upsampling1d takes a floating-point or int32 input, got int64[batch, 8, 2]; cast it first"),
    ("pool_on_integers", "model m(x: int32[batch, 8, 2]) {\n    return x -> max_pool1d\n}\n",
     "t.model:2:17: error: max_pool1d expects a floating-point input, got int32[batch, 8, 2]"),
]


@pytest.mark.parametrize("source, expected", [pytest.param(s, e, id=i) for i, s, e in DIAGNOSTICS])
def test_diagnostic(source: str, expected: str) -> None:
    got = rendered(source)
    assert got.splitlines()[0] == expected, got

