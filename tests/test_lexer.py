"""Highlighting: the Pygments lexer reads every sample without an error token, gives the grammar's keywords
and the compiler's builtins their classes, and is found by name through its entry point; the TextMate grammar
of editors/vscode is the one generated from the same tables."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, String

from helpers import ROOT
from modelc.compiler.layers import BUILTIN_LAYERS
from modelc.editor.lexer import TEXTMATE, ModelLexer, textmate_grammar

SAMPLES = sorted((ROOT / "samples").rglob("*.model"))
DOC_BLOCKS = re.findall(r"```model\n(.*?)```", (ROOT / "docs" / "language.md").read_text(), re.S)
VSCODE = ROOT / "editors" / "vscode"


@pytest.mark.parametrize("text", [p.read_text() for p in SAMPLES] + DOC_BLOCKS,
                         ids=[p.name for p in SAMPLES] + [f"language.md[{i}]" for i in range(len(DOC_BLOCKS))])
def test_every_sample_and_reference_program_lexes_without_error_tokens(text):
    tokens = list(ModelLexer().get_tokens(text))
    assert [v for t, v in tokens if t in Error] == []
    assert "".join(v for _, v in tokens) == text


def test_tokens_get_their_classes():
    text = ('import "a#b.model"\nlayer f(units: int = 2, act: layer = relu)(x) = not x -> repeat 2 shared '
            'dense(units) ** 1e-3  # c\n')
    tokens = [(t, v) for t, v in ModelLexer().get_tokens(text) if v.strip()]
    assert tokens[:4] == [(Keyword.Namespace, "import"), (String.Double, '"a#b.model"'),
                          (Keyword.Declaration, "layer"), (Name.Function, "f")]
    kinds = dict((v, t) for t, v in tokens)
    assert kinds["int"] is Keyword.Type and kinds["not"] is Operator.Word and kinds["->"] is Operator
    assert kinds["repeat"] is Keyword and kinds["shared"] is Keyword and kinds["dense"] is Name.Builtin
    assert kinds["**"] is Operator and kinds["1e-3"] is Number.Float and kinds["2"] is Number.Integer
    assert kinds["# c"] is Comment.Single and kinds["units"] is Name and kinds["act"] is Name
    assert kinds["layer"] is Keyword.Type and kinds["relu"] is Name.Builtin   # `layer` as a hyperparameter's type


def test_every_builtin_layer_is_a_builtin():
    text = " ".join(BUILTIN_LAYERS)
    names = [v for t, v in ModelLexer().get_tokens(text) if v.strip()]
    kinds = {t for t, v in ModelLexer().get_tokens(text) if v.strip()}
    assert names == list(BUILTIN_LAYERS) and kinds == {Name.Builtin}


def test_pygments_finds_the_lexer_through_the_entry_point(tmp_path):
    assert isinstance(get_lexer_by_name("modelc"), ModelLexer)
    assert isinstance(get_lexer_for_filename("housing.model"), ModelLexer)
    pygmentize = Path(sys.executable).parent / "pygmentize"
    done = subprocess.run([pygmentize, "-l", "modelc", "-f", "html", ROOT / "samples" / "housing.model"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert '<span class="kd">model</span><span class="w"> </span><span class="nf">housing</span>' in done.stdout


def test_the_textmate_grammar_is_the_generated_one():
    assert json.loads((ROOT / TEXTMATE).read_text()) == textmate_grammar(), \
        "run `python -m modelc.editor.lexer` to regenerate editors/vscode/syntaxes/modelc.tmLanguage.json"
    for pattern in textmate_grammar()["patterns"]:
        re.compile(pattern["match"])


def test_the_vscode_manifest_names_files_that_exist():
    manifest = json.loads((VSCODE / "package.json").read_text())
    language, = manifest["contributes"]["languages"]
    grammar, = manifest["contributes"]["grammars"]
    assert language["extensions"] == [".model"] and grammar["language"] == language["id"]
    assert (VSCODE / language["configuration"]).is_file() and (VSCODE / grammar["path"]).is_file()
    assert json.loads((VSCODE / language["configuration"]).read_text())["comments"] == {"lineComment": "#"}
    assert grammar["scopeName"] == textmate_grammar()["scopeName"]
