"""The classification helpers of the built-in metrics (runtime/prelude.model), per batch, in ONNX: class labels,
positives, the per-class confusion counts behind precision, recall and F-scores, the label columns of a
multi-label AUC, and the checks of a metric's arguments. functions.py puts them in the one table.

Shapes they take (docs/language.md §16.6): one score per row `[batch]` (binary); class scores `[batch, k]`
with class-index labels `[batch]` (multiclass); scores and 0/1 labels of one shape `[batch, k]` (multilabel,
or one-hot labels).
"""
from __future__ import annotations

from typing import Any

from .builder import BlockBuilder
from .ir import Value
from .operators import binary
from .source import Span, did_you_mean, error
from .types import FLOAT_DTYPES, INT_DTYPES, TensorType
from .values import describe, is_tensor

F64 = "float64"
# The functions that read y_true as class labels: the runtime refuses a fractional label before such a metric runs.
READS_LABELS = frozenset({"labels", "class_counts", "label_outside"})


def _tensor(v: Any, fn: str, what: str, loc: Span | None) -> Value:
    if not is_tensor(v):
        raise error(loc, f"{fn}() takes a tensor as {what}, got {describe(v)}")
    return v


def _class_axis(y_true: Value, y_pred: Value, fn: str, loc: Span | None) -> int | None:
    """k for class scores [batch, k] (k > 1); None for one score per row; class labels must fit."""
    t, p = y_true.type, y_pred.type
    if p.rank == 1 or p.rank == 2 and p.shape[-1] == 1:
        if t.rank != p.rank:
            raise error(loc, f"{fn}() takes labels of the scores' shape, got {t} against {p}")
        return None
    if p.rank != 2 or not isinstance(p.shape[-1], int):
        raise error(loc, f"{fn}() takes scores [batch] or [batch, k] with k known, got {p}")
    if not (t.rank == 1 or t.rank == 2 and t.shape[-1] == p.shape[-1]):
        raise error(loc, f"{fn}() takes class labels [batch] or 0/1 labels {p} against scores {p}, got {t}")
    return p.shape[-1]


def label_count(y_true: Value, y_pred: Value, per_label: bool = True, loc: Span | None = None) -> int:
    """How many labels (curves, classes) the scores hold: k for class scores, taken one by one when `per_label`
    (always for class-index labels: one-vs-rest), else 1."""
    k = _class_axis(_tensor(y_true, "label_count", "y_true", loc), _tensor(y_pred, "label_count", "y_pred", loc),
                    "label_count", loc)
    return k if k is not None and (per_label or y_true.type.rank == 1) else 1


def lower_label_count(b: BlockBuilder, loc: Span | None, y_true: Any, y_pred: Any, per_label: Any = True,
                      label_weights: Any = None) -> int:
    """The label count; `label_weights`, when given, must hold one non-negative number per label."""
    k = label_count(y_true, y_pred, bool(per_label), loc)
    if label_weights is not None and not (
            isinstance(label_weights, list) and len(label_weights) == k
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in label_weights)):
        raise error(loc, f"label_weights={label_weights!r} must be a list of {k} non-negative numbers, one per label")
    return k


def lower_label_column(b: BlockBuilder, loc: Span | None, y_true: Any, y_pred: Any, per_label: Any = True) -> Any:
    """Each score's label as an int64 row [1, k] that broadcasts over the scores, or 0 when all are one curve."""
    k = label_count(y_true, y_pred, bool(per_label), loc)
    return b.const(list(range(k)), "int64", (1, k)) if k > 1 else 0


def positives(b: BlockBuilder, loc: Span | None, y_true: Any, y_pred: Any) -> Value:
    """float64 in the scores' shape: 1 where the label is positive (y_true == 1, or the row's class)."""
    y_true, y_pred = _tensor(y_true, "positives", "y_true", loc), _tensor(y_pred, "positives", "y_pred", loc)
    k = _class_axis(y_true, y_pred, "positives", loc)
    if k is not None and y_true.type.rank == 1:
        hit = binary(b, "==", b.node("Unsqueeze", [labels(b, loc, y_true), b.const([-1], "int64")],
                                      TensorType("int64", (y_true.type.shape[0], 1)), loc),
                     b.const(list(range(k)), "int64", (1, k)), loc)
    else:
        hit = binary(b, "==", y_true, 1, loc)
    return b.node("Cast", [hit], TensorType(F64, hit.type.shape), loc, to=F64)


def lower_label_outside(b: BlockBuilder, loc: Span | None, y_true: Any, y_pred: Any) -> Value:
    """int64 [batch]: 1 where a class-index label is outside [0, k) of class scores [batch, k]; 0 for labels of the
    scores' shape (0/1 labels: anything but 1 is negative)."""
    y_true, y_pred = _tensor(y_true, "label_outside", "y_true", loc), _tensor(y_pred, "label_outside", "y_pred", loc)
    k = _class_axis(y_true, y_pred, "label_outside", loc)
    rows = TensorType("int64", y_true.type.shape[:1])
    if k is None or y_true.type.rank != 1:
        shape = b.node("Shape", [y_true], TensorType("int64", (1,)), loc, start=0, end=1)
        return b.node("Expand", [b.const(0, "int64"), shape], rows, loc)
    label = labels(b, loc, y_true)
    outside = binary(b, "or", binary(b, "<", label, 0, loc), binary(b, ">=", label, k, loc), loc)
    return b.node("Cast", [outside], rows, loc, to="int64")


def labels(b: BlockBuilder, loc: Span | None, y: Any) -> Value:
    """y as class labels, int64. The runtime refuses a fractional label before the graph runs (runtime/metrics.py)."""
    y = _tensor(y, "labels", "y", loc)
    return b.node("Cast", [y], TensorType("int64", y.type.shape), loc, to="int64")


def lower_labels(b: BlockBuilder, loc: Span | None, y: Any) -> Value:
    return labels(b, loc, y)


# --- the confusion counts ---------------------------------------------------------------------------
def _thresholds(threshold: Any, loc: Span | None) -> list[float] | None:
    items = threshold if isinstance(threshold, list) else [threshold]
    if threshold is None:
        return None
    if not items or not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in items):
        raise error(loc, f"threshold= takes a number, a list of numbers or none, got {threshold!r}")
    return [float(t) for t in items]


def _optional_int(value: Any, name: str, low: int, high: int, loc: Span | None) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise error(loc, f"{name}={value!r} must be an int in [{low}, {high}] (or none)")
    return value


def lower_class_counts(b: BlockBuilder, loc: Span | None, y_true: Any, y_pred: Any, sample_weight: Any,
                       threshold: Any = None, top_k: Any = None, class_id: Any = None) -> Value:
    """float64 [4, classes, thresholds], summed over the batch with the sample weights: true positives,
    predicted positives, actual positives and all rows, per class (1 for one score per row) and threshold."""
    y_true, y_pred = _tensor(y_true, "class_counts", "y_true", loc), _tensor(y_pred, "class_counts", "y_pred", loc)
    w = _tensor(sample_weight, "class_counts", "sample_weight", loc)
    k = _class_axis(y_true, y_pred, "class_counts", loc)
    thresholds = _thresholds(threshold, loc)
    top = _optional_int(top_k, "top_k", 1, k or 1, loc)
    cid = _optional_int(class_id, "class_id", 0, (k or 1) - 1, loc)
    w = b.node("Cast", [w], TensorType(F64, w.type.shape), loc, to=F64)
    if k is not None and y_true.type.rank == 1 and thresholds is None and top is None and cid is None \
            and w.type.rank == 1 and y_pred.type.dtype in FLOAT_DTYPES:
        return _argmax_counts(b, loc, y_true, y_pred, w, k)
    return _mask_counts(b, loc, y_true, y_pred, w, k, thresholds, top, cid)


def _mask_counts(b: BlockBuilder, loc: Span | None, y_true: Value, y_pred: Value, w: Value, k: int | None,
                 thresholds: list[float] | None, top: int | None, cid: int | None) -> Value:
    """The counts from masks [batch, classes, thresholds] of predicted and actual positives."""
    truth = b.node("Cast", [positives(b, loc, y_true, y_pred)], TensorType("bool", y_pred.type.shape), loc, to="bool")
    predicted = _predicted(b, loc, y_pred, k, thresholds, top)      # [batch, classes, thresholds]
    truth = _as_rank3(b, truth, loc)
    if w.type.rank == 1:
        w = b.node("Unsqueeze", [w, b.const([1, 2], "int64")], TensorType(F64, (w.type.shape[0], 1, 1)), loc)
    else:  # one weight per score
        w = _as_rank3(b, w, loc)
    if cid is not None:
        predicted, truth = (_column(b, loc, x, cid) for x in (predicted, truth))
        w = _column(b, loc, w, cid) if w.type.shape[1] != 1 else w
    weighted_truth = b.node("Where", [truth, w, b.const(0.0, F64)], TensorType(F64, truth.type.shape), loc)
    rows = b.node("Expand", [w, b.node("Shape", [truth], TensorType("int64", (3,)), loc)],
                  TensorType(F64, truth.type.shape), loc)
    parts = [b.node("Where", [predicted, weighted_truth, b.const(0.0, F64)], TensorType(F64, predicted.type.shape),
                    loc),
             b.node("Where", [predicted, w, b.const(0.0, F64)], TensorType(F64, predicted.type.shape), loc),
             weighted_truth, rows]
    shape = (predicted.type.shape[1], predicted.type.shape[2])
    sums = [b.node("ReduceSum", [p, b.const([0], "int64")], TensorType(F64, (1, *p.type.shape[1:])), loc, keepdims=1)
            for p in parts]
    sums = [b.node("Expand", [s, b.const([1, *shape], "int64")], TensorType(F64, (1, *shape)), loc) for s in sums]
    return b.node("Concat", sums, TensorType(F64, (4, *shape)), loc, axis=0)


def _as_rank3(b: BlockBuilder, x: Value, loc: Span | None) -> Value:
    """[batch] -> [batch, 1, 1]; [batch, k] -> [batch, k, 1]."""
    axes = [1, 2] if x.type.rank == 1 else [2]
    shape = x.type.shape + (1,) * len(axes)
    return b.node("Unsqueeze", [x, b.const(axes, "int64")], TensorType(x.type.dtype, shape), loc)


def _column(b: BlockBuilder, loc: Span | None, x: Value, c: int) -> Value:
    shape = (x.type.shape[0], 1, x.type.shape[2])
    return b.node("Slice", [x, b.const([c], "int64"), b.const([c + 1], "int64"), b.const([1], "int64")],
                  TensorType(x.type.dtype, shape), loc)


def _predicted(b: BlockBuilder, loc: Span | None, y_pred: Value, k: int | None, thresholds: list[float] | None,
               top: int | None) -> Value:
    """bool [batch, classes, thresholds]: integer predictions are labels (1 is positive); else the top_k of each
    row above each threshold, or the argmax of each row when there is no threshold (0.5 for one score)."""
    p = y_pred
    if p.type.rank == 2 and k is None:
        p = b.node("Squeeze", [p, b.const([-1], "int64")], TensorType(p.type.dtype, p.type.shape[:1]), loc)
    if p.type.dtype in INT_DTYPES or p.type.dtype == "bool":
        return _as_rank3(b, binary(b, "==", labels(b, loc, p), 1, loc), loc)
    chosen = None
    if k is not None and (top is not None or thresholds is None):
        chosen = _top(b, loc, p, top or 1)
    if thresholds is None:
        if chosen is not None:
            return _as_rank3(b, chosen, loc)
        thresholds = [0.5]
    above = binary(b, ">", _as_rank3(b, p, loc), b.const(thresholds, p.type.dtype), loc)
    if chosen is not None:
        above = binary(b, "and", above, _as_rank3(b, chosen, loc), loc)
    return above


def _top(b: BlockBuilder, loc: Span | None, p: Value, top: int) -> Value:
    """bool [batch, k]: the `top` largest scores of each row (ties: the lower index, as Keras' top_k)."""
    n, k = p.type.shape
    if top == 1:
        best = b.node("ArgMax", [p], TensorType("int64", (n, 1)), loc, axis=-1, keepdims=1)
        return binary(b, "==", best, b.const(list(range(k)), "int64", (1, k)), loc)
    _, index = b.node_multi("TopK", [p, b.const([top], "int64")],
                            [TensorType(p.type.dtype, (n, top)), TensorType("int64", (n, top))], loc, axis=-1)
    ones = b.node("Expand", [b.const(1.0, F64), b.node("Shape", [index], TensorType("int64", (2,)), loc)],
                  TensorType(F64, (n, top)), loc)
    marks = b.node("ScatterElements", [b.node("Expand", [b.const(0.0, F64),
                                                         b.node("Shape", [p], TensorType("int64", (2,)), loc)],
                                              TensorType(F64, (n, k)), loc), index, ones],
                   TensorType(F64, (n, k)), loc, axis=-1)
    return binary(b, ">", marks, b.const(0.0, F64), loc)


def _argmax_counts(b: BlockBuilder, loc: Span | None, y_true: Value, y_pred: Value, w: Value, k: int) -> Value:
    """The counts of class-index labels against the argmax of class scores, by scattering each row into its
    classes (as torchmetrics does): O(batch) after the argmax, where masks would be O(batch * k)."""
    n = y_true.type.shape[0]
    label = labels(b, loc, y_true)
    inside = binary(b, "and", binary(b, ">=", label, 0, loc), binary(b, "<", label, k, loc), loc)
    label = b.node("Where", [inside, label, b.const(k, "int64")], label.type, loc)  # outside: the spare bin
    predicted = b.node("ArgMax", [y_pred], TensorType("int64", (n,)), loc, axis=-1, keepdims=0)
    hit = b.node("Where", [binary(b, "==", predicted, label, loc), w, b.const(0.0, F64)], w.type, loc)
    zeros = b.const([0.0] * (k + 1), F64)
    out = TensorType(F64, (k + 1,))

    def scatter(index: Value, values: Value) -> Value:
        total = b.node("ScatterElements", [zeros, index, values], out, loc, axis=0, reduction="add")
        return b.node("Slice", [b.node("Unsqueeze", [total, b.const([0], "int64")], TensorType(F64, (1, k + 1)), loc),
                                b.const([0], "int64"), b.const([k], "int64"), b.const([1], "int64")],
                      TensorType(F64, (1, k)), loc)
    rows = b.node("ReduceSum", [w], TensorType(F64, ()), loc, keepdims=0)
    every = b.node("Expand", [rows, b.const([1, k], "int64")], TensorType(F64, (1, k)), loc)
    parts = [scatter(label, hit), scatter(predicted, w), scatter(label, w), every]
    stacked = b.node("Concat", parts, TensorType(F64, (4, k)), loc, axis=0)
    return b.node("Unsqueeze", [stacked, b.const([2], "int64")], TensorType(F64, (4, k, 1)), loc)


# --- a metric's arguments, checked when it is lowered -----------------------------------------------
def lower_one_of(b: BlockBuilder, loc: Span | None, value: Any, options: Any, name: Any) -> Any:
    """`value` when it is one of `options`, else an error naming the argument."""
    if value not in options:
        shown = ", ".join(f'"{o}"' if isinstance(o, str) else repr(o) for o in options)
        hint = did_you_mean(value, [o for o in options if isinstance(o, str)]) if isinstance(value, str) else ""
        raise error(loc, f"{name}={value!r} is not one of {shown}{hint}")
    return value


def lower_in_range(b: BlockBuilder, loc: Span | None, value: Any, low: Any, high: Any, name: Any) -> Any:
    """`value` when it is a number in [low, high], else an error naming the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        kind = "an int" if isinstance(low, int) and isinstance(high, int) else "a number"
        raise error(loc, f"{name}={value!r} must be {kind} in [{low:,}, {high:,}]")
    return value


def lower_if_logits(b: BlockBuilder, loc: Span | None, y: Any, from_logits: Any, activation: Any = "sigmoid") -> Any:
    """y turned into probabilities (sigmoid, or softmax over the last axis) when `from_logits`, else y."""
    y = _tensor(y, "if_logits", "y", loc)
    if not from_logits:
        return y
    if y.type.dtype not in FLOAT_DTYPES:
        raise error(loc, f"from_logits=true takes floating-point scores, got {y.type}")
    op = {"sigmoid": "Sigmoid", "softmax": "Softmax"}[activation]
    return b.node(op, [y], y.type, loc, **({"axis": -1} if op == "Softmax" else {}))

