"""The one table of how each Keras layer class imports: the modelc layer, function or operator it becomes,
its hyperparameters (Keras' config keys, modelc's names, defaults left out) and its weights (Keras' order,
modelc's names). The Keras class -> modelc layer names come from compiler/keras_names.py; hyperparameters
and defaults from the built-in layer table, so a layer modelc gains is imported by adding its name there."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..compiler.keras_names import KERAS_ACTIVATIONS as ACTIVATIONS, KERAS_KEYWORDS, KERAS_LAYERS
from ..compiler.layers import BUILTIN_LAYERS
from ..compiler.layers_base import REQUIRED

# Keras activations that modelc writes as a function after the layer (no activation layer holds them)
FUNCTION_ACTIVATIONS = {"relu6": "clip(0.0, 6.0)"}

RNN_CELLS = {"SimpleRNN": "simple_rnn_cell", "LSTM": "lstm_cell", "GRU": "gru_cell"}

# Keras' element-wise merge layers and the keras.ops a Functional model records, as modelc expressions (their
# operands are always names: an expression's value is bound to a variable before anything uses it)
MERGES: dict[str, Callable[[list[str]], str]] = {
    "Add": lambda xs: " + ".join(xs), "Subtract": lambda xs: f"{xs[0]} - {xs[1]}",
    "Multiply": lambda xs: " * ".join(xs), "Average": lambda xs: f"({' + '.join(xs)}) / {len(xs)}",
    "Maximum": lambda xs: f"max({', '.join(xs)})", "Minimum": lambda xs: f"min({', '.join(xs)})",
    "Divide": lambda xs: f"{xs[0]} / {xs[1]}", "TrueDivide": lambda xs: f"{xs[0]} / {xs[1]}",
    "NotEqual": lambda xs: f"{xs[0]} != {xs[1]}", "Equal": lambda xs: f"{xs[0]} == {xs[1]}",
    "Greater": lambda xs: f"{xs[0]} > {xs[1]}", "Less": lambda xs: f"{xs[0]} < {xs[1]}",
}

# Keras hyperparameters modelc has no counterpart for: (class, key) -> the values that import
ONLY = {("Embedding", "mask_zero"): (False,), ("Normalization", "invert"): (False,),
        ("LayerNormalization", "center"): (True,), ("LayerNormalization", "scale"): (True,),
        ("LayerNormalization", "rms_scaling"): (False, None), ("MultiHeadAttention", "attention_axes"): (None, [1]),
        **{(c, "stateful"): (False,) for c in RNN_CELLS}, **{(c, "time_major"): (False, None) for c in RNN_CELLS}}

# keys whose "an int or a list of ints" form is written as one int when every entry is equal
COLLAPSE = {"kernel_size", "strides", "dilation_rate", "pool_size", "size", "padding", "cropping"}


class Unsupported(Exception):
    """A Keras layer, activation or setting that has no modelc counterpart; the message says which."""


@dataclass
class Stage:
    """What one Keras layer application becomes: a layer instance (`kind` "layer": it has a name and may
    have weights), a built-in function applied to its input ("function"), or an expression ("expr")."""

    kind: str
    text: str                                       # `dense(4, activation=relu)`, `clip(0.0, 6.0)`
    weights: list[str | None] = field(default_factory=list)  # modelc names in Keras' order; None: dropped
    layer: str = ""                                 # the modelc layer (its default instance name)
    expr: Callable[[list[str]], str] | None = None
    body: Any = None                                # a nested model's body (source.Body)
    post: str = ""                                  # a function stage after it: its activation (relu6)
    stub: bool = False


def literal(value: Any) -> str:
    """A Python value from a Keras config as modelc source."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(float(value))
    return str(value)


def _collapse(key: str, value: Any) -> Any:
    """Keras' tuples as lists; `[3, 3]` or `[[1, 1], [1, 1]]` as `3` for the keys that take an int for all."""
    if not isinstance(value, (list, tuple)):
        return value
    value = [_collapse("", v) for v in value]
    flat = [v[0] if isinstance(v, list) and len(set(v)) == 1 else v for v in value]
    if key in COLLAPSE and flat and all(v == flat[0] and not isinstance(v, list) for v in flat):
        return flat[0]
    return value


def call_text(name: str, args: list[str], kwargs: dict[str, str]) -> str:
    parts = args + [f"{k}={v}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})" if parts else name


def activation(value: Any, where: str) -> str:
    """An activation as a Keras config gives it (a name, or a serialized layer) as a modelc layer instance."""
    if isinstance(value, dict):
        return convert(value["class_name"], value.get("config", {})).text
    if value in ACTIVATIONS:
        return ACTIVATIONS[value]
    known = sorted({*ACTIVATIONS.values(), *FUNCTION_ACTIVATIONS})
    raise Unsupported(f"{where}activation '{value}' has no modelc counterpart (modelc has {', '.join(known)})")


def _keras_key(modelc_key: str, layer: str) -> str:
    for keras, (new, callees) in KERAS_KEYWORDS.items():
        if new == modelc_key and layer in callees:
            return keras
    return modelc_key


def builtin(class_name: str, cfg: dict, rank: int | None = None) -> tuple[str, list[str], dict[str, str]]:
    """A built-in layer's call from a Keras config: required hyperparameters positionally, the others by
    keyword where they differ from modelc's default (initializers are left out: the weights are given)."""
    layer = KERAS_LAYERS[class_name]
    for (cls, key), allowed in ONLY.items():
        if cls == class_name and cfg.get(key, allowed[0]) not in allowed:
            raise Unsupported(f"{key}={cfg[key]!r} has no modelc counterpart")
    args, kwargs = [], {}
    for key, kind, default in BUILTIN_LAYERS[layer].hparams:
        keras_key = _keras_key(key, layer)
        if kind in ("initializer", "tensor") or keras_key not in cfg:
            continue
        value = _collapse(key, cfg[keras_key])
        if key == "axis" and rank is not None and value in (rank - 1, [rank - 1], [-1]):
            value = -1   # the last axis, as modelc's default says it
        if kind == "layer":
            value = activation(value, "")
            if value == default:
                continue
            text = value
        elif value is None or value == default or (key == "value_dim" and value == cfg.get("key_dim")) or (
                key == "strides" and value == _collapse(key, cfg.get("pool_size"))):
            continue
        else:
            text = literal(value)
        if default is REQUIRED and not kwargs:
            args.append(text)
        else:
            kwargs[key] = text
    return layer, args, kwargs


def _weights(class_name: str, cfg: dict) -> list[str | None]:
    """The modelc names of a layer's weights, in Keras' `layer.weights` order."""
    bias = ["bias"] if cfg.get("use_bias", True) else []
    if class_name == "BatchNormalization":
        return ["gamma"] * cfg.get("scale", True) + ["beta"] * cfg.get("center", True) + \
            ["moving_mean", "moving_variance"]
    if class_name in ("LayerNormalization", "GroupNormalization"):
        return ["gamma"] * cfg.get("scale", True) + ["beta"] * cfg.get("center", True)
    if class_name == "RMSNormalization":
        return ["scale"]
    if class_name == "Normalization":
        return [] if cfg.get("mean") is not None else ["mean", "variance", None]   # Keras' count is dropped
    if class_name == "Embedding":
        return ["embeddings"]
    if class_name.startswith("SeparableConv"):
        return ["depthwise_kernel", "pointwise_kernel", *bias]
    if class_name == "MultiHeadAttention":
        return [f"{p}.{w}" for p in ("query", "key", "value", "attention_output") for w in ["kernel", *bias]]
    if class_name in RNN_CELLS:
        return [f"{RNN_CELLS[class_name]}.{w}" for w in ("kernel", "recurrent_kernel", *bias)]
    if class_name == "Bidirectional":
        inner = cfg["layer"]
        base = inner["config"]["name"].removeprefix("forward_")
        names = _weights(inner["class_name"], inner["config"])
        return [f"{d}_{base}.{w}" for d in ("forward", "backward") for w in names]
    if any(w in class_name for w in ("Dense", "Conv")):
        return ["kernel", *bias]
    return []


def _relu(cfg: dict) -> Stage:
    top, slope, threshold = cfg.get("max_value"), cfg.get("negative_slope") or 0.0, cfg.get("threshold") or 0.0
    if threshold:
        raise Unsupported(f"ReLU threshold={threshold} has no modelc counterpart")
    if top is not None:
        if slope:
            raise Unsupported("ReLU with both max_value and negative_slope has no modelc counterpart")
        return Stage("function", f"clip(0.0, {literal(float(top))})")
    if slope:
        return Stage("layer", f"leaky_relu({literal(float(slope))})", layer="leaky_relu")
    return Stage("layer", "relu", layer="relu")


def _bidirectional(cfg: dict) -> Stage:
    inner = cfg["layer"]
    stage = convert(inner["class_name"], inner["config"])
    base = inner["config"]["name"].removeprefix("forward_")
    text = stage.text if base == stage.layer else stage.text[:-1] + f', name="{base}")' if "(" in stage.text \
        else f'{stage.text}(name="{base}")'
    mode = cfg.get("merge_mode", "concat")
    kwargs = {} if mode == "concat" else {"merge_mode": literal("none" if mode is None else mode)}
    return Stage("layer", call_text("bidirectional", [text], kwargs), _weights("Bidirectional", cfg),
                 layer="bidirectional")


def _activation_layer(cfg: dict) -> Stage:
    text = activation(cfg["activation"], "")
    return Stage("layer", text, layer=text.split("(")[0])


SPECIAL: dict[str, Callable[[dict], Stage]] = {
    "ReLU": _relu, "Bidirectional": _bidirectional, "Activation": _activation_layer,
    "Identity": lambda cfg: Stage("layer", "linear", layer="linear"),
    "Concatenate": lambda cfg: Stage("function", call_text("concat", [], {"axis": str(cfg["axis"])}
                                                           if cfg.get("axis", -1) != -1 else {})),
}


def _index(xs: list[str]) -> str:
    return f"{xs[0]}{xs[1]}" if xs[1].startswith("[") else f"{xs[0]}[{xs[1]}]"


# keras.ops recorded in a Functional model (module keras.src.ops.*), besides those of MERGES
OPS: dict[str, Callable[[dict], Callable[[list[str]], str]]] = {
    "ExpandDims": lambda cfg: lambda xs: f"expand_dims({xs[0]}, axis={cfg['axis']})",
    "GetItem": lambda cfg: _index,
}


def convert(class_name: str, cfg: dict, module: str = "", rank: int | None = None) -> Stage:
    """How a Keras layer of this class and config imports; Unsupported if it has no counterpart."""
    if module.startswith("keras.src.ops") and class_name in OPS:
        return Stage("expr", "", expr=OPS[class_name](cfg))
    if class_name in SPECIAL:
        return SPECIAL[class_name](cfg)
    if class_name in MERGES:
        return Stage("expr", "", expr=MERGES[class_name])
    if class_name not in KERAS_LAYERS:
        raise Unsupported("")
    cfg, post = _split_activation(cfg)
    layer, args, kwargs = builtin(class_name, cfg, rank)
    return Stage("layer", call_text(layer, args, kwargs), _weights(class_name, cfg), layer=layer, post=post)


def _split_activation(cfg: dict) -> tuple[dict, str]:
    """An `activation=` modelc writes as a function stage after the layer (relu6, ReLU(max_value=6)):
    the config without it, and that stage."""
    value = cfg.get("activation")
    if isinstance(value, str) and value in FUNCTION_ACTIVATIONS:
        return {**cfg, "activation": "linear"}, FUNCTION_ACTIVATIONS[value]
    if isinstance(value, dict) and value.get("class_name") == "ReLU":
        stage = _relu(value.get("config", {}))
        if stage.kind == "function":
            return {**cfg, "activation": "linear"}, stage.text
    return cfg, ""
