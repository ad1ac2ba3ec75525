"""One table of the built-in functions: each with its parameters, its ONNX lowering (typing rule included)
and its numpy implementation, for a metric's final part; and the constants every stage knows.

Every lowering checks its operands (dtype, shape) and appends nodes through the BlockBuilder, so the
shapes the checker reports are the shapes ONNX will see.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from . import functions_classify as fc
from . import numpy_classify as npc
from . import numpy_ops as npo
from .arguments import bind_keywords
from .builder import BlockBuilder
from .ir import Value
from .layers_attention import lower_dot_product_attention
from .operators import as_tensor, binary, broadcast_at, unify
from .source import Span, error
from .types import FLOAT_DTYPES, INT_DTYPES, ShapeError, TensorType, normalize_axis, product, show_shape
from .values import DtypeName, describe, is_tensor

# --- built-in functions ----------------------------------------------------
@dataclass(frozen=True)
class Function:
    params: tuple[str, ...]               # positional-or-keyword parameter names, "*" for varargs
    defaults: dict[str, Any]
    lower: Callable[..., Any] | None      # (builder, loc, *args, **kwargs) -> Value; None: final part only
    numpy: Callable[..., Any] | None      # on merged states, in a metric's final part; None: per batch only
    doc: str

    @property
    def keywords(self) -> list[str]:
        return [p for p in self.params if p != "*"] + [k for k in self.defaults if k not in self.params]


def _tensor_arg(v: Any, fn: str, loc: Span | None, float_only: bool = False) -> Value:
    if not is_tensor(v):
        raise error(loc, f"{fn}() expects a tensor, got {describe(v)}")
    if float_only and v.type.dtype not in FLOAT_DTYPES:
        raise error(loc, f"{fn}() expects a floating-point tensor, got {v.type}; use cast(x, float32)")
    return v


def _elementwise(onnx_op: str, name: str) -> Callable:
    def lower(b: BlockBuilder, loc: Span | None, x: Any) -> Value:
        x = _tensor_arg(x, name, loc, float_only=onnx_op != "Abs")
        return b.node(onnx_op, [x], x.type, loc)
    return lower


def _axes(axis: Any, rank: int, fn: str, loc: Span | None) -> list[int] | None:
    if axis is None:
        return None
    items = axis if isinstance(axis, list) else [axis]
    if not all(isinstance(a, int) and not isinstance(a, bool) for a in items):
        raise error(loc, f"{fn}() axis must be an int or a list of ints, got {axis!r}")
    try:
        return sorted({normalize_axis(a, rank) for a in items})
    except ShapeError as e:
        raise error(loc, f"{fn}(): {e}") from None


def _one_axis(axis: Any, rank: int, fn: str, loc: Span | None) -> int:
    """An axis that must be a single int (softmax, argmax, concat), normalized to >= 0."""
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise error(loc, f"{fn}() axis must be one int, got {axis!r}")
    (ax,) = _axes(axis, rank, fn, loc)  # type: ignore[misc]
    return ax


def _reduce(onnx_op: str, name: str) -> Callable:
    def lower(b: BlockBuilder, loc: Span | None, x: Any, axis: Any = None, keepdims: bool = False) -> Value:
        x = _tensor_arg(x, name, loc)
        if x.type.dtype == "bool":
            if onnx_op != "ReduceSum":
                raise error(loc, f"{name}() needs a numeric tensor, got {x.type}; use cast(x, float32)")
            x = b.node("Cast", [x], TensorType("int64", x.type.shape), loc, to="int64")  # numpy: sum counts
        axes = _axes(axis, x.type.rank, name, loc)
        if axes == []:  # numpy: axis=() reduces nothing (ONNX would reduce every axis)
            return x
        reduced = set(range(x.type.rank)) if axes is None else set(axes)
        shape = tuple((1 if i in reduced else d) for i, d in enumerate(x.type.shape) if keepdims or i not in reduced)
        # axes stay an attribute here; emit.py turns them into an input where the opset wants one
        attrs = {"axes": axes} if axes is not None else {}
        return b.node(onnx_op, [x], TensorType(x.type.dtype, shape), loc, keepdims=int(bool(keepdims)), **attrs)
    return lower


def _min_max(reduce_op: str, elementwise_op: str, name: str) -> Callable:
    reduce = _reduce(reduce_op, name)

    def lower(b: BlockBuilder, loc: Span | None, *args: Any, axis: Any = None, keepdims: bool = False) -> Value:
        if len(args) == 1:
            return reduce(b, loc, args[0], axis=axis, keepdims=keepdims)
        if axis is not None or keepdims:
            raise error(loc, f"{name}() of several operands is element-wise and takes no axis= or keepdims=; "
                             f"reduce one tensor: {name}(x, axis=...)")
        operands = unify(b, list(args), loc, f"{name}()")
        shape = broadcast_at([o.type.shape for o in operands], loc)
        return b.node(elementwise_op, operands, TensorType(operands[0].type.dtype, shape), loc)
    return lower


def lower_softmax(b: BlockBuilder, loc: Span | None, x: Any, axis: int = -1) -> Value:
    x = _tensor_arg(x, "softmax", loc, float_only=True)
    return b.node("Softmax", [x], x.type, loc, axis=_one_axis(axis, x.type.rank, "softmax", loc))


def lower_where(b: BlockBuilder, loc: Span | None, cond: Any, x: Any, y: Any) -> Value:
    if isinstance(cond, bool):  # a compile-time condition (a bool hyperparameter) picks one operand
        return x if cond else y
    cond = _tensor_arg(cond, "where", loc)
    if cond.type.dtype != "bool":
        raise error(loc, f"where() condition must be bool, got {cond.type}")
    x, y = unify(b, [x, y], loc, "where()")
    shape = broadcast_at([cond.type.shape, x.type.shape, y.type.shape], loc)
    return b.node("Where", [cond, x, y], TensorType(x.type.dtype, shape), loc)


def lower_clip(b: BlockBuilder, loc: Span | None, x: Any, lo: Any, hi: Any) -> Value:
    x = _tensor_arg(x, "clip", loc)
    bounds = []
    for v in (lo, hi):
        if is_tensor(v) and v.type.rank != 0:
            raise error(loc, f"clip() bounds must be scalars, got {v.type}")
        bounds.append(as_tensor(b, v, x.type.dtype, loc))
    return b.node("Clip", [x, *bounds], x.type, loc)


def lower_argmax(b: BlockBuilder, loc: Span | None, x: Any, axis: int = -1, keepdims: bool = False) -> Value:
    x = _tensor_arg(x, "argmax", loc)
    ax = _one_axis(axis, x.type.rank, "argmax", loc)
    shape = tuple(1 if i == ax else d for i, d in enumerate(x.type.shape) if keepdims or i != ax)
    return b.node("ArgMax", [x], TensorType("int64", shape), loc, axis=ax, keepdims=int(bool(keepdims)))


def reshape_shape(in_shape: tuple, target: list[int], loc: Span | None) -> tuple:
    """numpy reshape rules over a shape whose dims may be symbolic."""
    # numpy reads 0 as an empty axis, ONNX as "copy this dim": neither fits a tensor with data, so refuse it
    if target.count(-1) > 1 or any(t < -1 or t == 0 for t in target):
        raise error(loc, f"reshape target {target} may hold one -1 and otherwise sizes >= 1")
    total = product(in_shape)
    known = product(tuple(t for t in target if t != -1))
    if -1 in target:
        fill = None if total is None or not known else total // known
        if total is not None and known and total % known:
            raise error(loc, f"cannot reshape {show_shape(in_shape)} into {target}")
        return tuple(fill if t == -1 else t for t in target)
    if total is not None and total != known:
        raise error(loc, f"cannot reshape {show_shape(in_shape)} ({total} elements) into {target}")
    return tuple(target)


def _int_list(v: Any, fn: str, what: str, loc: Span | None) -> list[int]:
    if not isinstance(v, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in v):
        raise error(loc, f"{fn}() {what} must be a list of ints such as [2, -1], got {describe(v)}")
    return v


def lower_reshape(b: BlockBuilder, loc: Span | None, x: Any, shape: Any) -> Value:
    x = _tensor_arg(x, "reshape", loc)
    target = _int_list(shape, "reshape", "shape", loc)
    out = reshape_shape(x.type.shape, target, loc)
    return b.node("Reshape", [x, b.const(target, "int64")], TensorType(x.type.dtype, out), loc)


def lower_transpose(b: BlockBuilder, loc: Span | None, x: Any, perm: Any = None) -> Value:
    x = _tensor_arg(x, "transpose", loc)
    order = list(reversed(range(x.type.rank))) if perm is None else _int_list(perm, "transpose", "perm", loc)
    if sorted(order) != list(range(x.type.rank)):
        raise error(loc, f"transpose() perm {order} is not a permutation of the {x.type.rank} axes")
    shape = tuple(x.type.shape[i] for i in order)
    return b.node("Transpose", [x], TensorType(x.type.dtype, shape), loc, perm=order)


def lower_cast(b: BlockBuilder, loc: Span | None, x: Any, dtype: Any) -> Value:
    x = _tensor_arg(x, "cast", loc)
    if not isinstance(dtype, DtypeName):
        raise error(loc, f"cast() expects a dtype such as float32, got {describe(dtype)}")
    return b.node("Cast", [x], TensorType(str(dtype), x.type.shape), loc, to=str(dtype))


def lower_concat(b: BlockBuilder, loc: Span | None, *args: Any, axis: int = -1) -> Value:
    if len(args) < 1:
        raise error(loc, "concat() needs at least one tensor")
    tensors = [_tensor_arg(a, "concat", loc) for a in args]
    tensors = unify(b, tensors, loc, "concat()")
    rank = tensors[0].type.rank
    if any(t.type.rank != rank for t in tensors):
        raise error(loc, "concat() needs tensors of one rank, got " + ", ".join(str(t.type) for t in tensors))
    ax = _one_axis(axis, rank, "concat", loc)
    shape = list(tensors[0].type.shape)
    for t in tensors[1:]:
        for i, (d, e) in enumerate(zip(shape, t.type.shape)):
            if i != ax and d is not None and e is not None and d != e:
                raise error(loc, f"concat() along axis {axis}: {tensors[0].type} and {t.type} differ in axis {i}")
    sizes = [t.type.shape[ax] for t in tensors]
    shape[ax] = sum(sizes) if all(isinstance(s, int) for s in sizes) else None  # type: ignore[arg-type]
    return b.node("Concat", tensors, TensorType(tensors[0].type.dtype, tuple(shape)), loc, axis=ax)


def lower_classes(b: BlockBuilder, loc: Span | None, y: Any, threshold: Any = 0.5) -> Value:
    """Predicted class labels (int64): argmax over class scores, or `y > threshold` for one score."""
    y = _tensor_arg(y, "classes", loc)
    if y.type.dtype in INT_DTYPES or y.type.dtype == "bool":
        return b.node("Cast", [y], TensorType("int64", y.type.shape), loc, to="int64")
    if y.type.rank >= 2 and isinstance(y.type.shape[-1], int) and y.type.shape[-1] > 1:
        return lower_argmax(b, loc, y, axis=-1)
    above = binary(b, ">", y, threshold, loc)
    return b.node("Cast", [above], TensorType("int64", y.type.shape), loc, to="int64")


def lower_gather(b: BlockBuilder, loc: Span | None, x: Any, index: Any) -> Value:
    """x[..., index] row by row (numpy take_along_axis on the last axis)."""
    x, index = _tensor_arg(x, "gather", loc), _tensor_arg(index, "gather", loc)
    if index.type.dtype not in INT_DTYPES or index.type.rank != x.type.rank - 1:
        raise error(loc, f"gather() takes integer indices with one axis fewer than {x.type}, got {index.type}")
    last = b.const([-1], "int64")
    column = b.node("Unsqueeze", [index, last], TensorType(index.type.dtype, index.type.shape + (1,)), loc)
    picked = b.node("GatherElements", [x, column], TensorType(x.type.dtype, index.type.shape + (1,)), loc, axis=-1)
    return b.node("Squeeze", [picked, last], TensorType(x.type.dtype, index.type.shape), loc)


def lower_expand_dims(b: BlockBuilder, loc: Span | None, x: Any, axis: int) -> Value:
    x = _tensor_arg(x, "expand_dims", loc)
    ax = _one_axis(axis, x.type.rank + 1, "expand_dims", loc)
    shape = x.type.shape[:ax] + (1,) + x.type.shape[ax:]
    return b.node("Unsqueeze", [x, b.const([ax], "int64")], TensorType(x.type.dtype, shape), loc)


LOGIT_EPSILON = 1e-9  # scores are clipped to [eps, 1 - eps] before taking log-odds
MAX_BINS = 1_000_000  # a histogram's bins: more resolve nothing a float32 score holds, and cost memory


def lower_score_bin(b: BlockBuilder, loc: Span | None, p: Any, bins: Any, spacing: Any = "uniform") -> Value:
    """Histogram bin (int64 in [0, bins)) of a score in [0, 1]: how many of the inner edges j / bins it exceeds
    (the `y_pred > threshold` rule), computed as Keras' AUC buckets its scores, ceil(p * bins) - 1 in the score's
    float32, so that `auc(bins=n - 1)` and `AUC(num_thresholds=n)` agree on any data; or the same on equal
    widths in log-odds."""
    p = _tensor_arg(p, "score_bin", loc, float_only=True)
    if not isinstance(bins, int) or isinstance(bins, bool) or not 1 <= bins <= MAX_BINS:
        raise error(loc, f"bins={bins!r} must be an int in [1, {MAX_BINS:,}]")
    if spacing not in ("uniform", "logit"):
        raise error(loc, f"spacing={spacing!r} must be \"uniform\" or \"logit\"")
    dtype = p.type.dtype if spacing == "uniform" and p.type.dtype in ("float32", "float64") else \
        "float32" if spacing == "uniform" else "float64"   # float16 scaled by a million bins would overflow
    t = TensorType(dtype, p.type.shape)
    x = p if dtype == p.type.dtype else b.node("Cast", [p], t, loc, to=dtype)
    if spacing == "uniform":
        x = lower_clip(b, loc, x, 0.0, 1.0)
    else:
        x = lower_clip(b, loc, x, LOGIT_EPSILON, 1.0 - LOGIT_EPSILON)
        x = b.node("Log", [binary(b, "/", x, binary(b, "-", 1.0, x, loc), loc)], t, loc)
        limit = math.log((1.0 - LOGIT_EPSILON) / LOGIT_EPSILON)
        x = binary(b, "/", binary(b, "+", x, limit, loc), 2.0 * limit, loc)
    scaled = binary(b, "-", b.node("Ceil", [binary(b, "*", x, float(bins), loc)], t, loc), 1.0, loc)
    index = lower_clip(b, loc, scaled, 0.0, float(bins - 1))
    return b.node("Cast", [index], TensorType("int64", p.type.shape), loc, to="int64")


def _f(params: tuple[str, ...], lower: Callable | None, numpy: Callable | None, doc: str,
       **defaults: Any) -> Function:
    return Function(params, defaults, lower, numpy, doc)


def _unary(onnx_op: str, name: str, numpy: Callable | None, doc: str) -> Function:
    return Function(("x",), {}, _elementwise(onnx_op, name), numpy, doc)


REDUCE = {"axis": None, "keepdims": False}

# The one table of built-in functions. An activation that is also a layer (relu, softmax, ...) is
# defined here; layers.py derives its layer from this entry.
FUNCTIONS: dict[str, Function] = {
    "exp": _unary("Exp", "exp", npo.numpy_function("exp"), "e ** x"),
    "log": _unary("Log", "log", npo.numpy_function("log"), "natural logarithm"),
    "sqrt": _unary("Sqrt", "sqrt", npo.numpy_function("sqrt"), "square root"),
    "abs": _unary("Abs", "abs", npo.numpy_function("abs"), "absolute value"),
    "tanh": _unary("Tanh", "tanh", npo.numpy_function("tanh"), "hyperbolic tangent"),
    "sigmoid": _unary("Sigmoid", "sigmoid", npo.sigmoid, "1 / (1 + exp(-x))"),
    "relu": _unary("Relu", "relu", None, "max(x, 0)"),
    "softplus": _unary("Softplus", "softplus", None, "log(1 + exp(x))"),
    "softmax": _f(("x", "axis"), lower_softmax, None, "exp(x) / sum(exp(x), axis)", axis=-1),
    "where": _f(("cond", "x", "y"), lower_where, npo.where, "x where cond else y"),
    "clip": _f(("x", "lo", "hi"), lower_clip, npo.clip, "x limited to [lo, hi]"),
    "min": _f(("*",), _min_max("ReduceMin", "Min", "min"), npo.min_max("min", "minimum"),
              "min(x, axis=) reduces; min(a, b) is element-wise", **REDUCE),
    "max": _f(("*",), _min_max("ReduceMax", "Max", "max"), npo.min_max("max", "maximum"),
              "max(x, axis=) reduces; max(a, b) is element-wise", **REDUCE),
    "sum": _f(("x", "axis", "keepdims"), _reduce("ReduceSum", "sum"), npo.reduction("sum"),
              "sum over axis (all axes by default)", **REDUCE),
    "mean": _f(("x", "axis", "keepdims"), _reduce("ReduceMean", "mean"), npo.reduction("mean"),
               "mean over axis (all axes by default)", **REDUCE),
    "argmax": _f(("x", "axis", "keepdims"), lower_argmax, npo.argmax,
                 "index of the largest value along axis (int64)", axis=-1, keepdims=False),
    "reshape": _f(("x", "shape"), lower_reshape, npo.reshape, "numpy reshape; one -1 is inferred"),
    "transpose": _f(("x", "perm"), lower_transpose, npo.transpose, "permute axes (reverse by default)", perm=None),
    "cast": _f(("x", "dtype"), lower_cast, npo.cast, "convert to dtype"),
    "concat": _f(("*",), lower_concat, npo.concat, "join tensors along axis", axis=-1),
    "classes": _f(("y", "threshold"), lower_classes, None, "class labels: argmax of class scores, or y > threshold",
                  threshold=0.5),
    "gather": _f(("x", "index"), lower_gather, None, "x[..., index] for each row"),
    "expand_dims": _f(("x", "axis"), lower_expand_dims, None, "insert an axis of size 1"),
    "score_bin": _f(("p", "bins", "spacing"), lower_score_bin, None, "histogram bin of a score in [0, 1]",
                    spacing="uniform"),
    "dot_product_attention": _f(("q", "k", "v", "mask", "scale", "causal"), lower_dot_product_attention, None,
                                "softmax(q k^T * scale) v over [batch, length, heads, size] (Keras' layout)",
                                mask=None, scale=None, causal=False),
    "labels": _f(("y",), fc.lower_labels, None, "y as class labels (int64); fractional labels are refused"),
    "positive_labels": _f(("y_true", "y_pred"), fc.positives, None,
                          "1.0 where a label is positive (y_true == 1, or the row's class), in the scores' shape"),
    "label_outside": _f(("y_true", "y_pred"), fc.lower_label_outside, None,
                        "int64 [batch]: 1 where a class label is outside [0, k) of class scores [batch, k]"),
    "label_count": _f(("y_true", "y_pred", "per_label", "label_weights"), fc.lower_label_count, None,
                      "the number of labels (curves) in the scores: k, or 1", per_label=True, label_weights=None),
    "label_column": _f(("y_true", "y_pred", "per_label"), fc.lower_label_column, None,
                       "each score's label, as an int64 row [1, k] (0 when all are one curve)", per_label=True),
    "class_counts": _f(("y_true", "y_pred", "sample_weight", "threshold", "top_k", "class_id"),
                       fc.lower_class_counts, None, "weighted confusion counts per class and threshold [4, c, t]",
                       threshold=None, top_k=None, class_id=None),
    "if_logits": _f(("y", "from_logits", "activation"), fc.lower_if_logits, None,
                    "sigmoid(y) (or softmax) when from_logits, else y", activation="sigmoid"),
    "one_of": _f(("value", "options", "name"), fc.lower_one_of, None, "value, checked to be one of options"),
    "in_range": _f(("value", "low", "high", "name"), fc.lower_in_range, None, "value, checked to be in [low, high]"),
    # only on merged states, after a metric's states
    "average_classes": _f(("numerator", "denominator", "support", "average", "threshold"), None,
                          npc.average_classes, "per-class ratios averaged: micro, macro, weighted or none"),
    "by_threshold": _f(("counts", "threshold"), None, npc.by_threshold, "counts summed over the classes"),
    "binned_auc": _f(("positives", "negatives", "bins", "curve", "summation_method", "label_weights"), None,
                     npc.binned_auc, "area under binned ROC or PR curves, averaged over labels", label_weights=None),
    "cumsum": _f(("x", "reverse"), None, npo.cumsum, "running sum (from the end with reverse=true)", reverse=False),
    "trapz": _f(("y", "x"), None, npo.trapz, "trapezoidal integral of y over x"),
    "average_outputs": _f(("scores", "weights", "multioutput"), None, npo.average_outputs,
                          "per-output scores averaged as scikit-learn's multioutput= says"),
}

# Names of values every stage knows (the dtype names are values too: cast(x, float16)).
CONSTANTS: dict[str, Any] = {"nan": math.nan, "none": None}


def call_function(b: BlockBuilder, name: str, args: list[Any], kwargs: dict[str, Any], loc: Span | None) -> Any:
    fn = FUNCTIONS[name]
    assert fn.lower is not None, name  # check.py keeps final-only functions out of the per-batch part
    callee = f"{name}()"
    if "*" in fn.params:
        bind_keywords(callee, fn.keywords, {}, kwargs, loc)
        return fn.lower(b, loc, *args, **kwargs)
    if len(args) > len(fn.params):
        n = len(fn.params)
        raise error(loc, f"{name}() takes at most {n} argument{'s' * (n != 1)}, got {len(args)}")
    bound = bind_keywords(callee, fn.params, dict(zip(fn.params, args)), kwargs, loc)
    missing = [p for p in fn.params if p not in bound and p not in fn.defaults]
    if missing:
        raise error(loc, f"{name}() is missing its argument '{missing[0]}' ({name}({', '.join(fn.params)}))")
    return fn.lower(b, loc, **bound)
