"""What the spatial layers (convolution, pooling, padding, upsampling) share: data formats and padding
names, the checks of their hyperparameters and inputs, and the moves between channels_last (Keras' default)
and channels first (what ONNX's Conv and pooling ops take)."""
from __future__ import annotations

from typing import Any

from .builder import BlockBuilder
from .ir import Value
from .functions import FUNCTIONS
from .source import Span, error
from .types import Dim, TensorType

DATA_FORMATS = ("channels_last", "channels_first")
PADDINGS = ("valid", "same")
SPATIAL_NAMES = {1: "steps", 2: "height, width", 3: "depth, height, width"}


# --- hyperparameters and layouts (what every spatial layer checks) -------------------------------
def choice(hp: dict, key: str, options: tuple[str, ...], name: str, loc: Span | None) -> str:
    """A string hyperparameter from a fixed set, the first when the layer has none (cropping1d has no
    data_format); Keras lower-cases these before checking."""
    value = hp.get(key, options[0])
    if not isinstance(value, str) or value.lower() not in options:
        expected = " or ".join(f'"{o}"' for o in options)
        raise error(loc, f"{name} {key} must be {expected}, got {value!r}")
    return value.lower()


def int_tuple(value: Any, n: int, key: str, name: str, loc: Span | None, least: int = 1) -> tuple[int, ...]:
    """An int or a list of n ints (Keras' standardize_tuple), each >= least."""
    items = [value] * n if isinstance(value, int) and not isinstance(value, bool) else value
    ok = isinstance(items, list) and len(items) == n and all(
        isinstance(i, int) and not isinstance(i, bool) and i >= least for i in items)
    if not ok:
        what = "an int" if n == 1 else f"an int or a list of {n} ints"
        raise error(loc, f"{name} {key} must be {what}, each >= {least}, got {value!r}")
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
    if x.type.rank != n + 2:
        layout = f"batch, {SPATIAL_NAMES[n]}, channels" if fmt == "channels_last" \
            else f"batch, channels, {SPATIAL_NAMES[n]}"
        raise error(loc, f"{name} expects a rank-{n + 2} input [{layout}], got {x.type}")
    return x


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
