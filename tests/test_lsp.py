"""`modelc lsp` driven by a real LSP client (pygls') over stdio: diagnostics on open and on change at the right
range, hover with a shape, definition across an import, completion after `-> de`, the outline. The ranges and
shapes are checked against the compiler itself (`modelc check`'s spans, `modelc summary`'s shapes)."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

pytest.importorskip("pygls")
from lsprotocol import types as T  # noqa: E402
from pygls.lsp.client import LanguageClient  # noqa: E402
from pygls.uris import from_fs_path  # noqa: E402

from modelc.compiler import driver  # noqa: E402
from modelc.compiler.source import ModelcError  # noqa: E402

TIMEOUT = 30.0   # seconds for any one answer: a hang fails the test instead of blocking CI

HOUSING = """\
layer residual(units: int)(x: [batch, units]) {
    h = x -> dense(units, activation=elu) -> dense(units, activation=elu)
    return x + h
}

model housing(x: float32[batch, 8]) {
    h = x -> dense(30, activation=relu) -> repeat 2 residual(30)
    y = h -> dense(1)
    return y
}
"""


class Session:
    """One server process and the client talking to it."""

    def __init__(self, client: LanguageClient):
        self.client = client
        self.diagnostics: asyncio.Queue[T.PublishDiagnosticsParams] = asyncio.Queue()
        self.versions: dict[str, int] = {}

    async def published(self, uri: str) -> list[T.Diagnostic]:
        while True:
            params = await asyncio.wait_for(self.diagnostics.get(), TIMEOUT)
            if params.uri == uri:
                return list(params.diagnostics)

    def open(self, path: Path) -> str:
        uri = from_fs_path(str(path))
        self.versions[uri] = 1
        self.client.text_document_did_open(T.DidOpenTextDocumentParams(
            T.TextDocumentItem(uri=uri, language_id="modelc", version=1, text=path.read_text())))
        return uri

    def replace_line(self, uri: str, line: int, old: str, new: str, text: str) -> str:
        """Replace `old` on 0-based `line` with `new` (an incremental change); returns the new text."""
        lines = text.split("\n")
        col = lines[line].index(old)
        self.versions[uri] += 1
        self.client.text_document_did_change(T.DidChangeTextDocumentParams(
            T.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
            [T.TextDocumentContentChangePartial(range=T.Range(T.Position(line, col), T.Position(line, col + len(old))),
                                                text=new)]))
        lines[line] = lines[line][:col] + new + lines[line][col + len(old):]
        return "\n".join(lines)

    async def hover(self, uri: str, line: int, character: int) -> str:
        answer = await asyncio.wait_for(self.client.text_document_hover_async(T.HoverParams(
            T.TextDocumentIdentifier(uri=uri), T.Position(line, character))), TIMEOUT)
        assert answer is not None
        return answer.contents.value  # type: ignore[union-attr]


def run_session(root: Path, body: Callable[[Session], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        client = LanguageClient("modelc-test", "1")
        session = Session(client)

        @client.feature(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_diagnostics(params: T.PublishDiagnosticsParams) -> None:
            session.diagnostics.put_nowait(params)

        await client.start_io(sys.executable, "-m", "modelc", "lsp", cwd=str(root))
        try:
            await asyncio.wait_for(client.initialize_async(T.InitializeParams(
                capabilities=T.ClientCapabilities(), root_uri=from_fs_path(str(root)))), TIMEOUT)
            client.initialized(T.InitializedParams())
            return await body(session)
        finally:
            try:
                await asyncio.wait_for(client.shutdown_async(None), TIMEOUT)
                client.exit(None)
            finally:
                await asyncio.wait_for(client.stop(), TIMEOUT)
    return asyncio.run(main())


def check_spans(path: Path) -> list[tuple[int, int, int, int, str]]:
    """`modelc check`'s diagnostics as LSP ranges (0-based lines; columns of ASCII text)."""
    try:
        diagnostics = driver.check_shapes(driver.load_file(path))
    except ModelcError as e:
        diagnostics = e.diagnostics
    return [(d.span.line - 1, d.span.col - 1, d.span.end_line - 1, d.span.end_col - 1, d.message)
            for d in diagnostics]


def as_tuples(diagnostics: list[T.Diagnostic]) -> list[tuple[int, int, int, int, str]]:
    return [(d.range.start.line, d.range.start.character, d.range.end.line, d.range.end.character, d.message)
            for d in diagnostics]


def test_diagnostic_at_its_range_then_none_once_fixed(tmp_path):
    path = tmp_path / "housing.model"
    broken = HOUSING.replace("repeat 2 residual(30)", "repeat 2 residul(30)")
    path.write_text(broken)
    expected = check_spans(path)   # the compiler's own span of the error
    col = broken.split("\n")[6].index("residul")
    assert expected == [(6, col, 6, col + 7, "undefined name 'residul'; did you mean 'residual'?")]

    async def body(s: Session) -> None:
        uri = s.open(path)
        assert as_tuples(await s.published(uri)) == expected
        text = s.replace_line(uri, 6, "residul", "residual", broken)
        assert text == HOUSING
        assert await s.published(uri) == []
        s.replace_line(uri, 7, "dense(1)", "dense(1) -> residual(30)", text)   # a shape error, on change
        (d,) = await s.published(uri)
        assert "residual expects input [batch, 30], got [batch, 1]" in d.message
        assert (d.range.start.line, d.range.start.character) == (7, len("    y = h -> dense(1) -> "))
    run_session(tmp_path, body)


def test_ranges_count_utf16_code_units(tmp_path):
    """A character outside the BMP before the error is two UTF-16 units (LSP's default encoding)."""
    path = tmp_path / "wide.model"
    path.write_text('model m(x: float32[batch, 2]) {\n    y = x -> dense(2, name="\U0001F600") -> relu -> nope\n'
                    '    return y\n}\n')
    (expected,) = check_spans(path)
    col = path.read_text().split("\n")[1].index("nope")
    assert expected[1:4] == (col, 1, col + 4)   # in code points

    async def body(s: Session) -> None:
        uri = s.open(path)
        (d,) = await s.published(uri)
        assert (d.range.start.line, d.range.start.character, d.range.end.character) == (1, col + 1, col + 5)
    run_session(tmp_path, body)


def test_hover_shows_the_inferred_shape(tmp_path):
    path = tmp_path / "housing.model"
    path.write_text(HOUSING)
    lowered = driver.lower_program(driver.load_file(path))
    shapes = {row.path: str(row.output) for row in lowered.layers}   # what `modelc summary` prints
    assert shapes["residual_1"] == "float32[batch, 30]" and shapes["dense_1"] == "float32[batch, 1]"

    async def body(s: Session) -> None:
        uri = s.open(path)
        assert await s.published(uri) == []
        lines = HOUSING.split("\n")
        value = await s.hover(uri, 7, 4)           # `y` in `y = h -> dense(1)`
        assert f"y: {shapes['dense_1']}" in value
        used = await s.hover(uri, 7, 8)            # `h`, read in the model
        assert f"h: {shapes['residual_1']}" in used
        stage = await s.hover(uri, 6, lines[6].index("residual") + 2)   # a layer as a stage: signature, output
        assert "layer residual(units: int)(x: [batch, units])" in stage and shapes["residual_1"] in stage
        builtin = await s.hover(uri, 7, lines[7].index("dense") + 1)      # its hyperparameters and its doc
        assert "units: int" in builtin and "activation: layer = linear" in builtin and "x @ kernel" in builtin
    run_session(tmp_path, body)


def test_definition_jumps_into_the_imported_file(tmp_path):
    (tmp_path / "lib").mkdir()
    lib = tmp_path / "lib" / "blocks.model"
    lib.write_text("# blocks\n\nlayer swiglu(units: int)(x: [..., n]) {\n"
                   "    gate = x -> dense(units, activation=silu)\n    value = x -> dense(units)\n"
                   "    return gate * value\n}\n")
    main = tmp_path / "main.model"
    main.write_text('import "lib/blocks.model"\n\nmodel mixer(x: float32[batch, 12]) {\n'
                    "    h = x -> swiglu(24)\n    return h\n}\n")
    assert check_spans(main) == []

    async def body(s: Session) -> None:
        uri = s.open(main)
        assert await s.published(uri) == []
        answer = await asyncio.wait_for(s.client.text_document_definition_async(T.DefinitionParams(
            T.TextDocumentIdentifier(uri=uri), T.Position(3, 14))), TIMEOUT)
        assert isinstance(answer, T.Location)
        assert Path(answer.uri.removeprefix("file://")).resolve() == lib.resolve()
        assert (answer.range.start.line, answer.range.start.character) == (2, 6)   # `swiglu` in its layer line
        local = await asyncio.wait_for(s.client.text_document_definition_async(T.DefinitionParams(
            T.TextDocumentIdentifier(uri=uri), T.Position(4, 11))), TIMEOUT)
        assert (local.range.start.line, local.range.start.character) == (3, 4)   # `h` in `return h`
        # the imported file open and edited (unsaved): the importing file is diagnosed again from the buffer
        lib_uri = s.open(lib)
        assert await s.published(lib_uri) == [] and await s.published(uri) == []   # main, again on lib's open
        s.replace_line(lib_uri, 2, "swiglu", "swiglu2", lib.read_text())
        (d,) = await s.published(uri)
        assert d.message == "undefined name 'swiglu'; did you mean 'swiglu2'?" and d.range.start.line == 3
    run_session(tmp_path, body)


def test_completion_offers_dense_after_an_arrow(tmp_path):
    path = tmp_path / "housing.model"
    path.write_text(HOUSING)

    async def complete(s: Session, uri: str, line: int, character: int) -> list[str]:
        answer = await asyncio.wait_for(s.client.text_document_completion_async(T.CompletionParams(
            T.TextDocumentIdentifier(uri=uri), T.Position(line, character))), TIMEOUT)
        items = answer.items if isinstance(answer, T.CompletionList) else answer
        return [item.label for item in items or []]

    async def body(s: Session) -> None:
        uri = s.open(path)
        await s.published(uri)
        text = s.replace_line(uri, 7, "h -> dense(1)", "h -> de", HOUSING)   # typing: the file does not parse
        assert await s.published(uri)
        labels = await complete(s, uri, 7, text.split("\n")[7].index("de") + 2)
        assert "dense" in labels and "residual" in labels and "glorot_uniform" not in labels
        text = s.replace_line(uri, 7, "h -> de", "h -> dense(1, activation=", text)
        await s.published(uri)
        labels = await complete(s, uri, 7, len(text.split("\n")[7]))
        assert "relu" in labels and "residual" in labels and "dense" not in labels
        text = s.replace_line(uri, 7, "h -> dense(1, activation=", "h -> dense(1, ", text)
        await s.published(uri)
        labels = await complete(s, uri, 7, len(text.split("\n")[7]))
        assert {"activation", "use_bias", "kernel_initializer"} <= set(labels)
    run_session(tmp_path, body)


def test_outline_lists_models_layers_and_metrics(tmp_path):
    path = tmp_path / "housing.model"
    path.write_text(HOUSING + "\nmetric mae2(y_true, y_pred) {\n    state total = sum(abs(y_true - y_pred))\n"
                    "    state n = count(y_pred)\n    return total / n\n}\n")

    async def body(s: Session) -> None:
        uri = s.open(path)
        assert await s.published(uri) == []
        answer = await asyncio.wait_for(s.client.text_document_document_symbol_async(T.DocumentSymbolParams(
            T.TextDocumentIdentifier(uri=uri))), TIMEOUT)
        assert [(x.name, x.kind) for x in answer] == [("residual", T.SymbolKind.Function),
                                                      ("housing", T.SymbolKind.Class), ("mae2", T.SymbolKind.Event)]
        assert [c.name for c in answer[2].children] == ["y_true", "y_pred", "total", "n"]
    run_session(tmp_path, body)


def test_without_pygls_the_error_names_the_extra(monkeypatch, capsys):
    from modelc.cli import main
    monkeypatch.setitem(sys.modules, "pygls", None)   # `import pygls` raises ImportError
    assert main(["lsp"]) == 1
    assert "pip install 'modelc-onnx[lsp]'" in capsys.readouterr().err


def test_shutdown_then_exit_ends_the_server_cleanly():
    """An editor closing the server sends shutdown, then exit: the process ends with 0 and says nothing."""
    import json
    import subprocess
    process = subprocess.Popen([sys.executable, "-m", "modelc", "lsp", "--stdio"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for message in ({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}},
                    {"jsonrpc": "2.0", "method": "initialized", "params": {}},
                    {"jsonrpc": "2.0", "id": 2, "method": "shutdown"},
                    {"jsonrpc": "2.0", "method": "exit"}):
        body = json.dumps(message).encode()
        process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    process.stdin.flush()
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0 and err == b"", err.decode()
