"""Name-level checks over every definition, used or not: no values needed, nothing emitted.

Reports undefined or rebound names, unknown layers/functions/keywords, bad
types and statement placement; all independent errors, up to MAX_ERRORS.
Shape and dtype checks need hyperparameter values and run in lower.py.
"""
from __future__ import annotations

from typing import Iterable

from . import nodes as N
from .layers import BUILTIN_LAYERS, INITIALIZER_ARGS
from .ops import FUNCTIONS, METRIC_FUNCTIONS
from .source import Diagnostic, Span, did_you_mean
from .types import DTYPES

MAX_ERRORS = 20
MAX_REPEAT = 100_000  # a typo like `repeat 1000000000` gets a diagnostic instead of a hang
HPARAM_TYPES = ("int", "float", "bool", "str", "layer")


class Checker:
    def __init__(self, definitions: dict[str, N.Definition]):
        self.definitions = definitions
        self.diagnostics: list[Diagnostic] = []
        self._known: tuple[frozenset[str], frozenset[str]] | None = None

    def report(self, loc: Span | None, message: str) -> None:
        self.diagnostics.append(Diagnostic(loc, message))

    def check(self, definitions: Iterable[N.Definition]) -> list[Diagnostic]:
        for d in definitions:
            self.check_definition(d)
        return self.diagnostics[:MAX_ERRORS]

    # --- signatures --------------------------------------------------------
    def check_definition(self, d: N.Definition) -> None:
        scope: dict[str, Span] = {}
        for p in d.hparams:
            if isinstance(p.type, N.ScalarType) and p.type.name not in HPARAM_TYPES:
                self.report(p.type.loc, f"unknown hyperparameter type '{p.type.name}'; expected one of "
                                        f"{', '.join(HPARAM_TYPES)}{did_you_mean(p.type.name, HPARAM_TYPES)}")
            if isinstance(p.type, N.TensorTypeSpec):
                self.report(p.type.loc, f"hyperparameter '{p.name}' cannot be a tensor; tensors go in the last group")
            self.bind(p.name, p.loc, scope)
            if p.default is not None:
                self.check_expr(p.default, scope, d)
        dim_symbols: set[str] = set()
        for p in d.inputs:
            if isinstance(p.type, N.ScalarType):
                where = "layer input" if d.kind != "model" else "model input"
                self.report(p.type.loc, f"{where} '{p.name}' needs a tensor type such as [batch, n], "
                                        f"not '{p.type.name}'")
            if isinstance(p.type, N.TensorTypeSpec):
                self.check_type(p.type, d)
                for dim in p.type.dims:  # a dim symbol is usable as an int in the body
                    if isinstance(dim.value, str) and dim.value != "..." and dim.value not in scope:
                        scope[dim.value] = dim.loc
                        dim_symbols.add(dim.value)
            if p.default is not None:
                self.report(p.default.loc, f"input '{p.name}' cannot have a default value")
            if p.name in dim_symbols:  # an input may share its name with a dim symbol; the input wins
                scope.pop(p.name)
                dim_symbols.discard(p.name)
            self.bind(p.name, p.loc, scope)
        if d.kind == "metric" and not 2 <= len(d.inputs) <= 3:
            self.report(d.name_loc or d.loc, f"metric '{d.name}' takes (y_true, y_pred) or "
                                             f"(y_true, y_pred, sample_weight), got {len(d.inputs)} "
                                             f"input{'s' * (len(d.inputs) != 1)}")
        self.check_body(d, scope)

    def check_type(self, spec: N.TensorTypeSpec, d: N.Definition) -> None:
        if spec.dtype is not None and spec.dtype not in DTYPES:
            self.report(spec.loc, f"unknown dtype '{spec.dtype}'; expected one of {', '.join(DTYPES)}"
                                  f"{did_you_mean(spec.dtype, DTYPES)}")
        for i, dim in enumerate(spec.dims):
            if dim.value == "..." and i != 0:
                self.report(dim.loc, "'...' may only stand first, for any number of leading dims")

    def bind(self, name: str, loc: Span, scope: dict[str, Span]) -> None:
        if name in scope:
            self.report(loc, f"'{name}' is already bound at line {scope[name].line}; names are bound once")
        scope[name] = loc

    # --- statements --------------------------------------------------------
    def check_body(self, d: N.Definition, scope: dict[str, Span]) -> None:
        returned = False
        for stmt in d.body:
            if returned:
                self.report(stmt.loc, "statement after return is never reached")
                break
            if isinstance(stmt, N.Return):
                returned = True
                for v in stmt.values:
                    self.check_expr(v, scope, d)
                if d.kind == "metric" and len(stmt.values) != 1:
                    self.report(stmt.loc, "a metric returns one value")
                continue
            if isinstance(stmt, N.ParamDecl):
                if d.kind != "layer":
                    self.report(stmt.loc, f"'param' declares a weight and belongs in a layer, not in a {d.kind}")
                self.check_type(stmt.type, d)
                for dim in stmt.type.dims:
                    if isinstance(dim.value, str) and dim.value != "..." and dim.value not in scope:
                        self.report(dim.loc, f"undefined size '{dim.value}' in the shape of param '{stmt.name}'"
                                             f"{did_you_mean(dim.value, scope)}")
                self.check_initializer(stmt.init, scope, d)
            elif isinstance(stmt, N.StateDecl):
                if d.kind != "metric":
                    self.report(stmt.loc, f"'state' belongs in a metric, not in a {d.kind}")
                self.check_expr(stmt.value, scope, d)
            else:
                self.check_expr(stmt.value, scope, d)
            self.bind(stmt.name, stmt.loc, scope)
        if not returned:
            self.report(d.name_loc or d.loc, f"{d.kind} '{d.name}' has no return statement")

    def check_initializer(self, e: N.Expr, scope: dict[str, Span], d: N.Definition) -> None:
        name = e.id if isinstance(e, N.Name) else e.func.id if isinstance(e, N.Call) and isinstance(
            e.func, N.Name) else None
        if name is None or (name not in INITIALIZER_ARGS and name not in scope):
            shown = f" '{name}'" if name else ""
            self.report(e.loc, f"unknown initializer{shown}; expected one of {', '.join(INITIALIZER_ARGS)}"
                               f"{did_you_mean(name or '', INITIALIZER_ARGS)}")
        elif isinstance(e, N.Call):
            for a in [*e.args, *(k.value for k in e.kwargs)]:
                self.check_expr(a, scope, d)

    # --- expressions -------------------------------------------------------
    def known(self, d: N.Definition) -> set[str]:
        """Global names: built once per kind (a set per lookup made checking quadratic in definitions)."""
        if self._known is None:
            names = {*self.definitions, *BUILTIN_LAYERS, *FUNCTIONS, *INITIALIZER_ARGS, *DTYPES}
            self._known = (frozenset(names), frozenset(names | set(METRIC_FUNCTIONS)))
        return self._known[d.kind == "metric"]

    def check_name(self, name: str, loc: Span, scope: dict[str, Span], d: N.Definition) -> None:
        if name not in scope and name not in self.known(d):
            self.report(loc, f"undefined name '{name}'{did_you_mean(name, [*scope, *self.known(d)])}")

    def check_keywords(self, callee: str, kwargs: list[N.Keyword], scope: dict[str, Span]) -> None:
        seen: set[str] = set()
        for k in kwargs:
            if k.name in seen:
                self.report(k.loc, f"keyword '{k.name}' is given twice")
            seen.add(k.name)
        if callee in scope:
            return
        allowed: list[str] | None = None
        if callee in self.definitions and self.definitions[callee].kind == "layer":
            allowed = [p.name for p in self.definitions[callee].hparams] + ["name"]
        elif callee in BUILTIN_LAYERS:
            allowed = [n for n, _, _ in BUILTIN_LAYERS[callee].hparams] + ["name"]
        if callee in FUNCTIONS:
            fn = FUNCTIONS[callee]
            allowed = (allowed or []) + [p for p in fn.params if p != "*"] + list(fn.defaults)
        if allowed is None:
            return
        for k in kwargs:
            if k.name not in allowed:
                self.report(k.loc, f"{callee} has no parameter '{k.name}'"
                                   f"{did_you_mean(k.name, allowed) or '; it takes ' + ', '.join(allowed)}")

    def check_expr(self, e: N.Expr, scope: dict[str, Span], d: N.Definition) -> None:
        stack: list[object] = [e]
        while stack:  # iterative: long operator chains stay cheap
            node = stack.pop()
            if isinstance(node, N.Name):
                self.check_name(node.id, node.loc, scope, d)
            elif isinstance(node, N.Call):
                if isinstance(node.func, N.Name):
                    self.check_keywords(node.func.id, node.kwargs, scope)
                stack.extend([node.func, *node.args, *(k.value for k in node.kwargs)])
            elif isinstance(node, N.StageRef):  # the stage's text starts with its name
                loc = node.loc
                self.check_name(node.name, Span(loc.file, loc.line, loc.col, loc.line, loc.col + len(node.name)),
                                scope, d)
                self.check_keywords(node.name, node.kwargs, scope)
                stack.extend([*(node.args or []), *(k.value for k in node.kwargs)])
            elif isinstance(node, N.Repeat):
                copies, stage = 1, node
                while isinstance(stage, N.Repeat):
                    if stage.count < 1:
                        self.report(stage.loc, f"repeat count must be at least 1, got {stage.count}")
                    copies *= max(stage.count, 1)
                    stage = stage.stage
                if copies > MAX_REPEAT:
                    self.report(node.loc, f"repeat applies its stage {copies} times, "
                                          f"more than the limit of {MAX_REPEAT}")
                stack.append(stage)
            elif isinstance(node, N.Pipe):
                stack.extend([node.value, node.stage])
            elif isinstance(node, N.Binary):
                stack.extend([node.left, node.right])
            elif isinstance(node, N.Unary):
                stack.append(node.operand)
            elif isinstance(node, N.Index):
                stack.extend([node.target, *node.items])
            elif isinstance(node, N.Slice):
                stack.extend(x for x in (node.start, node.stop, node.step) if x is not None)
            elif isinstance(node, N.ListExpr):
                stack.extend(node.items)


def check_definitions(definitions: dict[str, N.Definition], order: Iterable[N.Definition]) -> list[Diagnostic]:
    return Checker(definitions).check(order)
