"""Every program in docs/language.md passes `modelc check`: the reference never shows code that does not
compile. (Imports resolve as from samples/, where the imported lib/blocks.model lives.)"""
from __future__ import annotations

import re

import pytest

import modelc
from helpers import ROOT

BLOCKS = re.findall(r"```model\n(.*?)```", (ROOT / "docs" / "language.md").read_text(), re.S)


def test_the_reference_has_programs():
    assert len(BLOCKS) >= 20


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_program_in_the_reference_checks(index):
    diagnostics = modelc.check_source(BLOCKS[index], file=str(ROOT / "samples" / f"language_md_{index}.model"))
    assert not diagnostics, "\n".join(d.render() for d in diagnostics)
