"""Regression metrics and the names people type (issue 11, items 4-5): r2(multioutput=, num_regressors=)
against scikit-learn's r2_score and Keras' R2Score; per-column states (`sum(x, axis=0)`); Keras' metric
names and keywords as aliases, checked against Keras' own metrics; modelc.metric(imports=); errors of a
built-in metric reported at the user's spec.

Every streamed result goes through batches of 1, 7 and 1,000 rows, a merge of two halves in both orders and
a save/load of the states (np.savez), and equals the oracle on the whole data (float64 data: rtol 1e-9,
the float64 sums differ from numpy's in order only).
"""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from sklearn import metrics as skm
from sklearn.metrics import r2_score

import modelc
from modelc import ModelcError

from helpers import run_cli

N = 1000
_rng = np.random.default_rng(11)
Y = _rng.normal(size=(N, 3)) * [1.0, 5.0, 0.5] + [0.0, 3.0, -1.0]        # three outputs of unlike variance
P = Y + _rng.normal(size=(N, 3)) * [0.2, 4.0, 0.9]                     # one good, one poor, one worse than mean
W = _rng.integers(0, 9, N) / 4.0                                        # dyadic weights, zeros included
MULTIOUTPUT = ["uniform_average", "variance_weighted", "raw_values"]


def stream(spec, y, p, batch, w=None, **kwargs):
    m = modelc.metric(spec, **kwargs)
    for lo in range(0, len(y), batch):
        m.update(y[lo:lo + batch], p[lo:lo + batch], None if w is None else w[lo:lo + batch])
    return m


def halves_and_reload(spec, y, p, w, tmp_path):
    """The result of two halves merged in both orders, and of states saved and loaded into a fresh metric."""
    cut = len(y) // 3
    parts = [stream(spec, y[s], p[s], 64, None if w is None else w[s]) for s in (slice(0, cut), slice(cut, None))]
    results = []
    for first, second in ((0, 1), (1, 0)):
        merged = modelc.metric(spec)
        merged.load_state_dict(parts[first].state_dict())
        results.append(merged.merge(parts[second]).result())
    path = tmp_path / "states.npz"
    np.savez(path, **stream(spec, y, p, 1000, w).state_dict())
    loaded = modelc.metric(spec)
    loaded.load_state_dict(dict(np.load(path)))
    return results + [loaded.result()]


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("multioutput", MULTIOUTPUT)
def test_r2_multioutput_matches_sklearn(multioutput, weighted, tmp_path):
    w = W if weighted else None
    want = r2_score(Y, P, multioutput=multioutput, sample_weight=w)
    spec = f'r2(multioutput="{multioutput}")'
    got = [stream(spec, Y, P, batch, w).result() for batch in (1, 7, 1000)] + halves_and_reload(spec, Y, P, w,
                                                                                              tmp_path)
    for value in got:
        np.testing.assert_allclose(value, want, rtol=1e-9)


def test_r2_default_averages_the_columns_as_sklearn():
    """r2 on two-column targets used to pool all columns into one score; scikit-learn's default averages."""
    got = stream("r2", Y[:, :2], P[:, :2], 100).result()
    assert got == pytest.approx(r2_score(Y[:, :2], P[:, :2]), rel=1e-9)
    pooled = 1 - ((Y[:, :2] - P[:, :2]) ** 2).sum() / ((Y[:, :2] - Y[:, :2].mean()) ** 2).sum()
    assert abs(got - pooled) > 0.1
    assert stream("r2", Y[:, 0], P[:, 0], 7).result() == pytest.approx(r2_score(Y[:, 0], P[:, 0]), rel=1e-9)


def test_r2_constant_outputs_follow_sklearn():
    """A constant output scores 1.0 when predicted exactly and 0.0 otherwise (force_finite); with every
    output constant, variance_weighted falls back to the uniform average, as scikit-learn does."""
    y = np.stack([np.full(20, 2.0), np.full(20, -1.0), np.linspace(0, 1, 20)], axis=1)
    p = np.stack([np.full(20, 2.0), np.full(20, 0.0), np.linspace(0, 1, 20) ** 2], axis=1)
    for multioutput in MULTIOUTPUT:
        np.testing.assert_allclose(stream(f'r2(multioutput="{multioutput}")', y, p, 7).result(),
                                   r2_score(y, p, multioutput=multioutput), rtol=1e-12)
    only_constant = 'r2(multioutput="variance_weighted")'
    assert stream(only_constant, y[:, :2], p[:, :2], 7).result() == r2_score(y[:, :2], p[:, :2],
                                                                             multioutput="variance_weighted") == 0.5


@pytest.mark.parametrize("aggregation,multioutput", [("uniform_average", "uniform_average"),
                                                      ("variance_weighted_average", "variance_weighted")])
def test_adjusted_r2_matches_keras(aggregation, multioutput):
    """One output: Keras' n is the number of elements (rows x outputs), modelc's the rows (observations), so
    they agree on one output; on several, the textbook formula on scikit-learn's r2 with n = rows."""
    keras = pytest.importorskip("keras_oracle").keras
    k = keras.metrics.R2Score(class_aggregation=aggregation, num_regressors=4)
    k.update_state(Y[:, 1:2].astype(np.float32), P[:, 1:2].astype(np.float32))
    one = stream(f'R2Score(class_aggregation="{aggregation}", num_regressors=4)', Y[:, 1:2], P[:, 1:2], 7).result()
    assert one == pytest.approx(float(k.result()), rel=1e-5)   # Keras sums in float32
    ours = stream(f'r2(multioutput="{multioutput}", num_regressors=4)', Y, P, 7).result()
    r2 = r2_score(Y, P, multioutput=multioutput)
    assert ours == pytest.approx(1 - (1 - r2) * (N - 1) / (N - 4 - 1), rel=1e-9)
    raw = stream('r2(multioutput="raw_values", num_regressors=4)', Y, P, 1000)
    np.testing.assert_allclose(raw.result(), 1 - (1 - r2_score(Y, P, multioutput="raw_values")) * (N - 1) / (N - 5),
                               rtol=1e-9)


def test_adjusted_r2_counts_weighted_rows_and_is_nan_without_degrees_of_freedom():
    ours = stream("r2(num_regressors=2)", Y, P, 7, W).result()
    n = W.sum()   # a weight of 2 is a row counted twice, as for every other weighted state
    assert ours == pytest.approx(1 - (1 - r2_score(Y, P, sample_weight=W)) * (n - 1) / (n - 3), rel=1e-9)
    with pytest.warns(RuntimeWarning, match="undefined"):
        assert np.isnan(stream("r2(num_regressors=5)", Y[:6], P[:6], 7).result())


def test_a_bad_multioutput_is_refused_before_any_data():
    m = modelc.metric('r2(multioutput="mean")')
    with pytest.raises(ModelcError) as caught:
        m.update(Y[:3], P[:3])
    assert str(caught.value) == ("error: metric 'r2(multioutput=\"mean\")': multioutput='mean': expected one of "
                                 "\"uniform_average\", \"variance_weighted\", \"raw_values\"")
    assert m.state_dict() == {}


_POS_Y = np.abs(Y) + 0.05                                              # mape / msle: positive targets
_POS_P = np.abs(P)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("spec,oracle", [
    ("mape", lambda y, p, w: 100 * skm.mean_absolute_percentage_error(y, p, sample_weight=w)),
    ("msle", lambda y, p, w: skm.mean_squared_log_error(y, p, sample_weight=w)),
    ("explained_variance", lambda y, p, w: skm.explained_variance_score(y, p, sample_weight=w)),
    ('explained_variance(multioutput="variance_weighted")',
     lambda y, p, w: skm.explained_variance_score(y, p, sample_weight=w, multioutput="variance_weighted")),
    ('explained_variance(multioutput="raw_values")',
     lambda y, p, w: skm.explained_variance_score(y, p, sample_weight=w, multioutput="raw_values")),
])
def test_more_regression_metrics_match_sklearn(spec, oracle, weighted, tmp_path):
    w = W if weighted else None
    want = oracle(_POS_Y, _POS_P, w)
    got = [stream(spec, _POS_Y, _POS_P, batch, w).result() for batch in (1, 7, 1000)]
    for value in got + halves_and_reload(spec, _POS_Y, _POS_P, w, tmp_path):
        np.testing.assert_allclose(value, want, rtol=1e-9)


@pytest.mark.parametrize("spec,make", [("MeanAbsolutePercentageError", "MeanAbsolutePercentageError"),
                                       ("msle", "MeanSquaredLogarithmicError")])
def test_mape_and_msle_match_keras_where_targets_cross_zero(spec, make):
    """Keras' epsilon rules: |y_true| floored at 1e-7 (mape), predictions and targets at 1e-7 before log1p (msle)."""
    keras = pytest.importorskip("keras_oracle").keras
    y = Y[:, 0].copy()
    y[:5] = 0.0
    k = getattr(keras.metrics, make)()
    k.update_state(y.astype(np.float32), P[:, 0].astype(np.float32))
    assert stream(spec, y, P[:, 0], 7).result() == pytest.approx(float(k.result()), rel=1e-5)


COLUMN_STATES = """
metric column_stats(y_true, y_pred) {
    state total = sum(y_true, axis=0)
    state above = sum(y_pred > y_true, axis=0)
    state rows = count(y_true, axis=0)
    return concat(total, cast(above, float64), rows)
}
"""


def test_states_per_column(tmp_path):
    (tmp_path / "lib.model").write_text(COLUMN_STATES)
    lib = [str(tmp_path / "lib.model")]
    for w in (None, W):
        weights = np.ones(N) if w is None else w
        want = np.concatenate([(Y * weights[:, None]).sum(0), ((P > Y) * weights[:, None]).sum(0), [weights.sum()] * 3])
        for batch in (1, 7, 1000):
            np.testing.assert_allclose(stream("column_stats", Y, P, batch, w, imports=lib).result(), want, rtol=1e-12)
    states = stream("column_stats", Y, P, 7, imports=lib).state_dict()
    assert states["m0.above"].dtype == np.int64 and states["m0.above"].shape == (3,)   # unweighted: exact counts


@pytest.mark.parametrize("body,message", [
    ("state s = sum(y_true, axis=1)", "a state's sum() reduces the batch axis: axis=0 (one value per column), no "
                                      "axis= (one value), or for sum axis=[]"),
    ("state s = count(y_true, axis=-1)", "a state's count() reduces the batch axis"),
])
def test_state_axis_other_than_the_batch_is_an_error(tmp_path, body, message):
    (tmp_path / "lib.model").write_text(f"metric bad(y_true, y_pred) {{\n    {body}\n    return s\n}}\n")
    with pytest.raises(ModelcError, match="lib.model:2:15: error") as caught:
        modelc.metric("bad", imports=[str(tmp_path / "lib.model")]).update(Y, P)
    assert message in str(caught.value)


# --- Keras' names ------------------------------------------------------------------------------------------
_Y_BIN = _rng.integers(0, 2, N).astype(np.float64)
_P_BIN = np.clip(0.5 * _Y_BIN + 0.6 * _rng.uniform(size=N) - 0.05, 0, 1)
_P_BIN[:50] = np.round(_P_BIN[:50], 2)            # scores on Keras' threshold grid, 0.5 among them


def keras_value(keras, metric, y, p):
    metric.update_state(y.astype(np.float32), p.astype(np.float32))
    return float(metric.result())


@pytest.mark.parametrize("spec,make,binary", [
    ("MeanSquaredError", lambda k: k.metrics.MeanSquaredError(), False),
    ("mean_squared_error", lambda k: k.metrics.MeanSquaredError(), False),
    ("MSE", lambda k: k.metrics.MeanSquaredError(), False),
    ("mean_absolute_error", lambda k: k.metrics.MeanAbsoluteError(), False),
    ("MeanAbsoluteError", lambda k: k.metrics.MeanAbsoluteError(), False),
    ("RootMeanSquaredError", lambda k: k.metrics.RootMeanSquaredError(), False),
    ("LogCoshError", lambda k: k.metrics.LogCoshError(), False),
    ("huber(delta=2.0)", lambda k: k.metrics.MeanMetricWrapper(k.losses.huber, delta=2.0), False),
    ("Huber(delta=0.5)", lambda k: k.metrics.MeanMetricWrapper(k.losses.huber, delta=0.5), False),
    ("BinaryAccuracy", lambda k: k.metrics.BinaryAccuracy(), True),
    ("BinaryAccuracy(thresholds=0.3)", lambda k: k.metrics.BinaryAccuracy(threshold=0.3), True),
    ("Precision(thresholds=0.4)", lambda k: k.metrics.Precision(thresholds=0.4), True),
    ("Recall", lambda k: k.metrics.Recall(), True),
    ("BinaryCrossentropy", lambda k: k.metrics.BinaryCrossentropy(), True),
])
def test_keras_names_are_aliases_with_keras_values(spec, make, binary):
    keras = pytest.importorskip("keras_oracle").keras
    y, p = (_Y_BIN, _P_BIN) if binary else (Y[:, 1], P[:, 1])
    want = keras_value(keras, make(keras), y, p)
    for batch in (1, 7, 1000):
        assert stream(spec, y, p, batch).result() == pytest.approx(want, rel=1e-5, abs=1e-7)


def test_keras_auc_num_thresholds_is_bins_minus_one():
    """Keras' n thresholds (0 and 1 included) cut [0, 1] into n - 1 bins: the same states as auc(bins=n-1)."""
    ours = stream("AUC(num_thresholds=11)", _Y_BIN, _P_BIN, 7)
    assert ours.state_dict().keys() == stream("auc(bins=10)", _Y_BIN, _P_BIN, 7).state_dict().keys()
    assert ours.result() == stream("auc(bins=10)", _Y_BIN, _P_BIN, 1000).result()


def test_cli_eval_keras_names_and_r2_of_two_outputs(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["batch", 2])
    y = helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["batch", 2])
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, tmp_path / "id.onnx")
    np.savez(tmp_path / "data.npz", x=P[:, :2], t=Y[:, :2])
    specs = ["r2", 'r2(multioutput="raw_values")', "R2Score(class_aggregation=\"variance_weighted_average\")",
             "MeanSquaredError", "mse"]
    result = run_cli("eval", "id.onnx", "--data", "data.npz", "--target", "t", "--batch-size", "7", "--json",
                     *[a for s in specs for a in ("--metric", s)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)["metrics"]
    assert got["r2"] == pytest.approx(r2_score(Y[:, :2], P[:, :2]), rel=1e-9)
    np.testing.assert_allclose(got['r2(multioutput="raw_values")'],
                               r2_score(Y[:, :2], P[:, :2], multioutput="raw_values"), rtol=1e-9)
    assert got[specs[2]] == pytest.approx(r2_score(Y[:, :2], P[:, :2], multioutput="variance_weighted"), rel=1e-9)
    assert got["MeanSquaredError"] == got["mse"] == pytest.approx(((Y[:, :2] - P[:, :2]) ** 2).mean(), rel=1e-9)


# --- metrics from .model files, and where errors point -----------------------------------------------------
SPREAD = """
metric spread(y_true, y_pred) {
    state lo = min(y_pred)
    state hi = max(y_pred)
    return hi - lo
}
"""


def test_metric_api_imports_metrics_from_model_files(tmp_path):
    (tmp_path / "lib.model").write_text(SPREAD)
    m = modelc.metric("spread", imports=[tmp_path / "lib.model"])
    m.update(Y[:, 0], P[:, 0])
    assert m.result() == pytest.approx(P[:, 0].max() - P[:, 0].min(), rel=1e-12)


@pytest.mark.parametrize("spec,imports,message", [
    ("spread", [], "error: unknown metric 'spread'; built-in metrics: "),
    ("spread", "LIB", "error: imports= takes a list of .model files, got 'LIB': imports=['LIB']"),
    ("spread", ["nope.model"], "error: imports=: cannot read nope.model: No such file or directory"),
    ("auc(spacing='logit')", [], "error: cannot read metric 'auc(spacing='logit')'"),
])
def test_metric_api_errors_name_api_arguments(tmp_path, monkeypatch, spec, imports, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "LIB").write_text(SPREAD)
    with pytest.raises(ModelcError) as caught:
        modelc.metric(spec, imports=imports)
    text = str(caught.value)
    assert text.startswith(message)
    assert "--" not in text, text   # no command-line flag in an API error
    if spec == "spread" and imports == []:
        assert text.endswith('a metric of your own comes from a .model file: imports=["FILE.model"]')


def scores_model(tmp_path, k):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", k])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", k])
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, tmp_path / "id.onnx")
    np.savez(tmp_path / "data.npz", x=np.ones((4, k), np.float32), label=np.arange(4) % k,
             wide=np.ones((4, k + 1), np.float32))


@pytest.mark.parametrize("spec,target,message", [
    ("mse", "label", "error: metric 'mse' on y_true [batch], y_pred [batch, 3]: cannot broadcast [batch] and "
                     "[batch, 3]\n"),
    ("MeanAbsoluteError", "label", "error: metric 'MeanAbsoluteError' on y_true [batch], y_pred [batch, 3]: cannot "
                                   "broadcast [batch] and [batch, 3]\n"),
    ("mse", "wide", "error: y_true [batch, 4] does not meet y_pred [batch, 3]: metrics take the same shape, or "
                    "class labels [batch] (or [batch, 1]) against scores [batch, k]\n"),
])
def test_cli_eval_shape_errors_point_at_the_spec_not_the_prelude(tmp_path, spec, target, message):
    scores_model(tmp_path, 3)
    result = run_cli("eval", "id.onnx", "--data", "data.npz", "--target", target, "--metric", spec, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == message
    assert "prelude" not in result.stderr


# --- counts in float32 where that is exact (2**24 elements a batch), float64 beyond ----------------------
def count_dtype(spec, state, shape, max_rows):
    """The dtype a count state is summed in: the Cast before the ReduceSum that makes it."""
    from modelc.compiler.types import TensorType
    from modelc.runtime.metrics import MetricSet
    graph = MetricSet([spec]).state_graph(TensorType("float32", shape), TensorType("float32", shape), False,
                                          max_rows=max_rows).graph
    made_by = {o: n for n in graph.node for o in n.output}
    node = made_by[state]
    while node.op_type != "ReduceSum":
        node = made_by[node.input[0]]
    cast = made_by[node.input[0]]
    return onnx.helper.tensor_dtype_to_np_dtype(cast.attribute[0].i).name


@pytest.mark.parametrize("shape,max_rows,dtype", [
    (("batch",), 65_536, "float32"), (("batch",), 2 ** 24, "float32"), (("batch",), 2 ** 24 + 1, "float64"),
    (("batch",), None, "float64"), (("batch", 300), 65_536, "float64"), (("batch", 3), 65_536, "float32")])
def test_counts_sum_in_float32_only_where_exact(shape, max_rows, dtype):
    assert count_dtype("binary_accuracy", "m0.matches", shape, max_rows) == dtype
    assert count_dtype("binary_accuracy", "nan_predictions", shape, max_rows) == \
        ("float32" if max_rows is not None and max_rows <= 2 ** 24 else "float64")   # one per row


def test_metric_update_runs_big_batches_in_chunks(monkeypatch):
    from sklearn.metrics import precision_score
    import modelc.runtime.metrics as metrics
    monkeypatch.setattr(metrics, "CHUNK_ROWS", 100)     # as a batch of more than 2**20 rows would be cut
    m = modelc.metric("precision")
    m.update(_Y_BIN, _P_BIN)
    assert len(m._sessions) == 1
    assert m.result() == precision_score(_Y_BIN, _P_BIN > 0.5)
    assert int(m.state_dict()["m0.counts"][1].sum()) == int((_P_BIN > 0.5).sum())   # [tp, predicted, ...]


BINCOUNT = """
metric labels(y_true, y_pred) {
    state seen = bincount(cast(y_true, int64), 3)
    return seen
}
"""


@pytest.mark.parametrize("provider", ["cpu", "reference"])
def test_bincount_sends_every_index_outside_to_the_extra_bin(tmp_path, provider):
    (tmp_path / "lib.model").write_text(BINCOUNT)
    m = modelc.metric("labels", provider=provider, imports=[tmp_path / "lib.model"])
    m.update(np.array([0, 1, 2, 2.0]), np.zeros(4))
    assert m.result() == [1, 1, 2]
    with pytest.raises(ModelcError, match="labels: 4 rows have a label"):
        m.update(np.array([-1, -3, 5, -2, 2.0]), np.zeros(5))   # below 0 (-1 as well as -3) and above
    assert m.result() == [1, 1, 2]                               # a batch with bad labels changes nothing


@pytest.mark.parametrize("offset", [1e3, 1e4])
def test_r2_of_targets_far_from_zero_matches_sklearn(tmp_path, offset):
    """The variance is a small difference of large sums of squares: squared in float64, r2 and the explained
    variance of float32 targets around 10,000 agree with scikit-learn (squared in float32 they were 1e-4 off)."""
    from sklearn.metrics import explained_variance_score, r2_score
    (tmp_path / "ident.model").write_text("model ident(x: float32[batch, 1]) {\n    return x\n}\n")
    rng = np.random.default_rng(0)
    y = (offset + rng.normal(size=(5000, 1))).astype(np.float32)
    x = (y + 0.1 * rng.normal(size=(5000, 1))).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    out = run_cli("eval", "ident.model", "--data", "d.npz", "--target", "y", "--metric", "r2", "--metric",
                  "explained_variance", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout)["metrics"]
    assert metrics["r2"] == pytest.approx(r2_score(y, x), abs=1e-6)
    assert metrics["explained_variance"] == pytest.approx(explained_variance_score(y, x), abs=1e-6)
