"""The language server's analysis of one open .model document, kept up to date edit by edit and independent
of the LSP library (editor/lsp.py speaks the protocol; editor/queries.py answers hover, definition, completion
and symbols from what is kept here).

The text is split into chunks, one per top-level definition (a line that starts with `import`, `layer`,
`model` or `metric`: keywords, never names, so the split needs no parse and survives a bracket left open).
A chunk is parsed and name-checked once per text; a model is lowered (its shapes checked) once per set of
definitions it uses. After an edit only the chunk edited is parsed again, only the chunks whose names a
change touched are checked again, and only the models that use a changed definition are lowered again.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ..compiler import nodes as N
from ..compiler.check import Checker
from ..compiler.driver import RECURSION_LIMIT, load_source
from ..compiler.lower import Env, Lowerer
from ..compiler.parse import parse_text
from ..compiler.source import CheckError, Diagnostic, ModelcError, Span
from ..compiler.values import is_tensor

DEFINITION_START = re.compile(r"^[ \t]*(?:import|layer|model|metric)\b", re.MULTILINE)
MAX_DIAGNOSTICS = 200  # per document: past this, most are consequences of the first


def split_chunks(text: str) -> list[str]:
    """The text cut before every line that starts a definition; the pieces join back to the text."""
    starts = [m.start() for m in DEFINITION_START.finditer(text)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)])]


_FIELDS: dict[type, tuple[str, ...]] = {}


def child_nodes(node: Any) -> Iterator[Any]:
    """The AST nodes directly under `node` (lists flattened)."""
    names = _FIELDS.get(type(node))
    if names is None:
        names = _FIELDS[type(node)] = tuple(f.name for f in fields(node) if f.name not in N.SPAN_FIELDS)
    for name in names:
        value = getattr(node, name)
        for item in value if isinstance(value, list) else (value,):
            if is_dataclass(item):
                yield item


def walk(root: Any) -> Iterator[Any]:
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(child_nodes(node))


def moved(span: Span, lines: int) -> Span:
    return Span(span.file, span.line + lines, span.col, span.end_line + lines, span.end_col)


@dataclass(eq=False)
class Chunk:
    """One top-level definition's text (or the comments before the first), parsed where it stood."""

    text: str
    line: int                     # 0-based line of its first character when its spans were made
    program: N.Program | None     # None: a syntax error
    syntax: list[Diagnostic]
    nodes: list[Any]              # every node with a span: moved, not parsed again, when lines above change
    refs: frozenset[str]          # every name it uses: a change to one of them is a change to it
    names: frozenset[str]         # the names it defines
    lines: int                    # how many lines it ends ("\n" it holds)
    at: int = 0                   # where it stands now; its spans are moved there when next needed
    checked: list[Diagnostic] | None = None   # its name-check diagnostics, made at line `checked_at`
    checked_at: int = -1
    checked_own: tuple[bool, ...] = ()          # which of its definitions were checked (not defined twice)

    @property
    def definitions(self) -> list[N.Definition]:
        return self.program.definitions if self.program else []

    def place(self) -> None:
        """Move every span to where the chunk stands now."""
        lines = self.at - self.line
        if lines:
            for node in self.nodes:
                node.loc = moved(node.loc, lines)
                if isinstance(node, N.Definition) and node.name_loc is not None:
                    node.name_loc = moved(node.name_loc, lines)
            self.line = self.at


def parse_chunk(text: str, line: int, file: str) -> Chunk:
    """Parsed with `line` blank lines before it, so its spans and messages name the document's lines."""
    try:
        program: N.Program | None = parse_text("\n" * line + text, file)
        syntax: list[Diagnostic] = []
    except ModelcError as e:
        program, syntax = None, e.diagnostics
    nodes = [n for n in walk(program) if hasattr(n, "loc")] if program else []
    refs = frozenset(n.id if isinstance(n, N.Name) else n.name for n in nodes if isinstance(n, (N.Name, N.StageRef)))
    names = frozenset(d.name for d in program.definitions) if program else frozenset()
    return Chunk(text, line, program, syntax, nodes, refs, names, text.count("\n"), at=line)


class RecordingLowerer(Lowerer):
    """A Lowerer that keeps what each expression, binding and input evaluated to (for hover)."""

    def __init__(self, definitions: dict[str, N.Definition]):
        super().__init__(definitions)
        self.values: dict[int, tuple[Any, set[str]]] = {}   # id(node) -> (node, what it held, shown)

    def note(self, node: Any, value: Any) -> None:
        if is_tensor(value) or isinstance(value, (int, float, str)) and value is not None:
            shown = str(value.type) if is_tensor(value) else repr(value)
            self.values.setdefault(id(node), (node, set()))[1].add(shown)

    def eval(self, e: N.Expr, env: Env, b: Any) -> Any:
        value = super().eval(e, env, b)
        self.note(e, value)
        return value

    def run_body(self, d: N.Definition, env: Env, b: Any, diagnostics: list[Diagnostic] | None = None) -> list:
        returned = super().run_body(d, env, b, diagnostics)
        for item in [*d.hparams, *d.inputs, *d.body]:
            if isinstance(item, (N.Param, N.Assign, N.ParamDecl)):
                self.note(item, env.values.get(item.name))
        return returned


@dataclass
class Lowered:
    """One model's shape check: valid while it uses the same definitions, at the same lines if it found errors."""

    uses: list[N.Definition]
    chunks: list[Chunk]                  # the chunks of `uses` in this document
    refs: frozenset[str]                 # every name they use: while none is redefined, `uses` holds
    lines: tuple[int, ...]
    diagnostics: list[Diagnostic]
    values: dict[int, tuple[Any, set[str]]] = field(default_factory=dict)


@dataclass
class Imported:
    """What one `import` brought: definitions, or the diagnostic on the import line."""

    texts: dict[str, str]
    definitions: list[N.Definition]
    error: str | None = None


def _differ(new: dict, old: dict) -> set:
    """The keys whose values differ between two dicts (or that one lacks)."""
    return set() if new == old else {k for k in new.keys() | old.keys() if new.get(k) != old.get(k)}


def read_text(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


class Document:
    """One open document: `update(text)` after every edit returns its diagnostics."""

    def __init__(self, path: str, read: Callable[[str], str] = read_text):
        self.path = path
        self.read = read                            # an import's text: the editor's buffer, else the disk
        self.text = ""
        self.lines: list[str] = [""]                # the text's lines, as the lexer counts them (by "\n")
        self.chunks: list[Chunk] = []
        self.definitions: dict[str, N.Definition] = {}
        self.owner: dict[int, Chunk] = {}           # id(definition) -> its chunk (absent: imported)
        self.imported: dict[str, Imported] = {}
        self.reads: set[str] = set()                # every file the imports read at the last update
        self.signatures: dict[str, tuple] = {}
        self.objects: dict[str, int] = {}           # name -> id(its definition) at the last update
        self.lowered: dict[int, Lowered] = {}       # id(model) -> its shape check
        self.diagnostics: list[Diagnostic] = []
        sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))

    # --- the update after an edit -----------------------------------------------------------------------
    def update(self, text: str) -> list[Diagnostic]:
        self.text, self.lines = text, text.split("\n")
        self.chunks = self.rechunk(text)
        found = self.collect_definitions()
        changed, replaced = self.changed_names()
        checker = None
        for chunk in self.chunks:
            # again if new, if which of its definitions count may differ, if a name it uses changed meaning,
            # or (its messages name lines and suggest names) if it has errors and it moved or names changed
            if chunk.checked is None or chunk.names & replaced or changed & chunk.refs or chunk.checked and (
                    changed or replaced or chunk.checked_at != chunk.at):
                checker = checker or Checker(self.definitions)
                self.check_chunk(chunk, checker)
        found += self.check_models(replaced)
        for chunk in self.chunks:
            found += chunk.syntax + (chunk.checked or [])
        found.sort(key=lambda d: (d.span.line, d.span.col) if d.span else (0, 0))
        self.diagnostics = found[:MAX_DIAGNOSTICS]
        return self.diagnostics

    def rechunk(self, text: str) -> list[Chunk]:
        """The chunks of `text`: those whose text is unchanged are kept (moved), the others parsed."""
        pool: dict[str, list[Chunk]] = {}
        for chunk in self.chunks:
            pool.setdefault(chunk.text, []).append(chunk)
        chunks, line = [], 0
        for piece in split_chunks(text):
            kept = pool.get(piece)
            chunk = kept.pop() if kept else None
            if chunk is None or chunk.syntax and chunk.line != line:  # a syntax message may name a line
                chunk = parse_chunk(piece, line, self.path)
            chunk.at = line
            chunks.append(chunk)
            line += chunk.lines
        return chunks

    def collect_definitions(self) -> list[Diagnostic]:
        """Imported definitions first, then this document's, in order (as driver.py loads them); the
        diagnostics of imports and of names defined twice."""
        found: list[Diagnostic] = []
        self.definitions, self.owner, self.reads = {}, {}, set()
        for chunk in self.chunks:
            for imp in chunk.program.imports if chunk.program else []:
                chunk.place()
                got = self.load_import(imp)
                if got.error:
                    found.append(Diagnostic(imp.loc, got.error))
                for d in got.definitions:
                    self.definitions.setdefault(d.name, d)
        for chunk in self.chunks:
            for d in chunk.definitions:
                if d.name in self.definitions:
                    chunk.place()
                    first = self.placed(self.definitions[d.name]).loc
                    found.append(Diagnostic(d.name_loc, f"'{d.name}' is already defined at {first}"))
                    continue
                self.definitions[d.name] = d
                self.owner[id(d)] = chunk
        return found

    def import_path(self, imp: N.Import) -> str:
        base = Path(self.path).parent if not self.path.startswith("<") else Path.cwd()
        return os.path.normpath(base / imp.path)

    def load_import(self, imp: N.Import) -> Imported:
        """The definitions of an imported file and its imports, checked; loaded again when a text changed."""
        path = self.import_path(imp)
        self.reads.add(path)
        if path == os.path.normpath(self.path):
            return Imported({}, [], f"import cycle: {path} imports itself")
        cached = self.imported.get(path)
        if cached is not None and all(self.read_or_none(p) == t for p, t in cached.texts.items()):
            self.reads |= cached.texts.keys()
            return cached
        text = self.read_or_none(path)
        if text is None:
            why = f"{path} is a folder, not a .model file" if Path(path).is_dir() else f"no such file {path}"
            return Imported({}, [], f"cannot import '{imp.path}': {why}")
        try:
            program = load_source(text, path)
        except ModelcError as e:
            first = e.diagnostics[0].render().split("\n")[0]
            more = len(e.diagnostics) - 1
            return Imported({}, [], f"'{imp.path}' has errors: {first}" + (f" (and {more} more)" if more else ""))
        self.imported[path] = got = Imported(dict(program.files.texts), list(program.order))
        self.reads |= got.texts.keys()
        return got

    def read_or_none(self, path: str) -> str | None:
        try:
            return self.read(path)
        except (OSError, UnicodeDecodeError):
            return None

    def changed_names(self) -> tuple[set[str], set[str]]:
        """Since the last update: the names whose meaning to a name check changed (defined or not, kind,
        hyperparameters), and the names defined by another definition (an edited one, parsed again)."""
        objects = {name: id(d) for name, d in self.definitions.items()}
        replaced = _differ(objects, self.objects)
        self.objects = objects
        if not replaced:
            return set(), set()
        signatures = {name: (d.kind, tuple(p.name for p in d.hparams)) for name, d in self.definitions.items()}
        changed = _differ(signatures, self.signatures)
        self.signatures = signatures
        return changed, replaced

    def check_chunk(self, chunk: Chunk, checker: Checker) -> None:
        own = tuple(self.owner.get(id(d)) is chunk for d in chunk.definitions)
        chunk.place()
        checker.diagnostics = []
        chunk.checked = checker.check([d for d, mine in zip(chunk.definitions, own) if mine])
        chunk.checked_at, chunk.checked_own = chunk.at, own

    # --- shapes ------------------------------------------------------------------------------------------
    def uses(self, d: N.Definition) -> list[N.Definition]:
        """`d` and every definition it uses, directly or through others."""
        seen, order, stack = {id(d)}, [d], [d]
        while stack:
            chunk = self.owner.get(id(stack.pop()))
            for name in chunk.refs if chunk else ():
                used = self.definitions.get(name)
                if used is not None and id(used) not in seen:
                    seen.add(id(used))
                    order.append(used)
                    stack.append(used)
        return order

    def check_models(self, replaced: set[str]) -> list[Diagnostic]:
        """Lower each model whose definitions are clean: again only when one of them changed (or, when it
        found errors, moved)."""
        found: list[Diagnostic] = []
        kept: dict[int, Lowered] = {}
        for d in self.definitions.values():
            if d.kind != "model" or id(d) not in self.owner:
                continue
            old = self.lowered.get(id(d))
            if old is None or old.refs & replaced:
                uses = self.uses(d)
                if old is None or len(old.uses) != len(uses) or any(a is not b for a, b in zip(old.uses, uses)):
                    old = Lowered(uses, [self.owner[id(u)] for u in uses if id(u) in self.owner], frozenset(), (), [])
                old.refs = frozenset().union(*(c.refs for c in old.chunks))
            if any(c.syntax or c.checked for c in old.chunks):
                continue   # lowering assumes clean names, as driver.py's check_shapes does
            lines = tuple(c.at for c in old.chunks)
            if not old.lines or old.diagnostics and old.lines != lines:
                old = self.lower(d, old, lines)
            kept[id(d)] = old
            found += old.diagnostics
        self.lowered = kept
        return found

    def lower(self, model: N.Definition, use: Lowered, lines: tuple[int, ...]) -> Lowered:
        """`use` lowered now: its diagnostics and what each node held."""
        for chunk in use.chunks:
            chunk.place()
        lowerer = RecordingLowerer(self.definitions)
        try:
            lowerer.lower_model(model)
            diagnostics: list[Diagnostic] = []
        except CheckError as e:
            diagnostics = [self.here(x, model) for x in e.diagnostics]
        except Exception as e:  # noqa: BLE001 - an editor never loses its server to one model
            diagnostics = [Diagnostic(model.name_loc, f"modelc: internal error: {type(e).__name__}: {e}")]
        return Lowered(use.uses, use.chunks, use.refs, lines, diagnostics, lowerer.values)

    def here(self, d: Diagnostic, model: N.Definition) -> Diagnostic:
        """A diagnostic as this document shows it: one in an imported file is shown on the model's name."""
        if d.span is not None and d.span.file == self.path:
            return d
        where = f"{d.span}: " if d.span else ""
        return Diagnostic(model.name_loc, f"in model '{model.name}': {where}{d.message}")

    # --- what queries read -------------------------------------------------------------------------------
    def chunk_at(self, line: int) -> Chunk | None:
        """The chunk holding 1-based `line`, its spans placed."""
        found = None
        for chunk in self.chunks:
            if chunk.at >= line:
                break
            found = chunk
        if found is not None:
            found.place()
        return found

    def values_of(self, node: Any) -> set[str]:
        """What lowering found `node` to hold, in every model and layer instance that evaluated it."""
        shown: set[str] = set()
        for lowered in self.lowered.values():
            if id(node) in lowered.values:
                shown |= lowered.values[id(node)][1]
        return shown

    def placed(self, d: N.Definition) -> N.Definition:
        chunk = self.owner.get(id(d))
        if chunk is not None:
            chunk.place()
        return d
