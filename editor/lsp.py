"""`modelc lsp`: the language server over stdio (pygls, the `lsp` extra). It speaks the protocol and converts
positions (LSP: 0-based lines, columns in the client's code units, UTF-16 by default; the compiler: 1-based
lines and columns in code points); editor/analysis.py and editor/queries.py do the work."""
from __future__ import annotations

import gc
import os
from typing import TYPE_CHECKING, Any, Callable

from ..compiler.source import Diagnostic, Span, user_error
from ..version import __version__
from . import queries as Q
from .analysis import Document, read_text

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

COMPLETION_KINDS = {"layer": "Class", "activation": "Function", "function": "Function", "initializer": "Constructor",
                    "metric": "Event", "keyword": "Keyword", "type": "TypeParameter", "hyperparameter": "Property",
                    "local": "Variable", "constant": "Constant"}
SYMBOL_KINDS = {"model": "Class", "layer": "Function", "metric": "Event", "input": "Variable",
                "hyperparameter": "TypeParameter", "weight": "Field", "state": "Property", "value": "Variable"}


def require_pygls() -> None:
    try:
        import pygls  # noqa: F401
    except ImportError:
        raise user_error("modelc lsp needs pygls: pip install 'modelc-onnx[lsp]'") from None


class Server:
    """The open documents and the conversions between the protocol's positions and the compiler's."""

    def __init__(self, ls: "LanguageServer"):
        self.ls = ls
        self.documents: dict[str, Document] = {}    # uri -> its analysis

    def path_of(self, uri: str) -> str:
        from pygls.uris import to_fs_path
        path = to_fs_path(uri) if uri.startswith("file:") else None
        return os.path.normpath(os.path.abspath(path)) if path else f"<{uri}>"

    def read(self, path: str) -> str:
        """An imported file's text: the editor's buffer when it is open, else the file."""
        for doc in self.documents.values():
            if doc.path == path:
                return doc.text
        return read_text(path)

    def units(self, text: str) -> int:
        return self.ls.workspace.position_codec.client_num_units(text)

    def position(self, lines: list[str], line: int, col: int) -> Any:
        from lsprotocol import types as T
        text = lines[line - 1] if 0 < line <= len(lines) else ""
        return T.Position(line=max(line - 1, 0), character=self.units(text[:max(col - 1, 0)]))

    def range(self, span: Span | None, lines: list[str]) -> Any:
        from lsprotocol import types as T
        if span is None:
            return T.Range(start=T.Position(line=0, character=0), end=T.Position(line=0, character=0))
        return T.Range(start=self.position(lines, span.line, span.col),
                       end=self.position(lines, span.end_line, span.end_col))

    def lines_of(self, path: str, doc: Document) -> list[str]:
        if path == doc.path:
            return doc.lines
        try:
            return self.read(path).split("\n")
        except (OSError, UnicodeDecodeError):
            return []

    def at(self, uri: str, position: Any) -> tuple[Document, int, int] | None:
        """The document and the compiler's (line, col) of a protocol position."""
        doc = self.documents.get(uri)
        if doc is None:
            return None
        server_position = self.ls.workspace.position_codec.position_from_client_units(doc.lines, position)
        return doc, server_position.line + 1, server_position.character + 1

    def ask(self, params: Any, query: Callable[[Document, int, int], Any]) -> tuple[Document, Any] | None:
        """A query at a request's position: (the document, its answer), or None when there is none."""
        found = self.at(params.text_document.uri, params.position)
        answer = query(*found) if found else None
        return (found[0], answer) if found and answer is not None else None

    def publish(self, uri: str, diagnostics: list[Diagnostic], version: int | None = None) -> None:
        from lsprotocol import types as T
        doc = self.documents.get(uri)
        lines = doc.lines if doc else []
        items = [T.Diagnostic(range=self.range(d.span, lines), message=d.message, source="modelc",
                              severity=T.DiagnosticSeverity.Error if d.severity == "error"
                              else T.DiagnosticSeverity.Warning) for d in diagnostics]
        self.ls.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=uri, diagnostics=items,
                                                                             version=version))

    def analyse(self, uri: str, text: str, version: int | None) -> None:
        """Diagnose a document after it opened or changed, and the open documents that import it."""
        doc = self.documents.get(uri)
        opened = doc is None
        if doc is None:
            doc = self.documents[uri] = Document(self.path_of(uri), self.read)
        self.publish(uri, self.diagnose(uri, doc, text), version)
        for other_uri, other in list(self.documents.items()):
            if other_uri != uri and doc.path in other.reads:
                self.publish(other_uri, self.diagnose(other_uri, other, other.text))
        if opened:  # a document's analysis lives long: spare it the full collections (100s of ms) of later edits
            gc.freeze()

    def diagnose(self, uri: str, doc: Document, text: str) -> list[Diagnostic]:
        try:
            return doc.update(text)
        except Exception as e:  # noqa: BLE001 - the editor keeps its server, and hears why
            self.documents.pop(uri, None)   # analysed afresh at the next change
            return [Diagnostic(None, f"modelc: internal error: {type(e).__name__}: {e} "
                                     "(please report it with the file)")]


def register_sync(ls: "LanguageServer", server: Server) -> None:
    from lsprotocol import types as T

    @ls.feature(T.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: T.DidOpenTextDocumentParams) -> None:
        server.analyse(params.text_document.uri, params.text_document.text, params.text_document.version)

    @ls.feature(T.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(params: T.DidChangeTextDocumentParams) -> None:
        document = ls.workspace.get_text_document(params.text_document.uri)   # pygls applied the changes
        server.analyse(params.text_document.uri, document.source, params.text_document.version)

    @ls.feature(T.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(params: T.DidCloseTextDocumentParams) -> None:
        server.documents.pop(params.text_document.uri, None)
        server.publish(params.text_document.uri, [])


def register_queries(ls: "LanguageServer", server: Server) -> None:
    """Each request at a position: the query that answers it, and how its answer becomes the protocol's."""
    from lsprotocol import types as T

    def answer(feature: str, query: Callable, reply: Callable, options: Any = None) -> None:
        @ls.feature(feature, options)
        def handler(params: Any) -> Any:
            got = server.ask(params, query)
            return reply(server, params, *got) if got else None

    answer(T.TEXT_DOCUMENT_HOVER, Q.hover, to_hover)
    answer(T.TEXT_DOCUMENT_DEFINITION, Q.definition, to_location)
    answer(T.TEXT_DOCUMENT_COMPLETION, Q.completions, to_completions,
           T.CompletionOptions(trigger_characters=[">", "(", "=", ","]))

    @ls.feature(T.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def document_symbol(params: T.DocumentSymbolParams) -> list[T.DocumentSymbol]:
        doc = server.documents.get(params.text_document.uri)
        return [to_symbol(s, server, doc) for s in Q.symbols(doc)] if doc else []


def to_hover(server: Server, params: Any, doc: Document, answer: Q.Hover) -> Any:
    from lsprotocol import types as T
    text = f"```modelc\n{answer.code}\n```" + (f"\n\n{answer.doc}" if answer.doc else "")
    return T.Hover(contents=T.MarkupContent(kind=T.MarkupKind.Markdown, value=text),
                   range=server.range(answer.span, doc.lines) if answer.span else None)


def to_location(server: Server, params: Any, doc: Document, span: Span) -> Any:
    from lsprotocol import types as T
    from pygls.uris import from_fs_path
    uri = params.text_document.uri if span.file == doc.path else from_fs_path(span.file)
    return T.Location(uri=uri, range=server.range(span, server.lines_of(span.file, doc)))


def to_completions(server: Server, params: Any, doc: Document, words: list) -> Any:
    from lsprotocol import types as T
    items, seen = [], set()
    for w in words:
        if w.label in seen:   # a name may be a local and a layer: the first (the nearest) wins
            continue
        seen.add(w.label)
        items.append(T.CompletionItem(label=w.label, kind=getattr(T.CompletionItemKind, COMPLETION_KINDS[w.kind]),
                                      detail=w.detail or None, documentation=w.doc or None, insert_text=w.insert))
    return T.CompletionList(is_incomplete=False, items=items)


def to_symbol(symbol: Q.Symbol, server: Server, doc: Document) -> Any:
    from lsprotocol import types as T
    return T.DocumentSymbol(name=symbol.name, kind=getattr(T.SymbolKind, SYMBOL_KINDS[symbol.kind]),
                            range=server.range(symbol.span, doc.lines),
                            selection_range=server.range(symbol.name_span, doc.lines),
                            detail=symbol.detail or None,
                            children=[to_symbol(c, server, doc) for c in symbol.children or []])


REGISTER: list[Callable[["LanguageServer", Server], None]] = [register_sync, register_queries]


def build_server() -> "LanguageServer":
    require_pygls()
    from pygls.lsp.server import LanguageServer
    ls = LanguageServer("modelc", __version__)
    server = Server(ls)
    for register in REGISTER:
        register(ls, server)
    return ls


def serve() -> int:
    """`modelc lsp`: serve on stdin and stdout until the client says exit."""
    build_server().start_io()
    return 0
