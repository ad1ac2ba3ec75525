"""Pictures of metric states (runtime/plots.py, the plots extra): the files exist, and what was drawn is read
back from the SVG (text stays text; each artist has an id) and checked against numpy and scikit-learn:
the ROC curve has one vertex per bin edge at the rates of the data, the heatmap's cells hold the confusion
matrix, the reliability diagram's points are scikit-learn's calibration_curve. The `calibration` metric's
states are checked like every metric: batches of 1, 7 and 1,000, halves merged both ways, saved and loaded.
"""
from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from sklearn.calibration import calibration_curve
from sklearn.metrics import confusion_matrix

import modelc
from modelc import ModelcError
from modelc.cli import main

from helpers import run_cli

pytest.importorskip("matplotlib")

N = 1000
_rng = np.random.default_rng(6)
P = _rng.uniform(0.001, 0.999, N)
Y = (_rng.uniform(size=N) < P ** 1.5).astype(np.float64)      # over-confident scores: a visible calibration gap
W = _rng.integers(0, 9, N) / 4.0
LABELS = _rng.integers(0, 3, N)
SCORES = np.eye(3)[np.where(_rng.uniform(size=N) < 0.7, LABELS, _rng.integers(0, 3, N))] + 0.01 * _rng.uniform(
    size=(N, 3))
SVG = "{http://www.w3.org/2000/svg}"


def stream(spec, y, p, batch, w=None):
    m = modelc.metric(spec)
    for lo in range(0, len(y), batch):
        m.update(y[lo:lo + batch], p[lo:lo + batch], None if w is None else w[lo:lo + batch])
    return m


def group(svg_path, gid):
    found = ET.parse(svg_path).getroot().find(f".//{SVG}g[@id='{gid}']")
    assert found is not None, f"no <g id={gid!r}> in {svg_path}"
    return found


def vertices(svg_path, gid):
    """The vertices of the one path an artist drew, in SVG pixels."""
    d = group(svg_path, gid).find(f"{SVG}path").get("d")
    return np.array([[float(x), float(y)] for x, y in re.findall(r"[ML] (-?[\d.]+) (-?[\d.]+)", d)])


def in_data_units(points, svg_path, diagonal):
    """Pixels back to data units, through the dotted diagonal from (0, 0) to (1, 1) drawn on the same axes."""
    (x0, y0), (x1, y1) = vertices(svg_path, diagonal)
    return np.stack([(points[:, 0] - x0) / (x1 - x0), (points[:, 1] - y0) / (y1 - y0)], axis=1)


def test_roc_and_pr_curves_have_one_point_per_bin(tmp_path):
    bins = 20
    m = stream(f"auc(bins={bins})", Y, P, 7)
    modelc.plot_roc(m, tmp_path / "roc.svg")
    modelc.plot_pr(m, tmp_path / "pr.svg")
    modelc.plot_roc(m, tmp_path / "roc.png")
    assert (tmp_path / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    roc = in_data_units(vertices(tmp_path / "roc.svg", "roc-curve"), tmp_path / "roc.svg", "chance")
    assert len(roc) == bins + 1                         # every edge, from all positive to none
    edges = np.arange(bins + 1) / bins
    want = np.array([[(P[Y == 0] >= e).mean(), (P[Y == 1] >= e).mean()] for e in edges])
    want[-1] = 0.0                                      # the last edge: nothing is scored above 1
    np.testing.assert_allclose(roc, want, atol=1e-5)
    pr = vertices(tmp_path / "pr.svg", "pr-curve")
    assert len(pr) == 2 * bins - 1                      # a step per bin: one point, then a flat run to the next


@pytest.mark.parametrize("normalize", [False, True])
def test_confusion_heatmap_cells_are_the_matrix(tmp_path, normalize):
    m = stream("confusion_matrix(3)", LABELS, SCORES, 1000)
    path = tmp_path / "cm.svg"
    modelc.plot_confusion_matrix(m, path, normalize=normalize)
    want = confusion_matrix(LABELS, SCORES.argmax(1), normalize="true" if normalize else None)
    cells = [[group(path, f"cell-{i}-{j}").find(f"{SVG}text").text for j in range(3)] for i in range(3)]
    assert cells == [[f"{v:.2f}" if normalize else str(v) for v in row] for row in want]


@pytest.mark.parametrize("weighted", [False, True])
def test_calibration_states_match_sklearn(tmp_path, weighted):
    w = W if weighted else None
    weights = np.ones(N) if w is None else w
    bins = np.minimum((P * 10).astype(int), 9)
    rows, scores, positives = (np.bincount(bins, weights * v, 10) for v in (np.ones(N), P, Y))
    ece = np.abs(scores - positives).sum() / rows.sum()
    cut = N // 3
    parts = [stream("calibration", Y[s], P[s], 64, None if w is None else w[s]) for s in (slice(0, cut),
                                                                                         slice(cut, None))]
    results = [stream("calibration", Y, P, batch, w).result() for batch in (1, 7, 1000)]
    for first, second in ((0, 1), (1, 0)):
        merged = modelc.metric("calibration")
        merged.load_state_dict(parts[first].state_dict())
        results.append(merged.merge(parts[second]).result())
    np.savez(tmp_path / "states.npz", **parts[0].merge(parts[1]).state_dict())
    loaded = modelc.metric("calibration")
    loaded.load_state_dict(dict(np.load(tmp_path / "states.npz")))
    results.append(loaded.result())
    np.testing.assert_allclose(results, ece, rtol=1e-12)
    if not weighted:   # scikit-learn's calibration_curve takes no weights
        modelc.plot_calibration(loaded, tmp_path / "calibration.svg")
        points = in_data_units(vertices(tmp_path / "calibration.svg", "calibration-curve"),
                               tmp_path / "calibration.svg", "perfect")
        prob_true, prob_pred = calibration_curve(Y, P, n_bins=10)
        np.testing.assert_allclose(points, np.stack([prob_pred, prob_true], axis=1), atol=1e-5)


def test_a_metric_without_the_states_is_a_clear_error():
    m = stream("mse", Y, P, 1000)
    with pytest.raises(ModelcError, match=r"metric 'mse' has no states to draw this picture from: it is drawn "
                                          r"from modelc.metric\(\"auc\"\)"):
        modelc.plot_roc(m)


def binary_model(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["batch", 1])
    y = helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["batch", 1])
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, tmp_path / "id.onnx")
    np.savez(tmp_path / "data.npz", x=P[:, None], label=Y)


PICTURES = ["roc", "pr", "confusion_matrix", "confusion_matrix_normalized", "calibration"]


def test_cli_eval_plots_writes_svg_and_png(tmp_path):
    binary_model(tmp_path)
    args = ["eval", "id.onnx", "--data", "data.npz", "--target", "label", "--metric", "binary_accuracy",
            "--batch-size", "300"]
    result = run_cli(*args, "--plots", "out", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert sorted(got["plots"]) == sorted(f"out/{p}.{fmt}" for p in PICTURES for fmt in ("svg", "png"))
    assert set(got["metrics"]) == {"binary_accuracy", "auc", "confusion_matrix(2)", "calibration"}   # the pictures' own
    cells = [[int(group(tmp_path / "out" / "confusion_matrix.svg", f"cell-{i}-{j}").find(f"{SVG}text").text)
              for j in range(2)] for i in range(2)]
    assert cells == got["metrics"]["confusion_matrix(2)"] == confusion_matrix(Y, P > 0.5).tolist()
    first = (tmp_path / "out" / "roc.svg").read_bytes()
    assert run_cli(*args, "--plots", "out", cwd=tmp_path).returncode == 0
    assert (tmp_path / "out" / "roc.svg").read_bytes() == first          # deterministic SVG


def test_cli_eval_prints_a_confusion_matrix_as_a_grid(tmp_path):
    binary_model(tmp_path)
    result = run_cli("eval", "id.onnx", "--data", "data.npz", "--target", "label", "--metric", "confusion_matrix(2)",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (tn, fp), (fn, tp) = confusion_matrix(Y, P > 0.5)
    lines = [" ".join(line.strip("│┃ ").split()) for line in result.stdout.splitlines()]
    assert any(line.endswith(f"0 {tn} {fp}") for line in lines), result.stdout
    assert any(line.endswith(f"1 {fn} {tp}") for line in lines), result.stdout
    assert "[[" not in result.stdout


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch, capsys):
    binary_model(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # as if it were not installed
    code = main(["eval", "id.onnx", "--data", "data.npz", "--target", "label", "--metric", "auc", "--plots", "out"])
    assert code == 1
    assert capsys.readouterr().err == "error: pictures need matplotlib: pip install 'modelc-onnx[plots]'\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("specs,shape,added", [
    (["binary_accuracy"], ("batch",), ["auc", "confusion_matrix(2)", "calibration"]),
    (["f1"], ("batch", 1), ["auc", "confusion_matrix(2)", "calibration"]),
    (["mse"], ("batch",), []),   # a regression: its targets are no class labels for a confusion matrix
    (["pr_auc", "confusion_matrix(2, threshold=0.3)"], ("batch",), ["calibration"]),
    (["accuracy"], ("batch", 10), ["confusion_matrix(10)"]),
    (["accuracy"], ("batch", 4, 4), []),
])
def test_plots_add_the_metrics_their_pictures_need(specs, shape, added):
    from modelc.runtime.plots import plot_metrics
    assert plot_metrics(specs, shape) == added


def test_evaluate_api_plots(tmp_path):
    binary_model(tmp_path)
    out = modelc.evaluate(str(tmp_path / "id.onnx"), str(tmp_path / "data.npz"), "label", ["auc(bins=50)"],
                          batch_size=128, plots=str(tmp_path / "pics"), progress=False)
    assert sorted(out["plots"]) == sorted(str(tmp_path / "pics" / f"{p}.{fmt}") for p in PICTURES
                                          for fmt in ("svg", "png"))
    roc = vertices(tmp_path / "pics" / "roc.svg", "roc-curve")
    assert len(roc) == 51                                   # drawn from auc(bins=50): the metric asked for


def test_an_auc_of_several_curves_draws_no_single_curve():
    """One vs rest (and multi-label) AUCs hold one histogram per class: laid end to end they are no ROC curve;
    the picture is refused with the reason instead of drawn wrong."""
    rng = np.random.default_rng(0)
    m = modelc.metric("auc")
    m.update(rng.integers(0, 3, 60), rng.random((60, 3)).astype(np.float32))
    with pytest.raises(ModelcError, match="a curve per class"):
        modelc.plot_roc(m)


def test_a_picture_in_a_format_matplotlib_has_no_writer_for_is_a_clear_error(tmp_path):
    m = modelc.metric("auc")
    m.update(np.array([0, 1, 1]), np.array([0.1, 0.6, 0.4], np.float32))
    with pytest.raises(ModelcError, match=r"a picture is written as \.svg, \.png or \.pdf"):
        modelc.plot_roc(m, tmp_path / "roc.txt")
