"""Where an `import` statement may read from: anywhere, or only inside `--import-root DIR` (for a service that
compiles programs it does not trust). Light on purpose: the command line enters `confined_imports` before it
knows whether the command will parse anything."""
from __future__ import annotations

import os
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

from .source import Diagnostic, Span, user_error

_ROOT: ContextVar[tuple[str, str] | None] = ContextVar("import_root", default=None)  # (as given, links followed)


@contextmanager
def confined_imports(root: str | os.PathLike | None) -> Iterator[None]:
    """Within the block, an import that resolves (links followed) outside `root` is an error; None: no bound."""
    if root is None:
        yield
        return
    real = os.path.realpath(root)
    if not os.path.isdir(real):
        raise user_error(f"--import-root {root}: no such folder")
    token = _ROOT.set((str(root), real))
    try:
        yield
    finally:
        _ROOT.reset(token)


def import_target(importer: str, path: str) -> str:
    """The file an `import "path"` in `importer` names: relative to the importer's folder (the working folder
    for text that is no file)."""
    base = os.path.dirname(importer) if not importer.startswith("<") else os.getcwd()
    return os.path.normpath(os.path.join(base, path))


def refused_import(target: str, loc: Span, written: str) -> Diagnostic | None:
    """The error for an import no file system can open (a NUL in its path), or one that leaves the --import-root
    in force; None when it may be read."""
    if "\0" in target:
        return Diagnostic(loc, f"cannot import {written!r}: a path cannot hold a NUL character")
    bound = _ROOT.get()
    if bound is None:
        return None
    given, root = bound
    if os.path.commonpath([os.path.realpath(target), root]) == root:
        return None
    return Diagnostic(loc, f"cannot import '{written}': it is outside --import-root {given}")

