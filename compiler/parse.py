"""Parser for grammar/model.lark: Lark (LALR) tree -> compiler/nodes.py AST.

The parser is grammar/model_parser.py, generated from model.lark by Lark's standalone tool (nothing is built,
cached or unpickled at start-up); its tree, token and error classes are the generated module's own."""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Iterator

from ..grammar.model_parser import (Lark, Lark_StandAlone, PostLex, Token, Transformer_NonRecursive, Tree,
                                    UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError)
from . import nodes as N
from .limits import MAX_TOKEN_LENGTH, TOKENS
from .source import Diagnostic, Span, SyntaxErrorDiag
from .types import INT64_MAX

# Deeper trees get a diagnostic instead of a RecursionError later on: lower.py recurses up to three
# frames per level (a list literal), which must stay well inside Python's default limit of 1000.
MAX_DEPTH = 200

# What each terminal is called in a message ("expected ')'", never "_RPAR").
TERMINAL_NAMES = {
    "NAME": "a name", "INT": "an integer", "NUMBER": "a number", "STRING": "a string",
    "ELLIPSIS": "'...'", "COMP_OP": "a comparison", "ADD_OP": "'+', '-'", "MINUS": "'-'",
    "MUL_OP": "'*', '/', '@'", "POW": "'**'", "_ARROW": "'->'", "_ASSIGN": "'='",
    "_COMMA": "','", "_COLON": "':'", "_SEMI": "';'", "_LPAR": "'('", "_RPAR": "')'",
    "_LSQB": "'['", "_RSQB": "']'", "_LBRACE": "'{'", "_RBRACE": "'}'", "$END": "end of file",
}


# Terminals a message names as a group: whatever may start an operand, and whatever may follow one.
EXPR_START = {"NAME", "INT", "NUMBER", "STRING", "TRUE", "FALSE", "NOT", "MINUS", "_LPAR", "_LSQB"}
BINARY_OPERATORS = {"ADD_OP", "MUL_OP", "POW", "COMP_OP", "AND", "OR", "_ARROW"}
BRACKETS = {"(": ")", "[": "]", "{": "}"}
CLOSER_TERMINALS = {")": "_RPAR", "]": "_RSQB", "}": "_RBRACE"}
STRING_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}


def describe_terminal(name: str) -> str:
    return TERMINAL_NAMES.get(name, f"'{name.lower()}'")


def describe_expected(terminals: set[str]) -> str:
    """`')'`, `')' or ','`, `one of ')', ',', an operator`: what the parser would have accepted."""
    names, groups = set(terminals), []
    if {"NUMBER", "STRING"} <= names:   # any operand may start here
        names -= EXPR_START
        groups.append("an expression")
    if len(names & BINARY_OPERATORS) >= 2:   # an operand is complete and may go on (a call, an index too)
        names -= BINARY_OPERATORS | {"_LPAR", "_LSQB"}
        groups.append("an operator")
    items = sorted(describe_terminal(t) for t in names) + groups
    if len(items) <= 2:
        return " or ".join(items)
    return "one of " + ", ".join(items)


class TooManyTokens(Exception):
    """Raised by TokenBudget at the first token past a limit; _parse turns it into a diagnostic."""

    def __init__(self, token: Token, message: str):
        super().__init__(message)
        self.token, self.message = token, message


class TokenBudget(PostLex):
    """Stops a parse at the TOKENS limit, before the tree and the AST (about 700 bytes a token) outgrow memory,
    and at a token longer than MAX_TOKEN_LENGTH (names and strings are copied into every path under them)."""

    always_accept = ()

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        limit = TOKENS.value()
        for count, token in enumerate(stream, 1):
            if count > limit:
                raise TooManyTokens(token, f"too many tokens: this one is past "
                                           f"{TOKENS.describe(limit, 'a source file')}")
            if len(token) > MAX_TOKEN_LENGTH:
                raise TooManyTokens(token, f"a token of {len(token):,} characters; the longest a name, number or "
                                           f"string may be is {MAX_TOKEN_LENGTH:,}")
            yield token


@lru_cache(maxsize=1)
def parser() -> Lark:
    return Lark_StandAlone(postlex=TokenBudget())


def span_of(file: str, item: Any) -> Span:
    """Span of a Token or of a Tree's meta."""
    if isinstance(item, Token):
        return Span(file, item.line or 1, item.column or 1, item.end_line or item.line or 1,
                    item.end_column or (item.column or 1) + len(item))
    return Span(file, item.line, item.column, item.end_line, item.end_column)


class ToAst(Transformer_NonRecursive):
    """Builds nodes.py dataclasses; every node gets the span lark recorded."""

    def _call_userfunc(self, tree: Tree, new_children: list | None = None) -> Any:
        # Every method takes (meta, children). Dispatching here, rather than through lark's v_args
        # wrapper, skips a functools.update_wrapper on every node: a third of the transform's time.
        children = new_children if new_children is not None else tree.children
        method = getattr(self, tree.data, None)
        if method is None:
            return self.__default__(tree.data, children, tree.meta)
        return method(tree.meta, children)

    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def _loc(self, meta: Any) -> Span:
        return span_of(self.file, meta)

    # definitions
    def start(self, meta: Any, items: list) -> N.Program:
        program = N.Program(self.file)
        for item in items:
            (program.imports if isinstance(item, N.Import) else program.definitions).append(item)
        return program

    def metric_spec(self, meta: Any, items: list) -> N.StageRef:
        name, arguments = items
        args, kwargs = arguments if arguments is not None else (None, [])
        return N.StageRef(self._loc(meta), str(name), args, kwargs)

    def import_def(self, meta: Any, items: list) -> N.Import:
        return N.Import(self._loc(meta), _unquote(items[1], self.file))

    def _definition(self, kind: str, meta: Any, items: list) -> N.Definition:
        _, name_tok, first, second, body = items
        hparams, inputs = (first, second) if second is not None else ([], first)
        if not isinstance(body, list):  # `= EXPR` form
            body = [N.Return(body.loc, [body])]
        return N.Definition(self._loc(meta), kind, str(name_tok), hparams, inputs, body,
                            span_of(self.file, name_tok))

    def layer_def(self, meta: Any, items: list) -> N.Definition:
        return self._definition("layer", meta, items)

    def model_def(self, meta: Any, items: list) -> N.Definition:
        return self._definition("model", meta, [*items[:3], None, items[3]])

    def metric_def(self, meta: Any, items: list) -> N.Definition:
        return self._definition("metric", meta, items)

    def param_group(self, meta: Any, items: list) -> list:
        return [p for p in items if p is not None]

    def param(self, meta: Any, items: list) -> N.Param:
        name, type_spec, default = items
        return N.Param(self._loc(meta), str(name), type_spec, default)

    def scalar_type(self, meta: Any, items: list) -> N.ScalarType:
        return N.ScalarType(self._loc(meta), str(items[0]))

    def tensor_type(self, meta: Any, items: list) -> N.TensorTypeSpec:
        dtype, *dims = items
        return N.TensorTypeSpec(self._loc(meta), str(dtype) if dtype is not None else None,
                                [d for d in dims if d is not None])

    def dim(self, meta: Any, items: list) -> N.Dim:
        tok = items[0]
        if tok.type == "NUMBER":
            raise _fail(self._loc(meta), f"a dimension is an integer, a name or '...', got {tok}")
        value = _check_int(tok, self._loc(meta)) if tok.type == "INT" else str(tok)
        return N.Dim(self._loc(meta), value)

    # statements
    def body(self, meta: Any, items: list) -> list:
        return list(items)

    def assign(self, meta: Any, items: list) -> N.Assign:
        return N.Assign(self._loc(meta), str(items[0]), items[1])

    def param_decl(self, meta: Any, items: list) -> N.ParamDecl:
        _, name, type_spec, init = items
        if isinstance(type_spec, N.ScalarType):
            raise _fail(type_spec.loc, f"a param needs a shape such as [n, units], got '{type_spec.name}'")
        return N.ParamDecl(self._loc(meta), str(name), type_spec, init)

    def state_decl(self, meta: Any, items: list) -> N.StateDecl:
        return N.StateDecl(self._loc(meta), str(items[1]), items[2])

    def return_stmt(self, meta: Any, items: list) -> N.Return:
        return N.Return(self._loc(meta), list(items[1:]))

    # expressions
    def pipe(self, meta: Any, items: list) -> N.Pipe:
        return N.Pipe(self._loc(meta), items[0], items[1])

    def stage_name(self, meta: Any, items: list) -> N.StageRef:
        return N.StageRef(self._loc(meta), str(items[0]), None, [])

    def stage_call(self, meta: Any, items: list) -> N.StageRef:
        args, kwargs = items[1]
        return N.StageRef(self._loc(meta), str(items[0]), args, kwargs)

    def stage_repeat(self, meta: Any, items: list) -> N.Repeat:
        _, count, shared, stage = items
        if isinstance(count, N.Number) and not count.is_int:
            raise _fail(count.loc, f"repeat count must be an integer, got {count.value}")
        return N.Repeat(self._loc(meta), count, shared is not None, stage)

    def binary(self, meta: Any, items: list) -> N.Binary:
        left, op, right = items
        return N.Binary(self._loc(meta), str(op), left, right)

    def unary(self, meta: Any, items: list) -> N.Unary:
        op, operand = items
        return N.Unary(self._loc(meta), str(op), operand)

    def call(self, meta: Any, items: list) -> N.Call:
        args, kwargs = items[1]
        return N.Call(self._loc(meta), items[0], args, kwargs)

    def arguments(self, meta: Any, items: list) -> tuple[list, list]:
        args = [a for a in items if a is not None and not isinstance(a, N.Keyword)]
        kwargs = [a for a in items if isinstance(a, N.Keyword)]
        seen_keyword = False
        for a in items:
            if isinstance(a, N.Keyword):
                seen_keyword = True
            elif a is not None and seen_keyword:
                raise _fail(_loc_of(a), "positional argument follows keyword argument")
        return args, kwargs

    def keyword(self, meta: Any, items: list) -> N.Keyword:
        return N.Keyword(self._loc(meta), str(items[0]), items[1])

    def index(self, meta: Any, items: list) -> N.Index:
        return N.Index(self._loc(meta), items[0], list(items[1:]))

    def slice(self, meta: Any, items: list) -> N.Slice:
        return N.Slice(self._loc(meta), *items)

    def ellipsis(self, meta: Any, items: list) -> N.EllipsisIndex:
        return N.EllipsisIndex(self._loc(meta))

    def number(self, meta: Any, items: list) -> N.Number:
        tok = items[0]
        if tok.type == "INT":
            return N.Number(self._loc(meta), _check_int(tok, self._loc(meta)), True)
        return N.Number(self._loc(meta), float(tok), False)

    def string(self, meta: Any, items: list) -> N.String:
        return N.String(self._loc(meta), _unquote(items[0], self.file))

    def boolean(self, meta: Any, items: list) -> N.Bool:
        return N.Bool(self._loc(meta), items[0].type == "TRUE")

    def name(self, meta: Any, items: list) -> N.Name:
        return N.Name(self._loc(meta), str(items[0]))

    def list(self, meta: Any, items: list) -> N.ListExpr:
        return N.ListExpr(self._loc(meta), [i for i in items if i is not None])


def _loc_of(node: Any) -> Span:
    return node.loc


def _unquote(tok: Token, file: str) -> str:
    """The text of a STRING token: `\\"`, `\\\\`, `\\n`, `\\t`, `\\r` and `\\uXXXX` are escapes."""
    def escape(m: re.Match) -> str:
        if m.group(1):
            return chr(int(m.group(1), 16))
        if m.group(2) in STRING_ESCAPES:
            return STRING_ESCAPES[m.group(2)]
        col = (tok.column or 1) + 1 + m.start()
        raise _fail(Span(file, tok.line or 1, col, tok.line or 1, col + len(m.group(0))),
                    f"unknown escape '{m.group(0)}' in a string; write '\\\\' for a backslash")
    return re.sub(r"\\(?:u([0-9a-fA-F]{4})|(.))", escape, str(tok)[1:-1])


def _check_int(tok: Token, span: Span) -> int:
    """An integer literal must fit ONNX's int64 (its digits counted first: int() refuses 4,300 of them)."""
    value = int(tok) if len(tok.lstrip("0")) <= 20 else INT64_MAX + 1
    if value > INT64_MAX:
        shown = tok if len(tok) <= 30 else f"{tok[:20]}… ({len(tok):,} digits)"
        raise _fail(span, f"integer {shown} is too large; the largest is {INT64_MAX}")
    return value


def _fail(span: Span, message: str) -> SyntaxErrorDiag:
    return SyntaxErrorDiag(Diagnostic(span, message))


def _tree_too_deep(tree: Tree, file: str) -> Span | None:
    """Iterative depth check, so later recursive passes never overflow."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return span_of(file, node.meta) if not node.meta.empty else Span(file, 1, 1, 1, 2)
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, Tree))
    return None


def syntax_diagnostic(err: UnexpectedInput, file: str, text: str) -> Diagnostic:
    line, col = err.line if err.line > 0 else 1, err.column if err.column > 0 else 1
    pos = err.pos_in_stream if isinstance(err, UnexpectedCharacters) else None
    if isinstance(err, UnexpectedToken):
        pos = err.token.start_pos
    if isinstance(err, UnexpectedCharacters) and text[err.pos_in_stream] == '"':
        rest = text[err.pos_in_stream:].split("\n", 1)[0].rstrip("\r")
        too_long = f" (or one of more than {MAX_TOKEN_LENGTH:,} characters)" if len(rest) > MAX_TOKEN_LENGTH else ""
        return Diagnostic(Span(file, line, col, line, col + len(rest)),
                          f"unterminated string{too_long}; a string ends with '\"' on the line where it starts")
    if isinstance(err, UnexpectedToken) and err.token.type == "$END" or isinstance(err, UnexpectedEOF):
        lines = text.rstrip().split("\n")  # lark counts lines by "\n" only
        line, col, pos = len(lines), len(lines[-1].rstrip("\r")) + 1, len(text)
        message, width = "unexpected end of file", 1
    elif isinstance(err, UnexpectedToken) and err.token.type == "COMP_OP" and "AND" in _expected(err):
        return Diagnostic(Span(file, line, col, line, col + len(err.token)),
                          f"unexpected '{err.token}': comparisons do not chain; write (a < b) and (b < c)")
    elif isinstance(err, UnexpectedToken):
        message = f"unexpected {_token_text(err.token)}"
        width = max(1, len(str(err.token)))
    else:
        message = f"unexpected character {text[err.pos_in_stream]!r}"
        width = 1
    expected = _expected(err)
    if expected:
        message += "; expected " + describe_expected(expected)
    # Name a bracket left open where its closer would do. A body's '{' stays open over every
    # statement, so it is named only at the end of the file.
    opener = unclosed_bracket(text, len(text) if pos is None else pos)
    if opener is not None and CLOSER_TERMINALS[BRACKETS[opener[0]]] in expected and (
            opener[0] != "{" or pos == len(text)):
        message += f"; the '{opener[0]}' at line {opener[1]}, column {opener[2]} is not closed"
    return Diagnostic(Span(file, line, col, line, col + width), message)


_BRACKET_SCAN = re.compile(r'#[^\n]*|"(?:[^"\\\n]|\\.)*"|[()\[\]{}\n]')


def unclosed_bracket(text: str, end: int) -> tuple[str, int, int] | None:
    """The innermost bracket still open at text[end] (comments and strings skipped): (char, line, col)."""
    stack: list[tuple[str, int, int]] = []
    line, line_start = 1, 0
    for m in _BRACKET_SCAN.finditer(text, 0, end):
        c = m.group()
        if c == "\n":
            line, line_start = line + 1, m.end()
        elif c in BRACKETS:
            stack.append((c, line, m.start() - line_start + 1))
        elif c in CLOSER_TERMINALS and stack and BRACKETS[stack[-1][0]] == c:
            stack.pop()
    return stack[-1] if stack else None


def _token_text(tok: Token) -> str:
    if tok.type in ("NAME", "INT", "NUMBER", "STRING"):
        return f"{describe_terminal(tok.type)[2:] if tok.type != 'INT' else 'integer'} '{tok}'"
    return f"'{tok}'"


def _expected(err: UnexpectedInput) -> set[str]:
    """What the parser accepts at the error: exact when lark left its parser state on the error."""
    interactive = getattr(err, "interactive_parser", None)
    if interactive is not None:
        try:
            return set(interactive.accepts())
        except Exception:  # noqa: BLE001 - fall back to the lexer's view below
            pass
    if isinstance(err, UnexpectedToken):
        return set(err.accepts or err.expected)
    if isinstance(err, UnexpectedCharacters):
        return set(err.allowed or ())
    return set(getattr(err, "expected", ()) or ())


def parse_metric_spec(text: str) -> N.StageRef:
    """A metric spec as given to --metric or modelc.metric(): `huber(threshold=2.0)`. Raises SyntaxErrorDiag."""
    return _parse(text, "<metric>", "metric_spec")


def parse_text(text: str, file: str = "<string>") -> N.Program:
    """Parse one file's text. Raises SyntaxErrorDiag with file:line:col."""
    return _parse(text, file, "start")


def _parse(text: str, file: str, start: str) -> Any:
    try:
        tree = parser().parse(text, start=start)
    except UnexpectedInput as err:
        raise SyntaxErrorDiag(syntax_diagnostic(err, file, text)) from None
    except TooManyTokens as err:
        raise _fail(span_of(file, err.token), err.message) from None
    deep = _tree_too_deep(tree, file)
    if deep is not None:
        raise _fail(deep, f"expression nested too deeply (more than {MAX_DEPTH} levels)")
    try:
        return ToAst(file).transform(tree)
    except VisitError as err:  # lark wraps what a callback raised
        raise err.orig_exc from None
