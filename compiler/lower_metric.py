"""Metric definitions -> one per-batch ONNX graph of states, plus what to evaluate on the merged states.

A metric body splits in two (states.split_metric): statements that read the data (y_true, y_pred,
sample_weight) run per batch in ONNX, ending in `state` reductions; statements that read states (and
`return`) run once on the merged states (runtime/finalize.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import ir
from . import nodes as N
from .builder import BlockBuilder
from .lower import Env, Lowerer
from .source import Span, error
from .states import NAN_PREDICTIONS, STATE_RULES, Batch, StateSpec, count_of, split_metric, state_rule
from .types import FLOAT_DTYPES, TensorType, dims_agree, show_shape
from .values import LayerVal


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


def drop_unused(block: ir.Block) -> None:
    """Drop the nodes no output needs (a helper's value a metric ignores): onnxruntime runs every node it is given."""
    if any(isinstance(item, ir.Node) and item.op in ("If", "Loop", "Scan") for item in block.items):
        return  # their subgraphs read outer values by name: keep everything
    needed, kept = {o.name for o in block.outputs}, []
    for item in reversed(block.items):
        if any(o in needed for o in item.outputs):
            kept.append(item)
            needed.update([*item.inputs, *getattr(item, "weights", [])])
    block.items = kept[::-1]


class MetricLowerer(Lowerer):
    def lower_metrics(self, metrics: list[tuple[str, LayerVal]], y_true: TensorType, y_pred: TensorType,
                      weighted: bool | tuple, max_rows: int | None = None) -> tuple[ir.Model, list[MetricPlan]]:
        """The per-batch graph. `weighted`: False, True (one weight per row) or the weights' shape after the batch
        axis (one per element: [d] against y_pred [batch, d]); `max_rows`, the most rows a batch will have, lets
        small counts sum in float32."""
        inputs = [ir.Value("y_true", y_true), ir.Value("y_pred", y_pred)]
        if weighted is not False:
            trailing = () if weighted is True else tuple(weighted)
            inputs.append(ir.Value("sample_weight", TensorType("float64", (y_true.shape[0], *trailing))))
        b = BlockBuilder("metric_states", inputs)
        truth, pred = self.meet(b, inputs[0], inputs[1])
        self.weight = inputs[2] if weighted is not False else None
        self.max_rows = max_rows
        plans, outputs = [], []
        for index, (spec, lv) in enumerate(metrics):
            plan = MetricPlan(spec, lv.layer, self.complete(lv, lv.layer.loc))  # type: ignore[arg-type]
            with b.scope(f"m{index}"):
                outputs.extend(self.lower_metric(plan, truth, pred, b))
            plans.append(plan)
        if y_pred.dtype in FLOAT_DTYPES:  # rows with a NaN prediction are counted and reported
            outputs.append(self.nan_predictions(b, pred))
        b.block.outputs = outputs
        drop_unused(b.block)
        model = ir.Model("metric_states", b.block, [o.name for o in outputs])
        return model, plans

    def meet(self, b: BlockBuilder, truth: ir.Value, pred: ir.Value) -> tuple[ir.Value, ir.Value]:
        """y_true and y_pred as the metrics see them: Keras drops a trailing 1 of either to meet the other
        ([batch, 1] scores against labels [batch]; labels [batch, 1] against scores [batch, k])."""
        y_true, y_pred = truth.type, pred.type
        if y_pred.rank == y_true.rank + 1 and y_pred.shape[-1] == 1:
            pred = b.node("Squeeze", [pred, b.const([-1], "int64")], TensorType(y_pred.dtype, y_pred.shape[:-1]))
        elif y_true.rank == y_pred.rank == 2 and y_true.shape[-1] == 1 and y_pred.shape[-1] != 1:
            truth = b.node("Squeeze", [truth, b.const([-1], "int64")], TensorType(y_true.dtype, y_true.shape[:-1]))
        labels_and_scores = truth.type.rank == 1 and pred.type.rank == 2  # class labels against class scores
        same = truth.type.rank == pred.type.rank and all(
            dims_agree(a, c) for a, c in zip(truth.type.shape[1:], pred.type.shape[1:]))
        if not (same or labels_and_scores):
            raise error(None, f"y_true {show_shape(y_true.shape)} does not meet y_pred {show_shape(y_pred.shape)}: "
                              "metrics take the same shape, or class labels [batch] (or [batch, 1]) against scores "
                              "[batch, k]")
        return truth, pred

    def nan_predictions(self, b: BlockBuilder, pred: ir.Value) -> ir.Value:
        if pred.type.rank > 1:  # a row of class scores counts once: its sum is NaN when a score is (one pass, where
            pred = b.node("ReduceSum", [pred, b.const(list(range(1, pred.type.rank)), "int64")],  # a mask of every
                          TensorType(pred.type.dtype, pred.type.shape[:1]), keepdims=0)          # score takes three)
        nan = b.node("IsNaN", [pred], TensorType("bool", pred.type.shape))
        return named(b, count_of(b, nan, None, self.max_rows), NAN_PREDICTIONS, None)

    def lower_metric(self, plan: MetricPlan, y_true: ir.Value, y_pred: ir.Value, b: BlockBuilder) -> list[ir.Value]:
        d = plan.definition
        env = Env(dict(plan.hparams), y_pred.type.dtype)
        names = [p.name for p in d.inputs]
        env.values[names[0]], env.values[names[1]] = y_true, y_pred
        explicit_weight = len(names) == 3  # the metric weighs its states itself
        if explicit_weight:  # in y_pred's float dtype (float64 for integer predictions: class labels)
            dtype = y_pred.type.dtype if y_pred.type.dtype in FLOAT_DTYPES else "float64"
            env.values[names[2]] = self.weight_as(dtype, b) if self.weight is not None else \
                self.unit_weights(y_true, dtype, b)
        body = split_metric(d)
        plan.final = body.final
        outputs = []
        for stmt in body.per_batch:
            if isinstance(stmt, N.Assign):
                env.values[stmt.name] = self.eval(stmt.value, env, b)
                continue
            value = self.lower_state(stmt, env, b, weighted=not explicit_weight)  # type: ignore[arg-type]
            out = named(b, value, f"{b.prefix[-1]}.{stmt.name}", stmt.loc)
            plan.states.append(StateSpec(out.name, stmt.name, state_rule(stmt), value.type.dtype,  # type: ignore
                                         value.type.shape))
            outputs.append(out)
        return outputs

    def unit_weights(self, like: ir.Value, dtype: str, b: BlockBuilder) -> ir.Value:
        """A weight of 1 per row, for a metric that reads sample_weight when none was given."""
        rows = b.node("Shape", [like], TensorType("int64", (1,)), start=0, end=1)
        ones = b.node("ConstantOfShape", [rows], TensorType(dtype, (like.type.shape[0],)),
                      value=ir.ConstTensor(dtype, (1,), (1,)))
        return ir.UnitWeights(ones.name, ones.type, self.max_rows)

    def weight_as(self, dtype: str, b: BlockBuilder) -> ir.Value:
        return b.node("Cast", [self.weight], TensorType(dtype, self.weight.type.shape), to=dtype)

    def lower_state(self, stmt: N.StateDecl, env: Env, b: BlockBuilder, weighted: bool) -> ir.Value:
        """One reduction, by the state's rule (check.py has made sure it names one)."""
        call: N.Call = stmt.value  # type: ignore[assignment]
        args, kwargs = self.eval_args(call.args, call.kwargs, env, b)
        rule = STATE_RULES[state_rule(stmt)]  # type: ignore[index]
        return rule.lower(b, call.loc, Batch(self.weight if weighted else None, self.max_rows), args, kwargs)
