"""What every built-in layer's lowering uses: the table entry (`BuiltinLayer`), the narrow context a layer
may call back into, and the checks of inputs every layer shares. The table itself is layers.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .builder import BlockBuilder
from .ir import Value
from .source import Span, error
from .types import FLOAT_DTYPES

KERAS_EPSILON = 1e-7          # keras.backend.epsilon()
REQUIRED = object()  # a hyperparameter without a default


@dataclass(frozen=True)
class LayerContext:
    """What a built-in layer may ask of the lowering around it (never the whole Lowerer)."""

    apply: Callable[[Any, list[Value], BlockBuilder, Span | None], Value]  # apply a bound layer (an activation)
    float_dtype: str | None = None           # compile --dtype: the dtype of float tables (embeddings)
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


def last_dim(x: Value, layer: str, loc: Span | None) -> int:
    if not x.type.shape or not isinstance(x.type.shape[-1], int):
        raise error(loc, f"{layer} needs a known last dimension to size its weights, got {x.type}")
    return x.type.shape[-1]


def layer(name: str, lower: Callable[..., Value], doc: str, *hparams: tuple[str, str, Any],
           inputs: tuple[int, int | None] = (1, 1)) -> BuiltinLayer:
    """A table entry: `lower(context, builder, inputs, hyperparameters, loc)` returns the output (or a tuple
    of outputs); each hyperparameter is (name, kind, default), kind as in a .model signature."""
    return BuiltinLayer(name, list(hparams), lower, doc, inputs)
