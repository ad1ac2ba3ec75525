"""Pooling and shape layers (max/avg/global pooling, zero padding, cropping, upsampling, permute,
repeat_vector, rescaling): Keras' semantics, channels_last by default, `data_format="channels_first"`
accepted. ONNX's pooling ops want NCHW, so a channels_last input is transposed around them (onnxruntime's
transpose optimizer cancels the pair between two such ops); everything else works in either layout."""
from __future__ import annotations

from typing import Any, Callable

from .builder import BlockBuilder
from .ir import Value
from .layers_base import REQUIRED, BuiltinLayer, LayerContext, choice, float_input, int_list, layer, number_list, \
    positive, ranked_input
from .layers_spatial import DATA_FORMATS, PADDINGS, Window, int_tuple, pairs, spatial_axes, spatial_input, \
    to_channels_first, to_channels_last, window_pads, with_dims
from .functions import FUNCTIONS
from .source import Span, error
from .types import FLOAT_DTYPES, INT64_MAX, Dim, TensorType

INTERPOLATIONS = ("nearest", "bilinear")
RESIZE_DTYPES = (*FLOAT_DTYPES, "int32")


# --- pooling -------------------------------------------------------------------------------------
def _pool(onnx_op: str, name: str, n: int) -> Callable[..., Value]:
    def lower(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
        fmt = choice(hp, "data_format", DATA_FORMATS, name, loc)
        x = spatial_input(float_input(xs[0], name, loc), n, name, fmt, loc)
        padding = choice(hp, "padding", PADDINGS, name, loc)
        k = int_tuple(hp["pool_size"], n, "pool_size", name, loc)
        s = k if hp["strides"] is None else int_tuple(hp["strides"], n, "strides", name, loc)
        nchw = to_channels_first(b, x, fmt, loc)
        pads, out = window_pads(Window(name, fmt, padding, k, s, (1,) * n, "pool_size"), nchw, loc)
        attrs: dict[str, Any] = {"kernel_shape": list(k), "strides": list(s), **pads}
        if onnx_op == "AveragePool":
            attrs["count_include_pad"] = 0  # Keras' jax backend divides by the real elements only
        y = b.node(onnx_op, [nchw], with_dims(nchw, list(range(2, n + 2)), out), loc, **attrs)
        return to_channels_last(b, y, fmt, loc)
    return lower


def _global_pool(function: str, name: str, n: int) -> Callable[..., Value]:
    # The average: ONNX's GlobalAveragePool over channels first, not a ReduceMean in place: onnxruntime's layout
    # optimizer then carries the convolutions' channels-first layout through to it and folds the last block's
    # batch norm, residual add and relu into its convolutions (a ReduceMean over channels_last stops that:
    # 0.8x torch's export of the same resnet at batch 64, bench/arch_bench.py). The maximum stays a ReduceMax
    # in place: onnx's reference evaluator gets GlobalMaxPool off 2-D wrong.
    def lower(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
        fmt = choice(hp, "data_format", DATA_FORMATS, name, loc)
        x = spatial_input(float_input(xs[0], name, loc), n, name, fmt, loc)
        if function == "max":
            return FUNCTIONS["max"].lower(b, loc, x, axis=spatial_axes(x.type.rank, fmt), keepdims=hp["keepdims"])
        nc = to_channels_first(b, x, fmt, loc)
        pooled = b.node("GlobalAveragePool", [nc], TensorType(x.type.dtype, (*nc.type.shape[:2], *[1] * n)), loc)
        if hp["keepdims"]:
            return to_channels_last(b, pooled, fmt, loc)
        return b.node("Flatten", [pooled], TensorType(x.type.dtype, nc.type.shape[:2]), loc, axis=1)
    return lower


# --- padding, cropping, upsampling ---------------------------------------------------------------
Edges = tuple[tuple[int, int], ...]  # (before, after) per spatial axis


def pad_edges(b: BlockBuilder, x: Value, axes: list[int], widths: Edges, name: str, loc: Span | None) -> Value:
    begin, end = [0] * x.type.rank, [0] * x.type.rank
    for a, (before, after) in zip(axes, widths):
        begin[a], end[a] = before, after
    dims = [d + sum(w) if isinstance(d, int) else None for d, w in zip((x.type.shape[a] for a in axes), widths)]
    return b.node("Pad", [x, b.const(begin + end, "int64")], with_dims(x, axes, dims), loc, mode="constant")


def crop_edges(b: BlockBuilder, x: Value, axes: list[int], crops: Edges, name: str, loc: Span | None) -> Value:
    dims: list[Dim] = []
    for a, (before, after) in zip(axes, crops):
        d = x.type.shape[a]
        if isinstance(d, int) and before + after >= d:
            raise error(loc, f"{name} crops {before} + {after} from axis {a} of size {d}, leaving nothing "
                             f"(input {x.type})")
        dims.append(d - before - after if isinstance(d, int) else None)
    ends = [-after if after else INT64_MAX for _, after in crops]
    starts = b.const([before for before, _ in crops], "int64")
    return b.node("Slice", [x, starts, b.const(ends, "int64"), b.const(axes, "int64")], with_dims(x, axes, dims), loc)


def _edges(name: str, key: str, n: int, apply: Callable[..., Value]) -> Callable[..., Value]:
    """zero_padding / cropping: `apply(builder, x, spatial axes, (before, after) per axis, name, loc)`."""
    def lower(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
        fmt = choice(hp, "data_format", DATA_FORMATS, name, loc)
        x = spatial_input(xs[0], n, name, fmt, loc)
        return apply(b, x, spatial_axes(x.type.rank, fmt), pairs(hp[key], n, key, name, loc), name, loc)
    return lower


def _upsampling(n: int) -> Callable[..., Value]:
    name = f"upsampling{n}d"

    def lower(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
        fmt = choice(hp, "data_format", DATA_FORMATS, name, loc)
        mode = choice(hp, "interpolation", INTERPOLATIONS, name, loc)
        x = spatial_input(xs[0], n, name, fmt, loc)
        if mode == "bilinear":
            float_input(x, f"{name} with bilinear interpolation", loc)
        elif x.type.dtype not in RESIZE_DTYPES:  # what onnxruntime's Resize kernels take
            raise error(loc, f"{name} takes a floating-point or int32 input, got {x.type}; cast it first")
        axes, size = spatial_axes(x.type.rank, fmt), int_tuple(hp["size"], n, "size", name, loc)
        scales = [1.0] * x.type.rank
        for a, f in zip(axes, size):
            scales[a] = float(f)
        dims = [x.type.shape[a] * f if isinstance(x.type.shape[a], int) else None  # type: ignore[operator]
                for a, f in zip(axes, size)]
        # nearest: each element repeated (Keras' ops.repeat); bilinear: Keras' image.resize (jax.image.resize,
        # half-pixel centres, edges clamped), which is ONNX's half_pixel linear Resize when upsampling
        attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"} \
            if mode == "nearest" else {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
        return b.node("Resize", [x, "", b.const(scales, "float32")], with_dims(x, axes, dims), loc, **attrs)
    return lower


# --- shape and scale -----------------------------------------------------------------------------
def lower_permute(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    x, dims = xs[0], int_list(hp["dims"], scalar=False)
    if dims is None or sorted(dims) != list(range(1, x.type.rank)):
        raise error(loc, f"permute dims must be a permutation of 1..{x.type.rank - 1} (the axes after the batch "
                         f"axis, counted from 1) for input {x.type}, got {hp['dims']!r}")
    return FUNCTIONS["transpose"].lower(b, loc, x, [0, *dims])


def lower_repeat_vector(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    x = ranked_input(xs[0], 2, "batch, features", "repeat_vector", loc)
    n = positive(hp["n"], "n", "repeat_vector", loc)
    batch, f = x.type.shape
    column = FUNCTIONS["expand_dims"].lower(b, loc, x, 1)
    return b.node("Expand", [column, b.const([1, n, 1], "int64")], TensorType(x.type.dtype, (batch, n, f)), loc)


def _factor(value: Any, key: str, x: Value, b: BlockBuilder, loc: Span | None) -> Value:
    """A number, or a list of numbers broadcast against the trailing axis (Keras accepts both)."""
    last = x.type.shape[-1] if x.type.rank else None
    floats = number_list(value, (1, last) if isinstance(last, int) else None)
    if floats is None:
        raise error(loc, f"rescaling {key} must be a number or a list of numbers, one per element of the last "
                         f"axis (input {x.type}), got {value!r}")
    as_list = isinstance(value, list) and x.type.rank > 0  # a scalar input meets a scalar factor
    return b.const(floats, x.type.dtype) if as_list else b.const(floats[0], x.type.dtype)


def lower_rescaling(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
    # x * scale + offset in the float dtype (Keras casts integer images to its float compute dtype)
    x = xs[0]
    if x.type.dtype not in FLOAT_DTYPES:
        dtype = ctx.float_dtype or "float32"
        x = b.node("Cast", [x], TensorType(dtype, x.type.shape), loc, to=dtype)
    scaled = b.node("Mul", [x, _factor(hp["scale"], "scale", x, b, loc)], x.type, loc)
    return b.node("Add", [scaled, _factor(hp["offset"], "offset", x, b, loc)], x.type, loc)


# --- the table -----------------------------------------------------------------------------------
def _pool_layers() -> list[BuiltinLayer]:
    out = []
    for n in (1, 2, 3):
        for kind, onnx_op in (("max", "MaxPool"), ("avg", "AveragePool")):
            name = f"{kind}_pool{n}d"
            pool_size = 2 if kind == "max" else REQUIRED  # as in Keras: AveragePooling has no default
            out.append(layer(name, _pool(onnx_op, name, n), f"{kind} over pool_size windows (Keras padding)",
                             ("pool_size", "any", pool_size), ("strides", "any", None), ("padding", "str", "valid"),
                             ("data_format", "str", "channels_last")))
        for kind, function in (("avg", "mean"), ("max", "max")):
            name = f"global_{kind}_pool{n}d"
            out.append(layer(name, _global_pool(function, name, n), f"{function} over the spatial axes",
                             ("data_format", "str", "channels_last"), ("keepdims", "bool", False)))
    return out


LAYERS: list[BuiltinLayer] = [
    *_pool_layers(),
    layer("zero_padding1d", _edges("zero_padding1d", "padding", 1, pad_edges), "zeros before and after the steps",
          ("padding", "any", 1), ("data_format", "str", "channels_last")),
    layer("zero_padding2d", _edges("zero_padding2d", "padding", 2, pad_edges), "zeros around height and width",
          ("padding", "any", 1), ("data_format", "str", "channels_last")),
    layer("cropping1d", _edges("cropping1d", "cropping", 1, crop_edges), "drop steps at the start and end",
          ("cropping", "any", 1)),
    layer("cropping2d", _edges("cropping2d", "cropping", 2, crop_edges), "drop rows and columns at the edges",
          ("cropping", "any", 0), ("data_format", "str", "channels_last")),
    layer("upsampling1d", _upsampling(1), "each step repeated size times", ("size", "int", 2)),
    layer("upsampling2d", _upsampling(2), "rows and columns scaled by size (nearest or bilinear)",
          ("size", "any", 2), ("data_format", "str", "channels_last"), ("interpolation", "str", "nearest")),
    layer("permute", lower_permute, "axes after the batch reordered (dims count from 1)", ("dims", "list", REQUIRED)),
    layer("repeat_vector", lower_repeat_vector, "[batch, f] -> [batch, n, f]", ("n", "int", REQUIRED)),
    layer("rescaling", lower_rescaling, "x * scale + offset", ("scale", "any", REQUIRED), ("offset", "any", 0.0)),
]
