"""What every built-in layer's lowering uses: the table entry (`BuiltinLayer`), the narrow context a layer
may call back into, the default initializers, and the checks of inputs and hyperparameters every layer
shares. The table itself is layers.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .builder import BlockBuilder
from .ir import InitSpec, Value
from .source import Span, error
from .types import FLOAT_DTYPES

KERAS_EPSILON = 1e-7          # keras.backend.epsilon()
REQUIRED = object()  # a hyperparameter without a default

GLOROT_UNIFORM = InitSpec("glorot_uniform")  # Keras' default kernel initializer
ZEROS = InitSpec("zeros")                    # Keras' default bias initializer
KERNEL_INITIALIZER = ("kernel_initializer", "initializer", GLOROT_UNIFORM)  # as hyperparameter entries
BIAS_INITIALIZER = ("bias_initializer", "initializer", ZEROS)


@dataclass(frozen=True)
class LayerContext:
    """What a built-in layer may ask of the lowering around it (never the whole Lowerer)."""

    apply: Callable[[Any, list[Value], BlockBuilder, Span | None], Value]  # apply a bound layer (an activation)
    float_dtype: str | None = None           # compile --dtype: float tables and casts (embedding, rescaling)
    # every hyperparameter of a bound layer, defaults filled in (the layer that bidirectional wraps)
    complete: Callable[[Any, Span], dict[str, Any]] | None = None


@dataclass
class BuiltinLayer:
    name: str
    hparams: list[tuple[str, str, Any]]      # (name, kind, default); kind as in a .model signature
    lower: Callable[..., Value]              # (context, builder, inputs, hparams, loc) -> Value
    doc: str
    inputs: tuple[int, int | None] = (1, 1)  # how many tensor inputs: (fewest, most); most None: any number


def float_input(x: Value, layer: str, loc: Span | None) -> Value:
    if x.type.dtype not in FLOAT_DTYPES:
        raise error(loc, f"{layer} expects a floating-point input, got {x.type}")
    return x


def ranked_input(x: Value, rank: int, layout: str, layer: str, loc: Span | None) -> Value:
    """x of the given rank; `layout` names its axes in the message ("batch, timesteps, features")."""
    if x.type.rank != rank:
        raise error(loc, f"{layer} expects a rank-{rank} input [{layout}], got {x.type}")
    return x


def last_dim(x: Value, layer: str, loc: Span | None) -> int:
    if not x.type.shape or not isinstance(x.type.shape[-1], int):
        raise error(loc, f"{layer} needs a known last dimension to size its weights, got {x.type}")
    return x.type.shape[-1]


# --- hyperparameters ------------------------------------------------------------------------------
def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)  # a .model true is a Python bool, an int subclass


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def positive(value: int, key: str, layer: str, loc: Span | None, hint: str = "") -> int:
    """A size or count hyperparameter, >= 1; `hint` follows the bound in the message."""
    if value < 1:
        raise error(loc, f"{layer} {key} must be >= 1{hint}, got {value}")
    return value


def rate(value: float, key: str, layer: str, loc: Span | None) -> float:
    """A dropout rate, in [0, 1) (dropout is the identity at inference, but Keras refuses such a rate)."""
    if not 0 <= value < 1:
        raise error(loc, f"{layer} {key} must be in [0, 1), got {value}")
    return value


def choice(hp: dict, key: str, options: tuple[str, ...], layer: str, loc: Span | None,
           fold_case: bool = True) -> str:
    """A string hyperparameter from a fixed set, the first when the layer has none (cropping1d has no
    data_format); Keras lower-cases padding, data_format and interpolation before checking (`fold_case`)."""
    value = hp.get(key, options[0])
    folded = value.lower() if isinstance(value, str) and fold_case else value
    if folded not in options:
        quoted = [f'"{o}"' for o in options]
        expected = " or ".join(quoted) if len(options) <= 2 else f"one of {', '.join(quoted)}"
        raise error(loc, f"{layer} {key} must be {expected}, got {value!r}")
    return folded


def int_list(value: Any, n: int | None = None, least: int | None = None, scalar: bool = True) -> list[int] | None:
    """Keras' "an int or a list of ints" as a list: an int (when `scalar`) stands for n copies of itself (one
    when n is None); None when value is not of that form, has not n items, or holds an int below `least`.
    The caller words the error (each names its own form).

    >>> int_list(3, 2), int_list([1, 2]), int_list([0, 1], least=1), int_list(3, scalar=False)
    ([3, 3], [1, 2], None, None)
    """
    items = [value] * (n or 1) if is_int(value) and scalar else value
    if not isinstance(items, list) or not all(is_int(i) for i in items) or (n is not None and len(items) != n):
        return None
    return items if least is None or all(i >= least for i in items) else None


def number_list(value: Any, lengths: tuple[int, ...] | None = None) -> list[float] | None:
    """A number or a non-empty list of numbers, as floats (a number as one); None when it is neither, or a
    list whose length is not in `lengths` (None: any). The caller words the error and shapes the constant.

    >>> number_list(2), number_list([1, 2.5], (1, 2)), number_list([1, 2], (3,)), number_list([])
    ([2.0], [1.0, 2.5], None, None)
    """
    items = value if isinstance(value, list) else [value]
    if not items or not all(is_number(v) for v in items):
        return None
    if isinstance(value, list) and lengths is not None and len(items) not in lengths:
        return None
    return [float(v) for v in items]


def layer(name: str, lower: Callable[..., Value], doc: str, *hparams: tuple[str, str, Any],
           inputs: tuple[int, int | None] = (1, 1)) -> BuiltinLayer:
    """A table entry: `lower(context, builder, inputs, hyperparameters, loc)` returns the output (or a tuple
    of outputs); each hyperparameter is (name, kind, default), kind as in a .model signature."""
    return BuiltinLayer(name, list(hparams), lower, doc, inputs)
