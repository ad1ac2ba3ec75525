"""Normalization layers: Keras' inference forms, with Keras' weight names."""
from __future__ import annotations

from .builder import BlockBuilder
from .ir import InitSpec, Value
from .layers_base import KERAS_EPSILON, LayerContext, float_input, last_dim, layer
from .source import Span, error
from .types import TensorType

def lower_batch_norm(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    # Keras inference form over the last axis: (x - mean) / sqrt(var + eps) * gamma + beta
    x = float_input(xs[0], "batch_norm", loc)
    c, dt = last_dim(x, "batch_norm", loc), x.type.dtype
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
    x = float_input(xs[0], "layer_norm", loc)
    c, dt = last_dim(x, "layer_norm", loc), x.type.dtype
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
    x = float_input(xs[0], "normalization", loc)
    c, dt = last_dim(x, "normalization", loc), x.type.dtype
    if (hp["mean"] is None) != (hp["variance"] is None):
        raise error(loc, "normalization takes both mean and variance, or neither (then they are weights)")
    mean, var = _stat(b, hp, "mean", "zeros", c, dt, loc), _stat(b, hp, "variance", "ones", c, dt, loc)
    vec = TensorType(dt, (c,))
    std = b.node("Max", [b.node("Sqrt", [var], vec, loc), b.const(KERAS_EPSILON, dt)], vec, loc)
    return b.node("Div", [b.node("Sub", [x, mean], x.type, loc), std], x.type, loc)


LAYERS = [
    layer("batch_norm", lower_batch_norm, "inference batch normalization over the last axis",
          ("epsilon", "float", 1e-3), ("momentum", "float", 0.99)),
    layer("layer_norm", lower_layer_norm, "layer normalization over the last axis", ("epsilon", "float", 1e-3)),
    layer("normalization", lower_normalization, "(x - mean) / max(sqrt(variance), 1e-7)",
          ("mean", "any", None), ("variance", "any", None)),
]
