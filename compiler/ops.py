"""One table: each operator and built-in function -> its typing rule and ONNX op(s).

Every entry checks its operands (dtype, shape) and appends nodes through the
BlockBuilder, so the shapes the checker reports are the shapes ONNX will see.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .builder import BlockBuilder
from .ir import Value
from .source import Span, did_you_mean, error
from .types import (FLOAT_DTYPES, INT_DTYPES, ShapeError, TensorType, broadcast,
                    matmul_shape, normalize_axis, product, show_shape)

INT64_MAX = 2**63 - 1
Scalar = (int, float, bool)


def is_tensor(v: Any) -> bool:
    return isinstance(v, Value)


def describe(v: Any) -> str:
    if is_tensor(v):
        return f"tensor {v.type}"
    if isinstance(v, tuple):
        return f"{len(v)} tensors (a multi-output layer's; pick one with [i])"
    if isinstance(v, DtypeName):
        return f"the dtype {v}"
    kind = type(v).__name__
    if kind == "InitSpec":
        return f"the initializer {v.name}"
    if kind == "LayerVal":
        return f"the layer {v.name}"
    return {bool: "bool", int: "int", float: "float", str: "str"}.get(type(v), type(v).__name__)


def article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def as_tensor(b: BlockBuilder, v: Any, dtype: str, loc: Span | None) -> Value:
    """A literal or hyperparameter takes the dtype of the tensor it meets."""
    if is_tensor(v):
        return v
    if isinstance(v, bool):
        if dtype != "bool":
            raise error(loc, f"a bool cannot meet {article(dtype)} {dtype} tensor")
        return b.const(v, dtype)
    if isinstance(v, int):
        if dtype == "bool":
            raise error(loc, f"the number {v} cannot meet a bool tensor")
        return b.const(float(v) if dtype in FLOAT_DTYPES else v, dtype)
    if isinstance(v, float):
        if dtype not in FLOAT_DTYPES:
            raise error(loc, f"the float {v} cannot meet {article(dtype)} {dtype} tensor; use cast()")
        return b.const(v, dtype)
    raise error(loc, f"expected a tensor or a number, got {describe(v)}")


def unify(b: BlockBuilder, operands: list[Any], loc: Span | None, what: str) -> list[Value]:
    """Tensors must share a dtype; literals take it."""
    tensors = [v for v in operands if is_tensor(v)]
    if not tensors:
        raise error(loc, f"{what} needs at least one tensor operand")
    dtype = tensors[0].type.dtype
    for t in tensors[1:]:
        if t.type.dtype != dtype:
            raise error(loc, f"{what} of {tensors[0].type} and {t.type}: dtypes differ; use cast(x, {dtype})")
    return [as_tensor(b, v, dtype, loc) for v in operands]


def _broadcast(shapes: list, loc: Span | None) -> tuple:
    try:
        return broadcast(*shapes)
    except ShapeError as e:
        raise error(loc, str(e)) from None


# --- operators -------------------------------------------------------------
ARITH = {"+": "Add", "-": "Sub", "*": "Mul", "/": "Div", "**": "Pow"}
COMPARE = {"<": "Less", "<=": "LessOrEqual", ">": "Greater", ">=": "GreaterOrEqual", "==": "Equal"}
LOGIC = {"and": "And", "or": "Or"}


def fold(op: str, a: Any, c: Any) -> Any:
    """Operators on two scalars fold at compile time, as Python computes them, within int64 and float64.

    Raises ValueError with the message for the user (ZeroDivisionError for a division by zero).
    """
    import math
    import operator as o
    table = {"+": o.add, "-": o.sub, "*": o.mul, "/": o.truediv, "**": o.pow, "<": o.lt, "<=": o.le,
             ">": o.gt, ">=": o.ge, "==": o.eq, "!=": o.ne, "and": lambda x, y: x and y,
             "or": lambda x, y: x or y}
    if op == "**" and isinstance(a, int) and isinstance(c, int) and abs(a) > 1 and c > 0 \
            and c * math.log2(abs(a)) > 64:  # decide before computing: 9 ** 9 ** 9 would never finish
        raise ValueError(f"'**' of {a} and {c} is too large for int64")
    try:
        result = table[op](a, c)
    except OverflowError:
        raise ValueError(f"'{op}' of {a} and {c} is too large for float64") from None
    if isinstance(result, complex):
        raise ValueError(f"'{op}' of {a} and {c} has no real value")
    if isinstance(result, int) and not isinstance(result, bool) and not -2**63 <= result < 2**63:
        raise ValueError(f"'{op}' of {a} and {c} is too large for int64")
    return result


def binary(b: BlockBuilder, op: str, a: Any, c: Any, loc: Span | None) -> Any:
    if any(not is_tensor(v) and not isinstance(v, Scalar) for v in (a, c)):
        raise error(loc, f"'{op}' cannot combine {describe(a)} and {describe(c)}")
    if not is_tensor(a) and not is_tensor(c):
        if not isinstance(a, Scalar) or not isinstance(c, Scalar) or op == "@":
            raise error(loc, f"'{op}' cannot combine {describe(a)} and {describe(c)}")
        try:
            return fold(op, a, c)
        except ZeroDivisionError:
            raise error(loc, "division by zero") from None
        except ValueError as e:
            raise error(loc, str(e)) from None
    x, y = unify(b, [a, c], loc, f"'{op}'")
    dtype = x.type.dtype
    if op == "@":
        if dtype == "bool":
            raise error(loc, "'@' needs numeric tensors, got bool")
        try:
            return b.node("MatMul", [x, y], TensorType(dtype, matmul_shape(x.type.shape, y.type.shape)), loc)
        except ShapeError as e:
            raise error(loc, f"{e}") from None
    shape = _broadcast([x.type.shape, y.type.shape], loc)
    if op in LOGIC:
        if dtype != "bool":
            raise error(loc, f"'{op}' needs bool tensors, got {x.type}; compare first (x > 0)")
        return b.node(LOGIC[op], [x, y], TensorType("bool", shape), loc)
    if dtype == "bool" and op in ("<", "<=", ">", ">="):
        raise error(loc, f"'{op}' orders numbers, got {x.type}; compare bools with == or !=")
    if op in COMPARE or op == "!=":
        out = b.node(COMPARE.get(op, "Equal"), [x, y], TensorType("bool", shape), loc)
        return b.node("Not", [out], out.type, loc) if op == "!=" else out
    if dtype == "bool":
        raise error(loc, f"'{op}' needs numeric tensors, got {x.type}; use cast(x, float32)")
    if op == "/" and dtype in INT_DTYPES:  # numpy and Keras divide ints to floats; say so instead of truncating
        raise error(loc, f"'/' of {x.type} would truncate; use cast(x, float32) / ... for true division")
    return b.node(ARITH[op], [x, y], TensorType(dtype, shape), loc)


def unary(b: BlockBuilder, op: str, a: Any, loc: Span | None) -> Any:
    if not is_tensor(a):
        if op == "not" and isinstance(a, bool):
            return not a
        if op == "-" and isinstance(a, (int, float)) and not isinstance(a, bool):
            return -a
        raise error(loc, f"'{op}' cannot apply to {describe(a)}")
    if op == "not":
        if a.type.dtype != "bool":
            raise error(loc, f"'not' needs a bool tensor, got {a.type}")
        return b.node("Not", [a], a.type, loc)
    if a.type.dtype == "bool":
        raise error(loc, f"'-' needs a numeric tensor, got {a.type}")
    return b.node("Neg", [a], a.type, loc)


# --- built-in functions ----------------------------------------------------
@dataclass
class Function:
    params: tuple[str, ...]          # positional-or-keyword parameter names, "*" for varargs
    defaults: dict[str, Any]
    lower: Callable[..., Any]
    doc: str


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
        shape = _broadcast([o.type.shape for o in operands], loc)
        return b.node(elementwise_op, operands, TensorType(operands[0].type.dtype, shape), loc)
    return lower


def lower_softmax(b: BlockBuilder, loc: Span | None, x: Any, axis: int = -1) -> Value:
    x = _tensor_arg(x, "softmax", loc, float_only=True)
    return b.node("Softmax", [x], x.type, loc, axis=_one_axis(axis, x.type.rank, "softmax", loc))


def lower_where(b: BlockBuilder, loc: Span | None, cond: Any, x: Any, y: Any) -> Value:
    cond = _tensor_arg(cond, "where", loc)
    if cond.type.dtype != "bool":
        raise error(loc, f"where() condition must be bool, got {cond.type}")
    x, y = unify(b, [x, y], loc, "where()")
    shape = _broadcast([cond.type.shape, x.type.shape, y.type.shape], loc)
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


class DtypeName(str):
    """A dtype used as a value: cast(x, float16)."""


FUNCTIONS: dict[str, Function] = {
    "exp": Function(("x",), {}, _elementwise("Exp", "exp"), "e ** x"),
    "log": Function(("x",), {}, _elementwise("Log", "log"), "natural logarithm"),
    "sqrt": Function(("x",), {}, _elementwise("Sqrt", "sqrt"), "square root"),
    "abs": Function(("x",), {}, _elementwise("Abs", "abs"), "absolute value"),
    "tanh": Function(("x",), {}, _elementwise("Tanh", "tanh"), "hyperbolic tangent"),
    "sigmoid": Function(("x",), {}, _elementwise("Sigmoid", "sigmoid"), "1 / (1 + exp(-x))"),
    "relu": Function(("x",), {}, _elementwise("Relu", "relu"), "max(x, 0)"),
    "softplus": Function(("x",), {}, _elementwise("Softplus", "softplus"), "log(1 + exp(x))"),
    "softmax": Function(("x", "axis"), {"axis": -1}, lower_softmax, "exp(x) / sum(exp(x), axis)"),
    "where": Function(("cond", "x", "y"), {}, lower_where, "x where cond else y"),
    "clip": Function(("x", "lo", "hi"), {}, lower_clip, "x limited to [lo, hi]"),
    "min": Function(("*",), {"axis": None, "keepdims": False}, _min_max("ReduceMin", "Min", "min"),
                    "min(x, axis=) reduces; min(a, b) is element-wise"),
    "max": Function(("*",), {"axis": None, "keepdims": False}, _min_max("ReduceMax", "Max", "max"),
                    "max(x, axis=) reduces; max(a, b) is element-wise"),
    "sum": Function(("x", "axis", "keepdims"), {"axis": None, "keepdims": False}, _reduce("ReduceSum", "sum"),
                    "sum over axis (all axes by default)"),
    "mean": Function(("x", "axis", "keepdims"), {"axis": None, "keepdims": False},
                     _reduce("ReduceMean", "mean"), "mean over axis (all axes by default)"),
    "argmax": Function(("x", "axis", "keepdims"), {"axis": -1, "keepdims": False}, lower_argmax,
                       "index of the largest value along axis (int64)"),
    "reshape": Function(("x", "shape"), {}, lower_reshape, "numpy reshape; one -1 is inferred"),
    "transpose": Function(("x", "perm"), {"perm": None}, lower_transpose, "permute axes (reverse by default)"),
    "cast": Function(("x", "dtype"), {}, lower_cast, "convert to dtype"),
    "concat": Function(("*",), {"axis": -1}, lower_concat, "join tensors along axis"),
}

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


def lower_score_bin(b: BlockBuilder, loc: Span | None, p: Any, bins: Any, spacing: Any = "uniform") -> Value:
    """Histogram bin (int64 in [0, bins)) of a score in [0, 1]: equal widths, or equal widths in log-odds."""
    p = _tensor_arg(p, "score_bin", loc, float_only=True)
    if not isinstance(bins, int) or bins < 1 or spacing not in ("uniform", "logit"):
        raise error(loc, f"score_bin() takes bins >= 1 and spacing \"uniform\" or \"logit\", got {bins!r}, {spacing!r}")
    t64 = TensorType("float64", p.type.shape)
    x = b.node("Cast", [p], t64, loc, to="float64")
    if spacing == "uniform":
        x = lower_clip(b, loc, x, 0.0, 1.0)
    else:
        import math
        x = lower_clip(b, loc, x, LOGIT_EPSILON, 1.0 - LOGIT_EPSILON)
        x = b.node("Log", [binary(b, "/", x, binary(b, "-", 1.0, x, loc), loc)], t64, loc)
        limit = math.log((1.0 - LOGIT_EPSILON) / LOGIT_EPSILON)
        x = binary(b, "/", binary(b, "+", x, limit, loc), 2.0 * limit, loc)
    scaled = b.node("Floor", [binary(b, "*", x, float(bins), loc)], t64, loc)
    index = b.node("Cast", [lower_clip(b, loc, scaled, 0.0, float(bins - 1))], TensorType("int64", p.type.shape),
                   loc, to="int64")
    return index


FUNCTIONS.update({
    "classes": Function(("y", "threshold"), {"threshold": 0.5}, lower_classes,
                        "class labels: argmax of class scores, or y > threshold"),
    "gather": Function(("x", "index"), {}, lower_gather, "x[..., index] for each row"),
    "expand_dims": Function(("x", "axis"), {}, lower_expand_dims, "insert an axis of size 1"),
    "score_bin": Function(("p", "bins", "spacing"), {"spacing": "uniform"}, lower_score_bin,
                          "histogram bin of a score in [0, 1]"),
})

# Only meaningful in metric bodies (issue: runtime metrics); listed so names resolve.
METRIC_FUNCTIONS = ("count", "bincount", "cumsum", "trapz", "nan")


def call_function(b: BlockBuilder, name: str, args: list[Any], kwargs: dict[str, Any], loc: Span | None) -> Any:
    fn = FUNCTIONS[name]
    allowed = [p for p in fn.params if p != "*"] + list(fn.defaults)
    for k in kwargs:
        if k not in allowed:
            raise error(loc, f"{name}() got an unexpected keyword '{k}'{did_you_mean(k, allowed)}")
    if "*" in fn.params:
        return fn.lower(b, loc, *args, **kwargs)
    if len(args) > len(fn.params):
        n = len(fn.params)
        raise error(loc, f"{name}() takes at most {n} argument{'s' * (n != 1)}, got {len(args)}")
    bound = dict(zip(fn.params, args))
    for k, v in kwargs.items():
        if k in bound:
            raise error(loc, f"{name}() got '{k}' twice")
        bound[k] = v
    missing = [p for p in fn.params if p not in bound and p not in fn.defaults]
    if missing:
        raise error(loc, f"{name}() is missing its argument '{missing[0]}' ({name}({', '.join(fn.params)}))")
    return fn.lower(b, loc, **bound)

