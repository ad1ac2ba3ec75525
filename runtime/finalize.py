"""Evaluate a metric's `return` (and the statements after its states) on merged states, with numpy.

Semantics per LANGUAGE.md §6: `/` gives 0 where the divisor is 0 (Keras'
divide_no_nan); `cumsum(x, reverse=)`, `trapz(y, x)` and `nan` are available.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..compiler import nodes as N
from ..compiler.source import error


def divide_no_nan(a: Any, b: Any) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = np.zeros(np.broadcast_shapes(a.shape, b.shape))
    np.divide(a, b, out=out, where=np.broadcast_to(b != 0, out.shape))
    return out


def _cumsum(x: Any, reverse: bool = False) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.cumsum(x[::-1])[::-1] if reverse else np.cumsum(x)


def _reduction(fn: Callable) -> Callable:
    def apply(x: Any, axis: Any = None, keepdims: bool = False) -> np.ndarray:
        return fn(np.asarray(x), axis=tuple(axis) if isinstance(axis, list) else axis, keepdims=keepdims)
    return apply


def _min_max(reduce: Callable, elementwise: Callable) -> Callable:
    def apply(*xs: Any, axis: Any = None, keepdims: bool = False) -> np.ndarray:
        if len(xs) == 1:
            return _reduction(reduce)(xs[0], axis, keepdims)
        out = xs[0]
        for x in xs[1:]:
            out = elementwise(out, x)
        return np.asarray(out)
    return apply


FUNCTIONS: dict[str, Callable] = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "abs": np.abs, "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64))),
    "where": lambda c, x, y: np.where(c, x, y),
    "clip": lambda x, lo, hi: np.clip(x, lo, hi),
    "sum": _reduction(np.sum), "mean": _reduction(np.mean),
    "min": _min_max(np.min, np.minimum), "max": _min_max(np.max, np.maximum),
    "cumsum": _cumsum,
    "trapz": lambda y, x: np.trapezoid(np.asarray(y, np.float64), np.asarray(x, np.float64)),
    "concat": lambda *xs, axis=-1: np.concatenate([np.atleast_1d(np.asarray(x, np.float64)) for x in xs], axis),
    "reshape": lambda x, shape: np.reshape(x, shape),
    "transpose": lambda x, perm=None: np.transpose(x, perm),
    "cast": lambda x, dtype: np.asarray(x).astype(dtype),
    "argmax": lambda x, axis=-1, keepdims=False: np.argmax(x, axis=axis, keepdims=keepdims),
}
CONSTANTS = {"nan": np.nan, "float64": "float64", "float32": "float32", "int64": "int64", "int32": "int32",
             "bool": "bool"}

BINARY: dict[str, Callable] = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "/": divide_no_nan, "**": np.power, "@": np.matmul,
    "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal, "==": np.equal,
    "!=": np.not_equal, "and": np.logical_and, "or": np.logical_or,
}


class Finalizer:
    def __init__(self, env: dict[str, Any]):
        self.env = dict(env)

    def run(self, statements: list[N.Statement]) -> Any:
        with np.errstate(all="ignore"):
            for stmt in statements:
                if isinstance(stmt, N.Return):
                    return self.eval(stmt.values[0])
                if isinstance(stmt, N.Assign):
                    self.env[stmt.name] = self.eval(stmt.value)
        return None

    def eval(self, e: Any) -> Any:
        if isinstance(e, (N.Number, N.Bool, N.String)):
            return e.value
        if isinstance(e, N.Name):
            if e.id in self.env:
                return self.env[e.id]
            if e.id in CONSTANTS:
                return CONSTANTS[e.id]
            raise error(e.loc, f"'{e.id}' is not known after the states; a return reads states and hyperparameters")
        if isinstance(e, N.ListExpr):
            return [self.eval(i) for i in e.items]
        if isinstance(e, N.Binary):
            return BINARY[e.op](self.eval(e.left), self.eval(e.right))
        if isinstance(e, N.Unary):
            value = self.eval(e.operand)
            return np.logical_not(value) if e.op == "not" else np.negative(value)
        if isinstance(e, N.Index):
            return np.asarray(self.eval(e.target))[tuple(self.index(i) for i in e.items)]
        if isinstance(e, N.Call) and isinstance(e.func, N.Name) and e.func.id in FUNCTIONS:
            args = [self.eval(a) for a in e.args]
            kwargs = {k.name: self.eval(k.value) for k in e.kwargs}
            return FUNCTIONS[e.func.id](*args, **kwargs)
        raise error(e.loc, "this expression cannot be evaluated on merged states")

    def index(self, item: Any) -> Any:
        if isinstance(item, N.EllipsisIndex):
            return Ellipsis
        if isinstance(item, N.Slice):
            parts = [None if p is None else int(self.eval(p)) for p in (item.start, item.stop, item.step)]
            return slice(*parts)
        return int(self.eval(item))
