"""Property tests: no input text makes `modelc.check_source` raise; it only returns diagnostics.

(a) random programs from a small grammar-aware strategy (definitions, statements, expressions,
pipelines, shapes), most of them wrong in some way; (b) random character and token mutations of
samples/*.model. Every diagnostic must render as `FILE:LINE:COL: error: MESSAGE`, then the source
line and a caret under it. A few mutated files also go through `modelc check`: exit 0 or 1, never a
traceback or an internal error.

Deterministic: `derandomize=True` and no example database, so CI sees the same examples each run.

One thing the generator stays away from on purpose: `**` only ever gets a small exponent (2, 0.5 or
a name). Constant folding of huge powers hangs or overflows in compiler/functions.py; those are known bugs
with their own reproducers, test_known_* at the end of this file (regression tests now).
"""
from __future__ import annotations

import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

import modelc
from modelc.compiler.source import MAX_QUOTE
from helpers import fuzz_settings
from modelc.cli import main

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "samples").glob("*.model"))
MODELC = str(Path(sys.executable).parent / "modelc")

HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
FUZZ = fuzz_settings(200, suppress_health_check=HEALTH)
FUZZ_MUTATIONS = fuzz_settings(800, suppress_health_check=HEALTH)  # cheap: most mutations stop at a syntax error
FUZZ_BYTES = fuzz_settings(150, suppress_health_check=HEALTH)

RENDERED = re.compile(r"(.+?):(\d+):(\d+): error: [^\n]+\n([^\n]*)\n([ \t]*)(\^+)\Z")


def assert_only_diagnostics(text: str, file: str = "t.model") -> list:
    """check_source must return diagnostics, each pointing into its file's text with a caret."""
    diagnostics = modelc.check_source(text, file=file)
    assert isinstance(diagnostics, list)
    assert len(diagnostics) <= 20
    for d in diagnostics:
        rendered = d.render()
        m = RENDERED.match(rendered)
        assert m, f"badly rendered diagnostic:\n{rendered}"
        where, line, col = m.group(1), int(m.group(2)), int(m.group(3))
        lines = (text if where == file else Path(where).read_text(encoding="utf-8")).split("\n")
        assert 1 <= line <= len(lines), rendered
        full, quoted = lines[line - 1].rstrip("\r"), m.group(4)
        if len(full) <= MAX_QUOTE:
            assert quoted == full, rendered
            assert 1 <= col <= len(quoted) + 1, rendered
            assert len(m.group(5)) == col - 1, rendered
        else:  # a long line is quoted MAX_QUOTE characters wide, the caret under the span's first character
            window = quoted.removeprefix("…").removesuffix("…")
            assert len(window) == MAX_QUOTE and window in full, rendered
            assert col > len(full) or quoted[len(m.group(5))] == full[col - 1], rendered
    return diagnostics


# --- (a) programs from a grammar-aware strategy -------------------------------------------------
NAMES = ["x", "y", "h", "z", "units", "n", "batch", "k", "act", "kernel", "total", "y_true", "y_pred"]
CALLABLES = ["dense", "relu", "elu", "exp", "log", "sqrt", "abs", "tanh", "sigmoid", "softmax", "softplus",
             "concat", "mean", "sum", "min", "max", "where", "clip", "argmax", "reshape", "transpose", "cast",
             "dropout", "batch_norm", "layer_norm", "normalization", "embedding", "flatten", "leaky_relu",
             "linear", "gelu", "count", "dens", "rellu", "l0", "l1", "m0", "huber"]
KEYWORDS = ["axis", "keepdims", "activation", "units", "name", "use_bias", "kernel_initializer", "rate",
            "epsilon", "alpha", "dtype", "shape", "perm", "unitz"]
DTYPES = ["float16", "bfloat16", "float32", "float64", "int32", "int64", "bool", "flaot32"]
INITS = ["zeros", "ones", "glorot_uniform", "glorot_normal", "he_normal", "constant(0.5)",
         "random_normal(0.0, 0.1)", "random_uniform(-1, 1)", "glorot_unifrom", "3"]
HPARAM_TYPES = ["int", "float", "bool", "str", "layer", "itn"]
BINARY = ["+", "-", "*", "/", "@", "<", "<=", ">", ">=", "==", "!=", "and", "or"]

names = st.sampled_from(NAMES)
small_ints = st.integers(min_value=0, max_value=9).map(str)
floats = st.sampled_from(["0.5", "1.0", "2.5", "1e-3", ".25", "3."])
literals = st.one_of(small_ints, floats, st.sampled_from(['"relu"', '"d1"', "true", "false", "float32"]))


@st.composite
def expressions(draw, depth: int = 3) -> str:
    if depth <= 0 or draw(st.integers(0, 3)) == 0:
        return draw(st.one_of(names, names, literals))
    sub = expressions(depth - 1)
    kind = draw(st.sampled_from(["binary", "binary", "power", "unary", "call", "call", "index", "pipe",
                                 "pipe", "paren", "list"]))
    if kind == "binary":
        return f"{draw(sub)} {draw(st.sampled_from(BINARY))} {draw(sub)}"
    if kind == "power":  # a small exponent only: see the module docstring
        return f"{draw(sub)} ** {draw(st.sampled_from(['2', '0.5', 'x', 'n']))}"
    if kind == "unary":
        return f"{draw(st.sampled_from(['-', 'not ']))}{draw(sub)}"
    if kind == "call":
        return f"{draw(st.sampled_from(CALLABLES))}({draw(arguments(depth - 1))})"
    if kind == "index":
        items = draw(st.lists(st.sampled_from([":", "0", "-1", "1:3", "::2", "...", "0:4", "n", "1.5"]),
                              min_size=1, max_size=3))
        return f"{draw(sub)}[{', '.join(items)}]"
    if kind == "pipe":
        stages = draw(st.lists(stage(depth - 1), min_size=1, max_size=3))
        return " -> ".join([draw(sub), *stages])
    if kind == "paren":
        return f"({draw(sub)})"
    return "[" + ", ".join(draw(st.lists(sub, max_size=3))) + "]"


@st.composite
def arguments(draw, depth: int) -> str:
    args = draw(st.lists(expressions(depth), max_size=3))
    kwargs = [f"{draw(st.sampled_from(KEYWORDS))}={draw(expressions(depth))}"
              for _ in range(draw(st.integers(0, 2)))]
    return ", ".join(args + kwargs)


@st.composite
def stage(draw, depth: int) -> str:
    kind = draw(st.sampled_from(["bare", "call", "call", "repeat"]))
    if kind == "bare":
        return draw(st.sampled_from(CALLABLES))
    if kind == "call":
        return f"{draw(st.sampled_from(CALLABLES))}({draw(arguments(depth))})"
    shared = draw(st.sampled_from(["", "shared "]))
    return f"repeat {draw(st.integers(0, 4))} {shared}{draw(stage(depth))}"


@st.composite
def shapes(draw) -> str:
    dims = draw(st.lists(st.sampled_from(["batch", "n", "k", "units", "8", "4", "1", "..."]), max_size=4))
    return "[" + ", ".join(dims) + "]"


@st.composite
def statements(draw, kind: str) -> list[str]:
    out = []
    for _ in range(draw(st.integers(0, 4))):
        which = draw(st.sampled_from(["assign", "assign", "assign", "param", "state"]))
        target = draw(names)
        if which == "assign":
            out.append(f"{target} = {draw(expressions())}")
        elif which == "param":
            out.append(f"param {target}: {draw(shapes())} = {draw(st.sampled_from(INITS))}")
        else:
            out.append(f"state {target} = {draw(expressions(2))}")
    if draw(st.integers(0, 9)) > 0:
        values = draw(st.lists(expressions(), min_size=1, max_size=2))
        out.append("return " + ", ".join(values))
    return out


@st.composite
def definitions(draw, index: int) -> str:
    kind = draw(st.sampled_from(["layer", "layer", "model", "model", "metric"]))
    name = {"layer": "l", "model": "m", "metric": "q"}[kind] + str(draw(st.sampled_from([index, 0])))
    inputs = []
    for i in range(draw(st.integers(0 if kind == "layer" else 1, 3))):
        input_name = draw(st.sampled_from(["x", "y_true", "y_pred", "w", "x"])) if i else "x"
        if kind == "model":
            dtype = draw(st.sampled_from(DTYPES + [""]))
            inputs.append(f"{input_name}: {dtype}{draw(shapes())}")
        else:
            inputs.append(input_name + draw(st.sampled_from(["", f": {draw(shapes())}"])))
    header = f"{kind} {name}"
    if kind != "model" and draw(st.booleans()):
        hparams = [f"{draw(names)}: {draw(st.sampled_from(HPARAM_TYPES))}"
                   + draw(st.sampled_from(["", f" = {draw(expressions(1))}"]))
                   for _ in range(draw(st.integers(0, 2)))]
        header += f"({', '.join(hparams)})"
    header += f"({', '.join(inputs)})"
    if draw(st.integers(0, 4)) == 0:
        return f"{header} = {draw(expressions())}"
    body = "\n".join("    " + s for s in draw(statements(kind)))
    return f"{header} {{\n{body}\n}}"


@st.composite
def programs(draw) -> str:
    return "\n\n".join(draw(definitions(i)) for i in range(draw(st.integers(1, 4)))) + "\n"


@FUZZ
@given(programs())
def test_generated_programs_only_give_diagnostics(text: str) -> None:
    assert_only_diagnostics(text)


# Programs that mostly get past the name checks, so that shapes, dtypes and hyperparameter values
# are checked too: names come from the scope, calls use their real keywords.
ACTIVATIONS = ["relu", "elu", "selu", "sigmoid", "tanh", "softmax", "softplus", "gelu", "silu", "linear",
               "exponential", "leaky_relu(0.1)", '"relu"']
AXES = st.sampled_from(["-1", "0", "1", "2", "-2", "[0, 1]", "[1]"])


@st.composite
def scoped_expressions(draw, scope: tuple[str, ...], depth: int = 3) -> str:
    sub = scoped_expressions(scope, depth - 1)
    if depth <= 0 or draw(st.integers(0, 4)) == 0:
        return draw(st.one_of(st.sampled_from(scope), st.sampled_from(scope), st.sampled_from(scope),
                              small_ints, floats, st.just("true")))
    kind = draw(st.sampled_from(["binary", "binary", "power", "unary", "function", "function", "function",
                                 "index", "pipe", "pipe", "pipe"]))
    if kind == "binary":
        return f"({draw(sub)} {draw(st.sampled_from(BINARY))} {draw(sub)})"
    if kind == "power":  # a small exponent only: see the module docstring
        return f"({draw(sub)} ** {draw(st.sampled_from(['2', '0.5', scope[0]]))})"
    if kind == "unary":
        return f"{draw(st.sampled_from(['-', 'not ']))}({draw(sub)})"
    if kind == "index":
        items = draw(st.lists(st.sampled_from([":", "0", "-1", "1:3", "::2", "...", "0:4", "::-1", "5"]),
                              min_size=1, max_size=3))
        return f"{draw(sub)}[{', '.join(items)}]"
    if kind == "pipe":
        stages = draw(st.lists(layer_stages(scope, depth - 1), min_size=1, max_size=3))
        return "(" + " -> ".join([draw(sub), *stages]) + ")"
    fn = draw(st.sampled_from(["exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu", "softplus", "softmax",
                               "where", "clip", "min", "max", "sum", "mean", "argmax", "reshape", "transpose",
                               "cast", "concat"]))
    x = draw(sub)
    if fn == "softmax":
        return f"softmax({x}, axis={draw(AXES)})"
    if fn == "where":
        return f"where({draw(sub)} > {draw(sub)}, {x}, {draw(sub)})"
    if fn == "clip":
        return f"clip({x}, {draw(floats)}, {draw(small_ints)})"
    if fn in ("min", "max", "sum", "mean", "argmax"):
        if fn in ("min", "max") and draw(st.booleans()):
            return f"{fn}({x}, {draw(sub)})"
        kwargs = draw(st.sampled_from(["", f", axis={draw(AXES)}", f", axis={draw(AXES)}, keepdims=true"]))
        return f"{fn}({x}{kwargs})"
    if fn == "reshape":
        return f"reshape({x}, {draw(st.sampled_from(['[-1]', '[2, -1]', '[-1, 4]', '[8]', '[0, 2]']))})"
    if fn == "transpose":
        return f"transpose({x}{draw(st.sampled_from(['', ', [1, 0]', ', [0, 2, 1]', ', [0, 0]']))})"
    if fn == "cast":
        return f"cast({x}, {draw(st.sampled_from(DTYPES[:-1]))})"
    if fn == "concat":
        return f"concat({x}, {draw(sub)}{draw(st.sampled_from(['', ', axis=0', ', axis=-1', ', axis=1']))})"
    return f"{fn}({x})"


@st.composite
def layer_stages(draw, scope: tuple[str, ...], depth: int) -> str:
    kind = draw(st.sampled_from(["builtin", "builtin", "builtin", "user", "function", "repeat"]))
    if kind == "repeat":
        shared = draw(st.sampled_from(["", "shared "]))
        return f"repeat {draw(st.sampled_from([1, 2, 3]))} {shared}{draw(layer_stages(scope, depth))}"
    if kind == "user":
        return draw(st.sampled_from(["l0", "l1", "l2", "l0(3)", "l1(2)", "l2(1)", "l0(4, name=\"u\")"]))
    if kind == "function":
        return draw(st.sampled_from(["mean(axis=1)", "sum(axis=-1, keepdims=true)", "exp", "softmax(axis=0)",
                                     "argmax(axis=1)", "transpose", "reshape([-1])", "cast(float16)"]))
    units = draw(st.integers(0, 8))
    return draw(st.sampled_from([
        f"dense({units})", f"dense({units}, activation={draw(st.sampled_from(ACTIVATIONS))})",
        f"dense(units={units}, use_bias=false)", f"dense({units}, kernel_initializer=he_normal)",
        *ACTIVATIONS[:-1], "dropout(0.5)", "dropout(rate=2)", "batch_norm", "batch_norm(epsilon=0.01)",
        "layer_norm", "normalization", "normalization(mean=0.5, variance=2.0)", "normalization(mean=[1, 2])",
        "embedding(10, 4)", "flatten", "reshape([2, -1])", "reshape([-1])", "reshape(shape=[4, 2])", "concat",
        "concat(axis=1)", f"dense({units}, name=\"d\")", "dense(2.5)", "dense(units=true)"]))


@st.composite
def scoped_layers(draw, index: int) -> str:
    header = draw(st.sampled_from([
        f"layer l{index}(units: int = 4)(x: [..., n])", f"layer l{index}(units: int = 4, act: layer = relu)(x)",
        f"layer l{index}(units: int = 2)(x: [batch, n])", f"layer l{index}(units: int = 3)(x: float32[batch, 8])",
        f"layer l{index}(x)"]))
    scope = ("x", "units") if "units" in header else ("x",)
    lines = []
    if draw(st.booleans()) and "n]" in header:
        lines.append(f"param w: [n, units] = {draw(st.sampled_from(INITS[:7]))}")
        scope += ("w",)
    for i in range(draw(st.integers(0, 2))):
        lines.append(f"t{i} = {draw(scoped_expressions(scope, 2))}")
        scope += (f"t{i}",)
    lines.append(f"return {draw(scoped_expressions(scope, 2))}")
    return header + " {\n" + "".join(f"    {line}\n" for line in lines) + "}"


@st.composite
def scoped_models(draw) -> str:
    inputs = draw(st.lists(st.sampled_from(["float32[batch, 8]", "float32[batch, 4, 8]", "float32[8]",
                                            "float32[batch, n]", "float16[batch, 8]", "float64[2, 3]",
                                            "int64[batch, 3]", "int32[batch]", "bool[batch, 8]",
                                            "float32[]"]), min_size=1, max_size=3))
    scope = tuple(f"x{i}" for i in range(len(inputs)))
    lines = []
    for i in range(draw(st.integers(0, 3))):
        lines.append(f"h{i} = {draw(scoped_expressions(scope))}")
        scope += (f"h{i}",)
    returned = draw(st.lists(scoped_expressions(scope), min_size=1, max_size=2))
    lines.append("return " + ", ".join(returned))
    layers = [draw(scoped_layers(i)) for i in range(3)]
    signature = ", ".join(f"{name}: {t}" for name, t in zip(scope, inputs))
    model = f"model m({signature}) {{\n" + "".join(f"    {line}\n" for line in lines) + "}"
    return "\n\n".join([*layers, model]) + "\n"


@FUZZ
@given(scoped_models())
def test_scoped_programs_only_give_diagnostics(text: str) -> None:
    assert_only_diagnostics(text)


# --- (b) mutations of the samples ---------------------------------------------------------------
SAMPLE_TEXTS = [p.read_text() for p in SAMPLES]
TOKEN = re.compile(r'"[^"\n]*"|[A-Za-z_][A-Za-z_0-9]*|[0-9]+(?:\.[0-9]*)?|->|\*\*|[<>=!]=|\.\.\.|\S')
TOKENS = sorted({t for text in SAMPLE_TEXTS for t in TOKEN.findall(text)}
                | {"import", "param", "state", "shared", "repeat", "model", "layer", "metric", '"', "#", "\t",
                   "\n", "$", "\\", "é", "\x00", "(((", "]]", "{", "}", ";", ":", "...", "1e999", "0"})
CHARS = "()[]{},:;=+-*/@<>!.\"#\\ \n\tx0123456789_éλ\x00\r\u2028"


def _mutate(text: str, ops: list[tuple[int, int, int, int]]) -> str:
    """Apply (op, a, b, c) mutations; a, b, c are free integers folded into the current text's range."""
    for op, a, b, c in ops:
        toks = [(m.start(), m.end()) for m in TOKEN.finditer(text)]
        n = max(len(text), 1)
        i, j = sorted((a % n, b % n))
        if op == 0:    # delete a short character range
            text = text[:i] + text[min(j, i + 1 + c % 8):]
        elif op == 1:  # insert a character
            text = text[:i] + CHARS[c % len(CHARS)] + text[i:]
        elif op == 2:  # duplicate a short range somewhere else
            piece = text[i:min(j, i + 1 + c % 40)]
            k = c % n
            text = text[:k] + piece + text[k:]
        elif op == 3 and len(toks) > 1:  # swap two tokens
            (s1, e1), (s2, e2) = sorted((toks[a % len(toks)], toks[b % len(toks)]))
            if e1 <= s2:
                text = text[:s1] + text[s2:e2] + text[e1:s2] + text[s1:e1] + text[e2:]
        elif op == 4 and toks:  # replace a token by another one
            s1, e1 = toks[a % len(toks)]
            text = text[:s1] + TOKENS[c % len(TOKENS)] + text[e1:]
        elif op == 5 and toks:  # delete a token
            s1, e1 = toks[a % len(toks)]
            text = text[:s1] + text[e1:]
    return text


mutation_ops = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 10**6), st.integers(0, 10**6),
                                  st.integers(0, 10**6)), min_size=1, max_size=4)


def test_samples_are_there() -> None:
    assert SAMPLE_TEXTS, "samples/*.model is empty"
    for path, text in zip(SAMPLES, SAMPLE_TEXTS):
        assert assert_only_diagnostics(text, str(path)) == []


@FUZZ_MUTATIONS
@given(st.sampled_from(range(len(SAMPLE_TEXTS))), mutation_ops)
def test_mutated_samples_only_give_diagnostics(sample: int, ops: list) -> None:
    # under the sample's own path, so its imports resolve
    assert_only_diagnostics(_mutate(SAMPLE_TEXTS[sample], ops), str(SAMPLES[sample]))


@pytest.mark.parametrize("seed", range(6))
def test_mutated_samples_through_the_cli(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    text = SAMPLE_TEXTS[seed % len(SAMPLE_TEXTS)]
    ops = [(rng.randrange(6), rng.randrange(10**6), rng.randrange(10**6), rng.randrange(10**6))
           for _ in range(1 + seed % 3)]
    path = tmp_path / "t.model"
    path.write_text(_mutate(text, ops), encoding="utf-8")
    (tmp_path / "lib").symlink_to(ROOT / "samples" / "lib")  # what samples/imports.model imports
    result = subprocess.run([MODELC, "check", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    assert "internal error" not in result.stderr
    if result.returncode == 1:
        assert re.search(rf"^{re.escape(str(path))}:\d+:\d+: error: ", result.stderr, re.M), result.stderr


# --- crashes found by fuzzing (compiler/functions.py, compiler/lower.py), fixed: regression tests ------
def _check_in_subprocess(text: str, timeout: float = 10) -> subprocess.CompletedProcess:
    code = ("import sys, modelc\n"
            "for d in modelc.check_source(sys.stdin.read(), file='t.model'): print(d.render())\n")
    return subprocess.run([sys.executable, "-c", code], input=text, capture_output=True, text=True,
                          timeout=timeout)


def test_known_crash_float_power_overflow() -> None:
    assert_only_diagnostics("model m(x: float32[batch, 8]) {\n    return x * 10.0 ** 400\n}\n")


def test_known_crash_int_to_float_overflow() -> None:
    assert_only_diagnostics("model m(x: float32[batch, 8]) {\n    return x + 10 ** 400 * 1.5\n}\n")


def test_known_hang_huge_int_power() -> None:
    result = _check_in_subprocess("model m(x: float32[batch, 8]) {\n    return x + 9 ** 9 ** 9\n}\n", timeout=5)
    assert result.returncode == 0 and "error:" in result.stdout


# --- (c) hostile bytes through `modelc check`, in process ---------------------------------------------------------
NASTY = [b"\xef\xbb\xbf", b"\x00", b"\xff\xfe", b"\xc3(", b"\xed\xa0\x80", b"\r", b"\r\n", b"\x0c", b"\xe2\x80\xa8",
         b'"', b"\\", b"#", b"import ", b'import "', b"{" * 50, b"(" * 300, b"9" * 400, b"\t"]


@st.composite
def hostile_bytes(draw) -> bytes:
    """Random bytes, or a sample's bytes with bytes inserted, cut or overwritten (invalid UTF-8, a BOM, NULs)."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=600))
    data = bytearray(SAMPLE_TEXTS[draw(st.integers(0, len(SAMPLE_TEXTS) - 1))].encode())
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        piece = draw(st.one_of(st.sampled_from(NASTY), st.binary(min_size=1, max_size=8)))
        kind = draw(st.sampled_from(["insert", "overwrite", "cut"]))
        if kind == "insert":
            data[at:at] = piece
        elif kind == "overwrite":
            data[at:at + len(piece)] = piece
        else:
            del data[at:at + draw(st.integers(1, 40))]
    return bytes(data)


@FUZZ_BYTES
@given(hostile_bytes(), st.booleans())
def test_hostile_bytes_through_check_only_give_diagnostics(tmp_path_factory, data: bytes, imported: bool) -> None:
    """`modelc check` on the bytes (or on a program that imports them): exit 0 or 1 and a diagnostic, never a
    traceback or an internal error; an imported file that is no .model is quoted no further than a token."""
    import contextlib
    import io
    folder = tmp_path_factory.getbasetemp() / "hostile-bytes"
    folder.mkdir(exist_ok=True)
    target = folder / ("junk.bin" if imported else "junk.model")
    target.write_bytes(data)
    if imported:
        (folder / "main.model").write_text('import "junk.bin"\nmodel m(x: float32[batch, 2]) {\n    return x\n}\n')
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["check", str(folder / "main.model" if imported else target)])
    stderr = err.getvalue()
    assert code in (0, 1), stderr
    assert "internal error" not in stderr and "Traceback" not in stderr, stderr
    assert (code == 0) == (stderr == ""), stderr
    assert code == 1 or "ok (" in out.getvalue()
    if imported and code == 1:   # under a diagnostic in the imported junk: a token at most, never its lines
        lines = stderr.split("\n")
        quoted = [lines[i + 1] for i, line in enumerate(lines[:-1]) if line.startswith(f"{target}:")]
        assert all(len(q.strip()) <= 40 for q in quoted), stderr


@pytest.mark.parametrize("text", [
    'layer f(x: [batch, n]) {\n    return x -> batch\n}\nmodel m(x: float32[batch, 4]) {\n    return x -> f\n}\n',
    'model m(x: float32[batch, 4]) {\n    return x + batch\n}\n'])
def test_found_a_run_time_dimension_used_as_a_value(text: str) -> None:
    """Found by the hostile-bytes fuzzer (`-> batch_norm` cut to `-> batch`): an internal error before."""
    (d,) = assert_only_diagnostics(text)
    assert d.message.startswith("'batch' is a dimension whose size is known only when the model runs"), d.message


@pytest.mark.parametrize("path", ["\x00lib/blocks.model", "lib\\u0000.model"])
def test_found_a_nul_in_an_import_path(path: str) -> None:
    """Found by the hostile-bytes fuzzer: `import "\\x00lib/blocks.model"` was an internal error (ValueError)."""
    (d,) = assert_only_diagnostics(f'import "{path}"\nmodel m(x: float32[batch, 4]) {{\n    return x\n}}\n')
    assert d.message.endswith("a path cannot hold a NUL character"), d.message
