"""The platforms as providers (openvino, node, wasm) against onnxruntime's CPU provider, and the report page.

Each platform needs software outside Python's own packages (`make platforms`, and Debian's chromium for wasm).
Where one is missing, its tests skip with what to install; with MODELC_REQUIRE_PLATFORMS=1 (CI sets it) a
missing platform fails instead, so CI never passes on skips.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT, SAMPLES, random_feeds, run_cli

PLATFORMS = ("openvino", "node", "wasm")


@pytest.fixture(scope="module", autouse=True)
def browser_closed_afterwards():
    """The shared Chromium holds an event loop in this thread (Playwright's sync API): later tests that run
    asyncio (the language server's) need it gone."""
    yield
    from modelc.runtime.platform_js import close_browser
    close_browser()


def missing_software(provider: str) -> str | None:
    """What the provider lacks on this machine, or None."""
    from modelc.runtime.platform_js import CHROMIUM_PATHS, js_home
    if provider == "openvino":  # found, not imported: importing it here would send OpenVINO's telemetry
        return None if importlib.util.find_spec("openvino") else "the openvino package (make platforms)"
    package = {"node": "onnxruntime-node", "wasm": "onnxruntime-web"}[provider]
    if not (js_home() / "node_modules" / package / "package.json").is_file():
        return f"the npm package {package} (make platforms)"
    if provider == "node" and shutil.which("node") is None:
        return "Node.js"
    if provider == "wasm":
        try:
            import playwright  # noqa: F401
        except ImportError:
            return "playwright (make platforms)"
        if not any(Path(p).exists() for p in CHROMIUM_PATHS) and not os.environ.get("MODELC_CHROMIUM"):
            return "Chromium (apt-get install chromium)"
    return None


def need(provider: str) -> None:
    lack = missing_software(provider)
    if lack is None:
        return
    if os.environ.get("MODELC_REQUIRE_PLATFORMS") == "1":
        pytest.fail(f"provider {provider} needs {lack}, and MODELC_REQUIRE_PLATFORMS=1")
    pytest.skip(f"provider {provider} needs {lack}")


def sample_data(path: Path, folder: Path, rows: int = 37) -> tuple[Path, str]:
    """Random inputs for the sample's model (37 rows: batches of 16 leave a ragged end of 5), and a
    compiled .onnx with its random (seeded) weights; or the trained weights for housing."""
    import modelc
    weights = ROOT / "samples" / "housing.safetensors" if path.stem == "housing" else None
    proto = modelc.compile_file(path, weights=str(weights) if weights else None)
    model = folder / f"{path.stem}.onnx"
    modelc.save(proto, model)
    data = folder / f"{path.stem}.npz"
    np.savez(data, **random_feeds(proto, batch=rows, seed=1))
    return model, str(data)


@pytest.mark.parametrize("provider", PLATFORMS)
@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_every_sample_agrees_with_cpu(provider, path, tmp_path):
    need(provider)
    import modelc
    model, data = sample_data(path, tmp_path)
    report = modelc.compare(str(model), data, providers=["cpu", provider], batch_size=16, rtol=1e-3, atol=1e-4)
    assert report["samples"] == 37 and report["batches"] == 3
    for output, sides in report["outputs"].items():
        stats = sides[provider]
        assert stats["elements"] > 0 and stats["nan"] == 0, (output, stats)
        assert stats["out_of_tolerance"] == 0, (output, stats)
    assert report["agree"]


@pytest.fixture(scope="module")
def binary_task(tmp_path_factory):
    """A classifier with random weights, and labels drawn from it so the metrics are not degenerate."""
    import modelc
    folder = tmp_path_factory.mktemp("platform-task")
    source = folder / "task.model"
    source.write_text("model task(x: float32[batch, 6]) {\n"
                      "    return x -> dense(12, activation=tanh) -> dense(1, activation=sigmoid)\n}\n")
    proto = modelc.compile_file(source, seed=3)
    model = folder / "task.onnx"
    modelc.save(proto, model)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1001, 6)).astype(np.float32)
    data = folder / "task.npz"
    np.savez(data, x=x, y=(rng.random((1001, 1)) < 0.5).astype(np.float32))
    return model, data


METRICS = ("accuracy", "auc", "mse", "binary_crossentropy")


@pytest.mark.parametrize("provider", PLATFORMS)
def test_eval_metrics_match_cpu_through_the_command_line(provider, binary_task):
    need(provider)
    model, data = binary_task
    results = {}
    for side in ("cpu", provider):
        metric_args = [a for m in METRICS for a in ("--metric", m)]
        out = run_cli("eval", model, "--data", data, "--target", "y", *metric_args, "--provider", side,
                      "--batch-size", "64", "--json")
        assert out.returncode == 0, out.stderr
        results[side] = json.loads(out.stdout)
    assert results[provider]["provider"] == provider and results[provider]["samples"] == 1001
    for spec in METRICS:
        assert results[provider]["metrics"][spec] == pytest.approx(results["cpu"]["metrics"][spec], rel=1e-5,
                                                                  abs=1e-6), spec


def test_missing_platform_is_a_clear_error(tmp_path, binary_task):
    model, data = binary_task
    env_home = tmp_path / "empty-js-home"
    env_home.mkdir()
    import subprocess
    import sys
    out = subprocess.run([str(Path(sys.executable).parent / "modelc"), "eval", str(model), "--data", str(data),
                          "--target", "y", "--metric", "mse", "--provider", "node"], capture_output=True, text=True,
                         env={**os.environ, "MODELC_JS_HOME": str(env_home)})
    assert out.returncode == 1
    assert "onnxruntime-node" in out.stderr and "make platforms" in out.stderr and "Traceback" not in out.stderr


def test_a_model_a_platform_cannot_load_names_the_problem(tmp_path):
    need("node")
    import onnx
    from onnx import TensorProto, helper
    node = helper.make_node("NoSuchOperator", ["x"], ["y"], domain="example.custom")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("example.custom", 1)], ir_version=10)
    path = tmp_path / "custom.onnx"
    onnx.save(model, path)
    data = tmp_path / "x.npz"
    np.savez(data, x=np.ones((3, 2), np.float32))
    out = run_cli("run", path, "--data", data, "-o", tmp_path / "p.npz", "--provider", "node")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "provider 'node' could not load the model" in out.stderr and "NoSuchOperator" in out.stderr


def test_report_page_holds_the_json_numbers_and_loads_nothing(tmp_path, binary_task):
    """The page opened in headless Chromium: no console error, no request beyond the page itself, and the
    numbers in its tables are the ones --json prints."""
    need("wasm")  # the page is checked in the same Chromium the wasm provider drives
    model, data = binary_task
    page_path = tmp_path / "report.html"
    args = ["compare", model, "--data", data, "--target", "y", "--metric", "auc", "--metric", "mse",
            "--providers", "cpu,openvino,node", "--batch-size", "100", "--report", page_path]
    need("openvino"), need("node")
    out = run_cli(*args, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    from modelc.runtime.platform_js import _Browser
    page = _Browser.shared().browser.new_page()
    errors, requests = [], []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(page_path.as_uri())
    cells = page.eval_on_selector_all("#metrics tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))")
    outputs = page.eval_on_selector_all("#outputs tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))")
    verdict = page.text_content("#verdict")
    page.close()
    assert errors == [] and requests == [page_path.as_uri()]
    sides = list(report["metrics"])
    for row in cells:
        name = row[0]
        for side, text in zip(sides, row[1:1 + len(sides)]):
            assert float(text) == pytest.approx(report["metrics"][side][name], rel=1e-6)
    assert {(r[0], r[1]) for r in outputs} == {(o, s) for o, per in report["outputs"].items() for s in per}
    for output, side, max_abs, *_ in outputs:
        assert float(max_abs) == pytest.approx(report["outputs"][output][side]["max_abs"], rel=1e-6, abs=1e-30)
    assert verdict.startswith("every side agrees")


def test_eval_report_page(tmp_path, binary_task):
    model, data = binary_task
    page_path = tmp_path / "eval.html"
    out = run_cli("eval", model, "--data", data, "--target", "y", "--metric", "accuracy", "--report", page_path,
                  "--json")
    assert out.returncode == 0, out.stderr
    text = page_path.read_text()
    accuracy = json.loads(out.stdout)["metrics"]["accuracy"]
    assert f"{accuracy:.7g}" in text and "<script" not in text and "http" not in text.replace("http://www.w3", "")


def test_openvino_sends_no_telemetry(tmp_path):
    """Importing openvino sends usage data unless a consent file says no; modelc's openvino provider never lets
    it (its telemetry package stays unimportable, so OpenVINO falls back to its stub), checked in a fresh process."""
    need("openvino")
    import subprocess
    import sys
    script = ("import sys, numpy as np, modelc\n"
              "from modelc.runtime.session import Session\n"
              "proto = modelc.compile_file(sys.argv[1], weights=sys.argv[2])\n"
              "Session(proto, 'openvino').run({'x': np.ones((2, 8), np.float32)})\n"
              "assert sys.modules['openvino_telemetry'] is None, 'the telemetry package was imported'\n"
              "assert 'openvino.tools.ovc.telemetry_stub' in sys.modules\n")
    out = subprocess.run([sys.executable, "-c", script, str(ROOT / "samples" / "housing.model"),
                          str(ROOT / "samples" / "housing.safetensors")], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr


def test_openvino_eval_keeps_the_states_in_float64(tmp_path):
    """OpenVINO computes float64 in float32: its model runs there and its metric states on the CPU provider, so
    sums of large targets equal cpu's (in float32 states, r2 around 300 was off in the 4th digit)."""
    need("openvino")
    (tmp_path / "ident.model").write_text("model ident(x: float32[batch, 1]) {\n    return x\n}\n")
    rng = np.random.default_rng(0)
    y = (300 + rng.normal(size=(3000, 1))).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=(y + 0.1 * rng.normal(size=(3000, 1))).astype(np.float32), y=y)
    results = {}
    for provider in ("cpu", "openvino"):
        out = run_cli("eval", "ident.model", "--data", "d.npz", "--target", "y", "--metric", "r2", "--metric", "mean",
                      "--provider", provider, "--batch-size", "512", "--json", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        results[provider] = json.loads(out.stdout)
    assert not results["openvino"]["fused"]
    for spec in ("r2", "mean"):
        assert results["openvino"]["metrics"][spec] == pytest.approx(results["cpu"]["metrics"][spec], rel=1e-9)
