"""Classification metrics a Keras or scikit-learn user expects (issue 11, items 1-3; issue 13, defects 8-9):
averaging, thresholds, top_k, class_id, confusion counts, multi-label and one-vs-rest AUC, summation methods,
one-hot labels, logits, label smoothing, ignore_class, the shapes labels and weights come in, fractional labels
and argument bounds. Oracles: scikit-learn on the whole data, Keras 3 (jax) where scikit-learn has none.

Tolerances (why):
- precision / recall / F-scores / counts are ratios of sums of dyadic weights (multiples of 1/4) or integer counts:
  exact in float64 whatever the order of summation, so they equal scikit-learn to 1e-12 (only the final division
  and the averaging's float64 mean differ in rounding order).
- Keras' F1Score / FBetaScore add epsilon = 1e-7 to the denominator: rel 1e-6.
- Binned AUC against Keras' AUC(num_thresholds=bins + 1): the same thresholds, compared with `>` in float32, the
  same counts; only float32 (Keras) vs float64 (modelc) arithmetic of the rates differs: rel 1e-5.
- Binned AUC against scikit-learn's exact one-vs-rest AUC: the error of a binned AUC is at most the share of
  (positive, negative) pairs tied in one bin (test_metrics.auc_tie_bound); with 2,000 bins and 60 rows per label,
  that bound is computed from the data and used as the tolerance. On bin-quantized scores the two are the same
  computation: 1e-12.
- Crossentropies against Keras: Keras computes in float32 (rel 1e-6 against float64 inputs fed as float32).
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from sklearn import metrics as skm

import modelc
from modelc import ModelcError

from helpers import run_cli
from keras_oracle import keras

RNG = np.random.default_rng(20261201)
N = 60


def _softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _data(k, n=N, seed=0):
    """(labels, scores, one-hot/0-1 labels) for k classes (k=None: binary scores [n])."""
    rng = np.random.default_rng(seed)
    if k is None:
        y = rng.integers(0, 2, n)
        return y, (0.25 + 0.5 * y * rng.random(n) + 0.3 * rng.random(n)).clip(0, 1), None
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    return y, _softmax(logits), np.eye(k)[y]


BIN = _data(None)
MC3 = _data(3, seed=1)
MC100 = _data(100, n=300, seed=2)
ML_Y = (RNG.random((N, 4)) < 0.4).astype(np.int64)
ML_P = np.clip(0.3 * ML_Y + 0.7 * RNG.random((N, 4)), 0, 1)
W = RNG.integers(0, 9, 300) / 4.0                              # dyadic, zeros included: exact sums


def fresh(spec):
    return modelc.metric(spec)


def fed(spec, y, p, w=None, batch=1000):
    m = fresh(spec)
    for lo in range(0, len(p), batch):
        m.update(y[lo:lo + batch], p[lo:lo + batch], None if w is None else w[lo:lo + batch])
    return m


def every_way(spec, y, p, w=None, tmp_path=None, batches=(1, 7, 1000)):
    """The result through each batch size, merged halves in both orders, and states saved and loaded."""
    results = [fed(spec, y, p, w, b).result() for b in batches]
    half = len(p) // 2
    first, second = [fed(spec, y[s], p[s], None if w is None else w[s]) for s in (slice(0, half), slice(half, None))]
    a, b = fresh(spec), fresh(spec)
    a.load_state_dict(first.state_dict()), b.load_state_dict(second.state_dict())
    results += [a.merge(second).result(), b.merge(first).result()]
    if tmp_path is not None:
        np.savez(tmp_path / "states.npz", **fed(spec, y, p, w).state_dict())
        loaded = fresh(spec)
        with np.load(tmp_path / "states.npz") as f:
            loaded.load_state_dict(dict(f))
        results.append(loaded.result())
    return results


def assert_all_close(results, want, rtol=1e-12, atol=1e-12):
    for got in results:
        np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64), rtol=rtol, atol=atol)


# --- 1. averaging, against scikit-learn's precision_recall_fscore_support ----------------------------------------
SK_SCORE = {"precision": 0, "recall": 1, "f1": 2, "fbeta(beta=2.0)": 2}


def sk_scores(name, y, predicted, average, w, labels):
    beta = 2.0 if name.startswith("fbeta") else 1.0
    got = skm.precision_recall_fscore_support(y, predicted, beta=beta, average=None if average == "none" else average,
                                              sample_weight=w, labels=labels, zero_division=0)
    return got[SK_SCORE[name]]


CASES = {  # name: (labels, scores, threshold spec, predicted classes for sklearn, sklearn's labels)
    "binary": (BIN[0], BIN[1], "", (BIN[1] > 0.5).astype(int), [1]),
    "k3": (MC3[0], MC3[1], "", MC3[1].argmax(1), list(range(3))),
    "k100": (MC100[0], MC100[1], "", MC100[1].argmax(1), list(range(100))),
    "multilabel": (ML_Y, ML_P, "threshold=0.5, ", (ML_P > 0.5).astype(int), list(range(4))),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_averages_match_sklearn(case, weighted):
    y, p, thr, predicted, labels = CASES[case]
    w = W[:len(p)] if weighted else None
    for name in SK_SCORE:
        for average in ("micro", "macro", "weighted", "none"):
            head, _, tail = name.partition("(")
            args = f"{tail[:-1]}, " if tail else ""
            spec = f'{head}({args}{thr}average="{average}")'
            if case == "binary" and average == "micro":  # sklearn's average="binary": the positive class alone
                want = sk_scores(name, y, predicted, "binary", w, None)
            else:
                want = sk_scores(name, y, predicted, average, w, labels)
            assert_all_close([fed(spec, y, p, w).result()], want)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_averages_stream_merge_and_reload(case, weighted, tmp_path):
    y, p, thr, predicted, labels = CASES[case]
    w = W[:len(p)] if weighted else None
    batches = (1, 7, 1000) if len(p) <= N else (7, 1000)   # batch 1 on the small sets (time)
    for spec, name, average in ((f'f1({thr}average="macro")', "f1", "macro"),
                                (f'precision({thr}average="weighted")', "precision", "weighted")):
        want = sk_scores(name, y, predicted, average, w, labels)
        assert_all_close(every_way(spec, y, p, w, tmp_path, batches), want)


def test_threshold_list_gives_one_result_per_threshold():
    y, p = BIN[0], BIN[1]
    thresholds = [0.2, 0.5, 0.8]
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        got = fed(f"{name}(threshold={thresholds})", y, p, W[:N]).result()
        want = [fn(y, p > t, sample_weight=W[:N], zero_division=0) for t in thresholds]
        assert_all_close([got], want)
    got = fed(f'recall(threshold={thresholds}, average="none")', ML_Y, ML_P, W[:N]).result()   # [thresholds, k]
    want = [skm.recall_score(ML_Y, ML_P > t, average=None, sample_weight=W[:N], zero_division=0) for t in thresholds]
    assert np.shape(got) == (3, 4)
    assert_all_close([got], want)
    m = keras.metrics.Precision(thresholds=thresholds)
    m.update_state(ML_Y.astype(np.float32), ML_P.astype(np.float32))
    assert_all_close([fed(f"precision(threshold={thresholds})", ML_Y, ML_P).result()],
                     keras.ops.convert_to_numpy(m.result()), rtol=1e-6)


@pytest.mark.parametrize("args", [dict(top_k=2), dict(class_id=1), dict(top_k=2, class_id=2),
                                  dict(top_k=1, thresholds=0.3)])
def test_top_k_and_class_id_match_keras(args):
    spec_args = ", ".join(f"{'threshold' if k == 'thresholds' else k}={v}" for k, v in args.items())
    if "top_k" not in args and "thresholds" not in args:  # Keras Precision's default is 0.5; modelc's the argmax
        spec_args += ", threshold=0.5"
    for keras_cls, name in ((keras.metrics.Precision, "precision"), (keras.metrics.Recall, "recall")):
        for y in (MC3[2], ML_Y[:, :3]):                   # one-hot labels, multilabel 0/1 labels
            p = MC3[1] if y is MC3[2] else ML_P[:, :3]
            m = keras_cls(**args)
            m.update_state(y.astype(np.float32), p.astype(np.float32), sample_weight=W[:N].astype(np.float32))
            want = keras.ops.convert_to_numpy(m.result())
            assert_all_close([fed(f"{name}({spec_args})", y, p, W[:N]).result()], want, rtol=1e-6)
    if "class_id" in args and "top_k" not in args:         # class-index labels: sklearn, that class alone
        got = fed(f"precision(class_id={args['class_id']})", MC3[0], MC3[1]).result()
        want = skm.precision_score(MC3[0], MC3[1].argmax(1), labels=[args["class_id"]], average=None)[0]
        assert_all_close([got], want)


def test_confusion_counts_per_threshold_match_keras_and_sklearn():
    y, p = BIN[0], BIN[1]
    thresholds = [0.1, 0.5, 0.9]
    for name, cls in (("true_positives", keras.metrics.TruePositives), ("false_positives", keras.metrics.FalsePositives),
                      ("true_negatives", keras.metrics.TrueNegatives), ("false_negatives", keras.metrics.FalseNegatives)):
        m = cls(thresholds=thresholds)
        m.update_state(y.astype(np.float32), p.astype(np.float32), sample_weight=W[:N].astype(np.float32))
        assert_all_close([fed(f"{name}(threshold={thresholds})", y, p, W[:N]).result()],
                         keras.ops.convert_to_numpy(m.result()))
    # multiclass: summed over the classes of scikit-learn's one-vs-rest confusion matrices
    mcm = skm.multilabel_confusion_matrix(MC3[0], MC3[1].argmax(1), labels=range(3)).sum(axis=0)
    for name, cell in (("true_negatives", (0, 0)), ("false_positives", (0, 1)), ("false_negatives", (1, 0)),
                       ("true_positives", (1, 1))):
        assert_all_close(every_way(name, MC3[0], MC3[1]), mcm[cell])


@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted"])
def test_f_scores_match_keras(average):
    for beta in (1.0, 0.5):
        m = keras.metrics.FBetaScore(average=average, beta=beta, threshold=0.5)
        m.update_state(ML_Y.astype(np.float32), ML_P.astype(np.float32))
        spec = f'fbeta(beta={beta}, threshold=0.5, average="{average or "none"}")'
        assert_all_close([fed(spec, ML_Y, ML_P).result()], keras.ops.convert_to_numpy(m.result()), rtol=1e-5)
    m = keras.metrics.F1Score(average=average)                    # threshold=None: each row's argmax
    m.update_state(MC3[2].astype(np.float32), MC3[1].astype(np.float32))
    assert_all_close([fed(f'f1(average="{average or "none"}")', MC3[2], MC3[1]).result()],
                     keras.ops.convert_to_numpy(m.result()), rtol=1e-5)


# --- 2. AUC ---------------------------------------------------------------------------------------------------
def keras_auc(y, p, bins, w=None, **kwargs):
    m = keras.metrics.AUC(num_thresholds=bins + 1, **kwargs)
    m.update_state(np.asarray(y, np.float32), np.asarray(p, np.float32),
                   sample_weight=None if w is None else np.asarray(w, np.float32))
    return float(keras.ops.convert_to_numpy(m.result()))


def test_scores_on_bin_edges_follow_the_threshold_rule_as_keras():
    """Regression: floor(p * bins) put p = 0.5 in the bin above, so auc(bins=n - 1) and Keras' AUC(num_thresholds=n)
    disagreed whenever scores sat on the grid."""
    bins = 10
    y = RNG.integers(0, 2, 200)
    p = (RNG.integers(0, bins + 1, 200) / bins).astype(np.float32)           # every score on an edge
    p[:4] = [0.0, 0.5, 1.0, 0.3]
    for curve in ("roc", "pr"):
        for summation in ("interpolation", "minoring", "majoring"):
            spec = f'auc(bins={bins}, curve="{curve}", summation_method="{summation}")'
            want = keras_auc(y, p, bins, curve=curve.upper(), summation_method=summation)
            assert_all_close(every_way(spec, y, p), want, rtol=1e-5, atol=1e-7)


def test_multi_label_auc_and_label_weights_match_keras():
    w = W[:N]
    for label_weights in (None, [1.0, 2.0, 0.5, 3.0]):
        for curve in ("roc", "pr"):
            want = keras_auc(ML_Y, ML_P, 50, w, curve=curve.upper(), multi_label=True, label_weights=label_weights)
            lw = "" if label_weights is None else f", label_weights={label_weights}"
            spec = f'auc(bins=50, curve="{curve}", multi_label=true{lw})'
            assert_all_close(every_way(spec, ML_Y, ML_P, w), want, rtol=1e-5, atol=1e-7)
    want = keras_auc(ML_Y, ML_P, 50, w)                      # multi_label=false: one curve over every score
    assert_all_close([fed("auc(bins=50)", ML_Y, ML_P, w).result()], want, rtol=1e-5)
    logits = np.log(ML_P.clip(1e-3, 1 - 1e-3) / (1 - ML_P.clip(1e-3, 1 - 1e-3)))
    want = keras_auc(ML_Y, logits, 50, from_logits=True, multi_label=True)
    assert_all_close([fed("auc(bins=50, multi_label=true, from_logits=true)", ML_Y, logits).result()], want, rtol=1e-5)


def _binned(p, bins):
    return np.clip(np.ceil(p * bins) - 1, 0, bins - 1)       # the `p > edge` rule


def _tie_bound(y, p, bins):
    b = _binned(p, bins)
    pos = np.bincount(b[y == 1].astype(int), minlength=bins)
    neg = np.bincount(b[y == 0].astype(int), minlength=bins)
    return (pos * neg).sum() / (2 * pos.sum() * neg.sum())


@pytest.mark.parametrize("case", ["k3", "k100"])
def test_one_vs_rest_auc_matches_sklearn(case):
    y, p, _ = MC3 if case == "k3" else MC100
    bins = 2000
    got = every_way(f"auc(bins={bins})", y, p, batches=(7, 1000))
    present = [c for c in range(p.shape[1]) if 0 < (y == c).sum() < len(y)]
    # on the bin-quantized scores: scikit-learn's one-vs-rest macro average, the same computation
    q = _binned(p, bins)
    assert_all_close(got, np.mean([skm.roc_auc_score(y == c, q[:, c]) for c in present]), rtol=1e-12)
    if case == "k3":  # on the raw scores: within the binning error bound, computed from the data
        bound = max(_tie_bound((y == c).astype(int), p[:, c], bins) for c in present)
        assert abs(got[0] - skm.roc_auc_score(y, p, multi_class="ovr")) <= bound + 1e-12


@pytest.mark.parametrize("weighted", [False, True])
def test_average_precision_matches_sklearn_step_wise(weighted):
    bins = 1000
    w = W[:N] if weighted else None
    for y, p, kw in ((BIN[0], BIN[1], {}), (ML_Y, ML_P, {}), (MC3[0], MC3[1], {})):
        q = _binned(p, bins)
        want = skm.average_precision_score(y if y.ndim == 2 or p.ndim == 1 else np.eye(3)[y], q, sample_weight=w, **kw)
        assert_all_close(every_way(f"average_precision(bins={bins})", y, p, w, batches=(7, 1000)), want, rtol=1e-12)
    assert_all_close([fed("pr_auc(bins=1000)", BIN[0], BIN[1], w).result()],
                     skm.average_precision_score(BIN[0], _binned(BIN[1], bins), sample_weight=w), rtol=1e-12)


# --- 3. labels and predictions in the shapes people have --------------------------------------------------------
def keras_metric(metric, y, p, w=None):
    metric.update_state(np.asarray(y, np.float32), np.asarray(p, np.float32),
                        sample_weight=None if w is None else np.asarray(w, np.float32))
    return float(keras.ops.convert_to_numpy(metric.result()))


def test_one_hot_label_metrics_match_sklearn_and_keras():
    y, p, onehot = MC3
    w = W[:N]
    assert_all_close(every_way("categorical_accuracy", onehot, p, w), skm.accuracy_score(y, p.argmax(1), sample_weight=w))
    for k in (1, 2):
        assert_all_close(every_way(f"top_k_categorical_accuracy(k={k})", onehot, p, w),
                         skm.top_k_accuracy_score(y, p, k=k, sample_weight=w))
    for from_logits in (False, True):
        for smoothing in (0.0, 0.1):
            q = np.log(p) + 0.3 if from_logits else p
            want = keras_metric(keras.metrics.CategoricalCrossentropy(from_logits=from_logits,
                                                                      label_smoothing=smoothing), onehot, q, w)
            spec = f"categorical_crossentropy(from_logits={str(from_logits).lower()}, label_smoothing={smoothing})"
            assert_all_close(every_way(spec, onehot, q.astype(np.float32), w, batches=(7, 1000)), want, rtol=1e-5)


def test_binary_and_sparse_crossentropy_from_logits_and_smoothing_match_keras():
    y, p = BIN[0], BIN[1].clip(0.01, 0.99)
    logits = np.log(p / (1 - p)).astype(np.float32)
    for smoothing in (0.0, 0.2):
        want = keras_metric(keras.metrics.BinaryCrossentropy(from_logits=True, label_smoothing=smoothing), y, logits)
        spec = f"binary_crossentropy(from_logits=true, label_smoothing={smoothing})"
        assert_all_close(every_way(spec, y, logits), want, rtol=1e-5)
    yk, pk, _ = MC3
    logits = (np.log(pk) + 1.0).astype(np.float32)
    want = keras_metric(keras.metrics.SparseCategoricalCrossentropy(from_logits=True), yk, logits, W[:N])
    assert_all_close(every_way("sparse_categorical_crossentropy(from_logits=true)", yk, logits, W[:N]), want, rtol=1e-5)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=1, reduction=None)
    per_row = keras.ops.convert_to_numpy(loss(yk.astype(np.float32), logits))
    kept = yk != 1
    want = per_row[kept].mean()                     # rows of the ignored class take no part in the mean
    assert_all_close(every_way("sparse_categorical_crossentropy(from_logits=true, ignore_class=1)", yk, logits),
                     want, rtol=1e-5)


def test_labels_and_weights_as_columns_are_squeezed():
    y, p, _ = MC3
    w = W[:N]
    want = skm.precision_score(y, p.argmax(1), average="macro", sample_weight=w)
    got = fed('precision(average="macro")', y.reshape(-1, 1), p, w.reshape(-1, 1)).result()
    assert_all_close([got], want)
    assert_all_close([fed("accuracy", y.reshape(-1, 1), p, w.reshape(-1, 1)).result()],
                     skm.accuracy_score(y, p.argmax(1), sample_weight=w))


def test_per_element_sample_weights():
    yr = RNG.normal(size=(N, 3))
    pr = yr + RNG.normal(size=(N, 3))
    we = RNG.integers(0, 5, (N, 3)) / 4.0
    assert_all_close(every_way("mse", yr, pr, we), np.average((yr - pr) ** 2, weights=we))
    m = keras.metrics.Precision()                            # one weight per label, as Keras takes them
    want = keras_metric(m, ML_Y, ML_P, we[:, :1].repeat(4, 1) * np.arange(1, 5) / 2)
    got = fed("precision(threshold=0.5)", ML_Y, ML_P, we[:, :1].repeat(4, 1) * np.arange(1, 5) / 2).result()
    assert_all_close([got], want, rtol=1e-6)


def test_integer_predictions_are_labels_in_the_api_as_in_eval(tmp_path):
    y = np.array([2, 1, 0, 2, 1])
    predicted = np.array([2, 1, 1, 0, 1])
    m = fresh("accuracy")
    m.update(y, predicted)
    assert m.result() == skm.accuracy_score(y, predicted) == 0.6
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    out = helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"])
    graph = helper.make_graph([helper.make_node("ArgMax", ["x"], ["label"], axis=1, keepdims=0)], "g", [x], [out])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "argmax.onnx")
    np.savez(tmp_path / "d.npz", x=np.eye(3, dtype=np.float32)[predicted], y=y)
    result = run_cli("eval", "argmax.onnx", "--data", "d.npz", "--target", "y", "--metric", "accuracy", "--json",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert '"accuracy": 0.6' in result.stdout


def ten_class_model(tmp_path, rows=50):
    """An identity 'softmax' over 10 classes, its data (labels [rows] and [rows, 1], weights [rows, 1])."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 10])
    out = helper.make_tensor_value_info("p", TensorProto.FLOAT, ["batch", 10])
    graph = helper.make_graph([helper.make_node("Softmax", ["x"], ["p"], axis=1)], "g", [x], [out])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "softmax.onnx")
    rng = np.random.default_rng(3)
    y = rng.integers(0, 10, rows)
    logits = (rng.normal(size=(rows, 10)) + 2 * np.eye(10)[y]).astype(np.float32)
    w = (rng.integers(1, 5, rows) / 4.0).reshape(-1, 1)
    np.savez(tmp_path / "d.npz", x=logits, y=y, y1=y.reshape(-1, 1), w=w, frac=np.where(np.arange(rows) == 7, 1.5, y))
    return y, _softmax(logits.astype(np.float64)), w.ravel()


def test_cli_precision_on_a_ten_class_softmax(tmp_path):
    """Regression: `--metric precision` on a 10-class softmax failed inside the installed prelude; [N, 1] labels
    and [N, 1] weights were refused or died in numpy."""
    import json
    y, p, w = ten_class_model(tmp_path)
    for target in ("y", "y1"):
        result = run_cli("eval", "softmax.onnx", "--data", "d.npz", "--target", target, "--sample-weight", "w",
                         "--metric", "precision", "--metric", 'f1(average="macro")', "--metric", "auc(bins=1000)",
                         "--json", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        got = json.loads(result.stdout)["metrics"]
        assert got["precision"] == pytest.approx(skm.precision_score(y, p.argmax(1), average="micro", sample_weight=w),
                                                 rel=1e-12)
        assert got['f1(average="macro")'] == pytest.approx(
            skm.f1_score(y, p.argmax(1), average="macro", labels=range(10), sample_weight=w), rel=1e-12)


# --- 4. fractional labels and argument bounds (issue 13) ------------------------------------------------------
@pytest.mark.parametrize("spec", ["confusion_matrix(10)", "accuracy", "sparse_categorical_crossentropy",
                                  "top_k_accuracy(k=2)", 'precision(average="macro")'])
def test_fractional_labels_are_an_error_naming_row_and_value(tmp_path, spec):
    ten_class_model(tmp_path)
    result = run_cli("eval", "softmax.onnx", "--data", "d.npz", "--target", "frac", "--metric", spec,
                     "--batch-size", "5", cwd=tmp_path)
    assert result.returncode == 1
    assert f"metric '{spec}' takes class labels (whole numbers), but target row 7 holds 1.5" in result.stderr
    assert "Traceback" not in result.stderr
    m = fresh(spec)
    m.update(np.arange(5) % 3, MC3[1][:5])
    with pytest.raises(ModelcError, match="target row 7 holds 2.5"):
        m.update(np.array([0, 1, 2.5]), MC3[1][:3])           # rows 5, 6, 7 of the stream


@pytest.mark.parametrize("spec, message", [
    ("auc(bins=2000000000)", "bins=2000000000 must be an int in [1, 1,000,000]"),
    ("confusion_matrix(100000)", "k=100000 must be an int in [1, 4,096]"),
    ("top_k_accuracy(k=0)", "k=0 must be an int in [1, 1,000,000,000]"),
    ('precision(average="mirco")', "average='mirco' is not one of \"micro\", \"macro\", \"weighted\", \"none\"; "
                                   "did you mean 'micro'?"),
    ("precision(top_k=11)", "top_k=11 must be an int in [1, 10] (or none)"),
    ("recall(class_id=10)", "class_id=10 must be an int in [0, 9] (or none)"),
    ('auc(curve="ROC")', "curve='ROC' is not one of \"roc\", \"pr\""),
    ("auc(multi_label=true, label_weights=[1, 2])", "label_weights=[1, 2] must be a list of 10 non-negative numbers"),
])
def test_bad_metric_arguments_exit_1_naming_the_argument(tmp_path, spec, message):
    ten_class_model(tmp_path)
    result = run_cli("eval", "softmax.onnx", "--data", "d.npz", "--target", "y", "--metric", spec, cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    assert message in result.stderr and f"metric '{spec}'" in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


def test_cli_per_element_sample_weights(tmp_path):
    """One weight per score [N, 3] through `modelc eval`, as through Metric.update."""
    import json
    x = helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["batch", 3])
    out = helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["batch", 3])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [out])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "id.onnx")
    p = RNG.random((40, 3))
    t = (RNG.random((40, 3)) < 0.5).astype(np.float64)
    w = RNG.integers(0, 5, (40, 3)) / 4.0
    np.savez(tmp_path / "d.npz", x=p, t=t, w=w)
    result = run_cli("eval", "id.onnx", "--data", "d.npz", "--target", "t", "--sample-weight", "w", "--metric", "mse",
                     "--metric", "precision(threshold=0.5)", "--batch-size", "7", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)["metrics"]
    assert got["mse"] == pytest.approx(np.average((t - p) ** 2, weights=w), rel=1e-12)
    predicted = p > 0.5
    assert got["precision(threshold=0.5)"] == pytest.approx((w * predicted * t).sum() / (w * predicted).sum(), rel=1e-12)


def test_a_user_metric_with_a_batch_total_state(tmp_path):
    """`state s = sum(x, axis=[])` adds up per-batch totals of a fixed shape (class_counts' form); a state of another
    axis is an error."""
    import json
    y, p, w = ten_class_model(tmp_path)
    (tmp_path / "m.model").write_text(
        "metric support(y_true, y_pred, sample_weight) {\n"
        "    state counts = sum(class_counts(y_true, y_pred, sample_weight), axis=[])\n"
        "    return counts[2, :, 0]\n"
        "}\n"
        "metric bad(y_true, y_pred) {\n"
        "    state s = sum(y_pred, axis=1)\n"
        "    return s\n"
        "}\n")
    result = run_cli("eval", "softmax.onnx", "--data", "d.npz", "--target", "y", "--sample-weight", "w", "--import",
                     "m.model", "--metric", "support", "--batch-size", "7", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["metrics"]["support"] == np.bincount(y, weights=w, minlength=10).tolist()
    result = run_cli("eval", "softmax.onnx", "--data", "d.npz", "--target", "y", "--import", "m.model",
                     "--metric", "bad", cwd=tmp_path)
    assert result.returncode == 1
    assert "or for sum axis=[] (x is a batch's total already), got axis=1" in result.stderr


@pytest.mark.parametrize("max_rows", [None, 1 << 20])   # counted in float64, or in float32 (exact below 2**24)
@pytest.mark.parametrize("case", ["binary", "binary_column", "multilabel", "labels"])
@pytest.mark.parametrize("weighted", [False, True])
def test_class_counts_batch_last_against_numpy(case, weighted, max_rows):
    """The confusion counts [4, classes, thresholds] that precision's state graph lays out batch last (issue 11,
    performance), against numpy counting the same masks, on onnxruntime and onnx's reference evaluator; the
    labels-outside count of a binary metric comes from the batch's shape alone."""
    from onnx.reference import ReferenceEvaluator
    from modelc.runtime.metrics import MetricSet, metric_types
    from modelc.runtime.session import Session
    n, k, thresholds = 50, 3, [0.2, 0.5, 0.9]
    p = RNG.uniform(size={"binary": (n,), "binary_column": (n, 1)}.get(case, (n, k))).astype(np.float32)
    p[7] = np.nan
    y = (RNG.integers(0, k, n) if case == "labels" else RNG.integers(0, 2, p.shape)).astype(np.float32)
    w = RNG.integers(1, 5, n) / 4.0
    truth = (np.eye(k)[y.astype(int)] if case == "labels" else y.reshape(n, -1)) == 1          # [n, classes]
    above = p.reshape(n, -1)[:, :, None] > np.array(thresholds)                              # [n, classes, t]
    ws = (w if weighted else np.ones(n))[:, None, None]
    want = np.stack([((above & truth[:, :, None]) * ws).sum(0), (above * ws).sum(0),
                     np.broadcast_to((truth[:, :, None] * ws).sum(0), above.shape[1:]),
                     np.broadcast_to(ws.sum(0), above.shape[1:])])
    specs = [f"precision(threshold={thresholds})"]
    metrics = MetricSet(specs)
    graph = metrics.state_graph(*metric_types("y_pred", p.dtype, p.shape[1:], y.shape[1:]), weighted, max_rows=max_rows)
    feeds = {"y_true": y, "y_pred": p, **({"sample_weight": w} if weighted else {})}
    for run in (Session(graph).run, lambda f: dict(zip(
            [o.name for o in graph.graph.output], ReferenceEvaluator(graph).run(None, f)))):
        states = run(feeds)
        np.testing.assert_array_equal(states["m0.counts"], want)
        assert states["m0.labels_outside"].tolist() == [n, 0]
        assert int(states["nan_predictions"]) == 1


def test_sparse_categorical_crossentropy_normalizes_rows_as_keras():
    """Scores that do not sum to 1 are normalized first, as Keras (and categorical_crossentropy) do: rows of
    equal scores give ln 3 whatever their scale."""
    rng = np.random.default_rng(4)
    y, p, w = rng.integers(0, 4, 200), rng.random((200, 4)).astype(np.float32), rng.random(200)
    m = modelc.metric("sparse_categorical_crossentropy")
    m.update(y, p, w)
    k = keras.metrics.SparseCategoricalCrossentropy()
    k.update_state(y, p, sample_weight=w)
    assert m.result() == pytest.approx(float(k.result()), rel=1e-6)
    m = modelc.metric("sparse_categorical_crossentropy")
    m.update(np.array([0, 1, 2]), np.array([[.2, .2, .2], [.5, .5, .5], [1, 1, 1]], np.float32))
    assert m.result() == pytest.approx(np.log(3), rel=1e-6)


@pytest.mark.parametrize("name", ["Precision", "Recall", "F1Score", "AUC", "TruePositives", "FalseNegatives",
                                  "CategoricalAccuracy"])
def test_a_keras_class_name_takes_keras_defaults(name):
    """`--metric Precision` is Keras' Precision(): thresholds at 0.5 on multilabel scores (modelc's own default
    is each row's argmax), AUC() has 200 thresholds, F1Score() one value per class."""
    rng = np.random.default_rng(7)
    y, p = (rng.random((300, 3)) < 0.5).astype(np.float32), rng.random((300, 3)).astype(np.float32)
    m, k = modelc.metric(name), getattr(keras.metrics, name)()
    m.update(y, p)
    k.update_state(y, p)
    assert np.allclose(m.result(), np.asarray(k.result()), rtol=1e-5)


@pytest.mark.parametrize("bins", [10, 199, 200, 1000])
def test_auc_buckets_as_keras_on_every_grid(bins):
    """Scores on and beside the grid of every bin count (0.3f * 200 rounds to just above 60 in float32, which
    Keras' bucket, ceil(p * bins) - 1, puts in bin 60): the same value as AUC(num_thresholds=bins + 1)."""
    rng = np.random.default_rng(bins)
    p = np.concatenate([rng.integers(0, bins + 1, 500) / bins, [0.3, 0.299, 0.301, 0.15, 0.6]]).astype(np.float32)
    y = rng.integers(0, 2, len(p))
    m, k = modelc.metric(f"auc(bins={bins})"), keras.metrics.AUC(num_thresholds=bins + 1)
    m.update(y, p)
    k.update_state(y, p)
    assert m.result() == pytest.approx(float(k.result()), rel=1e-6)


def test_integer_predictions_of_more_than_two_classes_are_refused_not_miscounted():
    """Integer predictions are labels of one class against the rest: with classes 0, 1 and 2 an averaged score
    over classes cannot be known (it took class 1 alone); refused, naming the remedy. 0/1 labels still count."""
    m = modelc.metric('f1(average="macro")')
    with pytest.raises(ModelcError, match="give the class scores"):
        m.update(np.array([0, 1, 2, 1]), np.array([0, 2, 1, 1]))
    m = modelc.metric("precision")
    m.update(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 1]))
    assert m.result() == skm.precision_score([0, 1, 1, 0], [0, 1, 0, 1])


@pytest.mark.parametrize("spec", ["pr_auc", "calibration"])
def test_a_metric_of_one_score_per_row_refuses_class_scores_at_the_spec(spec):
    """Class labels against class scores in a metric of one score per row: a shape error at the spec, before
    any data runs (it was an onnxruntime ScatterElements failure)."""
    m = modelc.metric(spec)
    with pytest.raises(ModelcError, match=rf"metric '{spec}' on y_true \[batch\], y_pred \[batch, 3\]: bincount"):
        m.update(np.array([0, 1, 2, 1]), np.random.default_rng(0).random((4, 3)).astype(np.float32))


def test_states_of_other_class_counts_do_not_merge():
    a, b = modelc.metric('f1(average="macro")'), modelc.metric('f1(average="macro")')
    rng = np.random.default_rng(0)
    a.update(np.array([0, 1, 2]), rng.random((3, 3)).astype(np.float32))
    b.update(np.array([0, 1]), rng.random((2, 2)).astype(np.float32))
    with pytest.raises(ModelcError, match="cannot merge into one of shape"):
        a.merge(b)
