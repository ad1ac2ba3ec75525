"""Streaming metrics (LANGUAGE.md §6) against scikit-learn and the Keras formulas.

Tolerances (why):
- Counting metrics (binary_accuracy, accuracy, top_k_accuracy, precision, recall, f1,
  confusion_matrix) are ratios of integer counts, so they must equal scikit-learn exactly (==);
  with sample weights the weights are multiples of 1/4, so weighted counts stay exact too.
- Sums with float64 inputs: every term is computed in float64, and the float64 sums only differ from
  numpy's in summation order: ~N * 2**-53 ~ 1e-13 relative, so rtol = 1e-9 is ample and still tight.
- Sums with float32 inputs: as in Keras, each element's loss is computed in the model's dtype (float32)
  and only then summed in float64. Each float32 op has relative error <= 2**-24 ~ 6e-8 and a loss term
  goes through at most ~6 of them, so a term is within ~4e-7 relative (of its own size, for the
  terms with cancellation: log_cosh's `- log 2`, r2's variance); rtol = atol = 1e-6 covers that.
- auc / pr_auc (histograms of `bins` bins): compared with scikit-learn on the bin-quantized scores
  they are the same computation (1e-12). Against the raw scores the error is bounded from the
  histogram itself (bounds derived in auc_tie_bound / average_precision_bound below).
"""
from __future__ import annotations

import json
import math
import re
import warnings

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from onnx import TensorProto, helper
from sklearn import metrics as skm

import modelc
from modelc import ModelcError
from modelc.compiler import driver
from modelc.runtime.engine import evaluate
from modelc.runtime.metrics import Metric, metric_definitions

from helpers import fuzz_settings, run_cli

# --- data: float32 values; the tight runs feed them as float64 ---------------------------------
N = 1000
K = 4
_rng = np.random.default_rng(20261126)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


Y_REG = _rng.normal(size=N).astype(np.float32)
P_REG = (Y_REG + 0.8 * _rng.standard_t(3, size=N)).astype(np.float32)  # heavy tails: both huber branches
Y_BIN = _rng.integers(0, 2, N)
P_BIN = _sigmoid(1.2 * (2 * Y_BIN - 1) + 1.5 * _rng.normal(size=N)).astype(np.float32)
Y_CAT = _rng.integers(0, K, N)
_logits = _rng.normal(size=(N, K)) + 1.5 * np.eye(K)[Y_CAT]
P_CAT = np.exp(_logits) / np.exp(_logits).sum(1, keepdims=True)          # float64, rows sum to 1 in float64
W = _rng.integers(0, 9, N) / 4.0                                        # dyadic, zeros included: exact sums
assert 1e-6 < P_BIN.min() and P_BIN.max() < 1 - 1e-6                    # no Keras clipping at 1e-7 here
assert np.abs(P_REG - Y_REG).max() > 2.0 and np.abs(P_REG - Y_REG).min() < 1.0   # huber: both branches

BATCHES = [1, 7, 64, 1000]   # 7 and 64 leave a ragged last batch (1000 = 142*7 + 6 = 15*64 + 40)


def f64(x):
    return np.asarray(x, dtype=np.float64)


def huber(delta):                        # keras.losses.Huber
    def oracle(y, p, w=None):
        e = np.abs(f64(p) - f64(y))
        quadratic = np.minimum(e, delta)
        return np.average(0.5 * quadratic ** 2 + delta * (e - quadratic), weights=w)
    return oracle


def log_cosh(y, p, w=None):             # keras.losses.LogCosh, the formula
    return np.average(np.log(np.cosh(f64(p) - f64(y))), weights=w)


def above(p, threshold=0.5):
    return (f64(p) > threshold).astype(int)


REGRESSION = {                           # spec -> (oracle(y, p, w), exact)
    "mean": (lambda y, p, w=None: np.average(f64(p), weights=w), False),
    "mse": (lambda y, p, w=None: skm.mean_squared_error(y, p, sample_weight=w), False),
    "mae": (lambda y, p, w=None: skm.mean_absolute_error(y, p, sample_weight=w), False),
    "rmse": (lambda y, p, w=None: skm.root_mean_squared_error(y, p, sample_weight=w), False),
    "huber": (huber(1.0), False),
    "huber(threshold=0.5)": (huber(0.5), False),
    "log_cosh": (log_cosh, False),
    "r2": (lambda y, p, w=None: skm.r2_score(y, p, sample_weight=w), False),
}
BINARY = {
    "binary_accuracy": (lambda y, p, w=None: skm.accuracy_score(y, above(p), sample_weight=w), True),
    "binary_accuracy(threshold=0.3)": (lambda y, p, w=None: skm.accuracy_score(y, above(p, 0.3), sample_weight=w),
                                       True),
    "accuracy": (lambda y, p, w=None: skm.accuracy_score(y, above(p), sample_weight=w), True),
    "precision": (lambda y, p, w=None: skm.precision_score(y, above(p), sample_weight=w), True),
    "precision(threshold=0.7)": (lambda y, p, w=None: skm.precision_score(y, above(p, 0.7), sample_weight=w), True),
    "recall": (lambda y, p, w=None: skm.recall_score(y, above(p), sample_weight=w), True),
    "recall(threshold=0.3)": (lambda y, p, w=None: skm.recall_score(y, above(p, 0.3), sample_weight=w), True),
    "f1": (lambda y, p, w=None: skm.f1_score(y, above(p), sample_weight=w), True),
    "confusion_matrix(2)": (lambda y, p, w=None: skm.confusion_matrix(y, above(p), labels=[0, 1],
                                                                      sample_weight=w).tolist(), True),
    "binary_crossentropy": (lambda y, p, w=None: skm.log_loss(y, f64(p), labels=[0, 1], sample_weight=w), False),
}
CATEGORICAL = {
    "accuracy": (lambda y, p, w=None: skm.accuracy_score(y, np.argmax(p, 1), sample_weight=w), True),
    "top_k_accuracy(k=2)": (lambda y, p, w=None: skm.top_k_accuracy_score(y, p, k=2, labels=range(K),
                                                                          sample_weight=w), True),
    "confusion_matrix(4)": (lambda y, p, w=None: skm.confusion_matrix(y, np.argmax(p, 1), labels=range(K),
                                                                      sample_weight=w).tolist(), True),
    "sparse_categorical_crossentropy": (lambda y, p, w=None: skm.log_loss(y, f64(p), labels=range(K),
                                                                          sample_weight=w), False),
}
DATASETS = {"regression": (Y_REG, P_REG, REGRESSION), "binary": (Y_BIN, P_BIN, BINARY),
            "categorical": (Y_CAT, P_CAT, CATEGORICAL)}
WEIGHTED = {"regression": ["mse", "mae", "r2"],
            "binary": ["accuracy", "precision", "recall", "f1", "confusion_matrix(2)"],
            "categorical": ["accuracy", "confusion_matrix(4)"]}


def stream(spec, y, p, batch, w=None, metric=None):
    """One Metric fed consecutive slices of `batch` rows (the last one ragged)."""
    m = metric or modelc.metric(spec)
    for lo in range(0, len(p), batch):
        m.update(y[lo:lo + batch], p[lo:lo + batch], None if w is None else w[lo:lo + batch])
    return m


def check(spec, got, want, exact, rtol=1e-9, atol=0.0):
    if exact:
        assert got == want, f"{spec}: {got!r} != sklearn {want!r}"
    else:
        assert got == pytest.approx(want, rel=rtol, abs=atol), f"{spec}: {got!r} vs {want!r}"


# --- 1. every built-in vs scikit-learn, through several batch sizes ------------------------------
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("kind", list(DATASETS))
def test_builtins_match_sklearn_float64(kind, batch):
    y, p, oracles = DATASETS[kind]
    p = f64(p)
    for spec, (oracle, exact) in oracles.items():
        check(spec, stream(spec, y, p, batch).result(), oracle(y, p), exact)


@pytest.mark.parametrize("batch", [7, 1000])
@pytest.mark.parametrize("kind", list(DATASETS))
def test_builtins_match_sklearn_float32(kind, batch):
    """float32 predictions: the per-element losses are float32 (as in Keras), counts stay exact."""
    y, p, oracles = DATASETS[kind]
    p = np.asarray(p, np.float32)
    for spec, (oracle, exact) in oracles.items():
        if spec == "sparse_categorical_crossentropy":   # float32 rows do not sum to 1; sklearn would renormalize
            oracle = lambda y, p, w=None: -np.mean(np.log(f64(p)[np.arange(len(y)), y]))  # noqa: E731
        check(spec, stream(spec, y, p, batch).result(), oracle(y, p), exact, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("batch", [1, 7, 1000])
@pytest.mark.parametrize("kind", list(DATASETS))
def test_builtins_with_sample_weight(kind, batch):
    y, p, oracles = DATASETS[kind]
    p = f64(p)
    for spec in WEIGHTED[kind]:
        oracle, exact = oracles[spec]
        check(spec, stream(spec, y, p, batch, W).result(), oracle(y, p, W), exact)


def test_weight_one_is_unweighted_and_zero_weights_drop_rows():
    p = f64(P_BIN)
    keep = W > 0
    for spec in ("precision", "f1", "confusion_matrix(2)", "mse"):
        ones = stream(spec, Y_BIN, p, 64, np.ones(N)).result()              # * 1.0 is exact: so is the result
        assert ones == stream(spec, Y_BIN, p, 64).result(), spec
        dropped = stream(spec, Y_BIN, p, 64, keep.astype(float)).result()
        check(spec, dropped, stream(spec, Y_BIN[keep], p[keep], 7).result(), exact=spec != "mse", rtol=1e-12)


def test_trailing_dimension_of_one_is_dropped():
    p = f64(P_BIN)
    for spec in ("precision", "binary_crossentropy", "auc", "confusion_matrix(2)"):
        assert stream(spec, Y_BIN, p[:, None], 7).result() == stream(spec, Y_BIN, p, 7).result()


# --- auc and pr_auc: their binning error -------------------------------------------------------
LOGIT_EPSILON = 1e-9


def score_bin(p, bins, spacing="uniform"):
    """numpy twin of score_bin(): equal widths in [0, 1], or in log-odds over [1e-9, 1 - 1e-9]."""
    x = f64(p)
    if spacing == "uniform":
        x = np.clip(x, 0.0, 1.0)
    else:
        limit = math.log((1.0 - LOGIT_EPSILON) / LOGIT_EPSILON)
        x = np.clip(x, LOGIT_EPSILON, 1.0 - LOGIT_EPSILON)
        x = (np.log(x / (1.0 - x)) + limit) / (2.0 * limit)
    return np.clip(np.floor(x * bins), 0, bins - 1).astype(np.int64)


def histograms(y, p, bins, spacing="uniform", w=None):
    w = np.ones(len(y)) if w is None else f64(w)
    b = score_bin(p, bins, spacing)
    return (np.bincount(b, weights=w * (y == 1), minlength=bins),
            np.bincount(b, weights=w * (y != 1), minlength=bins))


def auc_tie_bound(y, p, bins, spacing="uniform", w=None):
    """|binned AUC - exact AUC| <= sum_b pos_b * neg_b / (2 P N).

    The binned AUC scores each (positive, negative) pair in one bin as a tie (1/2); the exact AUC
    scores it 1 or 0; pairs in different bins are ordered alike. Only those pairs differ, by 1/2.
    """
    pos, neg = histograms(y, p, bins, spacing, w)
    return float((pos * neg).sum() / (2 * pos.sum() * neg.sum()))


def average_precision_bound(y, p, bins, spacing="uniform"):
    """|binned AP - exact AP| for distinct raw scores (unweighted).

    Exact AP = (1/P) sum over positives i of t_i / (t_i + f_i), the precision at i's score. Binned, a
    positive of bin b gets T/(T+F), the counts at or above bin b. With t = T - a, f = F - c:
    |t/(t+f) - T/(T+F)| = |Tc - aF| / ((t+f)(T+F)) <= max(a, c) / (t+f). For the j-th positive from
    the top of bin b, a = pos_b - j, c <= neg_b and t + f >= N_above + j, with N_above the count of
    the higher bins; and the difference is at most 1.
    """
    pos, neg = histograms(y, p, bins, spacing)
    total, above_b = 0.0, 0.0
    for b in range(bins - 1, -1, -1):
        for j in range(1, int(pos[b]) + 1):
            total += min(1.0, max(pos[b] - j, neg[b]) / (above_b + j))
        above_b += pos[b] + neg[b]
    return total / pos.sum()


AUC_SPECS = [("auc", 200, "uniform"), ("auc(bins=50)", 50, "uniform"),
             ("auc(bins=4096, spacing=\"logit\")", 4096, "logit"),
             ("pr_auc", 200, "uniform"), ("pr_auc(bins=1000)", 1000, "uniform"),
             ("pr_auc(bins=4096, spacing=\"logit\")", 4096, "logit")]


@pytest.mark.parametrize("batch", BATCHES)
def test_auc_and_pr_auc_within_binning_error(batch):
    p = f64(P_BIN)
    for spec, bins, spacing in AUC_SPECS:
        got = stream(spec, Y_BIN, p, batch).result()
        if spec.startswith("auc"):
            exact, bound = skm.roc_auc_score(Y_BIN, p), auc_tie_bound(Y_BIN, p, bins, spacing)
            binned = skm.roc_auc_score(Y_BIN, score_bin(p, bins, spacing))
        else:
            exact, bound = skm.average_precision_score(Y_BIN, p), average_precision_bound(Y_BIN, p, bins, spacing)
            binned = skm.average_precision_score(Y_BIN, score_bin(p, bins, spacing))
        assert got == pytest.approx(binned, abs=1e-12), spec       # the same computation as sklearn on bins
        assert abs(got - exact) <= bound + 1e-12, (spec, got, exact, bound)
        assert bound < 0.05, (spec, bound)                          # and the bound says something


@pytest.mark.parametrize("batch", [7, 1000])
def test_auc_with_sample_weight(batch):
    p = f64(P_BIN)
    got = stream("auc", Y_BIN, p, batch, W).result()
    assert got == pytest.approx(skm.roc_auc_score(Y_BIN, score_bin(p, 200), sample_weight=W), abs=1e-12)
    bound = auc_tie_bound(Y_BIN, p, 200, w=W)
    assert abs(got - skm.roc_auc_score(Y_BIN, p, sample_weight=W)) <= bound + 1e-12
    got = stream("pr_auc", Y_BIN, p, batch, W).result()
    assert got == pytest.approx(skm.average_precision_score(Y_BIN, score_bin(p, 200), sample_weight=W), abs=1e-12)


def test_logit_bins_are_exact_for_a_confident_model():
    """Scores mostly above 0.95 (logits ~4..20): 200 uniform bins lump them, 4096 logit bins do not.

    A logit bin is 2 * log((1 - 1e-9) / 1e-9) / 4096 ~ 0.01 wide; the logits of a positive and a negative
    differ by N(9, 2.1), so the share of (positive, negative) pairs in one bin is ~ 0.01 * pdf(0) ~ 2e-7,
    and half that is the AUC error bound (auc_tie_bound). Uniform bins: bin 199 holds every score above
    0.995 (logit 5.3), i.e. nearly all positives and ~20% of the negatives, all tied.
    """
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 4000)
    logits = np.where(y == 1, 13.0, 4.0) + 1.5 * rng.normal(size=len(y))
    p = _sigmoid(logits)
    exact = skm.roc_auc_score(y, logits)
    assert 0.999 < exact < 1.0                                     # confident, but not perfectly separable
    logit_spec = "auc(bins=4096, spacing=\"logit\")"
    for batch in (7, 4000):
        fine = stream(logit_spec, y, p, batch).result()
        coarse = stream("auc", y, p, batch).result()
        assert fine == pytest.approx(skm.roc_auc_score(y, score_bin(p, 4096, "logit")), abs=1e-12)
        assert abs(fine - exact) <= auc_tie_bound(y, p, 4096, "logit") + 1e-12
        assert abs(fine - exact) <= 1e-6, fine - exact
        assert coarse == pytest.approx(skm.roc_auc_score(y, score_bin(p, 200)), abs=1e-12)
        assert abs(coarse - exact) > 0.01, coarse - exact          # uniform bins: off by far more


# --- 1b. the same through evaluate() on an .npz file --------------------------------------------
def identity_model(shape, elem=TensorProto.DOUBLE):
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity",
                              [helper.make_tensor_value_info("x", elem, ["batch", *shape])],
                              [helper.make_tensor_value_info("y", elem, ["batch", *shape])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


EVAL_SPECS = {"regression": ["mean", "mse", "rmse", "huber", "log_cosh", "r2"],
              "binary": ["binary_accuracy", "precision", "recall", "f1", "confusion_matrix(2)",
                         "binary_crossentropy"],
              "categorical": ["accuracy", "top_k_accuracy(k=2)", "confusion_matrix(4)",
                              "sparse_categorical_crossentropy"]}


@pytest.mark.parametrize("batch", [7, 64, 1000])
@pytest.mark.parametrize("kind", list(DATASETS))
def test_evaluate_matches_sklearn(kind, batch, tmp_path):
    y, p, oracles = DATASETS[kind]
    p = f64(p)
    data = tmp_path / "data.npz"
    np.savez(data, x=p, label=y, w=W)
    model = identity_model(p.shape[1:])
    specs = EVAL_SPECS[kind] + (["auc"] if kind == "binary" else [])
    out = evaluate(model, str(data), "label", metrics=specs, batch_size=batch)
    assert out["samples"] == N and out["batches"] == -(-N // batch) and out["nan_predictions"] == 0
    for spec in EVAL_SPECS[kind]:
        oracle, exact = oracles[spec]
        check(spec, out["metrics"][spec], oracle(y, p), exact)
    if kind == "binary":
        assert out["metrics"]["auc"] == pytest.approx(skm.roc_auc_score(y, score_bin(p, 200)), abs=1e-12)
    weighted = WEIGHTED[kind]
    out = evaluate(model, str(data), "label", metrics=weighted, batch_size=batch, sample_weight="w")
    for spec in weighted:
        oracle, exact = oracles[spec]
        check(spec, out["metrics"][spec], oracle(y, p, W), exact)


def test_evaluate_float32_model_with_trailing_one(tmp_path):
    data = tmp_path / "data.npz"
    np.savez(data, x=P_BIN[:, None], label=Y_BIN)
    out = evaluate(identity_model([1], TensorProto.FLOAT), str(data), "label",
                   metrics=["precision", "confusion_matrix(2)", "binary_crossentropy"], batch_size=64)
    assert out["metrics"]["precision"] == BINARY["precision"][0](Y_BIN, P_BIN)
    assert out["metrics"]["confusion_matrix(2)"] == BINARY["confusion_matrix(2)"][0](Y_BIN, P_BIN)
    assert out["metrics"]["binary_crossentropy"] == pytest.approx(skm.log_loss(Y_BIN, f64(P_BIN)), rel=1e-6)


def test_cli_eval_json(tmp_path):
    model, data = tmp_path / "id.onnx", tmp_path / "data.npz"
    onnx.save(identity_model([]), model)
    np.savez(data, x=f64(P_BIN), label=Y_BIN)
    run = run_cli("eval", model, "--data", data, "--target", "label", "--metric", "f1",
                  "--metric", "confusion_matrix(2)", "--batch-size", "33", "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["metrics"]["f1"] == skm.f1_score(Y_BIN, above(P_BIN))
    assert out["metrics"]["confusion_matrix(2)"] == skm.confusion_matrix(Y_BIN, above(P_BIN)).tolist()


# --- 2. why states, not per-batch values --------------------------------------------------------
def test_averaging_per_batch_precision_is_wrong():
    batches = [(np.array([1]), np.array([0.9])),                            # precision 1/1
               (np.array([0] * 9 + [1]), np.full(10, 0.9))]                # precision 1/10
    per_batch = [skm.precision_score(y, above(p)) for y, p in batches]
    y_all = np.concatenate([b[0] for b in batches])
    p_all = np.concatenate([b[1] for b in batches])
    true_precision = skm.precision_score(y_all, above(p_all))             # 2/11
    assert np.mean(per_batch) == pytest.approx(0.55) and true_precision == pytest.approx(2 / 11)
    m = modelc.metric("precision")
    for y, p in batches:
        m.update(y, p)
    assert m.result() == true_precision == 2 / 11
    assert abs(np.mean(per_batch) - m.result()) > 0.3


# --- 3. merging: associative, commutative, partition-independent -------------------------------
RANGE_METRIC = """
metric value_range(y_true, y_pred) {
    state low = min(y_pred)
    state high = max(y_pred)
    return high - low
}
"""
_DEFINITIONS = metric_definitions(driver.load_source(RANGE_METRIC))
M = 120                                                   # rows used by the property tests
PROPERTY_SPECS = {"mse": "regression", "r2": "regression", "value_range": "regression",
                  "precision": "binary", "confusion_matrix(2)": "binary", "auc": "binary",
                  "top_k_accuracy(k=2)": "categorical"}
PROPERTY_SETTINGS = fuzz_settings(30, suppress_health_check=[HealthCheck.too_slow])


def new_metric(spec):
    return Metric(spec, _DEFINITIONS)


def property_data(spec):
    y, p, _ = DATASETS[PROPERTY_SPECS[spec]]
    return y[:M], f64(p[:M])


_SINGLE = {spec: stream(spec, *property_data(spec), M, metric=new_metric(spec)) for spec in PROPERTY_SPECS}
_POOL = {spec: [new_metric(spec) for _ in range(8)] for spec in PROPERTY_SPECS}   # sessions built once


def assert_same_states(got, want, spec):
    assert got.keys() == want.keys(), spec
    for name in want:
        g, w = np.asarray(got[name]), np.asarray(want[name])
        if w.dtype.kind in "iub" or name.endswith(("low", "high")):   # counts and min/max: exact
            assert g.dtype == w.dtype and np.array_equal(g, w), (spec, name, g, w)
        else:                                                         # float sums: summation order only
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=f"{spec} {name}")


def assert_same_result(got, want, spec):
    if isinstance(want, float) and not spec.startswith(("precision", "top_k")):
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12), spec
    else:
        assert got == want, spec


def cuts_strategy(n):
    return st.lists(st.integers(0, n), max_size=7).map(lambda c: [0, *sorted(c), n])   # empty chunks allowed


@PROPERTY_SETTINGS
@given(spec=st.sampled_from(sorted(PROPERTY_SPECS)), cuts=cuts_strategy(M), data=st.data())
def test_any_partition_merged_in_any_order_is_the_single_pass(spec, cuts, data):
    y, p = property_data(spec)
    chunks = list(zip(cuts[:-1], cuts[1:]))
    pool = _POOL[spec]
    for m, (lo, hi) in zip(pool, chunks):
        m.reset()
        m.update(y[lo:hi], p[lo:hi])
    order = data.draw(st.permutations(range(len(chunks))))
    merged = new_metric(spec)                 # a fresh metric, never updated, takes the others
    for i in order:
        merged.merge(pool[i])
    single = _SINGLE[spec]
    assert_same_states(merged.state_dict(), single.state_dict(), spec)
    assert_same_result(merged.result(), single.result(), spec)


@PROPERTY_SETTINGS
@given(spec=st.sampled_from(sorted(PROPERTY_SPECS)), cuts=st.lists(st.integers(0, M), min_size=2, max_size=2))
def test_merge_is_associative_and_commutative(spec, cuts):
    y, p = property_data(spec)
    lo, hi = sorted(cuts)
    states = []
    for a, b in ((0, lo), (lo, hi), (hi, M)):
        m = _POOL[spec][0]
        m.reset()
        m.update(y[a:b], p[a:b])
        states.append(m.state_dict())

    def loaded(state):
        m = new_metric(spec)
        m.load_state_dict(state)
        return m

    a, b, c = states
    ab, ba = loaded(a).merge(loaded(b)), loaded(b).merge(loaded(a))
    for name in ab.state_dict():                                  # float addition commutes exactly
        assert np.array_equal(ab.state_dict()[name], ba.state_dict()[name]), (spec, name)
    left = loaded(a).merge(loaded(b)).merge(loaded(c))
    right = loaded(a).merge(loaded(b).merge(loaded(c)))
    assert_same_states(left.state_dict(), right.state_dict(), spec)
    assert_same_states(left.state_dict(), _SINGLE[spec].state_dict(), spec)
    assert_same_result(left.result(), right.result(), spec)


# --- 4. semantics --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prediction_equal_to_threshold_is_negative(dtype):
    y = np.array([1, 1, 0, 0])
    for threshold in (0.5, 0.3, 0.7):
        t = dtype(threshold)
        p = np.array([t, np.nextafter(t, dtype(1)), t, np.nextafter(t, dtype(1))], dtype=dtype)
        spec = f"precision(threshold={threshold})"
        assert stream(spec, y, p, 4).result() == 0.5                         # only the two above are positive
        assert stream(f"recall(threshold={threshold})", y, p, 4).result() == 0.5
        assert stream(f"binary_accuracy(threshold={threshold})", y, p, 4).result() == 0.5
        assert stream(f"confusion_matrix(2, threshold={threshold})", y, p, 4).result() == [[1, 1], [1, 1]]


def test_nan_predictions_are_counted_not_silent(tmp_path):
    p = f64(P_BIN).copy()
    nan_rows = [3, 10, 500]
    p[nan_rows] = np.nan
    data = tmp_path / "nan.npz"
    np.savez(data, x=p, label=Y_BIN)
    specs = ["precision", "binary_accuracy", "confusion_matrix(2)", "auc", "pr_auc", "mse"]
    with pytest.warns(RuntimeWarning, match="mse"):                           # mse is NaN: said so
        out = evaluate(identity_model([]), str(data), "label", metrics=specs, batch_size=64)
    assert out["nan_predictions"] == len(nan_rows)
    assert math.isnan(out["metrics"]["mse"])
    # counting metrics follow Keras' `y_pred > threshold` (a NaN is not above it) -- and are reported above
    p0 = np.where(np.isnan(p), 0.0, p)
    assert out["metrics"]["precision"] == skm.precision_score(Y_BIN, above(p0))
    assert out["metrics"]["confusion_matrix(2)"] == skm.confusion_matrix(Y_BIN, above(p0)).tolist()
    # auc: a NaN score is the lowest (below every threshold, as in Keras), not an out-of-range bin
    assert out["metrics"]["auc"] == pytest.approx(skm.roc_auc_score(Y_BIN, score_bin(p0, 200)), abs=1e-12)
    m = stream("auc", Y_BIN, p, 7)
    assert int(m.state_dict()["nan_predictions"]) == len(nan_rows)


def test_nan_predictions_counts_rows_of_class_scores(tmp_path):
    p = P_CAT.copy()
    p[[2, 9]] = np.nan                                                        # two predictions, 2*K NaN scores
    data = tmp_path / "nan.npz"
    np.savez(data, x=p, label=Y_CAT)
    out = evaluate(identity_model([K]), str(data), "label", metrics=["accuracy"], batch_size=64)
    assert out["nan_input_rows"] == 2
    assert out["nan_predictions"] == 2


@pytest.mark.parametrize("spec", ["mse", "precision", "auc", "confusion_matrix(2)", "accuracy"])
def test_empty_batch_is_a_no_op(spec):
    m = stream(spec, Y_BIN[:50], f64(P_BIN[:50]), 7)
    before, result = m.state_dict(), m.result()
    m.update(np.array([]), np.array([]))
    m.update(np.zeros(0), np.zeros((0, 1)))
    m.update(Y_BIN[:0], f64(P_BIN)[:0], sample_weight=np.zeros(0))
    after = m.state_dict()
    assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)
    assert m.result() == result
    fresh = modelc.metric(spec)
    fresh.update(np.array([]), np.array([]))
    assert fresh.state_dict() == {}
    with pytest.warns(RuntimeWarning):
        assert math.isnan(fresh.result())


def test_categorical_empty_batch_is_a_no_op():
    m = stream("top_k_accuracy(k=2)", Y_CAT[:50], P_CAT[:50], 7)
    before = m.state_dict()
    m.update(Y_CAT[:0], P_CAT[:0])
    assert all(np.array_equal(before[k], v) for k, v in m.state_dict().items())


@pytest.mark.parametrize("spec,label", [("auc", 0), ("auc", 1), ("auc(bins=4096, spacing=\"logit\")", 1),
                                        ("pr_auc", 0)])          # pr_auc without negatives is 1.0 (below)
def test_one_class_auc_is_nan_with_a_warning(spec, label):
    m = modelc.metric(spec)
    m.update(np.full(20, label), f64(P_BIN[:20]))
    with pytest.warns(RuntimeWarning, match=re.escape(spec)):
        assert math.isnan(m.result())


def test_pr_auc_without_negatives_is_one():
    m = modelc.metric("pr_auc")
    m.update(np.ones(20), f64(P_BIN[:20]))
    assert m.result() == 1.0 == pytest.approx(skm.average_precision_score(np.ones(20), f64(P_BIN[:20])))


def test_counts_beyond_2_to_the_24_stay_exact():
    n = 2 ** 24 + 3                                          # not a float32: float32 counters would round
    ones = np.ones(n, dtype=np.float32)
    for spec, counters in (("binary_accuracy", ("m0.matches", "m0.count")),
                           ("precision", ("m0.counts", "m0.counts"))):   # [tp, predicted, actual, rows] float64
        m = modelc.metric(spec)
        m.update(ones, ones)                                 # n hits
        m.update(np.zeros(1, np.float32), np.ones(1, np.float32))   # one miss (a false positive)
        state = m.state_dict()
        first, second = (state[c] if state[c].ndim == 0 else state[c][i].ravel()[0] for i, c in enumerate(counters))
        assert int(first) == first == n and state[counters[0]].dtype.kind in "if", (spec, state)
        assert int(second) == second == n + 1 and state[counters[1]].dtype.kind in "if", (spec, state)
        assert m.result() == n / (n + 1) != 1.0


def test_state_dict_round_trip_and_reset():
    p = f64(P_BIN)
    for spec in ("precision", "auc", "confusion_matrix(2)", "r2"):
        y = Y_BIN if spec != "r2" else f64(Y_REG)
        q = p if spec != "r2" else f64(P_REG)
        m = stream(spec, y, q, 64)
        state = m.state_dict()
        state[next(iter(state))] += 1                        # a copy: editing it leaves the metric alone
        assert m.result() == stream(spec, y, q, 64).result()
        fresh = modelc.metric(spec)                          # a new metric, never updated, from the states
        fresh.load_state_dict(m.state_dict())
        assert fresh.result() == m.result()
        fresh.update(y, q)                                   # and it keeps streaming
        assert_same_result(fresh.result(), stream(spec, np.concatenate([y, y]), np.concatenate([q, q]), 64).result(),
                           spec)
        m.reset()
        assert m.state_dict() == {}
        stream(spec, y[:100], q[:100], 7, metric=m)
        assert m.result() == stream(spec, y[:100], q[:100], 7).result()


def test_loading_another_metrics_states_is_an_error():
    m = stream("precision", Y_BIN, f64(P_BIN), 1000)
    with pytest.raises(ModelcError, match="r2.*sum_true"):
        modelc.metric("r2").load_state_dict(m.state_dict())


@pytest.mark.parametrize("spec,other", [("precision", "precision(threshold=0.7)"), ("precision", "recall"),
                                        ("auc", "auc(bins=100)"), ("auc", "pr_auc")])
def test_merging_another_metric_is_an_error(spec, other):
    m, o = stream(spec, Y_BIN, f64(P_BIN), 1000), stream(other, Y_BIN, f64(P_BIN), 1000)
    before = m.state_dict()
    with pytest.raises(ModelcError, match="cannot merge"):
        m.merge(o)
    assert all(np.array_equal(before[k], v) for k, v in m.state_dict().items())


def test_merging_the_same_metric_spelled_otherwise():
    m = stream("precision", Y_BIN[:500], f64(P_BIN[:500]), 1000)   # defaults: threshold=none, average="micro"
    m.merge(stream('precision(none, average="micro")', Y_BIN[500:], f64(P_BIN[500:]), 1000))
    assert m.result() == skm.precision_score(Y_BIN, above(P_BIN))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_crossentropy_clips_like_keras(dtype):
    y = np.array([1, 0, 1, 0, 1])
    p = np.array([0.0, 1.0, 1.0, 0.0, 0.25], dtype=dtype)
    eps = dtype(1e-7)                                        # Keras: clip to [eps, 1 - eps] in the model's dtype
    q = f64(np.clip(p, eps, dtype(1) - eps))
    want = np.mean(-(y * np.log(q) + (1 - y) * np.log(f64(dtype(1) - q.astype(dtype)))))
    got = stream("binary_crossentropy", y, p, 2).result()
    assert math.isfinite(got) and got == pytest.approx(want, rel=1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("p", [np.full(6, 2.0), np.array([2.0, 2.0, 2.0, 2.5, 2.0, 2.0])])
def test_r2_of_a_constant_target_is_sklearns(p):
    y = np.full(6, 2.0)
    m = stream("r2", y, p, 4)
    assert m.result() == skm.r2_score(y, p)                  # 1.0 when perfect, else 0.0 (force_finite)


# --- 5. labels outside the metric's range ---------------------------------------------------------
_EYE3 = np.eye(3)
_P4 = P_CAT[:3]
OUT_OF_RANGE = [
    ("confusion_matrix(3)", np.array([0, 1, 5]), _EYE3),
    ("confusion_matrix(3)", np.array([0, -1, 2]), _EYE3),
    ("confusion_matrix(2)", np.array([0, 1, 1]), _EYE3[[2, 1, 0]]),        # a predicted class (2) outside
    ("confusion_matrix(2)", np.array([0, 1, 2]), np.array([0.1, 0.9, 0.8])),
    ("sparse_categorical_crossentropy", np.array([0, 4, 1]), _P4),
    ("sparse_categorical_crossentropy", np.array([0, -1, 1]), _P4),
    ("top_k_accuracy(k=2)", np.array([0, 4, 1]), _P4),
    ("top_k_accuracy(k=2)", np.array([-1, 0, 1]), _P4),
]


@pytest.mark.parametrize("spec,y,p", OUT_OF_RANGE)
def test_labels_outside_the_range_are_a_clear_error(spec, y, p):
    m = modelc.metric(spec)
    m.update(np.array([0]), p[-1:])                         # a good batch first
    before = m.state_dict()
    with pytest.raises(ModelcError, match=re.escape(spec) + r": 1 rows have a label .*outside the classes"):
        m.update(y, p)
    after = m.state_dict()                                   # the bad batch changed nothing
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_labels_outside_the_range_through_evaluate_and_cli(tmp_path):
    labels = np.where(np.arange(N) == 777, 5, Y_CAT % 3)
    scores = P_CAT[:, :3] / P_CAT[:, :3].sum(1, keepdims=True)
    data, model = tmp_path / "bad.npz", tmp_path / "id.onnx"
    np.savez(data, x=scores, label=labels)
    onnx.save(identity_model([3]), model)
    with pytest.raises(ModelcError, match=r"confusion_matrix\(3\): 1 rows have a label"):
        evaluate(str(model), str(data), "label", metrics=["confusion_matrix(3)"], batch_size=64)
    run = run_cli("eval", model, "--data", data, "--target", "label", "--metric", "confusion_matrix(3)")
    assert run.returncode != 0 and "confusion_matrix(3)" in run.stderr and "Traceback" not in run.stderr


def test_no_stray_warnings_on_ordinary_data():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for kind, (y, p, oracles) in DATASETS.items():
            for spec in oracles:
                stream(spec, y, f64(p), 1000).result()


def test_y_true_that_does_not_meet_y_pred_is_an_error():
    m = modelc.metric("mae")
    with pytest.raises(modelc.ModelcError, match=r"y_true \[batch, 2\] does not meet y_pred \[batch, 1\]"):
        m.update(np.array([[1.0, 2.0], [2.0, 3.0]]), np.array([[1.0], [3.0]]))
