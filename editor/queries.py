"""What an editor asks of a document, answered from editor/analysis.py's Document: hover, go to definition,
completion and the outline. Positions are the compiler's: 1-based lines and columns in code points."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..compiler import nodes as N
from ..compiler.parse import unclosed_bracket
from ..compiler.source import Span
from .analysis import Document, child_nodes
from . import vocabulary as V


def contains(span: Span, line: int, col: int) -> bool:
    return (span.line, span.col) <= (line, col) < (span.end_line, span.end_col)


def path_at(root: Any, line: int, col: int) -> list[Any]:
    """The nodes whose span holds the position, outermost first."""
    path = [root]
    while True:
        inner = [c for c in child_nodes(path[-1]) if hasattr(c, "loc") and contains(c.loc, line, col)]
        if not inner:
            return path
        path.append(inner[0])


def definition_at(doc: Document, line: int) -> N.Definition | None:
    chunk = doc.chunk_at(line)
    for d in chunk.definitions if chunk else []:
        if d.loc.line <= line <= d.loc.end_line:
            return d
    return None


def source(doc: Document, span: Span) -> str:
    """The document's text under a span of it."""
    lines = doc.lines[span.line - 1:span.end_line]
    if not lines:
        return ""
    lines[-1] = lines[-1][:span.end_col - 1]   # the end first: on one line, the start then counts from 0
    lines[0] = lines[0][span.col - 1:]
    return "\n".join(lines)


# --- names and what they mean ---------------------------------------------------------------------------
def bindings(d: N.Definition) -> dict[str, Any]:
    """Every name a definition binds: hyperparameters, inputs, their dimension symbols, statements."""
    bound: dict[str, Any] = {}
    for p in [*d.hparams, *d.inputs]:
        for dim in p.type.dims if isinstance(p.type, N.TensorTypeSpec) else []:
            if isinstance(dim.value, str) and dim.value != "...":
                bound.setdefault(dim.value, dim)
        bound[p.name] = p
    for stmt in d.body:
        if not isinstance(stmt, N.Return):
            bound.setdefault(stmt.name, stmt)
    return bound


def name_under(path: list[Any], line: int, col: int) -> str | None:
    """The name the innermost node shows at the position: a name, a stage's layer, a definition's name."""
    node = path[-1]
    if isinstance(node, N.Name):
        return node.id
    if isinstance(node, N.StageRef) and col < node.loc.col + len(node.name) and line == node.loc.line:
        return node.name
    if isinstance(node, N.Definition) and node.name_loc and contains(node.name_loc, line, col):
        return node.name
    if isinstance(node, N.Param) and line == node.loc.line and col < node.loc.col + len(node.name):
        return node.name
    return None


def keyword_under(path: list[Any]) -> tuple[str, N.Keyword] | None:
    """(callee, keyword) when the position is on a keyword argument's name: `dense(4, activation=relu)`."""
    if len(path) < 2 or not isinstance(path[-1], N.Keyword):
        return None
    parent = path[-2]
    callee = parent.name if isinstance(parent, N.StageRef) else \
        parent.func.id if isinstance(parent, N.Call) and isinstance(parent.func, N.Name) else None
    return (callee, path[-1]) if callee else None


def header_of(doc: Document, d: N.Definition) -> str:
    """A definition's header as written: `layer residual(units: int)(x: [batch, units])`."""
    first = min((s.loc for s in d.body), key=lambda s: (s.line, s.col), default=d.loc)
    text = source(doc, Span(d.loc.file, d.loc.line, d.loc.col, first.line, first.col))
    return re.sub(r"\s+", " ", text).rstrip(" {=").rstrip() if d.loc.file == doc.path else f"{d.kind} {d.name}"


def comments_above(doc: Document, d: N.Definition) -> str:
    """The comment lines right above a definition: its documentation."""
    if d.loc.file != doc.path:
        return f"defined in {d.loc.file}"
    lines, out = doc.lines, []
    i = d.loc.line - 2
    while i >= 0 and lines[i].lstrip().startswith("#"):
        out.insert(0, lines[i].lstrip()[1:].strip())
        i -= 1
    return "\n".join(out)


# --- hover --------------------------------------------------------------------------------------------------
@dataclass
class Hover:
    code: str            # shown as .model code
    doc: str = ""
    span: Span | None = None


def hover(doc: Document, line: int, col: int) -> Hover | None:
    d = definition_at(doc, line)
    if d is None:
        return None
    path = path_at(d, line, col)
    if (kw := keyword_under(path)) and col < kw[1].loc.col + len(kw[1].name):
        callee, keyword = kw
        shown = dict(V.hyperparameters_of(callee, doc.definitions) or []).get(keyword.name, keyword.name)
        return Hover(shown, f"hyperparameter of {callee}", keyword.loc)
    name = name_under(path, line, col)
    if name is not None:
        return hover_name(doc, d, path, name)
    return hover_value(doc, path)


def hover_name(doc: Document, d: N.Definition, path: list[Any], name: str) -> Hover | None:
    node = path[-1]
    local = bindings(d).get(name) if not isinstance(node, N.Definition) else None
    if local is not None:
        shown = doc.values_of(node) | doc.values_of(local)
        return Hover(f"{name}: {' | '.join(sorted(shown)) or declared_type(doc, local)}", _local_kind(local), node.loc)
    user = doc.definitions.get(name)
    shape = _stage_output(doc, path)
    if user is not None:
        doc.placed(user)
        about = comments_above(doc, user)
        if user.kind == "metric" and name in V.prelude_metrics():
            about = "\n\n".join(filter(None, [about, f"replaces the built-in metric: {V.prelude_metrics()[name][1]}"]))
        return Hover(header_of(doc, user) + shape, about, node.loc)
    word = V.builtin_word(name)
    if word is None:
        return None
    return Hover(word.detail + shape, f"built-in {word.kind}: {word.doc}" if word.doc else f"built-in {word.kind}",
                 node.loc)


def _stage_output(doc: Document, path: list[Any]) -> str:
    """` -> float32[batch, 30]` for a pipeline stage whose output lowering saw."""
    if len(path) >= 2 and isinstance(path[-1], N.StageRef):
        parent = next((p for p in reversed(path[:-1]) if isinstance(p, N.Pipe)), None)
        shown = doc.values_of(parent) if parent is not None else set()
        if shown:
            return "\n# output: " + " | ".join(sorted(shown))
    return ""


def _local_kind(node: Any) -> str:
    return {N.Param: "input or hyperparameter", N.Assign: "value", N.ParamDecl: "weight", N.StateDecl: "metric state",
            N.Dim: "dimension symbol"}.get(type(node), "")


def declared_type(doc: Document, node: Any) -> str:
    if isinstance(node, (N.Param, N.ParamDecl)) and node.type is not None:
        return source(doc, node.type.loc)
    return "not evaluated by any model" if not isinstance(node, N.Dim) else "int"


def hover_value(doc: Document, path: list[Any]) -> Hover | None:
    """The innermost expression lowering evaluated: its shape and dtype (or value)."""
    for node in reversed(path):
        shown = doc.values_of(node)
        if shown:
            named = f"{node.name}: " if isinstance(node, (N.Param, N.Assign, N.ParamDecl)) else ""
            return Hover(named + " | ".join(sorted(shown)), _local_kind(node), node.loc)
    return None


# --- go to definition -------------------------------------------------------------------------------------
def definition(doc: Document, line: int, col: int) -> Span | None:
    """Where the name under the position is bound: in its definition, this file, or an imported one (for an
    `import`, the imported file's start)."""
    chunk = doc.chunk_at(line)
    for imp in chunk.program.imports if chunk and chunk.program else []:
        if contains(imp.loc, line, col):
            target = doc.import_path(imp)
            return Span(target, 1, 1, 1, 1)
    d = definition_at(doc, line)
    if d is None:
        return None
    path = path_at(d, line, col)
    if kw := keyword_under(path):
        callee = doc.definitions.get(kw[0])
        p = next((p for p in callee.hparams if p.name == kw[1].name), None) if callee else None
        return doc.placed(callee).hparams[callee.hparams.index(p)].loc if p else None  # type: ignore[union-attr]
    name = name_under(path, line, col)
    if name is None:
        return None
    local = bindings(d).get(name) if not isinstance(path[-1], N.Definition) else None
    if local is not None:
        return local.loc
    user = doc.definitions.get(name)
    return doc.placed(user).name_loc if user is not None else None


# --- outline ------------------------------------------------------------------------------------------------
@dataclass
class Symbol:
    name: str
    kind: str            # model, layer, metric, input, hyperparameter, weight, state, value
    span: Span
    name_span: Span
    detail: str = ""
    children: list["Symbol"] | None = None


def symbols(doc: Document) -> list[Symbol]:
    out = []
    for chunk in doc.chunks:
        for d in chunk.definitions:
            chunk.place()
            out.append(Symbol(d.name, d.kind, d.loc, d.name_loc or d.loc, header_of(doc, d), _members(d)))
    return out


def _members(d: N.Definition) -> list[Symbol]:
    members = [Symbol(p.name, "hyperparameter", p.loc, _start(p.loc, p.name)) for p in d.hparams]
    members += [Symbol(p.name, "input", p.loc, _start(p.loc, p.name)) for p in d.inputs]
    kinds = {N.ParamDecl: "weight", N.StateDecl: "state", N.Assign: "value"}
    members += [Symbol(s.name, kinds[type(s)], s.loc, s.loc) for s in d.body if type(s) in kinds]
    return members


def _start(span: Span, name: str) -> Span:
    return Span(span.file, span.line, span.col, span.line, span.col + len(name))


# --- completion ---------------------------------------------------------------------------------------------
WORD_BEFORE = re.compile(r"[A-Za-z_][A-Za-z_0-9]*$")
AFTER_ARROW = re.compile(r"->\s*(?:repeat\s+[^\s]+\s+(?:shared\s+)?)?$")
AFTER_KEYWORD = re.compile(r"\b([A-Za-z_]\w*)\s*=\s*$")
ARGUMENT_START = re.compile(r"[(,]\s*$")


def completions(doc: Document, line: int, col: int) -> list[V.Word]:
    """What may be written at the position, from the text before it (it need not parse yet)."""
    lines = doc.lines
    before = lines[line - 1][:col - 1] if line <= len(lines) else ""
    word = WORD_BEFORE.search(before)
    before = before[:word.start()] if word else before
    user = list(doc.definitions.values())
    if AFTER_ARROW.search(before):
        return [*V.layer_words(user), *V.function_words(stage=True), *V.keyword_words(("repeat",))]
    if re.match(r"^\s*metric\s+$", before):
        return V.metric_words(user)
    if re.match(r"^\s*param\s+\w+\s*:.*=\s*$", before):
        return V.initializer_words()
    if not before.strip():
        return _statement_start(doc, line)
    call = _open_call(doc, line, col)
    if call and (m := AFTER_KEYWORD.search(before)):
        return _keyword_value(doc, call, m.group(1))
    header = re.match(r"^\s*(layer|model|metric)\b", lines[call[1] - 1]) if call else None
    if call and header and before.rstrip().endswith(":"):
        return _header_types(lines[call[1] - 1], header.group(1), call[2])
    words = _expression_words(doc, line)
    if call and ARGUMENT_START.search(before):
        words = [V.Word(n, "hyperparameter", shown, f"of {call[0]}", f"{n}=")
                 for n, shown in V.hyperparameters_of(call[0], doc.definitions) or []] + words
    return words


def _statement_start(doc: Document, line: int) -> list[V.Word]:
    """A line's first word: a definition keyword at the top level, a statement or expression inside a body."""
    d = definition_at(doc, line)
    inside = d is not None and d.loc.end_line > line or _open_bracket(doc, line) is not None
    if not inside:
        return V.keyword_words(V.DEFINITION_KEYWORDS)
    words = V.keyword_words(V.STATEMENT_KEYWORDS) + _expression_words(doc, line)
    return words + V.state_words() if d is not None and d.kind == "metric" else words


def _expression_words(doc: Document, line: int) -> list[V.Word]:
    d = definition_at(doc, line)
    local = [V.Word(n, "local", _local_kind(b)) for n, b in (bindings(d) if d else _bound_in_text(doc, line)).items()]
    return [*local, *V.function_words(), *V.layer_words(list(doc.definitions.values())),
            *V.keyword_words(("true", "false", "not", "and", "or"))]


def _bound_in_text(doc: Document, line: int) -> dict[str, Any]:
    """Names bound before `line` in a definition that does not parse yet: its header's and its statements'."""
    chunk = doc.chunk_at(line)
    text = "\n".join(doc.lines[chunk.at:line - 1]) if chunk else ""
    names = re.findall(r"^\s*(?:param\s+|state\s+)?([A-Za-z_]\w*)\s*[=:]", text, re.MULTILINE)
    header = text.split("\n", 1)[0]
    names += re.findall(r"[(,]\s*([A-Za-z_]\w*)", header.split("{")[0])
    return {n: None for n in names}


def _open_bracket(doc: Document, line: int, col: int = 1) -> tuple[str, int, int] | None:
    """The innermost bracket open before the position in its chunk: (char, line, col)."""
    chunk = doc.chunk_at(line)
    if chunk is None:
        return None
    lines = doc.lines
    text = "\n".join(lines[chunk.at:line - 1] + [lines[line - 1][:col - 1]])
    found = unclosed_bracket(text, len(text))
    return (found[0], found[1] + chunk.at, found[2]) if found else None


def _open_call(doc: Document, line: int, col: int) -> tuple[str, int, int] | None:
    """(callee, line, col of its '(') when the position is inside parentheses; callee "" when no name
    precedes them (a definition's second group)."""
    found = _open_bracket(doc, line, col)
    if found is None or found[0] != "(":
        return None
    text = doc.lines[found[1] - 1][:found[2] - 1]
    m = WORD_BEFORE.search(text.rstrip())
    return (m.group() if m else "", found[1], found[2])


def _header_types(header: str, keyword: str, col: int) -> list[V.Word]:
    """Types in a definition's header, the '(' of the group at `col`: hyperparameter types in the first of two
    groups, dtypes in the inputs; both while a layer's second group is not written yet."""
    if keyword == "model" or header[:col - 1].rstrip().endswith(")"):
        return V.type_words(hparams=False)
    if _in_first_group(header, col):
        return V.type_words(hparams=True)
    return V.type_words(hparams=True) + V.type_words(hparams=False)


def _in_first_group(header: str, col: int) -> bool:
    """Whether the '(' at `col` opens a definition's first group that is followed by a second: hyperparameters."""
    depth, i = 0, col - 1
    while i < len(header):
        depth += {"(": 1, ")": -1}.get(header[i], 0)
        if depth == 0:
            return header[i + 1:].lstrip().startswith("(")
        i += 1
    return False


def _keyword_value(doc: Document, call: tuple[str, int, int], keyword: str) -> list[V.Word]:
    """Values for `callee(keyword=`: activations for a layer, initializers, true/false."""
    kind = V.hparam_kind(call[0], keyword, doc.definitions)
    user = list(doc.definitions.values())
    if kind == "layer":
        return V.layer_words(user, activations_only=True)
    if kind == "initializer":
        return V.initializer_words()
    if kind == "bool":
        return V.keyword_words(("true", "false"))
    return _expression_words(doc, call[1])
