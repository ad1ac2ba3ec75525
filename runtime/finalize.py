"""Evaluate a metric's final part (its `return` and the statements that read its states) on merged states.

Every function and operator runs its numpy implementation from the compiler's tables (compiler/functions.py,
compiler/operators.py); check.py has made sure each one has one and every name is known here.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..compiler import nodes as N
from ..compiler.operators import BINARY, UNARY
from ..compiler.functions import CONSTANTS, FUNCTIONS
from ..compiler.source import error
from ..compiler.types import DTYPES


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
            return self.name(e)
        if isinstance(e, N.ListExpr):
            return [self.eval(i) for i in e.items]
        if isinstance(e, N.Binary):
            return BINARY[e.op].numpy(self.eval(e.left), self.eval(e.right))
        if isinstance(e, N.Unary):
            return UNARY[e.op].numpy(self.eval(e.operand))
        if isinstance(e, N.Index):
            return np.asarray(self.eval(e.target))[tuple(self.index(i) for i in e.items)]
        fn = FUNCTIONS.get(e.func.id) if isinstance(e, N.Call) and isinstance(e.func, N.Name) else None
        if fn is not None and fn.numpy is not None:
            args = [self.eval(a) for a in e.args]
            kwargs = {k.name: self.eval(k.value) for k in e.kwargs}
            return fn.numpy(*args, **kwargs)
        raise error(e.loc, "internal error: this expression passed the checks but cannot run on merged states")

    def name(self, e: N.Name) -> Any:
        if e.id in self.env:
            return self.env[e.id]
        if e.id in CONSTANTS:
            return CONSTANTS[e.id]
        if e.id in DTYPES:
            return e.id
        raise error(e.loc, f"internal error: '{e.id}' passed the checks but has no value on merged states")

    def index(self, item: Any) -> Any:
        if isinstance(item, N.EllipsisIndex):
            return Ellipsis
        if isinstance(item, N.Slice):
            parts = [None if p is None else int(self.eval(p)) for p in (item.start, item.stop, item.step)]
            return slice(*parts)
        return int(self.eval(item))
