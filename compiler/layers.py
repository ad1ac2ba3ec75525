"""The one table of built-in layers (Keras names, hyperparameters, defaults, weight names and inference
semantics). An activation that is also a built-in function is derived from its entry in ops.FUNCTIONS."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from .builder import BlockBuilder
from .ir import InitSpec, Value
from .ops import FUNCTIONS, lower_concat, reshape_shape
from .source import Span, error
from .types import FLOAT_DTYPES, INT_DTYPES, TensorType

KERAS_EPSILON = 1e-7          # keras.backend.epsilon(), used by Normalization
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


REQUIRED = object()  # a hyperparameter without a default


@dataclass(frozen=True)
class LayerContext:
    """What a built-in layer may ask of the lowering around it (never the whole Lowerer)."""

    apply: Callable[[Any, list[Value], BlockBuilder, Span | None], Value]  # apply a bound layer (an activation)
    float_dtype: str | None = None           # compile --dtype: the dtype of float tables (embeddings)


@dataclass
class BuiltinLayer:
    name: str
    hparams: list[tuple[str, str, Any]]      # (name, kind, default); kind as in a .model signature
    lower: Callable[..., Value]              # (context, builder, inputs, hparams, loc) -> Value
    doc: str
    variadic: bool = False                   # takes any number of tensor inputs (concat)


def _float_input(x: Value, layer: str, loc: Span | None) -> Value:
    if x.type.dtype not in FLOAT_DTYPES:
        raise error(loc, f"{layer} expects a floating-point input, got {x.type}")
    return x


def _last_dim(x: Value, layer: str, loc: Span | None) -> int:
    if not x.type.shape or not isinstance(x.type.shape[-1], int):
        raise error(loc, f"{layer} needs a known last dimension to size its weights, got {x.type}")
    return x.type.shape[-1]


def _activation(onnx_op: str, **attrs: Any) -> Callable[..., Value]:
    def lower(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
        x = _float_input(xs[0], onnx_op.lower(), loc)
        values = {k: hp.get(k, v) for k, v in attrs.items()}
        return b.node(onnx_op, [x], x.type, loc, **values)
    return lower


def lower_linear(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    return xs[0]


def lower_gelu(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    # Keras' default gelu (approximate=False): x * 0.5 * (1 + erf(x / sqrt(2)))
    x = _float_input(xs[0], "gelu", loc)
    dt = x.type.dtype
    erf = b.node("Erf", [b.node("Div", [x, b.const(math.sqrt(2.0), dt)], x.type, loc)], x.type, loc)
    one_plus = b.node("Add", [erf, b.const(1.0, dt)], x.type, loc)
    return b.node("Mul", [b.node("Mul", [x, b.const(0.5, dt)], x.type, loc), one_plus], x.type, loc)


def lower_silu(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    x = _float_input(xs[0], "silu", loc)
    return b.node("Mul", [x, b.node("Sigmoid", [x], x.type, loc)], x.type, loc)


def lower_dense(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    x = _float_input(xs[0], "dense", loc)
    units = hp["units"]
    if units < 1:
        raise error(loc, f"dense units must be >= 1, got {units}")
    n, dt = _last_dim(x, "dense", loc), x.type.dtype
    kernel = b.weight("kernel", TensorType(dt, (n, units)), hp["kernel_initializer"], loc)
    out_type = TensorType(dt, x.type.shape[:-1] + (units,))
    y = b.node("MatMul", [x, kernel], out_type, loc)
    if hp["use_bias"]:
        bias = b.weight("bias", TensorType(dt, (units,)), hp["bias_initializer"], loc)
        y = b.node("Add", [y, bias], out_type, loc)
    return ctx.apply(hp["activation"], [y], b, loc)


def lower_dropout(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    if not 0 <= hp["rate"] < 1:
        raise error(loc, f"dropout rate must be in [0, 1), got {hp['rate']}")
    return xs[0]  # identity at inference, as in Keras


def lower_batch_norm(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    # Keras inference form over the last axis: (x - mean) / sqrt(var + eps) * gamma + beta
    x = _float_input(xs[0], "batch_norm", loc)
    c, dt = _last_dim(x, "batch_norm", loc), x.type.dtype
    vec = TensorType(dt, (c,))
    gamma = b.weight("gamma", vec, InitSpec("ones"), loc)
    beta = b.weight("beta", vec, InitSpec("zeros"), loc)
    mean = b.weight("moving_mean", vec, InitSpec("zeros"), loc)
    var = b.weight("moving_variance", vec, InitSpec("ones"), loc)
    std = b.node("Sqrt", [b.node("Add", [var, b.const(hp["epsilon"], dt)], vec, loc)], vec, loc)
    centered = b.node("Sub", [x, mean], x.type, loc)
    scaled = b.node("Mul", [b.node("Div", [centered, std], x.type, loc), gamma], x.type, loc)
    return b.node("Add", [scaled, beta], x.type, loc)


def lower_layer_norm(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    x = _float_input(xs[0], "layer_norm", loc)
    c, dt = _last_dim(x, "layer_norm", loc), x.type.dtype
    gamma = b.weight("gamma", TensorType(dt, (c,)), InitSpec("ones"), loc)
    beta = b.weight("beta", TensorType(dt, (c,)), InitSpec("zeros"), loc)
    return b.node("LayerNormalization", [x, gamma, beta], x.type, loc, axis=-1, epsilon=float(hp["epsilon"]))


def _stat(b: BlockBuilder, hp: dict, key: str, init: str, c: int, dt: str, loc: Span | None) -> Value:
    given = hp[key]
    if given is None:
        return b.weight(key, TensorType(dt, (c,)), InitSpec(init), loc)
    values = given if isinstance(given, list) else [given] * c
    if len(values) != c or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise error(loc, f"normalization {key} must be a number or a list of {c} numbers, got {given!r}")
    return b.const([float(v) for v in values], dt)


def lower_normalization(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    # Keras Normalization: (x - mean) / max(sqrt(variance), epsilon)
    x = _float_input(xs[0], "normalization", loc)
    c, dt = _last_dim(x, "normalization", loc), x.type.dtype
    if (hp["mean"] is None) != (hp["variance"] is None):
        raise error(loc, "normalization takes both mean and variance, or neither (then they are weights)")
    mean, var = _stat(b, hp, "mean", "zeros", c, dt, loc), _stat(b, hp, "variance", "ones", c, dt, loc)
    vec = TensorType(dt, (c,))
    std = b.node("Max", [b.node("Sqrt", [var], vec, loc), b.const(KERAS_EPSILON, dt)], vec, loc)
    return b.node("Div", [b.node("Sub", [x, mean], x.type, loc), std], x.type, loc)


def lower_embedding(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    x = xs[0]
    if x.type.dtype not in INT_DTYPES:
        raise error(loc, f"embedding expects integer indices (int32 or int64), got {x.type}")
    dtype = ctx.float_dtype or "float32"  # compile --dtype float16 casts the table too
    table = b.weight("embeddings", TensorType(dtype, (hp["input_dim"], hp["output_dim"])),
                     hp["embeddings_initializer"], loc)
    return b.node("Gather", [table, x], TensorType(dtype, x.type.shape + (hp["output_dim"],)), loc, axis=0)


def lower_flatten(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    x = xs[0]
    if x.type.rank < 1:
        raise error(loc, f"flatten needs a batch axis, got {x.type}")
    rest = 1
    for d in x.type.shape[1:]:
        rest = rest * d if isinstance(d, int) and rest is not None else None  # type: ignore[assignment]
    return b.node("Flatten", [x], TensorType(x.type.dtype, (x.type.shape[0], rest)), loc, axis=1)


def lower_reshape_layer(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    # Keras Reshape: target_shape leaves out the batch axis; ONNX 0 copies it.
    x, target = xs[0], hp["shape"]
    if not isinstance(target, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in target):
        raise error(loc, f"reshape shape must be a list of ints such as [4, -1], got {target!r}")
    if x.type.rank < 1 or 0 in target:
        raise error(loc, f"reshape needs a batch axis and nonzero sizes, got {x.type} -> {target}")
    rest = reshape_shape(x.type.shape[1:], target, loc)
    shape = b.const([0, *target], "int64")
    return b.node("Reshape", [x, shape], TensorType(x.type.dtype, (x.type.shape[0], *rest)), loc)


def lower_concat_layer(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    return lower_concat(b, loc, *xs, axis=hp["axis"])


def _layer(name: str, lower: Callable[..., Value], doc: str, *hparams: tuple[str, str, Any],
           variadic: bool = False) -> BuiltinLayer:
    return BuiltinLayer(name, list(hparams), lower, doc, variadic)


def _function_layer(name: str, function: str | None = None) -> BuiltinLayer:
    """The layer of a built-in function: its hyperparameters are the function's after x, with its defaults."""
    fn = FUNCTIONS[function or name]
    assert fn.lower is not None
    lower_fn = fn.lower

    def lower(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
        return lower_fn(b, loc, _float_input(xs[0], function or name, loc), **hp)
    hparams = [(p, type(fn.defaults[p]).__name__, fn.defaults[p]) for p in fn.params[1:]]
    return _layer(name, lower, fn.doc, *hparams)


_ACTIVATIONS = [
    _layer("linear", lower_linear, "identity"),
    _function_layer("relu"),
    _layer("elu", _activation("Elu", alpha=1.0), "x if x > 0 else alpha * (exp(x) - 1)", ("alpha", "float", 1.0)),
    _layer("selu", _activation("Selu", alpha=SELU_ALPHA, gamma=SELU_SCALE), "scaled elu (Keras constants)"),
    _function_layer("sigmoid"),
    _function_layer("tanh"),
    _function_layer("softmax"),
    _function_layer("softplus"),
    _layer("softsign", _activation("Softsign"), "x / (1 + |x|)"),
    _layer("gelu", lower_gelu, "x * 0.5 * (1 + erf(x / sqrt 2))"),
    _layer("silu", lower_silu, "x * sigmoid(x)"),
    _function_layer("exponential", "exp"),
    _layer("leaky_relu", _activation("LeakyRelu", alpha=0.2), "x if x > 0 else alpha * x", ("alpha", "float", 0.2)),
]

_LAYERS = [
    _layer("dense", lower_dense, "x @ kernel + bias, then activation",
           ("units", "int", REQUIRED), ("activation", "layer", "linear"), ("use_bias", "bool", True),
           ("kernel_initializer", "initializer", InitSpec("glorot_uniform")),
           ("bias_initializer", "initializer", InitSpec("zeros"))),
    _layer("dropout", lower_dropout, "identity at inference", ("rate", "float", REQUIRED), ("seed", "int", 0)),
    _layer("batch_norm", lower_batch_norm, "inference batch normalization over the last axis",
           ("epsilon", "float", 1e-3), ("momentum", "float", 0.99)),
    _layer("layer_norm", lower_layer_norm, "layer normalization over the last axis", ("epsilon", "float", 1e-3)),
    _layer("normalization", lower_normalization, "(x - mean) / max(sqrt(variance), 1e-7)",
           ("mean", "any", None), ("variance", "any", None)),
    _layer("embedding", lower_embedding, "rows of the embeddings table",
           ("input_dim", "int", REQUIRED), ("output_dim", "int", REQUIRED),
           ("embeddings_initializer", "initializer", InitSpec("random_uniform"))),
    _layer("flatten", lower_flatten, "[batch, ...] -> [batch, product]"),
    _layer("reshape", lower_reshape_layer, "[batch, ...] -> [batch, *shape]", ("shape", "list", REQUIRED)),
    _layer("concat", lower_concat_layer, "join inputs along axis", ("axis", "int", -1), variadic=True),
]

BUILTIN_LAYERS: dict[str, BuiltinLayer] = {layer.name: layer for layer in _ACTIVATIONS + _LAYERS}
