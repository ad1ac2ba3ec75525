"""Normalization layers: Keras' inference forms, with Keras' hyperparameters and weight names."""
from __future__ import annotations

from typing import Any

from .builder import BlockBuilder
from .ir import InitSpec, Value
from .layers_base import KERAS_EPSILON, LayerContext, float_input, int_list, last_dim, layer, number_list, positive
from .functions import FUNCTIONS
from .source import Span, error
from .types import ShapeError, TensorType, normalize_axis

UNIT_NORM_EPSILON = 1e-12   # keras.layers.UnitNormalization: x * min(rsqrt(sum(x^2)), 1 / 1e-12)


def norm_axes(axis: Any, x: Value, layer: str, loc: Span | None, single: bool = False) -> list[int]:
    """`axis=` (an int, or a list of ints unless `single`) as sorted non-negative axes of x, each of known size."""
    items = int_list([axis] if single else axis)  # single: a list is not an int
    if not items:
        raise error(loc, f"{layer} axis must be {'an int' if single else 'an int or a list of ints'}, got {axis!r}")
    try:
        axes = sorted({normalize_axis(a, x.type.rank) for a in items})
    except ShapeError as e:
        raise error(loc, f"{layer}: {e} (input {x.type})") from None
    if 0 in axes and x.type.rank > 1:
        raise error(loc, f"{layer} cannot normalize along the batch axis 0 of {x.type}")
    for a in axes:
        if not isinstance(x.type.shape[a], int):
            raise error(loc, f"{layer} needs a known size on axis {a} to size its weights, got {x.type}")
    return axes


def along(b: BlockBuilder, v: Value, rank: int, shape: dict[int, int], loc: Span | None) -> Value:
    """v (sized by the axes in `shape`, in order) reshaped to broadcast over a tensor of `rank`."""
    first = min(shape)
    target = tuple(shape.get(i, 1) for i in range(first, rank))
    if target == v.type.shape:
        return v
    return FUNCTIONS["reshape"].lower(b, loc, v, list(target))


def size(x: Value, axis: int) -> int:
    d = x.type.shape[axis]
    assert isinstance(d, int), "norm_axes checks the sizes"
    return d


def _shift(b: BlockBuilder, inv: Value, mean: Value, beta: Value | None, loc: Span | None) -> Value:
    """beta - mean * inv: Keras' backends apply batch and group normalization as x * inv + shift."""
    res = b.node("Neg", [b.node("Mul", [mean, inv], inv.type, loc)], inv.type, loc)
    return res if beta is None else b.node("Add", [res, beta], inv.type, loc)


def _affine(b: BlockBuilder, x: Value, inv: Value, res: Value, loc: Span | None) -> Value:
    return b.node("Add", [b.node("Mul", [x, inv], x.type, loc), res], x.type, loc)


def _inv_std(b: BlockBuilder, var: Value, eps: float, gamma: Value | None, loc: Span | None) -> Value:
    """rsqrt(var + eps) * gamma."""
    t = var.type
    inv = b.node("Reciprocal", [b.node("Sqrt", [b.node("Add", [var, b.const(eps, t.dtype)], t, loc)], t, loc)], t, loc)
    return inv if gamma is None else b.node("Mul", [inv, gamma], t, loc)


def _gamma_beta(b: BlockBuilder, hp: dict, vec: TensorType, loc: Span | None) -> tuple[Value | None, Value | None]:
    gamma = b.weight("gamma", vec, InitSpec("ones"), loc) if hp["scale"] else None
    beta = b.weight("beta", vec, InitSpec("zeros"), loc) if hp["center"] else None
    return gamma, beta


def lower_batch_norm(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    # Keras inference form: x * inv + (beta - moving_mean * inv), inv = rsqrt(moving_variance + eps) * gamma
    x = float_input(xs[0], "batch_norm", loc)
    (axis,) = norm_axes(hp["axis"], x, "batch_norm", loc, single=True)
    c, rank = size(x, axis), x.type.rank
    vec = TensorType(x.type.dtype, (c,))
    gamma, beta = _gamma_beta(b, hp, vec, loc)
    mean = b.weight("moving_mean", vec, InitSpec("zeros"), loc)
    var = b.weight("moving_variance", vec, InitSpec("ones"), loc)
    inv = _inv_std(b, var, hp["epsilon"], gamma, loc)  # inv and the shift fold with the weights into constants
    res = _shift(b, inv, mean, beta, loc)
    return _affine(b, x, along(b, inv, rank, {axis: c}, loc), along(b, res, rank, {axis: c}, loc), loc)


def lower_layer_norm(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    x = float_input(xs[0], "layer_norm", loc)
    c, dt = last_dim(x, "layer_norm", loc), x.type.dtype
    gamma = b.weight("gamma", TensorType(dt, (c,)), InitSpec("ones"), loc)
    beta = b.weight("beta", TensorType(dt, (c,)), InitSpec("zeros"), loc)
    return b.node("LayerNormalization", [x, gamma, beta], x.type, loc, axis=-1, epsilon=float(hp["epsilon"]))


def _groups(hp: dict, c: int, loc: Span | None) -> int:
    groups = c if hp["groups"] == -1 else hp["groups"]
    positive(groups, "groups", "group_norm", loc, hint=" (or -1 for one per channel)")
    if groups > c or c % groups:
        raise error(loc, f"group_norm groups ({groups}) must divide the {c} channels of its axis")
    return groups


def _grouped_shape(x: Value, axis: int, groups: int, loc: Span | None) -> list[int]:
    """The Reshape target that splits `axis` into [groups, channels / groups]: 0 copies the axes before it."""
    after = [d if isinstance(d, int) else -1 for d in x.type.shape[axis + 1:]]
    if after.count(-1) > 1:
        raise error(loc, f"group_norm needs known sizes after its axis {axis} (at most one unknown), got {x.type}")
    return [0] * axis + [groups, size(x, axis) // groups] + after


def lower_group_norm(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    # Keras GroupNormalization: split the axis into groups; moments over every axis but batch and group
    x = float_input(xs[0], "group_norm", loc)
    (axis,) = norm_axes(hp["axis"], x, "group_norm", loc, single=True)
    c, dt, rank = size(x, axis), x.type.dtype, x.type.rank
    groups = _groups(hp, c, loc)
    gamma, beta = _gamma_beta(b, hp, TensorType(dt, (c,)), loc)
    target = _grouped_shape(x, axis, groups, loc)
    split = x.type.shape[:axis] + (groups, c // groups) + x.type.shape[axis + 1:]
    xg = b.node("Reshape", [x, b.const(target, "int64")], TensorType(dt, split), loc)
    reduced = [i for i in range(1, rank + 1) if i != axis]
    stat = TensorType(dt, tuple(1 if i in reduced else d for i, d in enumerate(split)))
    mean = b.node("ReduceMean", [xg], stat, loc, axes=reduced, keepdims=1)
    centered = b.node("Sub", [xg, mean], xg.type, loc)
    var = b.node("ReduceMean", [b.node("Mul", [centered, centered], xg.type, loc)], stat, loc, axes=reduced, keepdims=1)
    shape = {axis: groups, axis + 1: c // groups}
    g = along(b, gamma, rank + 1, shape, loc) if gamma is not None else None
    inv = _inv_std(b, var, hp["epsilon"], g, loc)
    res = _shift(b, inv, mean, along(b, beta, rank + 1, shape, loc) if beta is not None else None, loc)
    y = _affine(b, xg, inv, res, loc)
    return b.node("Reshape", [y, b.node("Shape", [x], TensorType("int64", (rank,)), loc)], x.type, loc)


def lower_rms_norm(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    # Keras RMSNormalization: x * rsqrt(mean(x^2, axis) + epsilon) * scale
    x = float_input(xs[0], "rms_norm", loc)
    axes, rank, dt = norm_axes(hp["axis"], x, "rms_norm", loc), x.type.rank, x.type.dtype
    if axes != list(range(rank - len(axes), rank)):
        raise error(loc, f"rms_norm normalizes trailing axes (Keras multiplies its scale against them), "
                         f"got axis={hp['axis']!r} for {x.type}")
    scale = b.weight("scale", TensorType(dt, tuple(size(x, a) for a in axes)), InitSpec("ones"), loc)
    stat = TensorType(dt, tuple(1 if i in axes else d for i, d in enumerate(x.type.shape)))
    ms = b.node("ReduceMean", [b.node("Mul", [x, x], x.type, loc)], stat, loc, axes=axes, keepdims=1)
    inv = _inv_std(b, ms, hp["epsilon"], None, loc)
    return b.node("Mul", [b.node("Mul", [x, inv], x.type, loc), scale], x.type, loc)


def lower_unit_norm(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    # Keras UnitNormalization: x / max(sqrt(sum(x^2, axis)), 1e-12)
    x = float_input(xs[0], "unit_norm", loc)
    axes, dt = norm_axes(hp["axis"], x, "unit_norm", loc), x.type.dtype
    stat = TensorType(dt, tuple(1 if i in axes else d for i, d in enumerate(x.type.shape)))
    norm = b.node("Sqrt", [b.node("ReduceSumSquare", [x], stat, loc, axes=axes, keepdims=1)], stat, loc)
    return b.node("Div", [x, b.node("Max", [norm, b.const(UNIT_NORM_EPSILON, dt)], stat, loc)], x.type, loc)


def _stat(b: BlockBuilder, hp: dict, key: str, init: str, c: int, dt: str, loc: Span | None) -> Value:
    given = hp[key]
    if given is None:
        return b.weight(key, TensorType(dt, (c,)), InitSpec(init), loc)
    values = number_list(given, (c,))
    if values is None:
        raise error(loc, f"normalization {key} must be a number or a list of {c} numbers, got {given!r}")
    return b.const(values if isinstance(given, list) else values * c, dt, name=key)


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


CENTER_SCALE = (("center", "bool", True), ("scale", "bool", True))

LAYERS = [
    layer("batch_norm", lower_batch_norm, "inference batch normalization along axis (moving statistics)",
          ("axis", "int", -1), ("epsilon", "float", 1e-3), ("momentum", "float", 0.99), *CENTER_SCALE),
    layer("layer_norm", lower_layer_norm, "layer normalization over the last axis", ("epsilon", "float", 1e-3)),
    layer("group_norm", lower_group_norm, "normalization over groups of channels along axis",
          ("groups", "int", 32), ("axis", "int", -1), ("epsilon", "float", 1e-3), *CENTER_SCALE),
    layer("rms_norm", lower_rms_norm, "x * rsqrt(mean(x^2, axis) + epsilon) * scale",
          ("axis", "any", -1), ("epsilon", "float", 1e-6)),
    layer("unit_norm", lower_unit_norm, "x / max(sqrt(sum(x^2, axis)), 1e-12)", ("axis", "any", -1)),
    layer("normalization", lower_normalization, "(x - mean) / max(sqrt(variance), 1e-7)",
          ("mean", "any", None), ("variance", "any", None)),
]
