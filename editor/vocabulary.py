"""The words an editor offers and explains, read from the compiler's own tables (never listed twice): built-in
layers with their hyperparameters and docs, functions, initializers, dtypes, state rules, the keywords, and
the built-in metrics of the prelude with the comment each carries."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..compiler import nodes as N
from ..compiler.check import HPARAM_TYPES
from ..compiler.functions import CONSTANTS, FUNCTIONS
from ..compiler.initializers import INITIALIZERS
from ..compiler.ir import InitSpec
from ..compiler.layers import ACTIVATION_LAYERS, BUILTIN_LAYERS
from ..compiler.layers_base import REQUIRED
from ..compiler.states import STATE_RULES
from ..compiler.types import DTYPES
from ..runtime.prelude import PRELUDE, prelude_definitions

DEFINITION_KEYWORDS = ("layer", "model", "metric", "import")
STATEMENT_KEYWORDS = ("param", "state", "return")
ACTIVATIONS = tuple(entry.name for entry in ACTIVATION_LAYERS)


@dataclass(frozen=True)
class Word:
    """One completion item: its label, what it is, a one-line signature and its documentation."""

    label: str
    kind: str            # layer, activation, function, initializer, metric, keyword, type, hyperparameter, local
    detail: str = ""
    doc: str = ""
    insert: str | None = None   # text to insert when not the label (`units=`)


def show_default(value: Any) -> str:
    """A Python default as a .model file writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, InitSpec):
        return value.name + (f"({', '.join(map(str, value.args))})" if value.args else "")
    if isinstance(value, str):
        return value if value in BUILTIN_LAYERS else f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(show_default(v) for v in value) + "]"
    return str(value)


def show_hparam(name: str, kind: str, default: Any) -> str:
    if default is REQUIRED:
        return f"{name}: {kind}"
    if default is None:
        return f"{name}: {kind} (optional)"
    return f"{name}: {kind} = {show_default(default)}"


def layer_signature(name: str) -> str:
    entry = BUILTIN_LAYERS[name]
    hparams = ", ".join(show_hparam(*h) for h in entry.hparams)
    fewest, most = entry.inputs
    inputs = "x" if (fewest, most) == (1, 1) else "x, ..." if most is None else ", ".join(
        f"x{i}" for i in range(most))
    return f"layer {name}({hparams})({inputs})" if hparams else f"layer {name}({inputs})"


def function_signature(name: str) -> str:
    fn = FUNCTIONS[name]
    params = ["*xs" if p == "*" else f"{p}={show_default(fn.defaults[p])}" if p in fn.defaults else p
              for p in fn.params]
    params += [f"{k}={show_default(v)}" for k, v in fn.defaults.items() if k not in fn.params]
    return f"{name}({', '.join(params)})"


def initializer_signature(name: str) -> str:
    entry = INITIALIZERS[name]
    args = ", ".join(f"{p}={d}" for p, d in zip(entry.params, entry.defaults))
    return f"{name}({args})" if args else name


@lru_cache(maxsize=1)
def prelude_metrics() -> dict[str, tuple[str, str]]:
    """Each built-in metric: (its header, the comment on its line in prelude.model)."""
    lines = PRELUDE.read_text(encoding="utf-8").split("\n")
    out = {}
    for d in prelude_definitions():
        line = lines[d.loc.line - 1]
        header, _, comment = line.partition("#")
        out[d.name] = (header.rstrip(" {").strip(), comment.strip())
    return out


def builtin_word(name: str) -> Word | None:
    """What a built-in name is, for hover and completion (a layer before a function of the same name)."""
    if name in BUILTIN_LAYERS:
        kind = "activation" if name in ACTIVATIONS else "layer"
        return Word(name, kind, layer_signature(name), BUILTIN_LAYERS[name].doc)
    if name in FUNCTIONS:
        return Word(name, "function", function_signature(name), FUNCTIONS[name].doc)
    if name in INITIALIZERS:
        return Word(name, "initializer", initializer_signature(name), "Keras' initializer of the same name")
    if name in DTYPES:
        return Word(name, "type", f"dtype {name}")
    if name in CONSTANTS:
        return Word(name, "constant", f"{name} = {CONSTANTS[name]}")
    return None


def layer_words(user: list[N.Definition], activations_only: bool = False) -> list[Word]:
    """Layers for a stage (`-> de`), or for an activation= (the activations, and the user's layers)."""
    names = ACTIVATIONS if activations_only else tuple(BUILTIN_LAYERS)
    words = [builtin_word(n) for n in names]
    words += [Word(d.name, "layer", f"layer {d.name}", "defined in this program") for d in user if d.kind == "layer"]
    return [w for w in words if w is not None]


def function_words(stage: bool = False) -> list[Word]:
    """Functions an expression may call (`stage`: those that lower, as a pipeline stage needs)."""
    return [builtin_word(n) for n, fn in FUNCTIONS.items()  # type: ignore[misc]
            if n not in BUILTIN_LAYERS and (fn.lower is not None or not stage)]


def initializer_words() -> list[Word]:
    return [builtin_word(n) for n in INITIALIZERS]  # type: ignore[misc]


def metric_words(user: list[N.Definition]) -> list[Word]:
    words = [Word(name, "metric", header, doc) for name, (header, doc) in prelude_metrics().items()]
    return words + [Word(d.name, "metric", f"metric {d.name}", "defined in this program")
                    for d in user if d.kind == "metric" and d.name not in prelude_metrics()]


def state_words() -> list[Word]:
    return [Word(rule, "function", f"state NAME = {rule}({', '.join(r.params)})", "a metric state's reduction")
            for rule, r in STATE_RULES.items()]


def keyword_words(words: tuple[str, ...]) -> list[Word]:
    return [Word(w, "keyword") for w in words]


def type_words(hparams: bool) -> list[Word]:
    """Hyperparameter types in a definition's first group, dtypes in its inputs."""
    return [Word(t, "type") for t in (HPARAM_TYPES if hparams else DTYPES)]


def hyperparameters_of(callee: str, user: dict[str, N.Definition]) -> list[tuple[str, str]] | None:
    """(name, shown signature) of each hyperparameter a call of `callee` takes; None when not a layer or
    initializer."""
    d = user.get(callee)
    if d is not None and d.kind in ("layer", "metric"):
        return [(p.name, f"{p.name}: {p.type.name if isinstance(p.type, N.ScalarType) else 'any'}")
                for p in d.hparams] + [("name", 'name: str')]
    if callee in BUILTIN_LAYERS:
        return [(h[0], show_hparam(*h)) for h in BUILTIN_LAYERS[callee].hparams] + [("name", "name: str")]
    if callee in INITIALIZERS:
        entry = INITIALIZERS[callee]
        return [(p, f"{p}: float = {v}") for p, v in zip(entry.params, entry.defaults)]
    if callee in FUNCTIONS:
        return [(k, k) for k in FUNCTIONS[callee].keywords]
    return None


def hparam_kind(callee: str, name: str, user: dict[str, N.Definition]) -> str | None:
    """The declared kind of `callee`'s hyperparameter `name` (layer, initializer, bool, ...)."""
    d = user.get(callee)
    if d is not None:
        p = next((p for p in d.hparams if p.name == name), None)
        return p.type.name if p is not None and isinstance(p.type, N.ScalarType) else None
    if callee in BUILTIN_LAYERS:
        return next((kind for n, kind, _ in BUILTIN_LAYERS[callee].hparams if n == name), None)
    return None
