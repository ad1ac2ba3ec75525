"""Recurrent layers (simple_rnn, lstm, gru, bidirectional) as ONNX's RNN/LSTM/GRU operators, with Keras'
weights and names.

The weight file keeps Keras' layout and Keras 3's variable paths: `lstm.lstm_cell.kernel` [features,
4*units], `lstm.lstm_cell.recurrent_kernel` [units, 4*units], `lstm.lstm_cell.bias` [4*units] (GRU with
reset_after: [2, 3*units]); under bidirectional, `bidirectional.forward_lstm.lstm_cell.kernel` and
`bidirectional.backward_lstm.lstm_cell.kernel`. ONNX wants [directions, gates*units, features] with its
own gate order, so the transposes and reorders are graph nodes on the weights (onnxruntime folds them).
onnxruntime runs only the time-major layout (layout=1 is refused), hence the Transposes around the op.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .builder import BlockBuilder
from .ir import InitSpec, Value
from .layers_base import BIAS_INITIALIZER, KERNEL_INITIALIZER, REQUIRED, BuiltinLayer, LayerContext, choice, \
    float_input, last_dim, layer, positive, ranked_input, rate
from .layers_spatial import onnx_kernel
from .functions import FUNCTIONS
from .source import Span, error
from .types import INT64_MAX, TensorType
from .values import LayerVal


@dataclass(frozen=True)
class Cell:
    op: str                       # the ONNX operator
    cell: str                     # Keras' cell name, a level of the weight path
    order: tuple[int, ...]        # for each ONNX gate, its index among Keras' gates
    states: int                   # h, or h and c
    activations: tuple[str, ...]  # ONNX's activation list, as hyperparameter names


CELLS = {
    "simple_rnn": Cell("RNN", "simple_rnn_cell", (0,), 1, ("activation",)),
    # Keras' LSTM gates are i, f, c, o; ONNX's are i, o, f, c
    "lstm": Cell("LSTM", "lstm_cell", (0, 3, 1, 2), 2, ("recurrent_activation", "activation", "activation")),
    "gru": Cell("GRU", "gru_cell", (0, 1, 2), 1, ("recurrent_activation", "activation")),
}
# Keras activation -> ONNX's name, for those both have (ONNX's RNN ops take no others)
ONNX_ACTIVATIONS = {"tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu", "softsign": "Softsign",
                    "softplus": "Softplus"}
DEFAULT_ACTIVATIONS = {"activation": "tanh", "recurrent_activation": "sigmoid"}
MERGE_MODES = ("concat", "sum", "mul", "ave", "none")


def _features(x: Value, name: str, loc: Span | None) -> int:
    """The features of a recurrent layer's input [batch, timesteps, features]."""
    return last_dim(ranked_input(float_input(x, name, loc), 3, "batch, timesteps, features", name, loc), name, loc)


def _activation_attrs(cell: Cell, hp: dict, directions: int, name: str, loc: Span | None) -> dict[str, Any]:
    """ONNX's `activations` attribute, left out when it is Keras' default. onnx's reference evaluator runs only
    the defaults (runtime/session.py refuses the rest there)."""
    names = []
    for key in cell.activations:
        lv = hp[key]
        if lv.name not in ONNX_ACTIVATIONS or lv.hparams or not isinstance(lv.layer, BuiltinLayer):
            raise error(loc, f"{name} {key} must be one of {', '.join(ONNX_ACTIVATIONS)}, got {lv.name}")
        names.append(lv.name)
    if all(n == DEFAULT_ACTIVATIONS[k] for n, k in zip(names, cell.activations)):
        return {}
    return {"activations": [ONNX_ACTIVATIONS[n] for n in names] * directions}


def _reorder(b: BlockBuilder, w: Value, cell: Cell, units: int, loc: Span | None) -> Value:
    """[rows, gates*units] in Keras' gate order -> [1, gates*units, rows] in ONNX's."""
    return _unsqueeze(b, _onnx_gate_order(b, onnx_kernel(b, w, loc), cell, units, loc), loc)


def _onnx_gate_order(b: BlockBuilder, w: Value, cell: Cell, units: int, loc: Span | None) -> Value:
    """Axis 0 of w, gates*units long in Keras' gate order, rearranged in ONNX's."""
    if list(cell.order) == sorted(cell.order):
        return w
    index = [g * units + k for g in cell.order for k in range(units)]
    return b.node("Gather", [w, b.const(index, "int64")], w.type, loc, axis=0)


def _unsqueeze(b: BlockBuilder, x: Value, loc: Span | None) -> Value:
    """x with ONNX's leading direction axis."""
    return FUNCTIONS["expand_dims"].lower(b, loc, x, 0)


def _weights(b: BlockBuilder, cell: Cell, hp: dict, features: int, dt: str, loc: Span | None) -> list[Value]:
    """W, R and (with use_bias) B for one direction, each with ONNX's leading direction axis."""
    units, gates = hp["units"], len(cell.order)
    with b.scope(cell.cell):
        kernel = b.weight("kernel", TensorType(dt, (features, gates * units)), hp["kernel_initializer"], loc)
        recurrent = b.weight("recurrent_kernel", TensorType(dt, (units, gates * units)),
                             hp["recurrent_initializer"], loc)
        out = [_reorder(b, kernel, cell, units, loc), _reorder(b, recurrent, cell, units, loc)]
        if not hp["use_bias"]:
            return out
        split = hp.get("reset_after", False)  # GRU reset_after: input and recurrent biases, as ONNX's B
        shape = (2, gates * units) if split else (gates * units,)
        bias = b.weight("bias", TensorType(dt, shape), hp["bias_initializer"], loc)
    if split:
        return [*out, FUNCTIONS["reshape"].lower(b, loc, bias, [1, -1])]
    bias = _onnx_gate_order(b, bias, cell, units, loc)
    zeros = b.const([0.0] * (gates * units), dt)  # Keras has one bias; ONNX adds Wb and Rb
    both = b.node("Concat", [bias, zeros], TensorType(dt, (2 * gates * units,)), loc, axis=0)
    return [*out, _unsqueeze(b, both, loc)]


def _initial_states(b: BlockBuilder, given: list[Value], cell: Cell, units: int, x: Value, name: str,
                    loc: Span | None) -> list[Value | str]:
    """initial_h (and initial_c) [directions, batch, units] from the given [batch, units] states, forward
    ones first (Keras' order); "" (ONNX's absent input) when none are given."""
    if not given:
        return [""] * cell.states
    directions, out = len(given) // cell.states, []
    batch, dt = x.type.shape[0], x.type.dtype
    for s in given:
        bad = s.type.dtype != dt or s.type.rank != 2 or s.type.shape[1] != units or (
            isinstance(s.type.shape[0], int) and isinstance(batch, int) and s.type.shape[0] != batch)
        if bad:
            want = TensorType(dt, (batch, units))
            raise error(loc, f"{name} initial state must be {want} ([batch, units]), got {s.type}")
    for k in range(cell.states):
        parts = [_unsqueeze(b, given[d * cell.states + k], loc) for d in range(directions)]
        out.append(parts[0] if directions == 1 else
                   b.node("Concat", parts, TensorType(dt, (2, batch, units)), loc, axis=0))
    return out


def _run(b: BlockBuilder, kind: str, x: Value, weights: list[Value], states: list[Value | str], hp: dict,
         direction: str, loc: Span | None) -> tuple[Value, list[Value]]:
    """The ONNX op on batch-major x: Y [timesteps, directions, batch, units] and the final states."""
    batch, time, _ = x.type.shape
    cell, dt, units, n = CELLS[kind], x.type.dtype, hp["units"], 2 if direction == "bidirectional" else 1
    xt = FUNCTIONS["transpose"].lower(b, loc, x, [1, 0, 2])
    attrs = _activation_attrs(cell, hp, n, kind, loc)
    if cell.op == "GRU":
        attrs["linear_before_reset"] = int(hp["reset_after"])
    bias = weights[2] if len(weights) == 3 else ""
    inputs = [xt, weights[0], weights[1], bias, "", *states]
    state = TensorType(dt, (n, batch, units))
    y, *finals = b.node_multi(cell.op, inputs, [TensorType(dt, (time, n, batch, units))] + [state] * cell.states,
                              loc, hidden_size=units, direction=direction, **attrs)
    return y, finals


def _output(b: BlockBuilder, y: Value, finals: list[Value], d: int, hp: dict, loc: Span | None) -> Value:
    """Direction d's output as Keras gives it: [batch, timesteps, units] or [batch, units]."""
    time, _, batch, units = y.type.shape
    dt, index = y.type.dtype, b.const(d, "int64")
    if not hp["return_sequences"]:
        return b.node("Gather", [finals[0], index], TensorType(dt, (batch, units)), loc, axis=0)
    seq = b.node("Gather", [y, index], TensorType(dt, (time, batch, units)), loc, axis=1)
    return FUNCTIONS["transpose"].lower(b, loc, seq, [1, 0, 2])


def _states(b: BlockBuilder, finals: list[Value], d: int, loc: Span | None) -> list[Value]:
    _, batch, units = finals[0].type.shape
    index = b.const(d, "int64")
    return [b.node("Gather", [f, index], TensorType(f.type.dtype, (batch, units)), loc, axis=0) for f in finals]


def _recurrent(kind: str) -> Any:
    cell = CELLS[kind]

    def lower(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict, loc: Span | None) -> Value | tuple:
        features = _features(xs[0], kind, loc)
        _check_hparams(hp, kind, loc)
        if len(xs) not in (1, 1 + cell.states):
            raise error(loc, f"{kind} takes its input and {cell.states} initial state"
                             f"{'s' * (cell.states > 1)} ({', '.join(['h0', 'c0'][:cell.states])}), got "
                             f"{len(xs) - 1} state{'s' * (len(xs) != 2)}")
        states = _initial_states(b, xs[1:], cell, hp["units"], xs[0], kind, loc)
        weights = _weights(b, cell, hp, features, xs[0].type.dtype, loc)
        y, finals = _run(b, kind, xs[0], weights, states, hp, "reverse" if hp["go_backwards"] else "forward", loc)
        out = _output(b, y, finals, 0, hp, loc)
        if hp["go_backwards"] and hp["return_sequences"]:  # Keras returns the steps in the order it ran them
            out = _flip_time(b, out, loc)
        return (out, *_states(b, finals, 0, loc)) if hp["return_state"] else out
    return lower


def _flip_time(b: BlockBuilder, x: Value, loc: Span | None) -> Value:
    return b.node("Slice", [x, b.const([-1], "int64"), b.const([-INT64_MAX - 1], "int64"), b.const([1], "int64"),
                            b.const([-1], "int64")], x.type, loc)


def _check_hparams(hp: dict, kind: str, loc: Span | None) -> None:
    """What Keras refuses among a recurrent layer's numbers (its dropouts are the identity at inference)."""
    positive(hp["units"], "units", kind, loc)
    rate(hp["dropout"], "dropout", kind, loc)
    rate(hp["recurrent_dropout"], "recurrent_dropout", kind, loc)


def _merge(b: BlockBuilder, outs: list[Value], mode: str, loc: Span | None) -> list[Value]:
    """Keras' Bidirectional merge of the forward and backward outputs; "none" keeps both."""
    f, r = outs
    if mode == "none":
        return outs
    if mode == "concat":
        shape = f.type.shape[:-1] + (2 * f.type.shape[-1],)
        return [b.node("Concat", outs, TensorType(f.type.dtype, shape), loc, axis=-1)]
    if mode == "mul":
        return [b.node("Mul", outs, f.type, loc)]
    total = b.node("Add", outs, f.type, loc)
    return [total if mode == "sum" else b.node("Mul", [total, b.const(0.5, f.type.dtype)], f.type, loc)]


def _wrapped(ctx: LayerContext, hp: dict, loc: Span | None) -> tuple[str, dict]:
    """The recurrent layer bidirectional wraps, and all of its hyperparameters."""
    inner = hp["layer"]
    if not isinstance(inner, LayerVal) or inner.name not in CELLS or not isinstance(inner.layer, BuiltinLayer):
        got = inner.name if isinstance(inner, LayerVal) else inner
        raise error(loc, f"bidirectional wraps a recurrent layer ({', '.join(CELLS)}), got the layer {got}")
    choice(hp, "merge_mode", MERGE_MODES, "bidirectional", loc, fold_case=False)  # Keras compares as given
    assert ctx.complete is not None
    ihp = ctx.complete(inner, loc)
    if ihp["go_backwards"]:
        raise error(loc, f"bidirectional of a go_backwards {inner.name} is not supported; "
                         "wrap the forward layer (bidirectional runs both directions)")
    _check_hparams(ihp, inner.name, loc)
    return inner.explicit_name or inner.name, ihp


def lower_bidirectional(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict,
                        loc: Span | None) -> Value | tuple:
    name, ihp = _wrapped(ctx, hp, loc)
    kind = hp["layer"].name
    cell = CELLS[kind]
    features = _features(xs[0], "bidirectional", loc)
    if len(xs) not in (1, 1 + 2 * cell.states):
        raise error(loc, f"bidirectional({kind}) takes its input and {2 * cell.states} initial states "
                         f"(forward ones, then backward ones), got {len(xs) - 1}")
    states = _initial_states(b, xs[1:], cell, ihp["units"], xs[0], "bidirectional", loc)
    per_direction = []
    for side in ("forward", "backward"):
        with b.scope(f"{side}_{name}"):
            per_direction.append(_weights(b, cell, ihp, features, xs[0].type.dtype, loc))
    weights = [b.node("Concat", [f, r], TensorType(f.type.dtype, (2, *f.type.shape[1:])), loc, axis=0)
               for f, r in zip(*per_direction)]
    y, finals = _run(b, kind, xs[0], weights, states, ihp, "bidirectional", loc)
    merged = _merge(b, [_output(b, y, finals, d, ihp, loc) for d in (0, 1)], hp["merge_mode"], loc)
    if ihp["return_state"]:
        return (*merged, *_states(b, finals, 0, loc), *_states(b, finals, 1, loc))
    return merged[0] if len(merged) == 1 else tuple(merged)


def _hparams(kind: str) -> list[tuple[str, str, Any]]:
    """Keras' hyperparameters of SimpleRNN, LSTM and GRU, in Keras' order (dropouts: identity at inference)."""
    gated = kind != "simple_rnn"
    return [
        ("units", "int", REQUIRED), ("activation", "layer", "tanh"),
        *([("recurrent_activation", "layer", "sigmoid")] if gated else []),
        ("use_bias", "bool", True),
        KERNEL_INITIALIZER, ("recurrent_initializer", "initializer", InitSpec("orthogonal")), BIAS_INITIALIZER,
        ("dropout", "float", 0.0), ("recurrent_dropout", "float", 0.0),
        ("return_sequences", "bool", False), ("return_state", "bool", False), ("go_backwards", "bool", False),
        *([("reset_after", "bool", True)] if kind == "gru" else []),
    ]


LAYERS: list[BuiltinLayer] = [
    layer("simple_rnn", _recurrent("simple_rnn"), "h = activation(x @ kernel + h @ recurrent_kernel + bias)",
          *_hparams("simple_rnn"), inputs=(1, 2)),
    layer("lstm", _recurrent("lstm"), "Keras' LSTM (gates i, f, c, o), as ONNX's LSTM", *_hparams("lstm"),
          inputs=(1, 3)),
    layer("gru", _recurrent("gru"), "Keras' GRU (gates z, r, h), as ONNX's GRU", *_hparams("gru"), inputs=(1, 2)),
    layer("bidirectional", lower_bidirectional, "the layer forward and backward, outputs merged",
          ("layer", "layer", REQUIRED), ("merge_mode", "str", "concat"), inputs=(1, 5)),
]
