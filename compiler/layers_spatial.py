"""What the spatial layers (convolution, pooling, padding, upsampling) share: data formats and padding
names, the checks of their hyperparameters and inputs, Keras' sliding-window arithmetic ("same"/"valid"
pads and output sizes), and the moves between channels_last (Keras' default) and channels first (what
ONNX's Conv and pooling ops take), kernels included (the recurrent layers' too)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .builder import BlockBuilder
from .ir import Value
from .layers_base import int_list, ranked_input
from .functions import FUNCTIONS
from .source import Span, error
from .types import Dim, TensorType

DATA_FORMATS = ("channels_last", "channels_first")
PADDINGS = ("valid", "same")
SPATIAL_NAMES = {1: "steps", 2: "height, width", 3: "depth, height, width"}


# --- hyperparameters and layouts (what every spatial layer checks) -------------------------------
def int_tuple(value: Any, n: int, key: str, name: str, loc: Span | None, least: int = 1) -> tuple[int, ...]:
    """An int or a list of n ints (Keras' standardize_tuple), each >= least."""
    items = int_list(value, n, least)
    if items is None:
        what = f"an int >= {least}" if n == 1 else f"an int or a list of {n} ints, each >= {least}"
        raise error(loc, f"{name} {key} must be {what}, got {value!r}")
    return tuple(items)


def pairs(value: Any, n: int, key: str, name: str, loc: Span | None) -> tuple[tuple[int, int], ...]:
    """(before, after) per spatial axis, from Keras' forms: an int (all sides), a list of n ints (both sides
    of each axis) or, with n == 1, [before, after]; or a list of n [before, after] pairs."""
    if isinstance(value, list) and all(isinstance(v, list) for v in value) and len(value) == n:
        return tuple(tuple(int_tuple(v, 2, key, name, loc, least=0)) for v in value)  # type: ignore[misc]
    if n == 1:
        return (tuple(int_tuple(value, 2, key, name, loc, least=0)),)  # type: ignore[return-value]
    if isinstance(value, list) and all(isinstance(v, list) for v in value):
        raise error(loc, f"{name} {key} must be an int, a list of {n} ints or a list of {n} [before, after] "
                         f"pairs, got {value!r}")
    return tuple((v, v) for v in int_tuple(value, n, key, name, loc, least=0))


def spatial_input(x: Value, n: int, name: str, fmt: str, loc: Span | None) -> Value:
    """A rank n + 2 input: [batch, *spatial, channels] (or [batch, channels, *spatial])."""
    names = SPATIAL_NAMES[n]
    layout = f"batch, {names}, channels" if fmt == "channels_last" else f"batch, channels, {names}"
    return ranked_input(x, n + 2, layout, name, loc)


def spatial_axes(rank: int, fmt: str) -> list[int]:
    return list(range(1, rank - 1)) if fmt == "channels_last" else list(range(2, rank))


def to_channels_first(b: BlockBuilder, x: Value, fmt: str, loc: Span | None) -> Value:
    rank = x.type.rank
    return x if fmt == "channels_first" else FUNCTIONS["transpose"].lower(b, loc, x, [0, rank - 1, *range(1, rank - 1)])


def to_channels_last(b: BlockBuilder, x: Value, fmt: str, loc: Span | None) -> Value:
    rank = x.type.rank
    return x if fmt == "channels_first" else FUNCTIONS["transpose"].lower(b, loc, x, [0, *range(2, rank), 1])


def with_dims(x: Value, axes: list[int], dims: list[Dim]) -> TensorType:
    shape = list(x.type.shape)
    for a, d in zip(axes, dims):
        shape[a] = d
    return TensorType(x.type.dtype, tuple(shape))


def original(x: Value, fmt: str) -> TensorType:
    """The user's view of a channels-first value: what a message should show."""
    if fmt == "channels_first":
        return x.type
    s = x.type.shape
    return TensorType(x.type.dtype, (s[0], *s[2:], s[1]))


def onnx_kernel(b: BlockBuilder, w: Value, loc: Span | None) -> Value:
    """A Keras-layout kernel [*kernel_size, a, b] as ONNX's [b, a, *kernel_size] (a dense or recurrent kernel
    [a, b] as [b, a]): a Transpose on the weight, which onnxruntime folds, so the weight file keeps Keras' layout."""
    r = w.type.rank - 2
    return FUNCTIONS["transpose"].lower(b, loc, w, [r + 1, r, *range(r)])


# --- sliding windows (convolution and pooling) ----------------------------------------------------
@dataclass(frozen=True)
class Window:
    """A convolution's or a pooling's validated hyperparameters: one int per spatial axis for kernel, strides
    and dilation; `key` is what the user calls the kernel (kernel_size, pool_size)."""

    name: str
    fmt: str
    padding: str
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilation: tuple[int, ...]
    key: str = "kernel_size"

    @property
    def rank(self) -> int:
        return len(self.kernel)

    def attrs(self) -> dict[str, Any]:
        return {"kernel_shape": list(self.kernel), "strides": list(self.strides), "dilations": list(self.dilation)}


def _axis_pads(n: Dim, span: int, s: int, padding: str) -> tuple[int, int, Dim]:
    """(pad before, pad after, output size) along one axis of size n, for a (dilated) kernel span and stride s.
    Keras pads "same" so that out = ceil(n / s), the total split with the odd element at the end (as TF);
    "causal" pads span - 1 at the start; "valid" pads nothing. Unknown n: "same" as if stride 1."""
    if padding == "valid":
        return 0, 0, (n - span) // s + 1 if isinstance(n, int) else (n if span == s == 1 else None)
    if padding == "causal":
        return span - 1, 0, (n - 1) // s + 1 if isinstance(n, int) else (n if s == 1 else None)
    if isinstance(n, int):
        out = (n - 1) // s + 1
        total = max((out - 1) * s + span - n, 0)
        return total // 2, total - total // 2, out
    return (span - 1) // 2, span - 1 - (span - 1) // 2, n if s == 1 else None


def window_pads(g: Window, x: Value, loc: Span | None) -> tuple[dict[str, Any], list[Dim]]:
    """ONNX padding attributes and the output's spatial sizes of a window over x (channels first): explicit pads
    where they are known (a known size, or stride 1), as onnx's reference evaluator mishandles auto_pad off 2-D;
    else auto_pad SAME_UPPER, which pads as TF (extra at the end) at run time; none with "valid"."""
    begins, ends, outs, unknown = [], [], [], False
    for axis, (n, k, s, d) in enumerate(zip(x.type.shape[2:], g.kernel, g.strides, g.dilation)):
        span = d * (k - 1) + 1   # the dilated kernel's extent
        if g.padding == "valid" and isinstance(n, int) and n < span:
            raise error(loc, f"{g.name} {g.key} {list(g.kernel)}" + (f" (dilated to {span})" if d > 1 else "")
                             + f" is larger than the input ({n} along spatial axis {axis} of {original(x, g.fmt)}) "
                             f"with padding=\"valid\"; use padding=\"same\" or a smaller kernel")
        lo, hi, out = _axis_pads(n, span, s, g.padding)
        unknown = unknown or (g.padding == "same" and not isinstance(n, int) and s > 1)
        begins.append(lo)
        ends.append(hi)
        outs.append(out)
    # onnxruntime runs SAME_UPPER without dilation only
    if unknown and max(g.dilation) > 1:
        raise error(loc, f"{g.name} with padding=\"same\", strides {list(g.strides)} and dilation_rate "
                         f"{list(g.dilation)} needs known spatial sizes, got {original(x, g.fmt)}")
    if g.padding == "valid":
        return {}, outs
    return ({"auto_pad": "SAME_UPPER"} if unknown else {"pads": begins + ends}), outs
