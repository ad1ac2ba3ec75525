"""One table of the operators: each with its ONNX op, how two Python scalars fold at compile time, and its
numpy implementation for a metric's final part; then the typing rules that lower them."""
from __future__ import annotations

import math
import operator as py
from dataclasses import dataclass
from typing import Any, Callable

from . import numpy_ops as npo
from .builder import BlockBuilder
from .ir import Value
from .source import Span, error
from .types import FLOAT_DTYPES, INT_DTYPES, ShapeError, TensorType, broadcast, matmul_shape
from .values import article, describe, is_tensor

Scalar = (int, float, bool)


@dataclass(frozen=True)
class Operator:
    onnx: str                              # the ONNX op ("!=" is Equal, then Not)
    kind: str                              # arith, compare, order (compare numbers only), logic, matmul
    fold: Callable[..., Any] | None        # on Python scalars at compile time; None: never folds
    numpy: Callable[..., Any]              # on merged states (runtime/finalize.py)


BINARY: dict[str, Operator] = {
    "+": Operator("Add", "arith", py.add, npo.numpy_function("add")),
    "-": Operator("Sub", "arith", py.sub, npo.numpy_function("subtract")),
    "*": Operator("Mul", "arith", py.mul, npo.numpy_function("multiply")),
    "/": Operator("Div", "arith", py.truediv, npo.divide_no_nan),
    "**": Operator("Pow", "arith", py.pow, npo.numpy_function("power")),
    "@": Operator("MatMul", "matmul", None, npo.numpy_function("matmul")),
    "<": Operator("Less", "order", py.lt, npo.numpy_function("less")),
    "<=": Operator("LessOrEqual", "order", py.le, npo.numpy_function("less_equal")),
    ">": Operator("Greater", "order", py.gt, npo.numpy_function("greater")),
    ">=": Operator("GreaterOrEqual", "order", py.ge, npo.numpy_function("greater_equal")),
    "==": Operator("Equal", "compare", py.eq, npo.numpy_function("equal")),
    "!=": Operator("Equal", "compare", py.ne, npo.numpy_function("not_equal")),
    "and": Operator("And", "logic", lambda x, y: x and y, npo.numpy_function("logical_and")),
    "or": Operator("Or", "logic", lambda x, y: x or y, npo.numpy_function("logical_or")),
}
UNARY: dict[str, Operator] = {
    "-": Operator("Neg", "arith", py.neg, npo.numpy_function("negative")),
    "not": Operator("Not", "logic", py.not_, npo.numpy_function("logical_not")),
}


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


def broadcast_at(shapes: list, loc: Span | None) -> tuple:
    try:
        return broadcast(*shapes)
    except ShapeError as e:
        raise error(loc, str(e)) from None


def fold(op: str, a: Any, c: Any) -> Any:
    """Operators on two scalars fold at compile time, as Python computes them, within int64 and float64.

    Raises ValueError with the message for the user (ZeroDivisionError for a division by zero).
    """
    if op == "**" and isinstance(a, int) and isinstance(c, int) and abs(a) > 1 and c > 0 \
            and c * math.log2(abs(a)) > 64:  # decide before computing: 9 ** 9 ** 9 would never finish
        raise ValueError(f"'**' of {a} and {c} is too large for int64")
    try:
        result = BINARY[op].fold(a, c)  # type: ignore[misc]
    except OverflowError:
        raise ValueError(f"'{op}' of {a} and {c} is too large for float64") from None
    if isinstance(result, complex):
        raise ValueError(f"'{op}' of {a} and {c} has no real value")
    if isinstance(result, int) and not isinstance(result, bool) and not -2**63 <= result < 2**63:
        raise ValueError(f"'{op}' of {a} and {c} is too large for int64")
    return result


def fold_at(op: str, a: Any, c: Any, loc: Span | None) -> Any:
    if not isinstance(a, Scalar) or not isinstance(c, Scalar) or BINARY[op].fold is None:
        raise error(loc, f"'{op}' cannot combine {describe(a)} and {describe(c)}")
    try:
        return fold(op, a, c)
    except ZeroDivisionError:
        raise error(loc, "division by zero") from None
    except ValueError as e:
        raise error(loc, str(e)) from None


def binary(b: BlockBuilder, op: str, a: Any, c: Any, loc: Span | None) -> Any:
    if op in ("==", "!=") and not is_tensor(a) and not is_tensor(c) and (a is None or c is None or isinstance(a, str)
                                                                         or isinstance(c, str)):
        return (a == c) == (op == "==")  # compile-time equality of strings and none: ignore_class == none
    if any(not is_tensor(v) and not isinstance(v, Scalar) for v in (a, c)):
        raise error(loc, f"'{op}' cannot combine {describe(a)} and {describe(c)}")
    if not is_tensor(a) and not is_tensor(c):
        return fold_at(op, a, c, loc)
    x, y = unify(b, [a, c], loc, f"'{op}'")
    dtype, entry = x.type.dtype, BINARY[op]
    if entry.kind == "matmul":
        if dtype == "bool":
            raise error(loc, "'@' needs numeric tensors, got bool")
        try:
            return b.node(entry.onnx, [x, y], TensorType(dtype, matmul_shape(x.type.shape, y.type.shape)), loc)
        except ShapeError as e:
            raise error(loc, f"{e}") from None
    shape = broadcast_at([x.type.shape, y.type.shape], loc)
    if entry.kind == "logic":
        if dtype != "bool":
            raise error(loc, f"'{op}' needs bool tensors, got {x.type}; compare first (x > 0)")
        return b.node(entry.onnx, [x, y], TensorType("bool", shape), loc)
    if dtype == "bool" and entry.kind == "order":
        raise error(loc, f"'{op}' orders numbers, got {x.type}; compare bools with == or !=")
    if entry.kind in ("compare", "order"):
        out = b.node(entry.onnx, [x, y], TensorType("bool", shape), loc)
        return b.node("Not", [out], out.type, loc) if op == "!=" else out
    if dtype == "bool":
        raise error(loc, f"'{op}' needs numeric tensors, got {x.type}; use cast(x, float32)")
    if op == "/" and dtype in INT_DTYPES:  # numpy and Keras divide ints to floats; say so instead of truncating
        raise error(loc, f"'/' of {x.type} would truncate; use cast(x, float32) / ... for true division")
    return b.node(entry.onnx, [x, y], TensorType(dtype, shape), loc)


def unary(b: BlockBuilder, op: str, a: Any, loc: Span | None) -> Any:
    if not is_tensor(a):
        if op == "not" and isinstance(a, bool) or op == "-" and isinstance(a, (int, float)) and not isinstance(a, bool):
            return UNARY[op].fold(a)  # type: ignore[misc]
        raise error(loc, f"'{op}' cannot apply to {describe(a)}")
    if op == "not" and a.type.dtype != "bool":
        raise error(loc, f"'not' needs a bool tensor, got {a.type}")
    if op == "-" and a.type.dtype == "bool":
        raise error(loc, f"'-' needs a numeric tensor, got {a.type}")
    return b.node(UNARY[op].onnx, [a], a.type, loc)
