"""Binding a call's arguments to parameter names: the one home of the keyword errors, which check.py
reports for the callees it can name and lowering for the rest (a layer-typed hyperparameter, a metric spec)."""
from __future__ import annotations

from typing import Any, Sequence

from .source import Span, did_you_mean, error


def unknown_keyword(callee: str, name: str, allowed: Sequence[str]) -> str:
    takes = f"; it takes {', '.join(allowed)}" if allowed else "; it takes no arguments"
    return f"{callee} has no parameter '{name}'{did_you_mean(name, allowed) or takes}"


def given_twice(callee: str, name: str) -> str:
    return f"{callee} got '{name}' twice"


def bind_keywords(callee: str, params: Sequence[str], bound: dict[str, Any], kwargs: dict[str, Any],
                  loc: Span | None) -> dict[str, Any]:
    """`bound` (the positional arguments, by name) with the keyword arguments added, each checked."""
    bound = dict(bound)
    for name, value in kwargs.items():
        if name not in params:
            raise error(loc, unknown_keyword(callee, name, params))
        if name in bound:
            raise error(loc, given_twice(callee, name))
        bound[name] = value
    return bound


def bind_arguments(callee: str, params: Sequence[str], args: list[Any], kwargs: dict[str, Any],
                   loc: Span | None, noun: str = "argument") -> dict[str, Any]:
    """Positional, then keyword arguments by parameter name: `dense(4, activation=relu)`."""
    if len(args) > len(params):
        n = len(params)
        raise error(loc, f"{callee} takes {n} {noun}{'s' * (n != 1)}"
                         f"{' (' + ', '.join(params) + ')' if params else ''}, got {len(args)}")
    return bind_keywords(callee, params, dict(zip(params, args)), kwargs, loc)
