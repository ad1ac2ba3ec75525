"""`--provider node` and `--provider wasm`: onnxruntime-node in a Node.js process and onnxruntime-web's
WebAssembly backend in headless Chromium, behind the same `run(feeds, names)` as onnxruntime in Python.

Both speak the frame format of js/tensors.mjs: a JSON header naming each tensor's dtype and shape, then the
raw bytes. The model, weights included, crosses once when the session opens; each batch then sends its inputs
and gets back only the outputs asked for (for eval, the fused metric states).
"""
from __future__ import annotations

import atexit
import base64
import http.server
import json
import os
import shutil
import struct
import subprocess
import threading
from pathlib import Path

import numpy as np
import onnx

from ..compiler.source import user_error

JS_SOURCES = Path(__file__).resolve().parent / "js"
INLINE_BYTES = 1 << 16   # wasm: batches up to this size cross inside the call, larger ones are fetched
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
INSTALL_HINT = ("run `make platforms` in a modelc checkout; elsewhere copy package.json and package-lock.json from "
                f"{JS_SOURCES} into {{home}} and run `npm ci --ignore-scripts` there (MODELC_JS_HOME names the "
                "folder whose node_modules modelc reads)")


def js_home() -> Path:
    """The folder whose node_modules holds the pinned onnxruntime-node and onnxruntime-web (js/package.json)."""
    return Path(os.environ.get("MODELC_JS_HOME") or JS_SOURCES)


def _need_package(package: str, provider: str) -> Path:
    folder = js_home() / "node_modules" / package
    if not (folder / "package.json").is_file():
        raise user_error(f"provider '{provider}' needs the npm package {package}, which is not installed in "
                         f"{js_home() / 'node_modules'}: " + INSTALL_HINT.format(home=js_home()))
    return folder


def _header(feeds: dict[str, np.ndarray], names: list[str]) -> tuple[dict, list[memoryview]]:
    """A batch's frame: its header, and its tensors' bytes as views (little-endian; no copy where they are)."""
    arrays = [np.ascontiguousarray(v).astype(v.dtype.newbyteorder("<"), copy=False) for v in feeds.values()]
    inputs = [{"name": n, "dtype": a.dtype.name, "shape": list(a.shape)} for n, a in zip(feeds, arrays)]
    return {"inputs": inputs, "outputs": names}, [memoryview(a).cast("B") for a in arrays]


def _outputs(header: dict, payload: bytes | memoryview, provider: str) -> list[np.ndarray]:
    if "error" in header:
        raise user_error(f"inference failed on {provider}: {header['error']}")
    values, offset = [], 0
    for spec in header["outputs"]:
        dtype = np.dtype(spec["dtype"]).newbyteorder("<")
        size = int(np.prod(spec["shape"], dtype=np.int64)) * dtype.itemsize
        values.append(np.frombuffer(payload, dtype, offset=offset, count=size // dtype.itemsize)
                      .reshape(spec["shape"]).astype(dtype.newbyteorder("=")))
        offset += size
    return values


def _load_failure(provider: str, message: str) -> str:
    runtime = {"node": "onnxruntime-node", "wasm": "onnxruntime-web"}[provider]
    return f"provider '{provider}' could not load the model ({runtime}): {message.strip()}"


class NodeBackend:
    """onnxruntime-node in one Node.js child process per session, batches over its stdin and stdout."""

    provider = "node"

    def __init__(self, model: onnx.ModelProto, threads: int | None = None):
        _need_package("onnxruntime-node", self.provider)
        node = shutil.which("node")
        if node is None:
            raise user_error("provider 'node' needs Node.js (the `node` program), which is not on PATH: install "
                             "it (apt-get install nodejs) and then " + INSTALL_HINT.format(home=js_home()))
        self._process = subprocess.Popen([node, str(JS_SOURCES / "node_bridge.mjs"), str(js_home())],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        atexit.register(self.close)
        header, _ = self._call({"op": "load", "threads": threads or 0}, [model.SerializeToString()], loading=True)
        self.version = header.get("version")
        self.last_ms = 0.0

    def _call(self, header: dict, parts: list, loading: bool = False) -> tuple[dict, bytes]:
        process = self._process
        body = json.dumps({**header, "bytes": sum(len(p) for p in parts)}).encode()
        try:
            process.stdin.write(struct.pack("<I", len(body)) + body)  # type: ignore[union-attr]
            for part in parts:
                process.stdin.write(part)  # type: ignore[union-attr]
            process.stdin.flush()  # type: ignore[union-attr]
            length, = struct.unpack("<I", _read(process.stdout, 4))
            answer = json.loads(_read(process.stdout, length))
            data = _read(process.stdout, answer["bytes"])
        except (OSError, EOFError, struct.error):
            raise user_error(f"the node process stopped: {self._stderr()}") from None
        if loading and "error" in answer:
            raise user_error(_load_failure(self.provider, answer["error"]))
        return answer, data

    def _stderr(self) -> str:
        self._process.kill()
        return (self._process.stderr.read() or b"").decode(errors="replace").strip()[-2000:]  # type: ignore

    def run(self, feeds: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
        header, parts = _header(feeds, names)
        answer, data = self._call(header, parts)
        self.last_ms = answer.get("ms", 0.0)
        return _outputs(answer, data, self.provider)

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.stdin.close()  # type: ignore[union-attr]
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()


def _read(stream, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError
    return data


class _Files(http.server.SimpleHTTPRequestHandler):
    """The page, its scripts, onnxruntime-web's files and the model, on loopback only. Cross-origin isolation
    lets onnxruntime-web use threads (SharedArrayBuffer)."""

    model = b""
    batch = b""          # the batch being run: the page fetches it, as raw bytes, once per run()
    web_dist = Path()
    protocol_version = "HTTP/1.1"   # keep-alive: one connection for every batch
    disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart (delayed ACK)

    def translate_path(self, path: str) -> str:
        path = path.split("?", 1)[0]
        if path.startswith("/ort/"):
            return str(self.web_dist / path[len("/ort/"):])
        return str(JS_SOURCES / path.lstrip("/"))

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = {"/model.onnx": self.model, "/batch": self.batch}.get(self.path.split("?", 1)[0])
        if body is None:
            super().do_GET()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def end_headers(self) -> None:
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def guess_type(self, path):  # type: ignore[override]
        return "text/javascript" if str(path).endswith((".mjs", ".js")) else super().guess_type(path)

    def log_message(self, *args) -> None:
        pass


class _Browser:
    """One headless Chromium per process, started on first use and closed at exit (Playwright's sync API is
    bound to the thread that started it)."""

    _instance: "_Browser | None" = None

    def __init__(self):
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            raise user_error("provider 'wasm' needs Playwright: pip install 'modelc-onnx[platforms]' (or "
                             "`make platforms`)") from None
        executable = os.environ.get("MODELC_CHROMIUM") or next((p for p in CHROMIUM_PATHS if Path(p).exists()),
                                                                None)
        if executable is None:
            raise user_error("provider 'wasm' needs Chromium: apt-get install chromium (or set MODELC_CHROMIUM to "
                             "a Chromium or Chrome program)")
        self._playwright = sync_playwright().start()
        try:
            self.browser = self._playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        except Exception as e:  # Playwright's Error: the program is missing, or is no Chromium it can drive
            self._playwright.stop()
            raise user_error(f"provider 'wasm' could not start Chromium at {executable}: "
                             f"{str(e).splitlines()[0]}") from None
        atexit.register(self.close)

    @classmethod
    def shared(cls) -> "_Browser":
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def close(self) -> None:
        if _Browser._instance is not self:
            return  # closed already (close_browser, then exit)
        _Browser._instance = None
        self.browser.close()
        self._playwright.stop()


def close_browser() -> None:
    """Close the process's Chromium (it is closed at exit anyway). Playwright's sync API keeps an event loop
    running in this thread while the browser lives: code that runs asyncio afterwards needs it closed."""
    if _Browser._instance is not None:
        _Browser._instance.close()


class WasmBackend:
    """onnxruntime-web (WebAssembly) in a page of a headless Chromium, served from a loopback-only server."""

    provider = "wasm"

    def __init__(self, model: onnx.ModelProto, threads: int | None = None):
        dist = _need_package("onnxruntime-web", self.provider) / "dist"
        self._files = handler = type("Files", (_Files,), {"model": model.SerializeToString(), "web_dist": dist})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self._browser = _Browser.shared()
        self._page = self._browser.browser.new_page()
        self.console_errors: list[str] = []
        self._page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        self._page.goto(f"http://127.0.0.1:{self._server.server_port}/page.html")
        self._page.wait_for_function("window.bridgeReady === true")
        try:
            loaded = self._page.evaluate("(threads) => loadModel(threads)", threads or min(os.cpu_count() or 1, 4))
        except Exception as e:  # Playwright's Error carries the page's exception text
            self.close()
            raise user_error(_load_failure("wasm", str(e).split("\n", 1)[0])) from None
        self.version, self.threads = loaded["version"], loaded["threads"]
        self.last_ms = 0.0
        atexit.register(self.close)

    def run(self, feeds: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
        header, parts = _header(feeds, names)
        payload = b"".join(parts)
        # a small batch rides along as text (one round trip); a large one is fetched as raw bytes, which costs a
        # request but no base64 through the DevTools protocol (bench/platform_bench.py: +15% at resnet batch 4,096)
        inline = base64.b64encode(payload).decode() if len(payload) <= INLINE_BYTES else None
        self._files.batch = b"" if inline is not None else payload
        try:
            answer, data = self._page.evaluate("([h, b]) => runBatch(h, b)", [header, inline])
        except Exception as e:
            raise user_error(f"inference failed on wasm: {str(e).splitlines()[0]}") from None
        self.last_ms = answer.get("ms", 0.0)
        return _outputs(answer, base64.b64decode(data), self.provider)

    def close(self) -> None:
        if self._page is not None and self._browser is _Browser._instance and not self._page.is_closed():
            self._page.close()  # (with the browser closed, its pages are gone with it)
        self._page = None
        self._server.shutdown()
        self._server.server_close()
