"""`modelc fmt`: one canonical layout of a .model file, printed from its AST (compiler/nodes.py).

Layout: four spaces per level, spaces around binary operators, `->` and a definition's `=`, none around a
keyword argument's `=`; one statement per line; a pipeline longer than WIDTH puts each further stage on
its own line, its `->` under the first one; one blank line between definitions, at most one kept between
statements. Literals keep their source text (`1e-3` stays `1e-3`), parentheses only where precedence
needs them. The grammar drops comments, so they are found in the source again and placed by position:
a comment on its own line goes before the first line of code that followed it, a comment after code at
the end of that code's line (comments/statements/stages are keyed by where they start in the source).
"""
from __future__ import annotations

import difflib
import os
import re
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

from ..compiler import nodes as N
from ..compiler.files import atomic_write
from ..compiler.parse import parse_text, parser
from ..compiler.source import ModelcError, SourceFiles, Span, user_error

WIDTH = 100
INDENT = "    "

# Binding strength of each operator, loosest first, as grammar/model.lark's precedence ladder has it.
PIPE, OR, AND, NOT, COMPARE, SUM, PRODUCT, NEGATE, POWER, ATOM = range(10)
BINARY_LEVELS = {"or": OR, "and": AND, "<": COMPARE, "<=": COMPARE, ">": COMPARE, ">=": COMPARE, "==": COMPARE,
                 "!=": COMPARE, "+": SUM, "-": SUM, "*": PRODUCT, "/": PRODUCT, "@": PRODUCT, "**": POWER}
UNARY_LEVELS = {"not": NOT, "-": NEGATE}

# The grammar's own STRING and COMMENT terminals: a `#` inside a string is no comment.
_TERMINALS = {t.name: t.pattern.to_regexp() for t in parser().terminals}
_COMMENT_SCAN = re.compile(f"{_TERMINALS['STRING']}|{_TERMINALS['COMMENT']}")
_LAST_STRING = re.compile(f"(?:{_TERMINALS['STRING']})$")


@dataclass(frozen=True)
class Comment:
    key: tuple[int, int]   # (line, column) where the `#` is
    text: str
    own_line: bool         # nothing but blanks before it on its line


@dataclass
class Line:
    """One line of output code. Comments are placed by `key`, where its code starts in the source."""
    indent: str
    text: str
    key: tuple[int, int]
    kind: str              # "top" (an import, a definition's first line), "stmt", "stage", "close"
    end: int               # the source line its statement or definition ends on (for the blank lines after it)
    opens: bool = False    # ends with `{`: no blank line follows it


def find_comments(text: str) -> list[Comment]:
    """Every comment of the source, in order (strings skipped: a `#` in a string is no comment)."""
    found, line, line_start, scanned = [], 1, 0, 0
    for m in _COMMENT_SCAN.finditer(text):
        if not m.group().startswith("#"):
            continue
        newlines = text.count("\n", scanned, m.start())
        if newlines:
            line += newlines
            line_start = text.rfind("\n", 0, m.start()) + 1
        scanned = m.start()
        before = text[line_start:m.start()]
        found.append(Comment((line, m.start() - line_start + 1), m.group().rstrip(), not before.strip()))
    return found


def format_source(text: str, file: str = "<string>") -> str:
    """The canonical layout of `text`. Raises SyntaxErrorDiag (positioned) when it does not parse."""
    program = parse_text(text, file)
    comments = find_comments(text)
    printer = Printer(text, [c.key for c in comments])
    lines: list[Line] = []
    for item in sorted([*program.imports, *program.definitions], key=lambda d: (d.loc.line, d.loc.col)):
        lines.extend(printer.import_lines(item) if isinstance(item, N.Import) else printer.definition_lines(item))
    return assemble(lines, comments)


def model_files(paths: list[str]) -> list[Path]:
    """The files named, and the .model files under each folder named (sorted)."""
    found: list[Path] = []
    for p in map(Path, paths):
        found.extend(sorted(p.rglob("*.model")) if p.is_dir() else [p])
    return found


def unified_diff(before: str, after: str, name: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        f"{name}", f"{name} (formatted)"))


def format_text(text: str, file: str) -> str:
    """format_source, with the offending source line in the diagnostic of a syntax error."""
    try:
        return format_source(text, file)
    except ModelcError as e:
        raise ModelcError(SourceFiles({file: text}).attach(e.diagnostics)) from None


def format_file(path: str | os.PathLike, check: bool = False) -> str | None:
    """Format one file in place (atomically, and only when it changes); with `check`, leave it. Returns the
    unified diff of the change, or None when the file is formatted already."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise user_error(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    formatted = format_text(text, str(path))
    if formatted == text:
        return None
    if not check:
        with atomic_write(path) as (tmp,):
            tmp.write_text(formatted, encoding="utf-8")
    return unified_diff(text, formatted, str(path))


class Printer:
    """AST -> text. Literals are copied from the source, so it keeps the source's text and comment positions."""

    def __init__(self, text: str, comment_keys: list[tuple[int, int]]):
        self.text = text
        self.starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]  # lark counts lines by "\n"
        self.comment_keys = comment_keys

    def source(self, span: Span) -> str:
        start = self.starts[span.line - 1] + span.col - 1
        return self.text[start:self.starts[span.end_line - 1] + span.end_col - 1]

    def has_comment_inside(self, span: Span) -> bool:
        """A comment before the span's end, past its start: the span's code runs over several lines around it."""
        i = bisect_right(self.comment_keys, (span.line, span.col))
        return i < len(self.comment_keys) and self.comment_keys[i] < (span.end_line, span.end_col)

    # --- definitions and statements ----------------------------------------------------------------
    def import_lines(self, imp: N.Import) -> list[Line]:
        match = _LAST_STRING.search(self.source(imp.loc))
        path = match.group() if match else '"' + imp.path.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return [Line("", f"import {path}", (imp.loc.line, imp.loc.col), "top", imp.loc.end_line)]

    def definition_lines(self, d: N.Definition) -> list[Line]:
        groups = [d.hparams, d.inputs] if d.hparams else [d.inputs]
        header = f"{d.kind} {d.name}" + "".join("(" + ", ".join(self.param(p) for p in g) + ")" for g in groups)
        key = (d.loc.line, d.loc.col)
        body = d.body
        if len(body) == 1 and isinstance(body[0], N.Return) and len(body[0].values) == 1 \
                and body[0].loc == body[0].values[0].loc:   # the `= EXPR` form
            return self.value_lines("", header + " = ", body[0].values[0], key, "top", d.loc)
        lines = [Line("", header + " {", key, "top", d.loc.line, opens=True)]
        for statement in body:
            lines.extend(self.statement_lines(statement))
        lines.append(Line("", "}", (d.loc.end_line, d.loc.end_col - 1), "close", d.loc.end_line))
        return lines

    def statement_lines(self, s: N.Statement) -> list[Line]:
        key = (s.loc.line, s.loc.col)
        if isinstance(s, N.Return):
            if len(s.values) != 1:
                text = "return " + ", ".join(self.expr(v) for v in s.values)
                return [Line(INDENT, text, key, "stmt", s.loc.end_line)]
            prefix, value = "return ", s.values[0]
        elif isinstance(s, N.Assign):
            prefix, value = f"{s.name} = ", s.value
        elif isinstance(s, N.ParamDecl):
            prefix, value = f"param {s.name}: {self.type_spec(s.type)} = ", s.init
        else:
            prefix, value = f"state {s.name} = ", s.value
        return self.value_lines(INDENT, prefix, value, key, "stmt", s.loc)

    def value_lines(self, indent: str, prefix: str, value: N.Expr, key: tuple[int, int], kind: str,
                    whole: Span) -> list[Line]:
        """`prefix value` on one line; a pipeline past WIDTH, or with comments inside, one stage per line."""
        one = indent + prefix + self.expr(value)
        if not isinstance(value, N.Pipe) or len(one) <= WIDTH and not self.has_comment_inside(whole):
            return [Line(indent, one[len(indent):], key, kind, whole.end_line)]
        stages: list[N.Stage] = []
        while isinstance(value, N.Pipe):
            stages.append(value.stage)
            value = value.value
        stages.reverse()
        head = prefix + self.expr(value, OR)
        lines = [Line(indent, f"{head} -> {self.stage(stages[0])}", key, kind, whole.end_line)]
        align = indent + " " * (len(head) + 1)
        for st in stages[1:]:
            lines.append(Line(align, f"-> {self.stage(st)}", (st.loc.line, st.loc.col), "stage", whole.end_line))
        return lines

    def param(self, p: N.Param) -> str:
        text = p.name
        if p.type is not None:
            text += ": " + self.type_spec(p.type)
        if p.default is not None:
            text += " = " + self.expr(p.default)
        return text

    def type_spec(self, t: N.TypeSpec) -> str:
        if isinstance(t, N.ScalarType):
            return t.name
        return (t.dtype or "") + "[" + ", ".join(str(d.value) for d in t.dims) + "]"

    # --- expressions ------------------------------------------------------------------------------
    def expr(self, e: N.Expr, level: int = PIPE) -> str:
        """`e` as text, in parentheses when it binds looser than `level` asks."""
        own, text = self.expr_text(e)
        return f"({text})" if own < level else text

    def expr_text(self, e: N.Expr) -> tuple[int, str]:
        if isinstance(e, N.Pipe):
            return PIPE, f"{self.expr(e.value, PIPE)} -> {self.stage(e.stage)}"
        if isinstance(e, N.Binary):
            own = BINARY_LEVELS[e.op]
            left, right = {OR: (OR, AND), AND: (AND, NOT), COMPARE: (SUM, SUM), SUM: (SUM, PRODUCT),
                           PRODUCT: (PRODUCT, NEGATE), POWER: (ATOM, NEGATE)}[own]
            return own, f"{self.expr(e.left, left)} {e.op} {self.expr(e.right, right)}"
        if isinstance(e, N.Unary):
            operand = self.expr(e.operand, UNARY_LEVELS[e.op])
            return UNARY_LEVELS[e.op], ("not " if e.op == "not" else "- " if operand.startswith("-") else "-") + operand
        return ATOM, self.atom(e)

    def atom(self, e: N.Expr) -> str:
        if isinstance(e, (N.Number, N.String)):
            return self.source(e.loc)
        if isinstance(e, N.Bool):
            return "true" if e.value else "false"
        if isinstance(e, N.Name):
            return e.id
        if isinstance(e, N.ListExpr):
            return "[" + ", ".join(self.expr(i) for i in e.items) + "]"
        if isinstance(e, N.Call):
            return f"{self.expr(e.func, ATOM)}({self.arguments(e.args, e.kwargs)})"
        if isinstance(e, N.Index):
            return f"{self.expr(e.target, ATOM)}[" + ", ".join(self.subscript(i) for i in e.items) + "]"
        raise TypeError(f"no layout for {type(e).__name__}")

    def arguments(self, args: list[N.Expr], kwargs: list[N.Keyword]) -> str:
        return ", ".join([*(self.expr(a) for a in args), *(f"{k.name}={self.expr(k.value)}" for k in kwargs)])

    def subscript(self, item: N.Expr | N.Slice | N.EllipsisIndex) -> str:
        if isinstance(item, N.EllipsisIndex):
            return "..."
        if not isinstance(item, N.Slice):
            return self.expr(item)
        parts = ["" if p is None else self.expr(p) for p in (item.start, item.stop)]
        return ":".join(parts) + ("" if item.step is None else ":" + self.expr(item.step))

    def stage(self, st: N.Stage) -> str:
        if isinstance(st, N.Repeat):
            return f"repeat {self.count(st.count)}{' shared' if st.shared else ''} {self.stage(st.stage)}"
        return st.name if st.args is None else f"{st.name}({self.arguments(st.args, st.kwargs)})"

    def count(self, e: N.Expr, level: int = SUM) -> str:
        """A repeat count (grammar rule `count`): literals, names, + - * / @ and unary minus; anything else
        in parentheses, so the stage that follows is never read as part of it."""
        if isinstance(e, N.Binary) and BINARY_LEVELS[e.op] in (SUM, PRODUCT):
            own = BINARY_LEVELS[e.op]
            text = f"{self.count(e.left, own)} {e.op} {self.count(e.right, own + 1)}"
        elif isinstance(e, N.Unary) and e.op == "-":
            operand = self.count(e.operand, NEGATE)
            own, text = NEGATE, ("- " if operand.startswith("-") else "-") + operand
        elif isinstance(e, (N.Number, N.Name)):
            own, text = ATOM, self.atom(e)
        else:
            return f"({self.expr(e)})"
        return f"({text})" if own < level else text


def place_comments(lines: list[Line], comments: list[Comment]) -> tuple[list[list[Comment]], list[Comment | None]]:
    """Each comment to the line it leads (own-line: the first line of code after it; index len(lines) is the
    end of the file) or trails (after code: the line of that code; a second one on that line leads the next)."""
    keys = [line.key for line in lines]
    leading: list[list[Comment]] = [[] for _ in range(len(lines) + 1)]
    trailing: list[Comment | None] = [None] * len(lines)
    for c in comments:
        i = bisect_right(keys, c.key)
        if c.own_line or i == 0:
            leading[i].append(c)
        elif trailing[i - 1] is None:
            trailing[i - 1] = c
        else:
            leading[i].append(c)
    return leading, trailing


def assemble(lines: list[Line], comments: list[Comment]) -> str:
    """The lines with their comments, and the blank lines: one between definitions (before a definition's
    comments), at most one kept where the source had some between statements, comments and imports."""
    leading, trailing = place_comments(lines, comments)
    out: list[str] = []
    last = Line("", "", (0, 0), "", 0, opens=True)   # what came before: nothing, as after a `{`
    last_end = 0                                   # the source line the previous output came from
    last_top = ""                                  # the previous top-level line: "import" or "definition"

    def emit(text: str, blank: bool) -> None:
        if out and blank:
            out.append("")
        out.append(text)

    for i, line in enumerate([*lines, None]):
        kind = line.kind if line is not None else "end"
        group = [(c.key[0], c.text) for c in leading[i]]
        for n, (start, text) in enumerate(group):
            indent = "" if line is None else line.indent + (INDENT if kind == "close" else "")
            first = n == 0
            gap = start - last_end > 1
            blank = (_forced_blank(line, last_top) or gap if first and kind == "top" else
                     gap and kind != "stage" and not (first and last.opens))
            emit(indent + text, blank)
            last_end = start
        if line is None:
            break
        gap = line.key[0] - last_end > 1
        if kind == "top" and not group:
            blank = _forced_blank(line, last_top) or gap
        else:
            blank = gap and kind in ("top", "stmt") and not (not group and last.opens)
        after = trailing[i]
        emit(line.indent + line.text + (f"  {after.text}" if after else ""), blank)
        last, last_end = line, line.end
        if kind == "top":
            last_top = "import" if line.text.startswith("import ") else "definition"
    return "\n".join(out) + "\n" if out else ""


def _forced_blank(line: Line | None, last_top: str) -> bool:
    """One blank line before a definition and after one; imports keep the source's grouping."""
    is_import = line is not None and line.text.startswith("import ")
    return last_top == "definition" or (last_top != "" and not is_import)
