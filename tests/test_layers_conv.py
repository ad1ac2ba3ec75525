"""Convolution layers against Keras 3 itself, with the same weights through .safetensors; their diagnostics;
samples/resnet.model against the same network in Keras; and what onnxruntime's optimizer leaves of the
transposes that channels_last puts around each convolution."""
from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx.reference import ReferenceEvaluator
from safetensors.numpy import save_file

import modelc

from helpers import run_cli
from keras_oracle import keras

KERAS_CLASSES = {"conv1d": "Conv1D", "conv2d": "Conv2D", "conv3d": "Conv3D", "depthwise_conv1d": "DepthwiseConv1D",
                 "depthwise_conv2d": "DepthwiseConv2D", "separable_conv1d": "SeparableConv1D",
                 "separable_conv2d": "SeparableConv2D", "conv1d_transpose": "Conv1DTranspose",
                 "conv2d_transpose": "Conv2DTranspose", "conv3d_transpose": "Conv3DTranspose"}
SPATIAL = {1: (9,), 2: (7, 6), 3: (5, 6, 4)}   # odd and even sizes
CHANNELS, BATCH = 4, 2


def rank_of(name: str) -> int:
    return int(name.split("conv")[1][0])


def literal(key: str, value: Any) -> str:
    """A hyperparameter value as .model text (activations are layer names, not strings)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(key, v) for v in value) + "]"
    if isinstance(value, str) and key != "activation":
        return f'"{value}"'
    return str(value)


def keras_matches(tmp_path, name: str, kwargs: dict[str, Any], spatial: tuple[int, ...] | None = None,
                  declared: str | None = None, seed: int = 0) -> None:
    """`x -> name(**kwargs)` compiled with Keras' weights (random, bias included) from a .safetensors file
    against the Keras layer, on onnxruntime and on onnx's reference evaluator."""
    rng = np.random.default_rng(seed)
    spatial = spatial or SPATIAL[rank_of(name)]
    first = kwargs.get("data_format") == "channels_first"
    shape = (BATCH, CHANNELS, *spatial) if first else (BATCH, *spatial, CHANNELS)
    x = rng.normal(size=shape).astype(np.float32)
    layer = getattr(keras.layers, KERAS_CLASSES[name])(**kwargs)
    layer.build(shape)
    layer.set_weights([rng.normal(0.0, 0.5, w.shape).astype(np.float32) for w in layer.weights])
    want = np.asarray(layer(x))
    save_file({f"{name}.{w.name}": np.asarray(w.numpy()) for w in layer.weights}, tmp_path / "w.safetensors")
    args = ", ".join(f"{k}={literal(k, v)}" for k, v in kwargs.items())
    dims = declared or ", ".join(map(str, shape))
    src = f"model m(x: float32[{dims}]) {{\n    return x -> {name}({args})\n}}\n"
    proto = modelc.compile_source(src, weights=str(tmp_path / "w.safetensors"))
    (got,) = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    # float32 sums of up to ~100 products in another order: 1e-5 relative, and 1e-5 absolute near zero
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"{src} on onnxruntime")
    (ref,) = ReferenceEvaluator(proto).run(None, {"x": x})
    np.testing.assert_allclose(ref, want, rtol=1e-5, atol=1e-5, err_msg=f"{src} on the reference evaluator")


# --- the grid ------------------------------------------------------------------------------------
def grid(name: str, fixed: dict[str, Any], **axes: list[Any]) -> list[Any]:
    """One case per combination of the axes' values, on top of the fixed hyperparameters."""
    keys = list(axes)
    cases = []
    for values in itertools.product(*axes.values()):
        kwargs = {**fixed, **dict(zip(keys, values))}
        label = "-".join(f"{k}={v}" for k, v in kwargs.items()).replace(" ", "")
        cases.append(pytest.param(name, kwargs, id=f"{name}-{label}"))
    return cases


CASES = [
    # conv1d: every padding (causal too) x strides x dilation x odd/even kernels
    *grid("conv1d", {"filters": 3}, kernel_size=[2, 3], padding=["valid", "same", "causal"], strides=[1, 2]),
    *grid("conv1d", {"filters": 3}, kernel_size=[2, 3], padding=["valid", "same", "causal"], dilation_rate=[2]),
    *grid("conv1d", {"filters": 4, "kernel_size": 3}, groups=[2, 4], padding=["same"]),
    *grid("conv1d", {"filters": 3, "kernel_size": 2, "padding": "same", "strides": 2}, data_format=["channels_first"]),
    # conv2d: padding x strides (also per axis) x odd/even and non-square kernels
    *grid("conv2d", {"filters": 3}, padding=["valid", "same"], strides=[1, 2, [1, 3]], kernel_size=[3, [2, 4]]),
    *grid("conv2d", {"filters": 2, "kernel_size": 3}, padding=["valid", "same"], dilation_rate=[[2, 1], 2]),
    *grid("conv2d", {"filters": 4, "kernel_size": 2, "padding": "same"}, groups=[2, 4], strides=[1, 2]),
    *grid("conv2d", {"filters": 3, "kernel_size": [2, 3]}, data_format=["channels_first"], padding=["valid", "same"],
          strides=[1, 2], groups=[1]),
    *grid("conv2d", {"filters": 3, "kernel_size": 3}, activation=["relu", "softmax"], use_bias=[False]),
    # conv3d
    *grid("conv3d", {"filters": 3}, kernel_size=[2, 3], padding=["valid", "same"], strides=[1, 2]),
    *grid("conv3d", {"filters": 2, "kernel_size": [2, 2, 3], "padding": "same"}, groups=[2],
          data_format=["channels_last", "channels_first"], dilation_rate=[[2, 1, 1]]),
    # depthwise
    *grid("depthwise_conv2d", {"kernel_size": 3}, padding=["valid", "same"], strides=[1, 2], depth_multiplier=[1, 2]),
    *grid("depthwise_conv2d", {"kernel_size": [2, 3], "padding": "same"}, dilation_rate=[2],
          data_format=["channels_last", "channels_first"]),
    *grid("depthwise_conv1d", {"kernel_size": 2}, padding=["valid", "same"], strides=[2], depth_multiplier=[3]),
    # separable
    *grid("separable_conv2d", {"filters": 3, "kernel_size": 3}, padding=["valid", "same"], strides=[1, 2],
          depth_multiplier=[1, 2]),
    *grid("separable_conv2d", {"filters": 5, "kernel_size": 2, "padding": "same"}, dilation_rate=[2],
          data_format=["channels_first"], use_bias=[True, False]),
    *grid("separable_conv1d", {"filters": 3, "kernel_size": 4}, padding=["valid", "same"], strides=[3],
          depth_multiplier=[2]),
    # transposed: padding x strides (below, equal to and above the kernel) x odd/even kernels x output_padding
    *grid("conv2d_transpose", {"filters": 3}, padding=["valid", "same"], strides=[1, 2, 3], kernel_size=[2, 3]),
    *grid("conv2d_transpose", {"filters": 2, "kernel_size": 3, "strides": [2, 3]}, padding=["valid", "same"],
          output_padding=[[1, 0], [0, 2]]),
    *grid("conv2d_transpose", {"filters": 2, "kernel_size": [2, 3]}, padding=["valid", "same"], dilation_rate=[2],
          data_format=["channels_first"]),
    *grid("conv1d_transpose", {"filters": 3}, kernel_size=[3, 4], padding=["valid", "same"], strides=[2]),
    *grid("conv1d_transpose", {"filters": 3, "kernel_size": 3, "strides": 2}, output_padding=[1], padding=["same"],
          activation=["tanh"]),
    *grid("conv3d_transpose", {"filters": 2, "kernel_size": 2}, padding=["valid", "same"], strides=[2],
          data_format=["channels_first"]),
]


@pytest.mark.parametrize("name, kwargs", CASES)
def test_conv_matches_keras(tmp_path, name, kwargs):
    keras_matches(tmp_path, name, kwargs)


@pytest.mark.parametrize("size", [7, 8])
@pytest.mark.parametrize("name, kwargs", [
    ("conv2d", {"filters": 2, "kernel_size": [2, 3], "strides": 2, "padding": "same"}),
    ("depthwise_conv2d", {"kernel_size": 3, "dilation_rate": [2, 1], "padding": "same"}),
    ("conv2d", {"filters": 2, "kernel_size": 4, "padding": "same"}),
    ("depthwise_conv2d", {"kernel_size": 2, "strides": 2, "padding": "same"}),
], ids=["same-s2", "same-dilated", "same-s1-even", "depthwise-same-s2"])
def test_conv_unknown_sizes_match_keras(tmp_path, name, kwargs, size):
    """Spatial sizes fixed only at run time: "same" with a stride falls back on ONNX's SAME_UPPER."""
    keras_matches(tmp_path, name, kwargs, spatial=(size, size + 1), declared="batch, height, width, 4")


def test_conv_weights_keep_keras_names_and_layout():
    src = """model m(x: float32[batch, 8, 8, 6]) {
    return x -> conv2d(4, [2, 3], groups=2) -> depthwise_conv2d(3, depth_multiplier=2, use_bias=false)
             -> separable_conv2d(5, 1) -> conv2d_transpose(3, 2, strides=2)
}
"""
    proto = modelc.compile_source(src)
    shapes = {t.name: list(t.dims) for t in proto.graph.initializer}
    assert shapes == {"conv2d.kernel": [2, 3, 3, 4], "conv2d.bias": [4], "depthwise_conv2d.kernel": [3, 3, 4, 2],
                      "separable_conv2d.depthwise_kernel": [1, 1, 8, 1],
                      "separable_conv2d.pointwise_kernel": [1, 1, 8, 5], "separable_conv2d.bias": [5],
                      "conv2d_transpose.kernel": [2, 2, 3, 5], "conv2d_transpose.bias": [3]}
    assert [d.dim_value or d.dim_param for d in proto.graph.output[0].type.tensor_type.shape.dim] == \
        ["batch", 10, 8, 3]


# --- diagnostics ---------------------------------------------------------------------------------
def rendered(text: str) -> str:
    return "\n".join(d.render() for d in modelc.check_source(text, file="t.model"))


def one_layer(call: str, shape: str = "batch, 4, 4, 3") -> str:
    return f"model m(x: float32[{shape}]) {{\n    return x -> {call}\n}}\n"


DIAGNOSTICS = [
    ("kernel_larger_than_valid_input", one_layer("conv2d(8, 5)"),
     'conv2d kernel_size [5, 5] is larger than the input (4 along spatial axis 0 of float32[batch, 4, 4, 3]) '
     'with padding="valid"; use padding="same" or a smaller kernel'),
    ("dilated_kernel_larger", one_layer("conv1d(2, 3, dilation_rate=3)", "batch, 6, 3"),
     'conv1d kernel_size [3] (dilated to 7) is larger than the input (6 along spatial axis 0 of float32[batch, 6, 3]) '
     'with padding="valid"; use padding="same" or a smaller kernel'),
    ("groups_do_not_divide_channels", one_layer("conv2d(8, 3, groups=2)"),
     'conv2d with groups=2 needs input channels divisible by 2, got 3 channels (axis 3 of float32[batch, 4, 4, 3], '
     'data_format="channels_last")'),
    ("channels_first_image_read_as_channels_last", one_layer("conv2d(6, 3, groups=3)", "batch, 3, 32, 32"),
     'conv2d with groups=3 needs input channels divisible by 3, got 32 channels (axis 3 of float32[batch, 3, 32, 32], '
     'data_format="channels_last"); is the image channels_first?'),
    ("same_strided_dilated_unknown_size", one_layer('depthwise_conv2d(3, strides=[1, 2], dilation_rate=[2, 1], '
                                                    'padding="same")', "batch, height, width, 3"),
     'depthwise_conv2d with padding="same", strides [1, 2] and dilation_rate [2, 1] needs known spatial sizes, '
     'got float32[batch, height, width, 3]'),
    ("filters_not_divisible_by_groups", one_layer("conv2d(5, 3, groups=3)"),
     "conv2d filters=5 must be divisible by groups=3"),
    ("bad_padding", one_layer('conv2d(8, 3, padding="full")'),
     "conv2d padding must be \"valid\" or \"same\", got 'full'"),
    ("causal_is_for_conv1d", one_layer('conv2d(8, 3, padding="causal")'),
     "conv2d padding must be \"valid\" or \"same\", got 'causal'"),
    ("bad_data_format", one_layer('conv2d(8, 3, data_format="nhwc")'),
     "conv2d data_format must be \"channels_last\" or \"channels_first\", got 'nhwc'"),
    ("strides_with_dilation", one_layer("conv2d(4, 2, strides=2, dilation_rate=2)"),
     "conv2d takes strides > 1 or dilation_rate > 1, not both (as Keras), got strides [2, 2] and dilation_rate [2, 2]"),
    ("zero_filters", one_layer("conv2d(0, 3)"), "conv2d filters must be >= 1, got 0"),
    ("negative_strides", one_layer("conv2d(4, 3, strides=[1, -2])"),
     "conv2d strides must be an int or a list of 2 ints, each >= 1, got [1, -2]"),
    ("kernel_size_wrong_length", one_layer("conv2d(4, [3, 3, 3])"),
     "conv2d kernel_size must be an int or a list of 2 ints, each >= 1, got [3, 3, 3]"),
    ("zero_depth_multiplier", one_layer("depthwise_conv2d(3, depth_multiplier=0)"),
     "depthwise_conv2d depth_multiplier must be >= 1, got 0"),
    ("output_padding_not_below_strides", one_layer("conv2d_transpose(2, 3, strides=2, output_padding=2)"),
     "conv2d_transpose output_padding [2, 2] must be smaller than strides [2, 2]"),
    ("wrong_rank", one_layer("conv2d(4, 3)", "batch, 4, 3"),
     "conv2d expects a rank-4 input [batch, height, width, channels], got float32[batch, 4, 3]"),
    ("unknown_channels", one_layer("conv2d(4, 3)", "batch, 4, 4, c"),
     'conv2d needs a known channel dimension to size its weights, got float32[batch, 4, 4, c] '
     '(data_format="channels_last": channels on axis -1)'),
    ("integer_input", "model m(x: int32[batch, 4, 4, 3]) {\n    return x -> conv2d(4, 3)\n}\n",
     "conv2d expects a floating-point input, got int32[batch, 4, 4, 3]"),
]


@pytest.mark.parametrize("program, message", [pytest.param(p, m, id=i) for i, p, m in DIAGNOSTICS])
def test_conv_diagnostics(program, message):
    call = program.splitlines()[1]
    col = call.index("->") + 4
    span = "^" * (len(call) - col + 1)
    assert rendered(program) == f"t.model:2:{col}: error: {message}\n{call}\n{' ' * (col - 1)}{span}"


# --- samples/resnet.model against Keras ----------------------------------------------------------
class KerasResnet:
    """samples/resnet.model built in Keras, each weighted layer recorded under its modelc path."""

    def __init__(self) -> None:
        self.named: dict[str, Any] = {}

    def add(self, path: str, layer: Any) -> Any:
        self.named[path] = layer
        return layer

    def conv_bn(self, scope: str, i: int, x: Any, filters: int, k: int, strides: int = 1, relu: bool = True) -> Any:
        suffix = f"_{i}" if i else ""
        conv = keras.layers.Conv2D(filters, k, strides=strides, padding="same" if k > 1 else "valid", use_bias=False)
        x = self.add(f"{scope}conv2d{suffix}", conv)(x)
        x = self.add(f"{scope}batch_norm{suffix}", keras.layers.BatchNormalization(epsilon=1e-3))(x)
        return keras.layers.ReLU()(x) if relu else x

    def residual(self, scope: str, x: Any, filters: int) -> Any:
        y = self.conv_bn(scope, 0, x, filters, 3)
        y = self.conv_bn(scope, 1, y, filters, 3, relu=False)
        return keras.layers.ReLU()(x + y)

    def downsample(self, scope: str, x: Any, filters: int) -> Any:
        y = self.conv_bn(scope, 0, x, filters, 3, strides=2)
        y = self.conv_bn(scope, 1, y, filters, 3, relu=False)
        shortcut = self.conv_bn(scope, 2, x, filters, 1, strides=2, relu=False)
        return keras.layers.ReLU()(shortcut + y)

    def build(self) -> Any:
        image = keras.Input((32, 32, 3))
        x = keras.layers.MaxPooling2D(2)(self.conv_bn("", 0, image, 16, 3))
        x = self.residual("residual.", x, 16)
        x = self.downsample("downsample.", x, 32)
        x = self.residual("residual_1.", x, 32)
        x = keras.layers.GlobalAveragePooling2D()(x)
        out = keras.layers.Softmax()(self.add("dense", keras.layers.Dense(10))(x))
        return keras.Model(image, out)


def test_resnet_sample_matches_keras(tmp_path):
    keras.utils.set_random_seed(5)
    net = KerasResnet()
    model = net.build()
    rng = np.random.default_rng(5)
    weights = {}
    for path, layer in net.named.items():
        values = []
        for w in layer.weights:   # batch statistics away from 0 and 1, so that batch_norm is exercised
            a = rng.uniform(0.5, 1.5, w.shape) if w.name == "moving_variance" else rng.normal(0.0, 0.3, w.shape)
            values.append(a.astype(np.float32))
            weights[f"{path}.{w.name}"] = values[-1]
        layer.set_weights(values)
    save_file(weights, tmp_path / "resnet.safetensors")
    out = tmp_path / "resnet.onnx"
    result = run_cli("compile", "samples/resnet.model", "--weights", tmp_path / "resnet.safetensors", "-o", out)
    assert result.returncode == 0, result.stderr
    x = rng.normal(size=(3, 32, 32, 3)).astype(np.float32)
    (got,) = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"image": x})
    np.testing.assert_allclose(got, np.asarray(model.predict(x, verbose=0)), rtol=1e-5, atol=1e-6)


# --- what onnxruntime leaves of channels_last ----------------------------------------------------
CONV_FAMILY = {"Conv", "FusedConv", "NhwcConv", "BatchNormalization", "Relu", "Add", "Sub", "Mul", "Div", "MaxPool",
               "ReorderInput", "ReorderOutput"}


def optimized_graph(tmp_path, proto: onnx.ModelProto, level: str) -> onnx.GraphProto:
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3   # the NCHWc warning about hardware-specific files
    ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return onnx.load(str(tmp_path / "optimized.onnx")).graph


def transposes_between(graph: onnx.GraphProto) -> tuple[int, int]:
    """(Transposes with conv-family nodes on both sides, Transpose -> Transpose chains) in the graph."""
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    between = pairs = 0
    for n in graph.node:
        if n.op_type != "Transpose":
            continue
        before = producer.get(n.input[0])
        after = consumers.get(n.output[0], [])
        between += before is not None and before.op_type in CONV_FAMILY and any(
            m.op_type in CONV_FAMILY for m in after)
        pairs += before is not None and before.op_type == "Transpose"
    return between, pairs


def test_resnet_transposes_cancel_in_onnxruntime(tmp_path):
    """channels_last puts a Transpose pair around every convolution, and onnxruntime's transpose optimizer
    cancels every pair. With every optimization (ORT_ENABLE_ALL, the default), the one Transpose left is the
    model input's (NHWC -> NCHW, before the first Conv). At ORT_ENABLE_EXTENDED (before the NCHWc layout pass)
    single Transposes back to NHWC remain where the tail (the last residual Add, the global average) starts,
    but never a pair."""
    proto = modelc.compile_file("samples/resnet.model")
    graph = optimized_graph(tmp_path, proto, "ORT_ENABLE_ALL")
    ops = Counter(n.op_type for n in graph.node)
    assert ops["Conv"] == 8
    assert transposes_between(graph) == (0, 0)
    assert ops["Transpose"] == 1 and graph.node[0].op_type == "Transpose" and graph.node[0].input[0] == "image"
    assert transposes_between(optimized_graph(tmp_path, proto, "ORT_ENABLE_EXTENDED"))[1] == 0
