"""The examples in the package's docstrings run, and say what they show (run from the repository root,
where the samples they name are)."""
from __future__ import annotations

import doctest
import importlib

import pytest

from helpers import ROOT
from test_layout import GENERATED, source_files

WITH_EXAMPLES = sorted(name for name, path in source_files().items()
                       if ">>> " in path.read_text() and str(path.relative_to(ROOT)) not in GENERATED)


def test_some_modules_have_examples():
    assert {"modelc.api", "modelc.runtime.metrics", "modelc.compiler.states"} <= set(WITH_EXAMPLES)


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted and result.failed == 0
