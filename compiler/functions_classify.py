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
from .ir import Filled, UnitWeights, Value
from .operators import binary
from .source import Span, did_you_mean, error
from .states import FLOAT32_EXACT
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
    if k is None and y_true.type.rank == y_pred.type.rank == 1 and (y_pred.type.dtype in INT_DTYPES
                                                                     or y_pred.type.dtype == "bool"):
        # integer predictions are labels of one class against the rest: 0/1 both sides, else the classes are
        # unknown (averaging over them needs class scores [batch, k]) and the row is refused, not miscounted
        two = [binary(b, "or", binary(b, "<", labels(b, loc, v), 0, loc), binary(b, ">", labels(b, loc, v), 1, loc),
                      loc) for v in (y_true, y_pred)]
        return b.node("Cast", [binary(b, "or", two[0], two[1], loc)], rows, loc, to="int64")
    if k is None or y_true.type.rank != 1:
        shape = b.node("Shape", [y_true], TensorType("int64", (1,)), loc, start=0, end=1)
        zeros = b.node("Expand", [b.const(0, "int64"), shape], rows, loc)
        return Filled(zeros.name, zeros.type, 0, shape)
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
    w64 = b.node("Cast", [w], TensorType(F64, w.type.shape), loc, to=F64) if not isinstance(w, UnitWeights) or \
        k is not None else w   # unweighted, the masks are counted, not weighed
    if k is not None and y_true.type.rank == 1 and thresholds is None and top is None and cid is None \
            and w.type.rank == 1 and y_pred.type.dtype in FLOAT_DTYPES:
        return _argmax_counts(b, loc, y_true, y_pred, w64, k)
    return _mask_counts(b, loc, y_true, y_pred, w if isinstance(w, UnitWeights) else w64, k, thresholds, top, cid)


def _mask_counts(b: BlockBuilder, loc: Span | None, y_true: Value, y_pred: Value, w: Value, k: int | None,
                 thresholds: list[float] | None, top: int | None, cid: int | None) -> Value:
    """The counts from masks of predicted and actual positives laid out batch last, [classes, thresholds, batch]:
    onnxruntime broadcasts and reduces along a contiguous last axis many times faster than along a leading one
    (a mask [batch, 1, 1] against a threshold took 40x longer), and And and Mul where Where is slow."""
    truth = _positive_mask(b, loc, y_true, y_pred, k)                             # [classes, batch]
    predicted = _predicted(b, loc, y_pred, k, thresholds, top)                     # [classes, thresholds, batch]
    weights = None if isinstance(w, UnitWeights) else _batch_last(b, loc, w)      # [1 or classes, batch]
    if cid is not None:
        truth, predicted = _class(b, loc, truth, cid), _class(b, loc, predicted, cid)
        weights = _class(b, loc, weights, cid) if weights is not None and weights.type.shape[0] != 1 else weights
    classes, t, n = predicted.type.shape
    truth = b.node("Unsqueeze", [truth, b.const([1], "int64")], TensorType("bool", (classes, 1, n)), loc)
    hits = b.node("And", [predicted, truth], predicted.type, loc)
    masks = b.node("Concat", [hits, predicted, truth], TensorType("bool", (classes, 2 * t + 1, n)), loc, axis=1)
    sums = _sum_rows(b, loc, masks, weights, w)                                  # [classes, 2t + 1]
    rows = _weight_total(b, loc, weights, y_true)                               # [1 or classes, 1]
    rows = b.node("Expand", [rows, b.const([classes, 1], "int64")], TensorType(F64, (classes, 1)), loc)
    every = b.node("Concat", [sums, rows], TensorType(F64, (classes, 2 * t + 2)), loc, axis=1)
    # tp, predicted positives per threshold; actual positives and rows, the same for every threshold
    pick = [list(range(t)), list(range(t, 2 * t)), [2 * t] * t, [2 * t + 1] * t]
    counts = b.node("Gather", [every, b.const(sum(pick, []), "int64", (4, t))], TensorType(F64, (classes, 4, t)),
                    loc, axis=1)
    return b.node("Transpose", [counts], TensorType(F64, (4, classes, t)), loc, perm=[1, 0, 2])


def _sum_rows(b: BlockBuilder, loc: Span | None, masks: Value, weights: Value | None, w: Value) -> Value:
    """float64 [classes, m]: the masks [classes, m, batch] summed over the batch, weighted. Unweighted, they are
    counted in float32 where a batch is known to hold at most FLOAT32_EXACT rows (exact there, and faster)."""
    classes, m, n = masks.type.shape
    exact = weights is None and isinstance(w, UnitWeights) and w.max_rows is not None and w.max_rows <= FLOAT32_EXACT
    dtype = "float32" if exact else F64
    values = b.node("Cast", [masks], TensorType(dtype, masks.type.shape), loc, to=dtype)
    if weights is not None:
        column = b.node("Unsqueeze", [weights, b.const([1], "int64")], TensorType(F64, (weights.type.shape[0], 1, n)),
                        loc)
        values = b.node("Mul", [values, column], values.type, loc)
    sums = b.node("ReduceSum", [values, b.const([2], "int64")], TensorType(dtype, (classes, m)), loc, keepdims=0)
    return sums if dtype == F64 else b.node("Cast", [sums], TensorType(F64, (classes, m)), loc, to=F64)


def _weight_total(b: BlockBuilder, loc: Span | None, weights: Value | None, y_true: Value) -> Value:
    """float64 [1 or classes, 1]: the batch's weight (its rows, unweighted)."""
    if weights is not None:
        return b.node("ReduceSum", [weights, b.const([1], "int64")], TensorType(F64, (weights.type.shape[0], 1)),
                      loc, keepdims=1)
    rows = b.node("Shape", [y_true], TensorType("int64", (1,)), loc, start=0, end=1)
    rows = b.node("Cast", [rows], TensorType(F64, (1,)), loc, to=F64)
    return b.node("Unsqueeze", [rows, b.const([1], "int64")], TensorType(F64, (1, 1)), loc)


def _batch_last(b: BlockBuilder, loc: Span | None, x: Value) -> Value:
    """[batch] -> [1, batch]; [batch, 1] -> [1, batch]; [batch, k] -> [k, batch]."""
    if x.type.rank == 1 or x.type.shape[1] == 1:
        return b.node("Reshape", [x, b.const([1, -1], "int64")], TensorType(x.type.dtype, (1, x.type.shape[0])), loc)
    return b.node("Transpose", [x], TensorType(x.type.dtype, x.type.shape[::-1]), loc, perm=[1, 0])


def _class(b: BlockBuilder, loc: Span | None, x: Value, c: int) -> Value:
    """The class c of x [classes, ...], keeping the axis."""
    return b.node("Slice", [x, b.const([c], "int64"), b.const([c + 1], "int64"), b.const([0], "int64")],
                  TensorType(x.type.dtype, (1, *x.type.shape[1:])), loc)


def _positive_mask(b: BlockBuilder, loc: Span | None, y_true: Value, y_pred: Value, k: int | None) -> Value:
    """bool [classes, batch]: where the label is positive (y_true == 1, or the row's class)."""
    if k is not None and y_true.type.rank == 1:
        label = b.node("Unsqueeze", [labels(b, loc, y_true), b.const([0], "int64")],
                       TensorType("int64", (1, y_true.type.shape[0])), loc)
        return b.node("Equal", [label, b.const(list(range(k)), "int64", (k, 1))],
                      TensorType("bool", (k, y_true.type.shape[0])), loc)
    return _batch_last(b, loc, binary(b, "==", y_true, 1, loc))


def _predicted(b: BlockBuilder, loc: Span | None, y_pred: Value, k: int | None, thresholds: list[float] | None,
               top: int | None) -> Value:
    """bool [classes, thresholds, batch]: integer predictions are labels (1 is positive); else the top_k of each
    row above each threshold, or the argmax of each row when there is no threshold (0.5 for one score)."""
    p = y_pred
    n = p.type.shape[0]
    if p.type.dtype in INT_DTYPES or p.type.dtype == "bool":
        return _thresholds_axis(b, loc, _batch_last(b, loc, binary(b, "==", labels(b, loc, p), 1, loc)))
    chosen = _top(b, loc, p, top or 1) if k is not None and (top is not None or thresholds is None) else None
    if thresholds is None:
        if chosen is not None:
            return _thresholds_axis(b, loc, chosen)
        thresholds = [0.5]
    scores = _thresholds_axis(b, loc, _batch_last(b, loc, p))
    classes = scores.type.shape[0]
    above = b.node("Greater", [scores, b.const(thresholds, p.type.dtype, (1, len(thresholds), 1))],
                   TensorType("bool", (classes, len(thresholds), n)), loc)
    if chosen is not None:
        above = b.node("And", [above, _thresholds_axis(b, loc, chosen)], above.type, loc)
    return above


def _thresholds_axis(b: BlockBuilder, loc: Span | None, x: Value) -> Value:
    """[classes, batch] -> [classes, 1, batch]."""
    classes, n = x.type.shape
    return b.node("Unsqueeze", [x, b.const([1], "int64")], TensorType(x.type.dtype, (classes, 1, n)), loc)


def _top(b: BlockBuilder, loc: Span | None, p: Value, top: int) -> Value:
    """bool [k, batch]: the `top` largest scores of each row (ties: the lower index, as Keras' top_k)."""
    n, k = p.type.shape
    if top == 1:
        best = b.node("ArgMax", [p], TensorType("int64", (n,)), loc, axis=-1, keepdims=0)
        best = b.node("Unsqueeze", [best, b.const([0], "int64")], TensorType("int64", (1, n)), loc)
        return b.node("Equal", [best, b.const(list(range(k)), "int64", (k, 1))], TensorType("bool", (k, n)), loc)
    _, index = b.node_multi("TopK", [p, b.const([top], "int64")],
                            [TensorType(p.type.dtype, (n, top)), TensorType("int64", (n, top))], loc, axis=-1)
    ones = b.node("Expand", [b.const(1.0, F64), b.node("Shape", [index], TensorType("int64", (2,)), loc)],
                  TensorType(F64, (n, top)), loc)
    marks = b.node("ScatterElements", [b.node("Expand", [b.const(0.0, F64),
                                                         b.node("Shape", [p], TensorType("int64", (2,)), loc)],
                                              TensorType(F64, (n, k)), loc), index, ones],
                   TensorType(F64, (n, k)), loc, axis=-1)
    return _batch_last(b, loc, binary(b, ">", marks, b.const(0.0, F64), loc))


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

