"""Name-level checks over every definition, used or not: no values needed, nothing emitted.

Reports undefined or rebound names, unknown layers/functions/keywords, bad types and statement placement,
and in a metric: states that name no rule, and a final part (what runs on the merged states) that calls a
function without a numpy implementation or reads what only exists per batch. All independent errors, up to
MAX_ERRORS. Shape and dtype checks need hyperparameter values and run in lower.py.
"""
from __future__ import annotations

from typing import Callable, Iterable

from . import nodes as N
from .nodes import MAX_REPEAT
from .arguments import unknown_keyword
from .initializers import INITIALIZERS
from .layers import BUILTIN_LAYERS
from .functions import CONSTANTS, FUNCTIONS
from .source import MAX_ERRORS, Diagnostic, Span, did_you_mean
from .states import STATE_RULES, split_metric, state_rule
from .types import DTYPES

HPARAM_TYPES = ("int", "float", "bool", "str", "layer")

# What a metric's final part may name besides its hyperparameters, states and final statements.
FINAL_FUNCTIONS = tuple(sorted(n for n, f in FUNCTIONS.items() if f.numpy is not None))
FINAL_GLOBALS = frozenset([*FINAL_FUNCTIONS, *CONSTANTS, *DTYPES])
NOT_ON_MERGED_STATES = "this expression cannot be evaluated on merged states"


def operands(node: object) -> list:
    """The sub-expressions of an operator, index, slice or list (nothing for a leaf)."""
    if isinstance(node, N.Binary):
        return [node.left, node.right]
    if isinstance(node, N.Unary):
        return [node.operand]
    if isinstance(node, N.Index):
        return [node.target, *node.items]
    if isinstance(node, N.Slice):
        return [x for x in (node.start, node.stop, node.step) if x is not None]
    if isinstance(node, N.ListExpr):
        return list(node.items)
    return []


class Checker:
    def __init__(self, definitions: dict[str, N.Definition]):
        self.definitions = definitions
        self.diagnostics: list[Diagnostic] = []
        names = {*definitions, *BUILTIN_LAYERS, *INITIALIZERS, *DTYPES, *CONSTANTS,
                 *(n for n, f in FUNCTIONS.items() if f.lower is not None)}
        self.globals = frozenset(names)  # built once: a set per lookup made checking quadratic in definitions

    def report(self, loc: Span | None, message: str) -> None:
        self.diagnostics.append(Diagnostic(loc, message))

    def suggest(self, name: str, candidates: Callable[[], Iterable[str]]) -> str:
        """"did you mean" for the diagnostics shown (the first MAX_ERRORS): past them, no work at all, so that
        thousands of undefined names cost linear time, not a comparison with every name in scope each."""
        return did_you_mean(name, candidates()) if len(self.diagnostics) < MAX_ERRORS else ""

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
                self.check_expr(p.default, scope)
        self.check_inputs(d, scope)
        if d.kind == "metric" and not 2 <= len(d.inputs) <= 3:
            self.report(d.name_loc or d.loc, f"metric '{d.name}' takes (y_true, y_pred) or "
                                             f"(y_true, y_pred, sample_weight), got {len(d.inputs)} "
                                             f"input{'s' * (len(d.inputs) != 1)}")
        self.check_body(d, scope)

    def check_inputs(self, d: N.Definition, scope: dict[str, Span]) -> None:
        dim_symbols: set[str] = set()
        for p in d.inputs:
            if isinstance(p.type, N.ScalarType):
                where = "layer input" if d.kind != "model" else "model input"
                self.report(p.type.loc, f"{where} '{p.name}' needs a tensor type such as [batch, n], "
                                        f"not '{p.type.name}'")
            if isinstance(p.type, N.TensorTypeSpec):
                self.check_type(p.type)
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

    def check_type(self, spec: N.TensorTypeSpec) -> None:
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
        # A metric's final part sees its hyperparameters, every state and the final statements before it.
        final = {id(s) for s in split_metric(d).final} if d.kind == "metric" else set()
        final_scope = {p.name for p in d.hparams} | {s.name for s in d.body if isinstance(s, N.StateDecl)}
        returned = False
        for stmt in d.body:
            if returned:
                self.report(stmt.loc, "statement after return is never reached")
                break
            if isinstance(stmt, N.Return):
                returned = True
                for v in stmt.values:
                    self.check_final_expr(v, final_scope, scope) if d.kind == "metric" else self.check_expr(v, scope)
                if d.kind == "metric" and len(stmt.values) != 1:
                    self.report(stmt.loc, "a metric returns one value")
                continue
            if isinstance(stmt, N.ParamDecl):
                self.check_param(stmt, scope, d)
            elif isinstance(stmt, N.StateDecl):
                self.check_state(stmt, scope, d)
            elif id(stmt) in final:
                self.check_final_expr(stmt.value, final_scope, scope)
                final_scope.add(stmt.name)
            else:
                self.check_expr(stmt.value, scope)
            self.bind(stmt.name, stmt.loc, scope)
        if not returned:
            self.report(d.name_loc or d.loc, f"{d.kind} '{d.name}' has no return statement")

    def check_param(self, stmt: N.ParamDecl, scope: dict[str, Span], d: N.Definition) -> None:
        if d.kind != "layer":
            self.report(stmt.loc, f"'param' declares a weight and belongs in a layer, not in a {d.kind}")
        self.check_type(stmt.type)
        for dim in stmt.type.dims:
            if isinstance(dim.value, str) and dim.value != "..." and dim.value not in scope:
                self.report(dim.loc, f"undefined size '{dim.value}' in the shape of param '{stmt.name}'"
                                     f"{did_you_mean(dim.value, scope)}")
        self.check_initializer(stmt.init, scope)

    def check_initializer(self, e: N.Expr, scope: dict[str, Span]) -> None:
        name = e.id if isinstance(e, N.Name) else e.func.id if isinstance(e, N.Call) and isinstance(
            e.func, N.Name) else None
        if name is None or (name not in INITIALIZERS and name not in scope):
            shown = f" '{name}'" if name else ""
            self.report(e.loc, f"unknown initializer{shown}; expected one of {', '.join(INITIALIZERS)}"
                               f"{did_you_mean(name or '', INITIALIZERS)}")
        elif isinstance(e, N.Call):
            self.check_keywords(name, e.kwargs, scope)
            for a in [*e.args, *(k.value for k in e.kwargs)]:
                self.check_expr(a, scope)

    def check_state(self, stmt: N.StateDecl, scope: dict[str, Span], d: N.Definition) -> None:
        if d.kind != "metric":
            self.report(stmt.loc, f"'state' belongs in a metric, not in a {d.kind}")
            self.check_expr(stmt.value, scope)
            return
        rule = state_rule(stmt)
        if rule is None:
            self.report(stmt.value.loc, f"a state is one of {', '.join(r + '(...)' for r in STATE_RULES)}; "
                                        "compute the value in a statement before it")
            self.check_expr(stmt.value, scope)
            return
        call: N.Call = stmt.value  # type: ignore[assignment]
        self.check_keywords(rule, call.kwargs, scope, list(STATE_RULES[rule].params))
        for a in [*call.args, *(k.value for k in call.kwargs)]:
            self.check_expr(a, scope)

    # --- names and keywords --------------------------------------------------
    def check_name(self, name: str, loc: Span, scope: dict[str, Span]) -> None:
        if name in scope or name in self.globals:
            return
        if name in STATE_RULES:
            self.report(loc, f"{name}() declares a state: write `state NAME = {name}(...)` in a metric")
        elif name in FUNCTIONS:  # a function with no ONNX lowering
            self.report(loc, f"{name}() runs only on the merged states: use it after a metric's states, "
                             "in its return or a statement that reads a state")
        else:
            self.report(loc, f"undefined name '{name}'{self.suggest(name, lambda: [*scope, *self.globals])}")

    def parameters_of(self, callee: str) -> list[str] | None:
        """The keywords a call of `callee` may take, or None when that depends on a value (a layer hparam)."""
        allowed: list[str] | None = None
        if callee in self.definitions and self.definitions[callee].kind == "layer":
            allowed = [p.name for p in self.definitions[callee].hparams] + ["name"]
        elif callee in BUILTIN_LAYERS:
            allowed = [n for n, _, _ in BUILTIN_LAYERS[callee].hparams] + ["name"]
        elif callee in INITIALIZERS:
            allowed = [*INITIALIZERS[callee].params, *INITIALIZERS[callee].aliases]
        if callee in FUNCTIONS:
            allowed = (allowed or []) + FUNCTIONS[callee].keywords
        return allowed

    def check_keywords(self, callee: str, kwargs: list[N.Keyword], scope: dict[str, Span],
                       allowed: list[str] | None = None) -> None:
        seen: set[str] = set()
        for k in kwargs:
            if k.name in seen:
                self.report(k.loc, f"keyword '{k.name}' is given twice")
            seen.add(k.name)
        if allowed is None and callee in scope:
            return
        allowed = self.parameters_of(callee) if allowed is None else allowed
        for k in kwargs if allowed is not None else []:
            if k.name not in allowed:
                self.report(k.loc, unknown_keyword(callee, k.name, allowed))

    # --- expressions -------------------------------------------------------
    def check_expr(self, e: N.Expr, scope: dict[str, Span]) -> None:
        """An expression that lowers to ONNX: a default, a layer or model body, a metric's per-batch part."""
        stack: list[object] = [e]
        while stack:  # iterative: long operator chains stay cheap
            node = stack.pop()
            if isinstance(node, N.Name):
                self.check_name(node.id, node.loc, scope)
            elif isinstance(node, N.Call):
                if isinstance(node.func, N.Name):
                    self.check_keywords(node.func.id, node.kwargs, scope)
                stack.extend([node.func, *node.args, *(k.value for k in node.kwargs)])
            elif isinstance(node, N.StageRef):  # the stage's text starts with its name
                loc = node.loc
                self.check_name(node.name, Span(loc.file, loc.line, loc.col, loc.line, loc.col + len(node.name)),
                                scope)
                self.check_keywords(node.name, node.kwargs, scope)
                stack.extend([*(node.args or []), *(k.value for k in node.kwargs)])
            elif isinstance(node, N.Repeat):
                stack.extend(self.check_repeat(node))
            elif isinstance(node, N.Pipe):
                stack.extend([node.value, node.stage])
            else:
                stack.extend(operands(node))

    def check_repeat(self, node: N.Repeat) -> list[object]:
        """Report literal counts below 1 or past the limit (counts over hyperparameters are checked when the
        layer is instantiated); returns what to check next: the counts' names and the stage repeated."""
        copies, stage, counts = 1, node, []
        while isinstance(stage, N.Repeat):
            counts.append(stage.count)
            if isinstance(stage.count, N.Number):
                if stage.count.value < 1:
                    self.report(stage.count.loc, f"repeat count must be at least 1, got {stage.count.value}")
                copies *= max(int(stage.count.value), 1)
            stage = stage.stage
        if copies > MAX_REPEAT:
            self.report(node.loc, f"repeat applies its stage {copies} times, more than the limit of {MAX_REPEAT}")
        return [*counts, stage]

    def check_final_expr(self, e: N.Expr, final_scope: set[str], scope: dict[str, Span]) -> None:
        """An expression of a metric's final part, run with numpy on the merged states (runtime/finalize.py)."""
        stack: list[object] = [e]
        while stack:
            node = stack.pop()
            if isinstance(node, N.Name):
                self.check_final_name(node, final_scope, scope)
            elif isinstance(node, N.Call):
                self.check_final_call(node, final_scope, scope)
                stack.extend([*node.args, *(k.value for k in node.kwargs)])
            elif isinstance(node, (N.Pipe, N.StageRef, N.Repeat)):
                self.report(node.loc, NOT_ON_MERGED_STATES)
            else:
                stack.extend(operands(node))

    def check_final_name(self, node: N.Name, final_scope: set[str], scope: dict[str, Span]) -> None:
        if node.id in final_scope or node.id in FINAL_GLOBALS:
            return
        if node.id in scope:
            self.report(node.loc, f"'{node.id}' is not known after the states; a return reads states and "
                                  "hyperparameters")
        else:
            hint = self.suggest(node.id, lambda: [*final_scope, *FINAL_GLOBALS])
            self.report(node.loc, f"undefined name '{node.id}'{hint}")

    def check_final_call(self, node: N.Call, final_scope: set[str], scope: dict[str, Span]) -> None:
        name = node.func.id if isinstance(node.func, N.Name) and node.func.id not in final_scope else None
        fn = FUNCTIONS.get(name) if name is not None else None
        if fn is not None and fn.numpy is not None:
            self.check_keywords(name, node.kwargs, scope)  # type: ignore[arg-type]
        elif fn is not None:
            self.report(node.loc, f"{name}() cannot run on the merged states; after the states a metric may "
                                  f"call {', '.join(FINAL_FUNCTIONS)}")
        elif name is not None and name not in scope and name not in self.globals:
            self.check_final_name(node.func, final_scope, scope)  # type: ignore[arg-type]
        else:  # a layer, a local value
            self.report(node.loc, NOT_ON_MERGED_STATES)


def check_definitions(definitions: dict[str, N.Definition], order: Iterable[N.Definition]) -> list[Diagnostic]:
    return Checker(definitions).check(order)
