"""What an expression evaluates to while lowering, besides a tensor (ir.Value): a number, a string, a list,
a bound layer, an initializer, a dtype name, or POISON; and how messages describe each."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .ir import InitSpec, Value


class Poison:
    """The value of a statement that failed: later uses stay quiet instead of cascading."""


POISON = Poison()


class DtypeName(str):
    """A dtype used as a value: cast(x, float16)."""


class Layer(Protocol):
    """A layer: a user's definition (nodes.Definition) or a built-in one (layers.BuiltinLayer)."""

    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class LayerVal:
    """A layer with (some of) its hyperparameters bound: `dense(4)`, `relu`, `residual(30)`."""

    layer: Layer
    hparams: tuple[tuple[str, Any], ...] = ()
    explicit_name: str | None = None

    @property
    def name(self) -> str:
        return self.layer.name


def is_tensor(v: Any) -> bool:
    return isinstance(v, Value)


def describe(v: Any) -> str:
    """How a message names a value: `tensor float32[batch, 8]`, `the layer relu`, `int`."""
    if is_tensor(v):
        return f"tensor {v.type}"
    if isinstance(v, tuple):
        return f"{len(v)} tensors (a multi-output layer's; pick one with [i])"
    if isinstance(v, DtypeName):
        return f"the dtype {v}"
    if isinstance(v, InitSpec):
        return f"the initializer {v.name}"
    if isinstance(v, LayerVal):
        return f"the layer {v.name}"
    return {bool: "bool", int: "int", float: "float", str: "str"}.get(type(v), type(v).__name__)


def article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
