"""The wheel works outside the repository: built from the checkout, installed into a fresh virtual environment
in the test's own folder, and run on a sample copied there, so package data the code opens but the wheel
lacks (the grammar, the prelude, ...) fails here and not on a user's machine."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT

# every non-Python file the package opens at run time, as the wheel must hold it
DATA_FILES = ["modelc/grammar/model.lark", "modelc/runtime/prelude.model", "modelc/runtime/prelude.json",
              "modelc/py.typed"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, text=True, timeout=600)
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel alone; its dependencies come from this interpreter's site-packages
    through a .pth file (a path only: the .pth files there, such as the editable install's, are not run)."""
    env = tmp_path_factory.mktemp("venv")
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet",
                    str(wheel)], check=True, capture_output=True, text=True, timeout=300)
    return env


def test_the_wheel_holds_every_data_file(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert [f for f in DATA_FILES if f not in names] == []
    assert not any(n.startswith(("tests/", "bench/", "samples/")) for n in names)
    assert "modelc/importer/archive.py" in names   # every sub-package of pyproject's package-dir


def test_the_installed_wheel_checks_compiles_and_evaluates(installed: Path, tmp_path: Path):
    shutil.copy(ROOT / "samples" / "housing.model", tmp_path)
    modelc = installed / "bin" / "modelc"
    where = subprocess.run([installed / "bin" / "python", "-c", "import modelc; print(modelc.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert where.startswith(str(installed)), where            # the wheel's copy, not the checkout's
    version = subprocess.run([modelc, "--version"], capture_output=True, text=True, check=True).stdout
    from modelc.version import __version__
    assert version.strip() == f"modelc {__version__}"
    for args in (["check", "housing.model"], ["compile", "housing.model", "-o", "housing.onnx"]):
        result = subprocess.run([modelc, *args], capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "houses.npz", x=rng.normal(size=(64, 8)).astype(np.float32), price=rng.random(64))
    result = subprocess.run([modelc, "eval", "housing.onnx", "--data", "houses.npz", "--target", "price",
                             "--metric", "mse", "--metric", "huber(threshold=2.0)", "--json"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["samples"] == 64 and set(out["metrics"]) == {"mse", "huber(threshold=2.0)"}


def test_one_version_everywhere():
    import modelc
    from modelc.version import __version__
    proto = modelc.compile_file("samples/book.model", seed=0)
    metadata = {p.key: p.value for p in proto.metadata_props}
    cli = subprocess.run([Path(sys.executable).parent / "modelc", "--version"], capture_output=True, text=True)
    assert modelc.__version__ == __version__ == proto.producer_version == metadata["modelc.version"]
    assert cli.stdout.strip() == f"modelc {__version__}"
    assert 'version = {attr = "modelc.version.__version__"}' in (ROOT / "pyproject.toml").read_text()


def test_the_installed_wheel_highlights_and_formats(installed: Path, tmp_path: Path):
    """The entry point `pygments.lexers: modelc` comes with the wheel: `pygmentize -l modelc FILE` works."""
    shutil.copy(ROOT / "samples" / "housing.model", tmp_path)
    lexed = subprocess.run([installed / "bin" / "python", "-m", "pygments", "-l", "modelc", "-f", "html",
                            "housing.model"], capture_output=True, text=True, cwd=tmp_path)
    assert lexed.returncode == 0, lexed.stderr
    assert '<span class="kd">model</span><span class="w"> </span><span class="nf">housing</span>' in lexed.stdout
    formatted = subprocess.run([installed / "bin" / "modelc", "fmt", "--stdin"], input="layer f(x)=x->relu\n",
                               capture_output=True, text=True, cwd=tmp_path)
    assert (formatted.returncode, formatted.stdout) == (0, "layer f(x) = x -> relu\n"), formatted.stderr
def test_the_installed_wheel_serves_the_language_server(installed: Path, tmp_path: Path):
    """`modelc lsp` from the wheel, JSON-RPC by hand over its pipes: a file with an error gets its diagnostic
    (the server reads the prelude's metrics and the layer table from the installed package)."""
    pytest.importorskip("pygls")
    path = tmp_path / "bad.model"
    path.write_text("model m(x: float32[batch, 2]) {\n    return x -> dens(2)\n}\n")
    uri = path.as_uri()
    messages = [{"id": 1, "method": "initialize", "params": {"capabilities": {}}},
                {"method": "initialized", "params": {}},
                {"method": "textDocument/didOpen", "params": {"textDocument": {
                    "uri": uri, "languageId": "modelc", "version": 1, "text": path.read_text()}}},
                {"id": 2, "method": "textDocument/completion", "params": {
                    "textDocument": {"uri": uri}, "position": {"line": 1, "character": 18}}},
                {"id": 3, "method": "shutdown", "params": None}, {"method": "exit", "params": None}]
    framed = b"".join(f"Content-Length: {len(body)}\r\n\r\n".encode() + body for body in (
        json.dumps({"jsonrpc": "2.0", **m}).encode() for m in messages))
    result = subprocess.run([installed / "bin" / "modelc", "lsp"], input=framed, capture_output=True, timeout=120,
                            cwd=tmp_path)
    replies = [json.loads(part.split(b"\r\n\r\n", 1)[1]) for part in result.stdout.split(b"Content-Length: ")[1:]]
    (published,) = [r["params"] for r in replies if r.get("method") == "textDocument/publishDiagnostics"]
    (d,) = published["diagnostics"]
    assert d["range"] == {"start": {"line": 1, "character": 16}, "end": {"line": 1, "character": 20}}
    assert d["message"] == "undefined name 'dens'; did you mean 'dense'?"
    (completion,) = [r["result"] for r in replies if r.get("id") == 2]
    assert "dense" in [item["label"] for item in completion["items"]]
