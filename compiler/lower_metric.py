"""Metric definitions -> one per-batch ONNX graph of states, plus what to evaluate on the merged states.

A metric body splits in two: statements that read the data (y_true, y_pred,
sample_weight) run per batch in ONNX, ending in `state` reductions; statements
that read states (and `return`) run once on the merged states (runtime/finalize.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import ir
from . import nodes as N
from .builder import BlockBuilder
from .lower import Env, LayerVal, Lowerer
from .ops import describe, is_tensor
from .source import Span, error
from .types import FLOAT_DTYPES, TensorType, dims_agree, show_shape

STATE_RULES = ("sum", "count", "min", "max", "bincount")
NAN_PREDICTIONS = "nan_predictions"


@dataclass
class StateSpec:
    output: str        # the graph output carrying this batch's value
    name: str          # as declared: `state total = ...`
    rule: str          # how batches merge: sum, count, min, max, bincount
    dtype: str
    shape: tuple


@dataclass
class MetricPlan:
    spec: str
    definition: N.Definition
    hparams: dict[str, Any]
    states: list[StateSpec] = field(default_factory=list)
    final: list[N.Statement] = field(default_factory=list)


def named(b: BlockBuilder, value: ir.Value, name: str, loc: Span | None) -> ir.Value:
    """A graph output with a readable name (`m0.true_positives`)."""
    b.block.items.append(ir.Node("Identity", [value.name], [name], {}, name, loc))
    return ir.Value(name, value.type)


def names_in(e: Any) -> set[str]:
    found: set[str] = set()
    stack = [e]
    while stack:
        node = stack.pop()
        if isinstance(node, N.Name):
            found.add(node.id)
        elif isinstance(node, list):
            stack.extend(node)
        elif hasattr(node, "__dataclass_fields__"):
            stack.extend(getattr(node, f) for f in node.__dataclass_fields__ if f != "loc")
    return found


class MetricLowerer(Lowerer):
    def lower_metrics(self, metrics: list[tuple[str, LayerVal]], y_true: TensorType, y_pred: TensorType,
                      weighted: bool) -> tuple[ir.Model, list[MetricPlan]]:
        inputs = [ir.Value("y_true", y_true), ir.Value("y_pred", y_pred)]
        if weighted:
            inputs.append(ir.Value("sample_weight", TensorType("float64", (y_true.shape[0],))))
        b = BlockBuilder("metric_states", inputs)
        pred = inputs[1]
        if pred.type.rank == y_true.rank + 1 and pred.type.shape[-1] == 1:  # Keras: [batch, 1] meets [batch]
            pred = b.node("Squeeze", [pred, b.const([-1], "int64")], TensorType(y_pred.dtype, y_pred.shape[:-1]))
        labels_and_scores = y_true.rank == 1 and pred.type.rank == 2  # class labels against class scores
        same = y_true.rank == pred.type.rank and all(
            dims_agree(a, c) for a, c in zip(y_true.shape[1:], pred.type.shape[1:]))
        if not (same or labels_and_scores):
            raise error(None, f"y_true {show_shape(y_true.shape)} does not meet y_pred {show_shape(y_pred.shape)}: "
                              "metrics take the same shape, or class labels [batch] against scores [batch, k]")
        self.weight = inputs[2] if weighted else None
        plans, outputs = [], []
        for index, (spec, lv) in enumerate(metrics):
            plan = MetricPlan(spec, lv.layer, self.complete(lv, lv.layer.loc))  # type: ignore[arg-type]
            with b.scope(f"m{index}"):
                outputs.extend(self.lower_metric(plan, inputs[0], pred, b))
            plans.append(plan)
        if y_pred.dtype in FLOAT_DTYPES:  # rows with a NaN prediction are counted and reported
            nan = b.node("Cast", [b.node("IsNaN", [pred], TensorType("bool", pred.type.shape))],
                         TensorType("float64", pred.type.shape), to="float64")  # float64: see lower_state
            if pred.type.rank > 1:  # a row of class scores counts once
                nan = b.node("ReduceMax", [nan], TensorType("float64", pred.type.shape[:1]), keepdims=0,
                             axes=list(range(1, pred.type.rank)))
            total = b.node("ReduceSum", [nan], TensorType("float64", ()), keepdims=0)
            outputs.append(named(b, b.node("Cast", [total], TensorType("int64", ()), to="int64"),
                                 NAN_PREDICTIONS, None))
        b.block.outputs = outputs
        model = ir.Model("metric_states", b.block, [o.name for o in outputs])
        return model, plans

    def lower_metric(self, plan: MetricPlan, y_true: ir.Value, y_pred: ir.Value, b: BlockBuilder) -> list[ir.Value]:
        d = plan.definition
        env = Env(dict(plan.hparams), y_pred.type.dtype)
        names = [p.name for p in d.inputs]
        env.values[names[0]], env.values[names[1]] = y_true, y_pred
        explicit_weight = len(names) == 3
        if explicit_weight:
            env.values[names[2]] = self.weight_as(y_pred.type.dtype, b) if self.weight is not None else \
                self.unit_weights(y_true, y_pred.type.dtype, b)
        late: set[str] = set()
        outputs = []
        for stmt in d.body:
            if isinstance(stmt, N.Return):
                plan.final.append(stmt)
            elif isinstance(stmt, N.StateDecl):
                value = self.lower_state(stmt, env, b, weighted=not explicit_weight)
                out = named(b, value, f"{b.prefix[-1]}.{stmt.name}", stmt.loc)
                plan.states.append(StateSpec(out.name, stmt.name, self.rule_of(stmt), value.type.dtype,
                                             value.type.shape))
                outputs.append(out)
                late.add(stmt.name)
            elif isinstance(stmt, N.Assign) and names_in(stmt.value) & late:
                plan.final.append(stmt)
                late.add(stmt.name)
            elif isinstance(stmt, N.Assign):
                env.values[stmt.name] = self.eval(stmt.value, env, b)
            else:
                raise error(stmt.loc, "a metric declares no weights ('param'); use 'state' for its statistics")
        return outputs

    def unit_weights(self, like: ir.Value, dtype: str, b: BlockBuilder) -> ir.Value:
        """A weight of 1 per row, for a metric that reads sample_weight when none was given."""
        rows = b.node("Shape", [like], TensorType("int64", (1,)), start=0, end=1)
        return b.node("ConstantOfShape", [rows], TensorType(dtype, (like.type.shape[0],)),
                      value=ir.ConstTensor(dtype, (1,), (1,)))

    def weight_as(self, dtype: str, b: BlockBuilder) -> ir.Value:
        return b.node("Cast", [self.weight], TensorType(dtype, self.weight.type.shape), to=dtype)

    def rule_of(self, stmt: N.StateDecl) -> str:
        e = stmt.value
        if not (isinstance(e, N.Call) and isinstance(e.func, N.Name) and e.func.id in STATE_RULES):
            raise error(e.loc, f"a state is one of {', '.join(r + '(...)' for r in STATE_RULES)}; "
                               "compute the value in a statement before it")
        return e.func.id

    # --- one reduction per state ---------------------------------------------
    def lower_state(self, stmt: N.StateDecl, env: Env, b: BlockBuilder, weighted: bool) -> ir.Value:
        rule = self.rule_of(stmt)
        call: N.Call = stmt.value  # type: ignore[assignment]
        args, kwargs = self.eval_args(call.args, call.kwargs, env, b)
        loc = call.loc
        weight = self.weight if weighted else None
        if rule == "bincount":
            return self.state_bincount(b, loc, weight, *args, **kwargs)
        if len(args) != 1 or kwargs or not is_tensor(args[0]):
            raise error(loc, f"state {rule}() takes one tensor, got {', '.join(describe(a) for a in args) or 'nothing'}")
        x = args[0]
        w = self.broadcast_weight(b, weight, x, loc) if weight is not None else None
        if rule == "sum" and w is None and x.type.dtype in ("bool", "int32", "int64"):
            # a sum of bools or ints is a count, kept in int64. It is summed in float64 (exact to 2**53),
            # then cast: onnxruntime's int64 ReduceSum runs about 4x slower than its float64 one.
            as_float = b.node("Cast", [x], TensorType("float64", x.type.shape), loc, to="float64")
            total = b.node("ReduceSum", [as_float], TensorType("float64", ()), loc, keepdims=0)
            return b.node("Cast", [total], TensorType("int64", ()), loc, to="int64")
        x64 = b.node("Cast", [x], TensorType("float64", x.type.shape), loc, to="float64")
        scalar64 = TensorType("float64", ())
        if rule == "sum":
            summed = b.node("Mul", [x64, w], x64.type, loc) if w is not None else x64
            return b.node("ReduceSum", [summed], scalar64, loc, keepdims=0)
        if rule == "count":
            if w is None:
                return b.node("Size", [x], TensorType("int64", ()), loc)
            ones = b.node("Expand", [w, b.node("Shape", [x], TensorType("int64", (x.type.rank,)), loc)],
                          x64.type, loc)
            return b.node("ReduceSum", [ones], scalar64, loc, keepdims=0)
        # min / max over the batch; rows of weight 0 do not take part
        if w is not None:
            fill = b.const(float("inf") if rule == "min" else float("-inf"), "float64")
            keep = b.node("Greater", [w, b.const(0.0, "float64")], TensorType("bool", w.type.shape), loc)
            x64 = b.node("Where", [keep, x64, fill], x64.type, loc)
        return b.node("ReduceMin" if rule == "min" else "ReduceMax", [x64], scalar64, loc, keepdims=0)

    def broadcast_weight(self, b: BlockBuilder, w: ir.Value, x: ir.Value, loc: Span) -> ir.Value:
        """sample_weight [batch] -> [batch, 1, ...] to meet x [batch, ...]."""
        if x.type.rank == 0:
            raise error(loc, "a weighted state needs a tensor with the batch axis first, got a scalar")
        if x.type.rank == 1:
            return w
        axes = list(range(1, x.type.rank))
        return b.node("Unsqueeze", [w, b.const(axes, "int64")],
                      TensorType("float64", (w.type.shape[0],) + (1,) * len(axes)), loc)

    def state_bincount(self, b: BlockBuilder, loc: Span, weight: ir.Value | None, index: Any = None,
                       length: Any = None, weights: Any = None) -> ir.Value:
        if not is_tensor(index) or index.type.dtype not in ("int32", "int64"):
            raise error(loc, f"bincount() takes integer indices, got {describe(index)}")
        if not isinstance(length, int) or isinstance(length, bool) or length < 1:
            raise error(loc, f"bincount() length must be a positive int, got {describe(length)}")
        flat = TensorType("int64", (None,))
        idx = b.node("Reshape", [b.node("Cast", [index], TensorType("int64", index.type.shape), loc, to="int64"),
                                 b.const([-1], "int64")], flat, loc)
        dtype = "float64" if weights is not None or weight is not None else "int64"
        if weights is not None:
            if not is_tensor(weights):
                raise error(loc, f"bincount() weights must be a tensor, got {describe(weights)}")
            updates = b.node("Cast", [weights], TensorType("float64", weights.type.shape), loc, to="float64")
        else:
            updates = b.node("Cast", [b.node("Expand", [b.const(1, "int64"), b.node(
                "Shape", [index], TensorType("int64", (index.type.rank,)), loc)], TensorType("int64", index.type.shape),
                loc)], TensorType(dtype, index.type.shape), loc, to=dtype)
        if weight is not None:
            updates = b.node("Mul", [updates, self.broadcast_weight(b, weight, updates, loc)], updates.type, loc)
        updates = b.node("Reshape", [updates, b.const([-1], "int64")], TensorType(dtype, (None,)), loc)
        # indices outside [0, length) land in an extra last bin, which the runtime reports as an error
        valid = b.node("And", [b.node("GreaterOrEqual", [idx, b.const(0, "int64")], TensorType("bool", (None,)), loc),
                               b.node("Less", [idx, b.const(length, "int64")], TensorType("bool", (None,)), loc)],
                       TensorType("bool", (None,)), loc)
        idx = b.node("Where", [valid, idx, b.const(length, "int64")], flat, loc)
        zeros = b.const([0] * (length + 1), dtype)
        return b.node("ScatterElements", [zeros, idx, updates], TensorType(dtype, (length + 1,)), loc,
                      axis=0, reduction="add")
