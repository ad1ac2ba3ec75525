"""Convolution layers (conv1d/2d/3d, depthwise, separable, transposed): Keras' semantics, padding and weight names.

Keras keeps images channels_last and kernels as [*kernel_size, in, out]; ONNX's Conv wants channels first
and [out, in, *kernel_size]. So a channels_last input is transposed to channels first and back around the
convolution (onnxruntime's transpose optimizer cancels the pair between two convolutions), and each kernel
is permuted by a Transpose node on the weight, which onnxruntime folds: the weight file keeps Keras' layout
and names. "same" padding is written as explicit `pads` computed as Keras/TF pad (the odd element at the
end), with auto_pad only where an input size is unknown and a stride is above 1."""
from __future__ import annotations

from typing import Any, Callable

from .builder import BlockBuilder
from .ir import InitSpec, Value
from .layers_base import GLOROT_UNIFORM, REQUIRED, ZEROS, BuiltinLayer, LayerContext, choice, float_input, layer, \
    positive
from .layers_spatial import DATA_FORMATS, PADDINGS, Window, int_tuple, onnx_kernel, original, spatial_input, \
    to_channels_first, to_channels_last, window_pads
from .functions import FUNCTIONS
from .source import Span, error
from .types import Dim, TensorType


def geometry(name: str, n: int, hp: dict, loc: Span | None, paddings: tuple[str, ...] = PADDINGS) -> Window:
    return Window(name, choice(hp, "data_format", DATA_FORMATS, name, loc),
                  choice(hp, "padding", paddings, name, loc),
                  int_tuple(hp["kernel_size"], n, "kernel_size", name, loc),
                  int_tuple(hp["strides"], n, "strides", name, loc),
                  int_tuple(hp["dilation_rate"], n, "dilation_rate", name, loc))


def undilated_strides(g: Window, loc: Span | None) -> Window:
    """Keras' Conv and ConvTranspose refuse strides > 1 with dilation_rate > 1 (the depthwise ones accept it)."""
    if max(g.strides) > 1 and max(g.dilation) > 1:
        raise error(loc, f"{g.name} takes strides > 1 or dilation_rate > 1, not both (as Keras), got strides "
                         f"{list(g.strides)} and dilation_rate {list(g.dilation)}")
    return g


def channels_first_input(b: BlockBuilder, x: Value, g: Window, loc: Span | None) -> tuple[Value, int]:
    """The input as [batch, channels, *spatial], and its channel count (which sizes the weights)."""
    x = spatial_input(float_input(x, g.name, loc), g.rank, g.name, g.fmt, loc)
    c = x.type.shape[1 if g.fmt == "channels_first" else -1]
    if not isinstance(c, int):
        raise error(loc, f"{g.name} needs a known channel dimension to size its weights, got {x.type} "
                         f"(data_format=\"{g.fmt}\": channels on axis {1 if g.fmt == 'channels_first' else -1})")
    return to_channels_first(b, x, g.fmt, loc), c


def divisible(g: Window, x: Value, c: int, groups: int, filters: int | None, loc: Span | None) -> None:
    """groups must divide the input channels (and the filters): the channel mismatch diagnostic."""
    if c % groups:
        axis, other = (1, x.type.rank - 1) if g.fmt == "channels_first" else (x.type.rank - 1, 1)
        shape = original(x, g.fmt).shape
        hint = f"; is the image {DATA_FORMATS[g.fmt == 'channels_last']}?" if \
            isinstance(shape[other], int) and shape[other] % groups == 0 and shape[other] < c else ""
        raise error(loc, f"{g.name} with groups={groups} needs input channels divisible by {groups}, got {c} "
                         f"channels (axis {axis} of {original(x, g.fmt)}, data_format=\"{g.fmt}\"){hint}")
    if filters is not None and filters % groups:
        raise error(loc, f"{g.name} filters={filters} must be divisible by groups={groups}")


# --- padding -------------------------------------------------------------------------------------
def transpose_pads(g: Window, x: Value, output_padding: tuple[int, ...] | None) -> tuple[dict[str, Any], list[Dim]]:
    """ONNX ConvTranspose pads/output_padding and output sizes matching Keras' jax backend: jax dilates the input
    by the stride, pads (lo, hi) and correlates with the kernel; ONNX's full output is lo = hi = span - 1, so
    it removes span - 1 - lo at the start and span - 1 - hi at the end (a negative removal is output_padding)."""
    begins, ends, extra, outs = [], [], [], []
    for i, (n, k, s, d) in enumerate(zip(x.type.shape[2:], g.kernel, g.strides, g.dilation)):
        span = d * (k - 1) + 1
        op = None if output_padding is None else output_padding[i]
        if g.padding == "valid":   # keras' _convert_conv_transpose_padding_args_from_keras_to_jax
            lo, hi = span - 1, span - 1 + (max(span, s) - span if op is None else op)
        else:
            total = s + span - 2 if op is None else span + span % 2 - 2 + op
            lo = min(total // 2 + total % 2, span - 1)
            hi = total - lo
        begin, end = span - 1 - lo, span - 1 - hi
        begins.append(begin)
        ends.append(max(end, 0))
        extra.append(max(-end, 0))
        outs.append(s * (n - 1) + span - begin - end if isinstance(n, int) else None)
    return {"pads": begins + ends, "output_padding": extra}, outs


# --- weights -------------------------------------------------------------------------------------
def keras_kernel(b: BlockBuilder, key: str, shape: tuple[int, ...], init: InitSpec, x: Value,
                 loc: Span | None) -> Value:
    """The Keras-layout kernel [*kernel_size, a, b] (the weight `key`) as ONNX's [b, a, *kernel_size]."""
    return onnx_kernel(b, b.weight(key, TensorType(x.type.dtype, shape), init, loc), loc)


def depthwise_kernel(b: BlockBuilder, key: str, g: Window, c: int, dm: int, init: InitSpec, x: Value,
                     loc: Span | None) -> Value:
    """Keras' depthwise kernel [*kernel_size, c, dm] as a grouped Conv's [c * dm, 1, *kernel_size]: output
    channel i * dm + j is input channel i through filter j, as Keras orders them."""
    w = b.weight(key, TensorType(x.type.dtype, (*g.kernel, c, dm)), init, loc)
    cdk = FUNCTIONS["transpose"].lower(b, loc, w, [g.rank, g.rank + 1, *range(g.rank)])
    return FUNCTIONS["reshape"].lower(b, loc, cdk, [c * dm, 1, *g.kernel])


def bias(b: BlockBuilder, hp: dict, n: int, x: Value, loc: Span | None) -> list[Value]:
    """Conv's optional third input B: the weight `bias` [n], when use_bias."""
    return [b.weight("bias", TensorType(x.type.dtype, (n,)), hp["bias_initializer"], loc)] if hp["use_bias"] else []


def conv(b: BlockBuilder, x: Value, inputs: list[Value], g: Window, out_channels: int, groups: int,
         loc: Span | None) -> Value:
    pads, outs = window_pads(g, x, loc)
    out = TensorType(x.type.dtype, (x.type.shape[0], out_channels, *outs))
    return b.node("Conv", [x, *inputs], out, loc, group=groups, **g.attrs(), **pads)


def finish(ctx: LayerContext, b: BlockBuilder, y: Value, g: Window, hp: dict, loc: Span | None) -> Value:
    """Back to the user's layout, then the activation (which may not be elementwise: softmax)."""
    return ctx.apply(hp["activation"], [to_channels_last(b, y, g.fmt, loc)], b, loc)


# --- the lowerings -------------------------------------------------------------------------------
LowerFn = Callable[[LayerContext, BlockBuilder, list[Value], dict, Span | None], Value]


def lower_conv(n: int) -> LowerFn:
    name = f"conv{n}d"

    def lower(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
        g = undilated_strides(geometry(name, n, hp, loc, PADDINGS + ("causal",) if n == 1 else PADDINGS), loc)
        filters, groups = (positive(hp[k], k, name, loc) for k in ("filters", "groups"))
        x, c = channels_first_input(b, xs[0], g, loc)
        divisible(g, x, c, groups, filters, loc)
        w = keras_kernel(b, "kernel", (*g.kernel, c // groups, filters), hp["kernel_initializer"], x, loc)
        return finish(ctx, b, conv(b, x, [w, *bias(b, hp, filters, x, loc)], g, filters, groups, loc), g, hp, loc)
    return lower


def lower_depthwise(n: int) -> LowerFn:
    name = f"depthwise_conv{n}d"

    def lower(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
        g = geometry(name, n, hp, loc)
        dm = positive(hp["depth_multiplier"], "depth_multiplier", name, loc)
        x, c = channels_first_input(b, xs[0], g, loc)
        w = depthwise_kernel(b, "kernel", g, c, dm, hp["depthwise_initializer"], x, loc)
        return finish(ctx, b, conv(b, x, [w, *bias(b, hp, c * dm, x, loc)], g, c * dm, c, loc), g, hp, loc)
    return lower


def lower_separable(n: int) -> LowerFn:
    name = f"separable_conv{n}d"

    def lower(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
        # a depthwise convolution (with the strides, padding and dilation), then a 1x1 one (with the bias)
        g = geometry(name, n, hp, loc)
        dm, filters = (positive(hp[k], k, name, loc) for k in ("depth_multiplier", "filters"))
        x, c = channels_first_input(b, xs[0], g, loc)
        depthwise = conv(b, x, [depthwise_kernel(b, "depthwise_kernel", g, c, dm, hp["depthwise_initializer"], x,
                                                 loc)], g, c * dm, c, loc)
        pointwise = Window(name, g.fmt, "valid", (1,) * n, (1,) * n, (1,) * n)
        w = keras_kernel(b, "pointwise_kernel", (*pointwise.kernel, c * dm, filters), hp["pointwise_initializer"], x,
                         loc)
        y = conv(b, depthwise, [w, *bias(b, hp, filters, x, loc)], pointwise, filters, 1, loc)
        return finish(ctx, b, y, g, hp, loc)
    return lower


def lower_conv_transpose(n: int) -> LowerFn:
    name = f"conv{n}d_transpose"

    def lower(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value:
        g = undilated_strides(geometry(name, n, hp, loc), loc)
        filters = positive(hp["filters"], "filters", name, loc)
        extra = None if hp["output_padding"] is None else \
            int_tuple(hp["output_padding"], n, "output_padding", name, loc, least=0)
        if extra is not None and any(e >= s for e, s in zip(extra, g.strides)):
            raise error(loc, f"{name} output_padding {list(extra)} must be smaller than strides {list(g.strides)}")
        x, c = channels_first_input(b, xs[0], g, loc)
        # Keras' transposed kernel is [*kernel_size, filters, in]: ONNX's [in, filters, *kernel_size]
        w = keras_kernel(b, "kernel", (*g.kernel, filters, c), hp["kernel_initializer"], x, loc)
        pads, outs = transpose_pads(g, x, extra)
        out = TensorType(x.type.dtype, (x.type.shape[0], filters, *outs))
        y = b.node("ConvTranspose", [x, w, *bias(b, hp, filters, x, loc)], out, loc, **g.attrs(), **pads)
        return finish(ctx, b, y, g, hp, loc)
    return lower


# --- the table -----------------------------------------------------------------------------------
def _hparams(*names: str) -> list[tuple[str, str, Any]]:
    """Keras' hyperparameters, in Keras' positional order, from one list of their kinds and defaults."""
    known = {"filters": ("int", REQUIRED), "kernel_size": ("any", REQUIRED), "strides": ("any", 1),
             "padding": ("str", "valid"), "output_padding": ("any", None), "data_format": ("str", "channels_last"),
             "dilation_rate": ("any", 1), "groups": ("int", 1), "depth_multiplier": ("int", 1),
             "activation": ("layer", "linear"), "use_bias": ("bool", True),
             "kernel_initializer": ("initializer", GLOROT_UNIFORM),
             "depthwise_initializer": ("initializer", GLOROT_UNIFORM),
             "pointwise_initializer": ("initializer", GLOROT_UNIFORM), "bias_initializer": ("initializer", ZEROS)}
    return [(n, *known[n]) for n in names]


_CONV = ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "groups", "activation",
         "use_bias", "kernel_initializer", "bias_initializer")
_DEPTHWISE = ("kernel_size", "strides", "padding", "depth_multiplier", "data_format", "dilation_rate", "activation",
              "use_bias", "depthwise_initializer", "bias_initializer")
_SEPARABLE = ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "depth_multiplier",
              "activation", "use_bias", "depthwise_initializer", "pointwise_initializer", "bias_initializer")
_TRANSPOSE = ("filters", "kernel_size", "strides", "padding", "output_padding", "data_format", "dilation_rate",
              "activation", "use_bias", "kernel_initializer", "bias_initializer")


def _conv_layers() -> list[BuiltinLayer]:
    out = [layer(f"conv{n}d", lower_conv(n), "cross-correlation with kernel, + bias, then activation",
                 *_hparams(*_CONV)) for n in (1, 2, 3)]
    for n in (1, 2):
        out.append(layer(f"depthwise_conv{n}d", lower_depthwise(n), "each channel through its own depth_multiplier "
                         "filters", *_hparams(*_DEPTHWISE)))
        out.append(layer(f"separable_conv{n}d", lower_separable(n), "depthwise, then a 1x1 convolution to filters",
                         *_hparams(*_SEPARABLE)))
    out += [layer(f"conv{n}d_transpose", lower_conv_transpose(n), "transposed convolution (the gradient of conv)",
                  *_hparams(*_TRANSPOSE)) for n in (1, 2, 3)]
    return out


LAYERS: list[BuiltinLayer] = _conv_layers()
