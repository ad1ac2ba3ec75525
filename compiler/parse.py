"""Parser for grammar/model.lark: Lark (LALR) tree -> compiler/nodes.py AST."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from lark import Lark, Token, Tree, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.exceptions import VisitError
from lark.visitors import Transformer_NonRecursive, v_args

from . import nodes as N
from .source import Diagnostic, Span, SyntaxErrorDiag

MAX_DEPTH = 400  # deeper trees get a diagnostic instead of a RecursionError later on

# What each terminal is called in a message ("expected ')'", never "_RPAR").
TERMINAL_NAMES = {
    "NAME": "a name", "INT": "an integer", "NUMBER": "a number", "STRING": "a string",
    "ELLIPSIS": "'...'", "COMP_OP": "a comparison", "ADD_OP": "'+' or '-'", "MINUS": "'-'",
    "MUL_OP": "'*', '/' or '@'", "POW": "'**'", "_ARROW": "'->'", "_ASSIGN": "'='",
    "_COMMA": "','", "_COLON": "':'", "_SEMI": "';'", "_LPAR": "'('", "_RPAR": "')'",
    "_LSQB": "'['", "_RSQB": "']'", "_LBRACE": "'{'", "_RBRACE": "'}'", "$END": "end of file",
}


def describe_terminal(name: str) -> str:
    return TERMINAL_NAMES.get(name, f"'{name.lower()}'")


@lru_cache(maxsize=1)
def parser() -> Lark:
    return Lark.open_from_package(
        "modelc.grammar", "model.lark", parser="lalr", lexer="contextual",
        propagate_positions=True, maybe_placeholders=True, cache=True,
    )


def span_of(file: str, item: Any) -> Span:
    """Span of a Token or of a Tree's meta."""
    if isinstance(item, Token):
        return Span(file, item.line or 1, item.column or 1, item.end_line or item.line or 1,
                    item.end_column or (item.column or 1) + len(item))
    return Span(file, item.line, item.column, item.end_line, item.end_column)


def join(a: Span, b: Span) -> Span:
    return Span(a.file, a.line, a.col, b.end_line, b.end_col)


@v_args(meta=True)
class ToAst(Transformer_NonRecursive):
    """Builds nodes.py dataclasses; every node gets the span lark recorded."""

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

    def import_def(self, meta: Any, items: list) -> N.Import:
        return N.Import(self._loc(meta), _unquote(items[1]))

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
        value = int(tok) if tok.type == "INT" else str(tok)
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
        return N.Repeat(self._loc(meta), int(count), shared is not None, stage)

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
            return N.Number(self._loc(meta), int(tok), True)
        return N.Number(self._loc(meta), float(tok), False)

    def string(self, meta: Any, items: list) -> N.String:
        return N.String(self._loc(meta), _unquote(items[0]))

    def boolean(self, meta: Any, items: list) -> N.Bool:
        return N.Bool(self._loc(meta), items[0].type == "TRUE")

    def name(self, meta: Any, items: list) -> N.Name:
        return N.Name(self._loc(meta), str(items[0]))

    def list(self, meta: Any, items: list) -> N.ListExpr:
        return N.ListExpr(self._loc(meta), [i for i in items if i is not None])


def _loc_of(node: Any) -> Span:
    return node.loc


def _unquote(tok: Token) -> str:
    return bytes(str(tok)[1:-1], "utf-8").decode("unicode_escape")


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
    if isinstance(err, UnexpectedToken) and err.token.type == "$END":
        lines = text.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
        message = "unexpected end of file"
        width = 1
    elif isinstance(err, UnexpectedToken):
        message = f"unexpected {_token_text(err.token)}"
        width = max(1, len(str(err.token)))
    elif isinstance(err, UnexpectedCharacters):
        message = f"unexpected character {text[err.pos_in_stream]!r}"
        width = 1
    else:  # UnexpectedEOF
        message, width = "unexpected end of file", 1
    expected = sorted({describe_terminal(t) for t in _expected(err)})
    if expected:
        message += "; expected " + (expected[0] if len(expected) == 1 else "one of " + ", ".join(expected))
    return Diagnostic(Span(file, line, col, line, col + width), message)


def _token_text(tok: Token) -> str:
    if tok.type in ("NAME", "INT", "NUMBER", "STRING"):
        return f"{describe_terminal(tok.type)[2:] if tok.type != 'INT' else 'integer'} '{tok}'"
    return f"'{tok}'"


def _expected(err: UnexpectedInput) -> set[str]:
    if isinstance(err, UnexpectedToken):
        return set(err.accepts or err.expected)
    if isinstance(err, UnexpectedCharacters):
        return set(err.allowed or ())
    return set(getattr(err, "expected", ()) or ())


def parse_text(text: str, file: str = "<string>") -> N.Program:
    """Parse one file's text. Raises SyntaxErrorDiag with file:line:col."""
    try:
        tree = parser().parse(text)
    except UnexpectedInput as err:
        raise SyntaxErrorDiag(syntax_diagnostic(err, file, text)) from None
    deep = _tree_too_deep(tree, file)
    if deep is not None:
        raise _fail(deep, f"expression nested too deeply (more than {MAX_DEPTH} levels)")
    try:
        return ToAst(file).transform(tree)
    except VisitError as err:  # lark wraps what a callback raised
        raise err.orig_exc from None
