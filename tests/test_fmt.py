"""`modelc fmt`: every program it formats parses to the same AST as before (the parser is the oracle, spans
aside), formatting twice changes nothing, and every comment is still there, in order."""
from __future__ import annotations

import ast
import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_fuzz import FUZZ, programs

from helpers import ROOT, run_cli
from modelc.compiler import nodes as N
from modelc.compiler.parse import parse_text
from modelc.compiler.source import ModelcError
from modelc.editor.fmt import WIDTH, find_comments, format_source

SAMPLES = sorted((ROOT / "samples").rglob("*.model"))
DOC_BLOCKS = re.findall(r"```model\n(.*?)```", (ROOT / "docs" / "language.md").read_text(), re.S)


def program_strings():
    """Every string constant of the test suite that parses as a program with a definition in it."""
    found = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and re.search(r"\b(model|layer|metric)\s+\w+\s*\(", node.value):
                try:
                    parse_text(node.value)
                except ModelcError:
                    continue
                found.append(pytest.param(node.value, id=f"{path.name}:{node.lineno}"))
    return found


def without_spans(value):
    if isinstance(value, dict):
        return {k: without_spans(v) for k, v in value.items() if k not in N.SPAN_FIELDS}
    if isinstance(value, list):
        return [without_spans(v) for v in value]
    return value


def tree(text: str) -> list:
    program = parse_text(text)
    return without_spans(N.to_json([*program.imports, *program.definitions]))


def assert_formats_faithfully(text: str) -> str:
    formatted = format_source(text)
    assert tree(formatted) == tree(text)
    assert format_source(formatted) == formatted, "not idempotent"
    assert [c.text for c in find_comments(formatted)] == [c.text for c in find_comments(text)]
    return formatted


@pytest.mark.parametrize("path", SAMPLES, ids=[str(p.relative_to(ROOT / "samples")) for p in SAMPLES])
def test_every_sample_formats_to_the_same_program(path):
    assert_formats_faithfully(path.read_text())


@pytest.mark.parametrize("index", range(len(DOC_BLOCKS)))
def test_every_program_of_the_reference_formats_to_the_same_program(index):
    assert_formats_faithfully(DOC_BLOCKS[index])


TEST_PROGRAMS = program_strings()


def test_the_test_suite_has_programs():
    assert len(TEST_PROGRAMS) >= 50


@pytest.mark.parametrize("text", TEST_PROGRAMS)
def test_every_program_of_the_tests_formats_to_the_same_program(text):
    assert_formats_faithfully(text)


MESSY = '''\
# header

import "lib/blocks.model"   # the blocks
# about a
layer a(x)=x->relu   # trailing a
layer b(units:int=3,)(x:[batch,n],){  # opens b

    # leading h
    h = x -> dense(units)  # after dense
          -> relu   # after relu
    # own between


    k = f(1,
       # inside args
       2);
    return h+k*(2-x)**2  ;
    # end of body
}  # after b
model m(x: float32[batch, 4]) {
    return x -> repeat (2+1) shared dense(4) -> b(3) -> dense(4, activation = relu, use_bias=((true)))
}
# trailing file comment
'''

CANONICAL = '''\
# header

import "lib/blocks.model"  # the blocks

# about a
layer a(x) = x -> relu  # trailing a

layer b(units: int = 3)(x: [batch, n]) {  # opens b
    # leading h
    h = x -> dense(units)  # after dense
          -> relu  # after relu
    # own between

    k = f(1, 2)
    # inside args

    return h + k * (2 - x) ** 2
    # end of body
}  # after b

model m(x: float32[batch, 4]) {
    return x -> repeat 2 + 1 shared dense(4) -> b(3) -> dense(4, activation=relu, use_bias=true)
}
# trailing file comment
'''


def test_the_canonical_layout():
    assert assert_formats_faithfully(MESSY) == CANONICAL


@pytest.mark.parametrize("source, canonical", [
    ("(a + b) * c", "(a + b) * c"),
    ("a - (b - c)", "a - (b - c)"),
    ("(a - b) - c", "a - b - c"),
    ("-(a ** 2)", "-a ** 2"),
    ("(-a) ** 2", "(-a) ** 2"),
    ("a ** (b ** c)", "a ** b ** c"),
    ("(a ** b) ** c", "(a ** b) ** c"),
    ("not (a and b)", "not (a and b)"),
    ("(not a) and b", "not a and b"),
    ("(a < b) == c", "(a < b) == c"),
    ("- -a", "- -a"),
    ("a - -1", "a - -1"),
    ("(x -> relu) + 1", "(x -> relu) + 1"),
    ("f(x -> relu, axis=-1)[..., 1:, ::2]", "f(x -> relu, axis=-1)[..., 1:, ::2]"),
    ("(dense(4))(x)", "dense(4)(x)"),
    ("x -> repeat (n * 2) d", "x -> repeat n * 2 d"),
    ("x -> repeat (n - (1 - k)) d", "x -> repeat n - (1 - k) d"),
    ("x -> repeat (f(2)) d", "x -> repeat (f(2)) d"),
    ("[1e-3, .5, \"a#b\", true]", "[1e-3, .5, \"a#b\", true]"),
])
def test_parentheses_only_where_precedence_needs_them(source, canonical):
    text = f"layer f(x) = {source}\n"
    assert assert_formats_faithfully(text) == f"layer f(x) = {canonical}\n"


def test_a_long_pipeline_puts_one_stage_per_line():
    stages = " -> ".join(f"dense({i}, activation=relu)" for i in range(6))
    text = f"model m(x: float32[batch, 4]) {{\n    return x -> {stages}\n}}\n"
    formatted = assert_formats_faithfully(text)
    lines = formatted.splitlines()
    assert lines[1] == "    return x -> dense(0, activation=relu)"
    assert lines[2:7] == [f"{' ' * 13}-> dense({i}, activation=relu)" for i in range(1, 6)]
    assert max(map(len, lines)) <= WIDTH
    short = "model m(x: float32[batch, 4]) {\n    return x\n        -> relu\n        -> relu\n}\n"
    assert assert_formats_faithfully(short) == "model m(x: float32[batch, 4]) {\n    return x -> relu -> relu\n}\n"


def messy(text: str, data) -> str:
    """The same program with other spacing, line breaks and comments."""
    out = []
    for i, line in enumerate(text.split("\n")):
        words = line.split(" ")
        seps = data.draw(st.lists(st.sampled_from([" ", "  ", "\n", "\n\t"]), min_size=len(words),
                                  max_size=len(words)))
        line = "".join(w + s for w, s in zip(words, seps)).rstrip(" \t\n")
        if data.draw(st.integers(0, 3)) == 0:
            line += f"  # trailing {i}"
        if data.draw(st.integers(0, 4)) == 0:
            line = f"# own line {i}\n" + line
        out.append(line)
    return "\n".join(out) + "\n"


@settings(FUZZ, max_examples=150)
@given(programs(), st.data())
def test_generated_programs_format_to_the_same_program(text, data):
    source = messy(text, data)
    try:
        parse_text(source)
    except ModelcError:
        assume(False)
    assert_formats_faithfully(source)


OPERATORS = ["+", "-", "*", "/", "@", "**", "<", "==", "and", "or"]


@st.composite
def parenthesized(draw, depth: int = 4) -> str:
    """An expression with every operand in parentheses: its tree is plain, whatever the precedence rules."""
    sub = parenthesized(depth - 1)
    kind = draw(st.sampled_from(["leaf", "binary", "binary", "unary", "pipe", "call", "index"]))
    if depth <= 0 or kind == "leaf":
        return draw(st.sampled_from(["x", "n", "2", "0.5", "-1", '"s"', "true"]))
    if kind == "binary":
        return f"({draw(sub)}) {draw(st.sampled_from(OPERATORS))} ({draw(sub)})"
    if kind == "unary":
        return f"{draw(st.sampled_from(['-', 'not ']))}({draw(sub)})"
    if kind == "pipe":
        count = draw(st.sampled_from(["2", "n", "(n + 1)", "(n * (2 - n))", "(-n)"]))
        stage = draw(st.sampled_from(["relu", "dense(4)", f"repeat {count} dense(2)"]))
        return f"({draw(sub)}) -> {stage}"
    if kind == "call":
        return f"f(({draw(sub)}), k=({draw(sub)}))"
    return f"({draw(sub)})[({draw(sub)}), :, ({draw(sub)}):]"


@settings(FUZZ, max_examples=300)
@given(parenthesized())
def test_precedence_of_generated_expressions(expression):
    text = f"layer f(x) {{\n    y = {expression}\n    return y\n}}\n"
    assert_formats_faithfully(text)


# --- the command line -----------------------------------------------------------------------------
def test_check_prints_a_diff_and_exits_1_then_fmt_rewrites_then_check_passes(tmp_path):
    path = tmp_path / "m.model"
    path.write_text(MESSY)
    checked = run_cli("fmt", "--check", path)
    assert checked.returncode == 1, checked.stderr
    assert checked.stdout.startswith(f"--- {path}\n+++ {path} (formatted)\n")
    assert "+layer a(x) = x -> relu  # trailing a" in checked.stdout
    assert f"would reformat {path}" in checked.stderr
    assert path.read_text() == MESSY   # --check changes nothing
    done = run_cli("fmt", tmp_path)    # a folder: every .model in it
    assert done.returncode == 0, done.stderr
    assert path.read_text() == CANONICAL
    again = run_cli("fmt", "--check", path)
    assert (again.returncode, again.stdout) == (0, "")
    assert not [p.name for p in tmp_path.iterdir() if p.name != "m.model"]   # no temporary file left


def test_stdin_to_stdout():
    import subprocess
    from helpers import MODELC
    done = subprocess.run([MODELC, "fmt", "--stdin"], input=MESSY, capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (0, CANONICAL)


def test_a_syntax_error_is_a_positioned_diagnostic_and_the_file_is_left(tmp_path):
    path = tmp_path / "bad.model"
    path.write_text("layer f(x) = x ->\n")
    done = run_cli("fmt", path)
    assert done.returncode == 1
    assert done.stderr.startswith(f"{path}:1:18: error: unexpected end of file; expected 'repeat' or a name\n"
                                  "layer f(x) = x ->\n                 ^")
    assert path.read_text() == "layer f(x) = x ->\n"


def test_files_and_stdin_together_are_a_usage_error(tmp_path):
    assert run_cli("fmt").returncode == 2
    assert run_cli("fmt", "--stdin", tmp_path / "a.model").returncode == 2
    missing = run_cli("fmt", tmp_path / "none.model")
    assert missing.returncode == 1 and "cannot read" in missing.stderr and "Traceback" not in missing.stderr


def test_the_samples_are_in_the_canonical_layout():
    """What users copy from must be what `modelc fmt` writes: `fmt --check samples/` changes nothing."""
    result = run_cli("fmt", "--check", ROOT / "samples")
    assert result.returncode == 0, result.stdout + result.stderr
