"""The one table of built-in layers (Keras names, hyperparameters, defaults, weight names and inference
semantics): activations and the core layers are lowered here, each other family in its own module
(layers_norm.py, layers_conv.py, layers_pool.py, layers_attention.py, layers_recurrent.py), and
BUILTIN_LAYERS below joins them. An activation that is also a built-in function is derived from its
entry in functions.FUNCTIONS."""
from __future__ import annotations

import math
from typing import Any, Callable

from . import layers_attention, layers_conv, layers_norm, layers_pool, layers_recurrent
from .builder import BlockBuilder
from .ir import InitSpec, Value
from .layers_base import BIAS_INITIALIZER, KERNEL_INITIALIZER, REQUIRED, BuiltinLayer, LayerContext, float_input, \
    int_list, last_dim, layer, positive, rate
from .functions import FUNCTIONS, lower_concat, reshape_shape
from .source import Span, error
from .types import INT_DTYPES, TensorType

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _activation(onnx_op: str, **attrs: Any) -> Callable[..., Value]:
    def lower(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
        x = float_input(xs[0], onnx_op.lower(), loc)
        values = {k: hp.get(k, v) for k, v in attrs.items()}
        return b.node(onnx_op, [x], x.type, loc, **values)
    return lower


def lower_linear(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    return xs[0]


def lower_gelu(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    # Keras' default gelu (approximate=False): x * 0.5 * (1 + erf(x / sqrt(2)))
    x = float_input(xs[0], "gelu", loc)
    dt = x.type.dtype
    erf = b.node("Erf", [b.node("Div", [x, b.const(math.sqrt(2.0), dt)], x.type, loc)], x.type, loc)
    one_plus = b.node("Add", [erf, b.const(1.0, dt)], x.type, loc)
    return b.node("Mul", [b.node("Mul", [x, b.const(0.5, dt)], x.type, loc), one_plus], x.type, loc)


def lower_silu(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    x = float_input(xs[0], "silu", loc)
    return b.node("Mul", [x, b.node("Sigmoid", [x], x.type, loc)], x.type, loc)


def lower_dense(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    x = float_input(xs[0], "dense", loc)
    units = positive(hp["units"], "units", "dense", loc)
    n, dt = last_dim(x, "dense", loc), x.type.dtype
    kernel = b.weight("kernel", TensorType(dt, (n, units)), hp["kernel_initializer"], loc)
    out_type = TensorType(dt, x.type.shape[:-1] + (units,))
    y = b.node("MatMul", [x, kernel], out_type, loc)
    if hp["use_bias"]:
        bias = b.weight("bias", TensorType(dt, (units,)), hp["bias_initializer"], loc)
        y = b.node("Add", [y, bias], out_type, loc)
    return ctx.apply(hp["activation"], [y], b, loc)


def lower_dropout(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    rate(hp["rate"], "rate", "dropout", loc)
    return xs[0]  # identity at inference, as in Keras


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
    x, target = xs[0], int_list(hp["shape"], scalar=False)
    if target is None:
        raise error(loc, f"reshape shape must be a list of ints such as [4, -1], got {hp['shape']!r}")
    if x.type.rank < 1 or 0 in target:
        raise error(loc, f"reshape needs a batch axis and nonzero sizes, got {x.type} -> {target}")
    rest = reshape_shape(x.type.shape[1:], target, loc)
    shape = b.const([0, *target], "int64")
    return b.node("Reshape", [x, shape], TensorType(x.type.dtype, (x.type.shape[0], *rest)), loc)


def lower_concat_layer(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    return lower_concat(b, loc, *xs, axis=hp["axis"])


def _function_layer(name: str, function: str | None = None) -> BuiltinLayer:
    """The layer of a built-in function: its hyperparameters are the function's after x, with its defaults."""
    fn = FUNCTIONS[function or name]
    assert fn.lower is not None
    lower_fn = fn.lower

    def lower(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
        return lower_fn(b, loc, float_input(xs[0], function or name, loc), **hp)
    hparams = [(p, type(fn.defaults[p]).__name__, fn.defaults[p]) for p in fn.params[1:]]
    return layer(name, lower, fn.doc, *hparams)


ACTIVATION_LAYERS = [
    layer("linear", lower_linear, "identity"),
    _function_layer("relu"),
    layer("elu", _activation("Elu", alpha=1.0), "x if x > 0 else alpha * (exp(x) - 1)", ("alpha", "float", 1.0)),
    layer("selu", _activation("Selu", alpha=SELU_ALPHA, gamma=SELU_SCALE), "scaled elu (Keras constants)"),
    _function_layer("sigmoid"),
    _function_layer("tanh"),
    _function_layer("softmax"),
    _function_layer("softplus"),
    layer("softsign", _activation("Softsign"), "x / (1 + |x|)"),
    layer("gelu", lower_gelu, "x * 0.5 * (1 + erf(x / sqrt 2))"),
    layer("silu", lower_silu, "x * sigmoid(x)"),
    _function_layer("exponential", "exp"),
    layer("leaky_relu", _activation("LeakyRelu", alpha=0.2), "x if x > 0 else alpha * x", ("alpha", "float", 0.2)),
]

_LAYERS = [
    layer("dense", lower_dense, "x @ kernel + bias, then activation",
           ("units", "int", REQUIRED), ("activation", "layer", "linear"), ("use_bias", "bool", True),
           KERNEL_INITIALIZER, BIAS_INITIALIZER),
    layer("dropout", lower_dropout, "identity at inference", ("rate", "float", REQUIRED), ("seed", "int", 0)),
    layer("embedding", lower_embedding, "rows of the embeddings table",
           ("input_dim", "int", REQUIRED), ("output_dim", "int", REQUIRED),
           ("embeddings_initializer", "initializer", InitSpec("random_uniform"))),
    layer("flatten", lower_flatten, "[batch, ...] -> [batch, product]"),
    layer("reshape", lower_reshape_layer, "[batch, ...] -> [batch, *shape]", ("shape", "list", REQUIRED)),
    layer("concat", lower_concat_layer, "join inputs along axis", ("axis", "int", -1), inputs=(1, None)),
]

FAMILIES = [ACTIVATION_LAYERS, _LAYERS, layers_norm.LAYERS, layers_conv.LAYERS, layers_pool.LAYERS,
            layers_attention.LAYERS, layers_recurrent.LAYERS]
BUILTIN_LAYERS: dict[str, BuiltinLayer] = {entry.name: entry for family in FAMILIES for entry in family}
assert len(BUILTIN_LAYERS) == sum(map(len, FAMILIES)), "two families define a layer of the same name"
