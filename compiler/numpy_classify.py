"""The numpy side of the classification metrics' final parts, on merged states: averaging per-class scores
(scikit-learn's `average=`), and areas under binned ROC and precision-recall curves (Keras' `AUC` and
scikit-learn's `average_precision_score`). functions.py puts them in the one table of functions.

numpy is imported on the first call, never on import (`modelc check` reads the table without loading it).
"""
from __future__ import annotations

from typing import Any


def _per_threshold(value: Any, threshold: Any) -> Any:
    """[thresholds, ...] -> the first entry unless `threshold` is a list (one result per threshold)."""
    return value if isinstance(threshold, list) else value[0]


def average_classes(numerator: Any, denominator: Any, support: Any, average: str, threshold: Any) -> Any:
    """numerator / denominator per class [classes, thresholds] (0 where the denominator is 0, as scikit-learn's
    zero_division=0 and Keras), averaged: "micro" (sums first), "macro", "weighted" (by `support`) or "none"."""
    import numpy as np
    num, den = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    support = np.broadcast_to(np.asarray(support, np.float64), num.shape)
    with np.errstate(all="ignore"):
        if average == "micro":
            total = den.sum(axis=0)
            value = np.where(total != 0, num.sum(axis=0) / np.where(total != 0, total, 1), 0.0)
        else:
            per_class = np.where(den != 0, num / np.where(den != 0, den, 1), 0.0)
            if average == "macro":
                value = per_class.mean(axis=0)
            elif average == "weighted":
                weight = support.sum(axis=0)
                value = np.where(weight != 0, (per_class * support).sum(axis=0) / np.where(weight != 0, weight, 1), 0.)
            else:
                value = per_class.T
    return _per_threshold(value, threshold)


def by_threshold(counts: Any, threshold: Any) -> Any:
    """Counts per class and threshold [classes, thresholds], summed over the classes."""
    import numpy as np
    return _per_threshold(np.asarray(counts, np.float64).sum(axis=0), threshold)


def _curve_area(tp: Any, fp: Any, curve: str, summation: str) -> float:
    """The area under one label's curve from counts at thresholds of rising score (Keras' AUC.result)."""
    import numpy as np
    positives, negatives = tp[0], fp[0]
    if positives == 0 or curve == "roc" and negatives == 0:
        return float("nan")
    if curve == "pr" and summation == "interpolation":
        return _interpolated_pr(tp, fp, positives)
    recall = tp / positives
    if curve == "roc":
        x, y = fp / negatives, recall
    else:
        x, y = recall, np.where(tp + fp > 0, tp / np.where(tp + fp > 0, tp + fp, 1), 0.0)
    heights = {"interpolation": (y[:-1] + y[1:]) / 2, "minoring": np.minimum(y[:-1], y[1:]),
               "majoring": np.maximum(y[:-1], y[1:]), "step": y[:-1]}[summation]
    return float(np.sum((x[:-1] - x[1:]) * heights))


def _interpolated_pr(tp: Any, fp: Any, positives: float) -> float:
    """Keras' interpolate_pr_auc (Davis & Goadrich 2006): precision interpolated between thresholds."""
    import numpy as np
    dtp = tp[:-1] - tp[1:]
    p = tp + fp
    dp = p[:-1] - p[1:]
    slope = np.where(dp > 0, dtp / np.where(dp > 0, dp, 1), 0.0)
    intercept = tp[1:] - slope * p[1:]
    both = (p[:-1] > 0) & (p[1:] > 0)
    ratio = np.where(both, p[:-1] / np.where(both, p[1:], 1), 1.0)
    return float(np.sum(slope * (dtp + intercept * np.log(ratio)) / positives))  # tp + fn: all positives


def binned_auc(positives: Any, negatives: Any, bins: int, curve: str, summation_method: str,
               label_weights: Any = None) -> float:
    """The area under the ROC or PR curve of each label from its score histograms ([labels * bins] each),
    averaged over the labels (weighted by `label_weights`); a label with no positives (or, for ROC, no
    negatives) is left out of the average, and alone gives NaN."""
    import numpy as np
    pos = np.asarray(positives, np.float64).reshape(-1, int(bins))
    neg = np.asarray(negatives, np.float64).reshape(-1, int(bins))
    zero = np.zeros((pos.shape[0], 1))
    tp = np.concatenate([np.cumsum(pos[:, ::-1], axis=1)[:, ::-1], zero], axis=1)
    fp = np.concatenate([np.cumsum(neg[:, ::-1], axis=1)[:, ::-1], zero], axis=1)
    with np.errstate(all="ignore"):
        areas = np.array([_curve_area(t, f, curve, summation_method) for t, f in zip(tp, fp)])
    if areas.size == 1:
        return float(areas[0])
    weights = np.ones(areas.size) if label_weights is None else np.asarray(label_weights, np.float64)
    kept = ~np.isnan(areas)
    if not kept.any() or weights[kept].sum() == 0:
        return float("nan")
    return float(np.sum(areas[kept] * weights[kept]) / np.sum(weights[kept]))
