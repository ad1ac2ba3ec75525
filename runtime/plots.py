"""Pictures of metric states (the `plots` extra: matplotlib): ROC and precision-recall curves from the score
histograms of `auc` / `pr_auc`, the confusion matrix as a heatmap (counts and row-normalized) and the
reliability diagram of `calibration`. They are drawn from merged states, so a picture of a stream of batches
(or of Dask partitions) is the picture of the whole data; `modelc eval --plots DIR` writes each as SVG and
PNG, and `modelc.plot_roc` (...) draw one from a `modelc.metric`.

The curve's points are the states themselves, one per histogram bin, never resampled: the SVG path of the
ROC curve has bins + 1 vertices (every threshold, from everything positive to nothing), the PR curve one per
bin; the SVG keeps text as text and is deterministic (no date, a fixed hash salt).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..compiler.files import atomic_write
from ..compiler.source import user_error
from ..version import DISTRIBUTION
from .metrics import Metric, MetricSet

INSTALL_HINT = f"pictures need matplotlib: pip install '{DISTRIBUTION}[plots]'"
STYLE = {"svg.hashsalt": "modelc", "svg.fonttype": "none", "path.simplify": False, "figure.dpi": 100}
FORMATS = ("svg", "png")


def pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise user_error(INSTALL_HINT) from None
    matplotlib.use("Agg")  # files only: never a window, never a display
    import matplotlib.pyplot as plt
    return plt


# --- what is drawn: numbers from the states ----------------------------------------------------------------
def roc_points(positives: Any, negatives: Any) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rates, true positive rates) at every bin edge, from all positive to none (bins + 1)."""
    tp = np.concatenate([np.cumsum(np.asarray(positives, np.float64)[::-1])[::-1], [0.0]])
    fp = np.concatenate([np.cumsum(np.asarray(negatives, np.float64)[::-1])[::-1], [0.0]])
    with np.errstate(all="ignore"):
        return fp / fp[0], tp / tp[0]


def pr_points(positives: Any, negatives: Any) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) with the threshold at each bin's lower edge, one point per bin (pr_auc's steps)."""
    tp = np.cumsum(np.asarray(positives, np.float64)[::-1])[::-1]
    fp = np.cumsum(np.asarray(negatives, np.float64)[::-1])[::-1]
    with np.errstate(all="ignore"):
        return tp / tp[0], np.where(tp + fp > 0, tp / (tp + fp), 1.0)


def calibration_points(rows: Any, scores: Any, positives: Any) -> tuple[np.ndarray, np.ndarray]:
    """(mean score, fraction of positives) of each bin with rows: sklearn's calibration_curve, reversed."""
    rows = np.asarray(rows, np.float64)
    seen = rows != 0
    return np.asarray(scores)[seen] / rows[seen], np.asarray(positives)[seen] / rows[seen]


def row_normalized(counts: Any) -> np.ndarray:
    counts = np.asarray(counts, np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals != 0)


# --- drawing -----------------------------------------------------------------------------------------------
def _figure(title: str, xlabel: str, ylabel: str, square: bool = True) -> tuple[Any, Any]:
    plt = pyplot()
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5, 5) if square else (6, 5))
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return fig, ax


def draw_roc(positives: Any, negatives: Any, label: str = "auc") -> Any:
    fpr, tpr = roc_points(positives, negatives)
    fig, ax = _figure(f"ROC curve ({label})", "false positive rate", "true positive rate")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", gid="chance")
    ax.plot(fpr, tpr, gid="roc-curve", label=f"area {-np.trapezoid(tpr, fpr):.4f}")
    ax.set(xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right")
    return fig


def draw_pr(positives: Any, negatives: Any, label: str = "auc") -> Any:
    recall, precision = pr_points(positives, negatives)
    fig, ax = _figure(f"precision-recall curve ({label})", "recall", "precision")
    ax.plot(recall, precision, gid="pr-curve", drawstyle="steps-post")
    ax.set(xlim=(0, 1), ylim=(0, 1.01))
    return fig


def draw_confusion(counts: Any, normalize: bool = False, label: str = "confusion_matrix") -> Any:
    counts = np.asarray(counts)
    values = row_normalized(counts) if normalize else counts
    k = counts.shape[0]
    fig, ax = _figure(f"{label}{', rows normalized' if normalize else ''}", "predicted class", "true class",
                      square=False)
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else None, gid="heatmap")
    fig.colorbar(image, ax=ax)
    ax.set(xticks=range(k), yticks=range(k))
    if k <= 30:  # the numbers, in each cell, where they can be read
        top = float(np.max(values)) if values.size else 0.0
        for i in range(k):
            for j in range(k):
                text = f"{values[i, j]:.2f}" if normalize else f"{int(values[i, j]):d}" \
                    if float(values[i, j]).is_integer() else f"{values[i, j]:g}"
                ax.text(j, i, text, ha="center", va="center", gid=f"cell-{i}-{j}",
                        color="white" if values[i, j] > top / 2 else "black")
    return fig


def draw_calibration(rows: Any, scores: Any, positives: Any, label: str = "calibration") -> Any:
    mean_score, observed = calibration_points(rows, scores, positives)
    fig, ax = _figure(f"reliability diagram ({label})", "mean predicted score", "fraction of positives")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", gid="perfect")
    ax.plot(mean_score, observed, marker="o", gid="calibration-curve")
    ax.set(xlim=(0, 1), ylim=(0, 1))
    return fig


def save(fig: Any, path: str | Path) -> Path:
    """One figure to one file, in the format its suffix names (.svg, .png, .pdf), written atomically."""
    plt = pyplot()
    path = Path(path)
    buffer = io.BytesIO()
    fmt = path.suffix.lstrip(".").lower() or "svg"
    if fmt not in ("svg", "png", "pdf"):
        raise user_error(f"cannot draw {path}: a picture is written as .svg, .png or .pdf")
    metadata = {"Date": None} if fmt == "svg" else {"Software": None} if fmt == "png" else {}
    with plt.rc_context(STYLE):
        fig.savefig(buffer, format=fmt, metadata=metadata, bbox_inches="tight")
    with atomic_write(path) as (tmp,):
        tmp.write_bytes(buffer.getvalue())
    return path


# --- which pictures the metrics' states give -------------------------------------------------------------
# metric name -> [(file stem, the states it reads, how it is drawn)]
PICTURES: dict[str, list[tuple[str, tuple[str, ...], Callable[..., Any]]]] = {
    "auc": [("roc", ("positives", "negatives"), draw_roc), ("pr", ("positives", "negatives"), draw_pr)],
    "pr_auc": [("roc", ("positives", "negatives"), draw_roc), ("pr", ("positives", "negatives"), draw_pr)],
    "confusion_matrix": [("confusion_matrix", ("counts",), lambda c, label: draw_confusion(c, False, label)),
                         ("confusion_matrix_normalized", ("counts",), lambda c, label: draw_confusion(c, True, label))],
    "calibration": [("calibration", ("rows", "scores", "positives"), draw_calibration)],
}


def pictures(metrics: MetricSet | Metric) -> list[tuple[str, Callable[[], Any]]]:
    """(file stem, draw) for each picture the merged states give; the first metric of each name is drawn
    (a second `auc` would draw the same curves)."""
    out, drawn = [], set()
    for plan, states in metrics.named_states():
        for stem, needs, draw in PICTURES.get(plan.definition.name, []):
            if stem in drawn or not set(needs) <= set(states):
                continue  # a metric of the user's own under a built-in name keeps other states
            arrays = [states[n] for n in needs]
            if stem in ("roc", "pr") and np.size(arrays[0]) != plan.hparams.get("bins"):
                continue  # one curve per class or label (one vs rest, multi_label): not one picture's curve
            if stem.startswith("confusion"):
                arrays = [np.reshape(arrays[0], (plan.hparams["k"], plan.hparams["k"]))]
            out.append((stem, lambda d=draw, a=arrays, s=plan.spec: d(*a, label=s)))
            drawn.add(stem)
    return out


def write_plots(metric_set: MetricSet, folder: str | Path) -> list[str]:
    """Every picture of the merged states, as FOLDER/STEM.svg and .png; the paths written."""
    plt = pyplot()
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise user_error(f"cannot write plots to {folder}: {e.strerror or e}") from None
    written = []
    for stem, draw in pictures(metric_set):
        fig = draw()
        written += [str(save(fig, folder / f"{stem}.{fmt}")) for fmt in FORMATS]
        plt.close(fig)
    return written


# the metrics whose presence says the task is classification, so that --plots may add the pictures' metrics
CLASSIFICATION = {"accuracy", "binary_accuracy", "top_k_accuracy", "precision", "recall", "f1", "fbeta",
                  "auc", "pr_auc", "average_precision", "binary_crossentropy", "sparse_categorical_crossentropy",
                  "confusion_matrix", "calibration", "true_positives", "false_positives", "true_negatives",
                  "false_negatives"}


def plot_metrics(specs: list[str], output_shape: tuple) -> list[str]:
    """The metrics --plots adds to those asked for, when one of them is a classification metric: for one score
    per row, `auc`, `confusion_matrix(2)` and `calibration`; for class scores [batch, k], `confusion_matrix(k)`;
    none of a name already asked for. (Keras' names, `AUC`, are modelc's here: the spec is resolved later.)"""
    names = {s.split("(")[0].strip() for s in specs}
    if not names & CLASSIFICATION:  # a regression's targets are no class labels: confusion_matrix would refuse them
        return []
    trailing = [d for d in output_shape[1:] if d != 1]
    if not trailing:
        wanted = {"auc": "auc", "confusion_matrix": "confusion_matrix(2)", "calibration": "calibration"}
    elif len(trailing) == 1 and isinstance(trailing[0], int):
        wanted = {"confusion_matrix": f"confusion_matrix({trailing[0]})"}
    else:
        wanted = {}
    return [spec for name, spec in wanted.items() if name not in names and not (name == "auc" and "pr_auc" in names)]


# --- the Python API: one picture of one streaming metric ----------------------------------------------------
DRAWN_FROM = {"roc": 'modelc.metric("auc")', "pr": 'modelc.metric("auc")',
              "confusion_matrix": 'modelc.metric("confusion_matrix(k)")',
              "confusion_matrix_normalized": 'modelc.metric("confusion_matrix(k)")',
              "calibration": 'modelc.metric("calibration")'}


def plot(metric: Metric, stem: str, path: str | Path | None = None) -> Any:
    """The picture `stem` of a streaming metric's states, saved to `path` (its suffix names the format) when
    given; the matplotlib Figure."""
    if not isinstance(metric, Metric):
        raise user_error(f"a plot draws a modelc.metric(...), got {type(metric).__name__}")
    found = dict(pictures(metric))
    if stem not in found:
        raise user_error(f"metric '{metric.spec}' has no states to draw this picture from: it is drawn from "
                         f"{DRAWN_FROM[stem]} of one score per row, updated with data (one vs rest and multi-label "
                         "AUCs hold a curve per class, which one picture does not show)")
    fig = found[stem]()
    if path is not None:
        save(fig, path)
    return fig


def plot_roc(metric: Metric, path: str | Path | None = None) -> Any:
    """The ROC curve of a `modelc.metric("auc")` (or pr_auc): one point per bin edge."""
    return plot(metric, "roc", path)


def plot_pr(metric: Metric, path: str | Path | None = None) -> Any:
    """The precision-recall curve of a `modelc.metric("auc")` (or pr_auc): one point per bin."""
    return plot(metric, "pr", path)


def plot_confusion_matrix(metric: Metric, path: str | Path | None = None, normalize: bool = False) -> Any:
    """The heatmap of a `modelc.metric("confusion_matrix(k)")`: counts, or each true class's row as fractions."""
    return plot(metric, "confusion_matrix_normalized" if normalize else "confusion_matrix", path)


def plot_calibration(metric: Metric, path: str | Path | None = None) -> Any:
    """The reliability diagram of a `modelc.metric("calibration(bins=10)")`."""
    return plot(metric, "calibration", path)
