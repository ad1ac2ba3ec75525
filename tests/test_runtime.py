"""`modelc run` and `modelc eval` end to end (LANGUAGE.md §6-7), against independent oracles.

The oracles: onnxruntime run here on the ONNX that `modelc compile` writes, and numpy/scikit-learn
metrics on its predictions. Two tolerances recur:

* onnxruntime's float32 kernels depend on the batch size (a GEMM with 1 row takes another path than
  one with 1000), so predictions made in different batches differ in their last bits; a model with
  matrix products (housing) is compared across batch sizes and with the oracle at rtol 1e-6. With
  one batch covering the whole file the predictions are bit for bit the oracle's.
* y_true arrives in y_pred's dtype (float32, §6), so the oracle casts the target to float32 first.

Batch-size invariance of the metric machinery itself is checked on an element-wise model, whose
predictions do not depend on the batch: counting metrics exactly, float64 sums at rtol 1e-9.
"""
from __future__ import annotations

import json
import math
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from helpers import MODELC, run_cli

sklearn_metrics = pytest.importorskip("sklearn.metrics")

N = 2503            # rows of the main data: 1000 and 7 leave a ragged last batch (2503 = 2*1000 + 503 = 357*7 + 4)
SMALL = 60          # rows of the file evaluated with --batch-size 1
HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


# --- helpers ----------------------------------------------------------------------------------------------

def cli_ok(*args) -> subprocess.CompletedProcess:
    result = run_cli(*args)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
    return result


def cli_error(*args) -> str:
    """Run a command that must fail as a user error: exit 1, a diagnostic, no traceback. Returns stderr."""
    result = run_cli(*args)
    assert "Traceback" not in result.stderr, result.stderr
    assert "internal error" not in result.stderr, result.stderr
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.strip(), "an error needs a message"
    return result.stderr


def eval_json(*args) -> dict:
    return json.loads(cli_ok("eval", *args, "--json").stdout)


def no_temporaries(folder: Path) -> None:
    left = [p.name for p in folder.iterdir() if p.name.startswith(".") or "tmp" in p.name]
    assert not left, f"temporary files left behind: {left}"


def write_table(path: Path, columns: dict[str, np.ndarray], row_group_size: int = 300) -> None:
    table = pa.table(columns)
    if path.suffix == ".parquet":
        pq.write_table(table, path, row_group_size=row_group_size)
    else:
        pcsv.write_csv(table, path)


def ort_predict(onnx_path: Path, feeds: dict[str, np.ndarray], batch: int | None = None) -> list[np.ndarray]:
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    if batch is None:
        return session.run(None, feeds)
    n = len(next(iter(feeds.values())))
    parts = [session.run(None, {k: v[lo:lo + batch] for k, v in feeds.items()}) for lo in range(0, n, batch)]
    return [np.concatenate(p) for p in zip(*parts)]


def regression_oracle(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """scikit-learn on the target as the runtime sees it (cast to the prediction's float32)."""
    y_true = y.astype(np.float32).astype(np.float64)
    y_pred = pred.reshape(len(pred)).astype(np.float64)
    return {"mse": sklearn_metrics.mean_squared_error(y_true, y_pred),
            "mae": sklearn_metrics.mean_absolute_error(y_true, y_pred),
            "r2": sklearn_metrics.r2_score(y_true, y_pred)}


# --- fixtures ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runtime")


@pytest.fixture(scope="module")
def housing(work):
    """housing.model compiled by `modelc compile`, its data in .npz/.csv/.parquet, oracle predictions."""
    onnx_path = work / "housing.onnx"
    cli_ok("compile", "samples/housing.model", "-o", onnx_path)
    rng = np.random.default_rng(0)
    x = (0.5 * rng.normal(size=(N, 8))).astype(np.float32)
    pred = ort_predict(onnx_path, {"x": x})[0]
    y = pred[:, 0].astype(np.float64) + rng.normal(size=N)    # a target the model explains in part (r2 ~ 0.9)
    files = {}
    for name, rows in (("full", N), ("small", SMALL)):
        columns = {f"f{j}": x[:rows, j] for j in range(8)}
        columns["price"] = y[:rows]
        files[name, "npz"] = work / f"{name}.npz"
        np.savez(files[name, "npz"], x=x[:rows], price=y[:rows])
        for ext in ("csv", "parquet"):
            files[name, ext] = work / f"{name}.{ext}"
            write_table(files[name, ext], columns, row_group_size=300 if name == "full" else 16)
    assert pq.ParquetFile(files["full", "parquet"]).metadata.num_row_groups == 9
    assert pq.ParquetFile(files["small", "parquet"]).metadata.num_row_groups == 4
    # the CSV holds the same numbers (float32 written as shortest round-trip text)
    back = pcsv.read_csv(files["full", "csv"])
    assert np.array_equal(back["f3"].to_numpy().astype(np.float32), x[:, 3])
    assert np.array_equal(back["price"].to_numpy(), y)
    return {"onnx": onnx_path, "x": x, "y": y, "pred": pred, "files": files}


@pytest.fixture(scope="module")
def elementwise(work):
    """A model whose predictions do not depend on the batch (no matrix product), with 0/1 labels."""
    model = work / "ew.model"
    model.write_text("model ew(x: float32[batch]) {\n    return sigmoid(x * 2.0)\n}\n")
    rng = np.random.default_rng(1)
    x = rng.normal(size=N).astype(np.float32)
    label = (rng.random(N) < 1 / (1 + np.exp(-3 * x))).astype(np.int64)
    data = work / "ew.npz"
    np.savez(data, x=x, label=label)
    return {"model": model, "data": data, "x": x, "label": label}


@pytest.fixture(scope="module")
def wide_deep(work):
    onnx_path = work / "wide_deep.onnx"
    cli_ok("compile", "samples/wide_deep.model", "-o", onnx_path)
    rng = np.random.default_rng(2)
    feeds = {"features": rng.normal(size=(N, 16)).astype(np.float32),
             "categories": rng.integers(0, 100, size=(N, 4)).astype(np.int64)}
    data = work / "wd.npz"
    np.savez(data, **feeds)
    return {"onnx": onnx_path, "feeds": feeds, "data": data}


# --- 1. one evaluation, any format, any batch size ---------------------------------------------------------

REGRESSION = ("mse", "mae", "r2")


def metric_args(specs) -> list[str]:
    return [a for s in specs for a in ("--metric", s)]


@pytest.mark.parametrize("batch", [7, 1000])
def test_eval_formats_agree_and_equal_sklearn(housing, batch):
    results = {}
    for ext in ("npz", "csv", "parquet"):
        out = eval_json(housing["onnx"], "--data", housing["files"]["full", ext], "--target", "price",
                        *metric_args(REGRESSION), "--batch-size", batch)
        assert out["samples"] == N and out["batches"] == math.ceil(N / batch), out
        assert out["nan_input_rows"] == 0 and out["nan_predictions"] == 0
        results[ext] = out["metrics"]
    assert results["npz"] == results["csv"] == results["parquet"]          # same feeds, same batches: same bits
    assert list(results["npz"]) == list(REGRESSION)                       # keyed by each spec as written
    oracle = regression_oracle(housing["y"], housing["pred"])
    for spec in REGRESSION:
        assert results["npz"][spec] == pytest.approx(oracle[spec], rel=1e-6), spec
    # the oracle on predictions cut into the same batches, summed as the runtime does (float32 error, f64 sum)
    pred = ort_predict(housing["onnx"], {"x": housing["x"]}, batch)[0][:, 0]
    error = housing["y"].astype(np.float32) - pred
    assert results["npz"]["mse"] == pytest.approx(np.sum((error * error).astype(np.float64)) / N, rel=1e-9)
    assert results["npz"]["mae"] == pytest.approx(np.sum(np.abs(error).astype(np.float64)) / N, rel=1e-9)


def test_eval_batch_size_one_on_a_small_file(housing):
    whole = eval_json(housing["onnx"], "--data", housing["files"]["small", "npz"], "--target", "price",
                      *metric_args(REGRESSION), "--batch-size", 10_000)
    oracle = regression_oracle(housing["y"][:SMALL], housing["pred"][:SMALL])
    for ext in ("npz", "csv", "parquet"):
        out = eval_json(housing["onnx"], "--data", housing["files"]["small", ext], "--target", "price",
                        *metric_args(REGRESSION), "--batch-size", 1)
        assert out["samples"] == SMALL and out["batches"] == SMALL
        for spec in REGRESSION:
            assert out["metrics"][spec] == pytest.approx(whole["metrics"][spec], rel=1e-6), (ext, spec)
            assert out["metrics"][spec] == pytest.approx(oracle[spec], rel=1e-6), (ext, spec)


def test_default_batch_and_api_agree(housing):
    """The default batch (1024: ragged) through the CLI and evaluate() through the Python API."""
    from modelc.runtime.engine import evaluate
    cli = eval_json(housing["onnx"], "--data", housing["files"]["full", "parquet"], "--target", "price",
                    *metric_args(REGRESSION))
    assert cli["samples"] == N and cli["batches"] == 3 and cli["provider"] == "cpu"
    api = evaluate(str(housing["onnx"]), str(housing["files"]["full", "npz"]), "price", list(REGRESSION),
                   progress=False)
    assert api["metrics"] == cli["metrics"]
    oracle = regression_oracle(housing["y"], housing["pred"])
    for spec in REGRESSION:
        assert api["metrics"][spec] == pytest.approx(oracle[spec], rel=1e-6)


def test_batch_size_invariance_exact_for_counts(elementwise):
    from modelc.runtime.engine import evaluate
    specs = ["confusion_matrix(2)", "binary_accuracy", "precision", "recall", "f1", "mse", "mae"]
    runs = {b: evaluate(str(elementwise["model"]), str(elementwise["data"]), "label", specs, batch_size=b,
                        progress=False)
            for b in (1, 7, 1000, N, 10_000)}
    first = runs[1]["metrics"]
    for b, out in runs.items():
        assert out["samples"] == N and out["batches"] == math.ceil(N / b)
        for spec in specs[:5]:
            assert out["metrics"][spec] == first[spec], (b, spec)               # integer states: exact
        for spec in specs[5:]:
            assert out["metrics"][spec] == pytest.approx(first[spec], rel=1e-9), (b, spec)
    y, p = elementwise["label"], 1 / (1 + np.exp(-2 * elementwise["x"].astype(np.float64)))
    hard = (p > 0.5).astype(np.int64)
    assert first["confusion_matrix(2)"] == sklearn_metrics.confusion_matrix(y, hard).tolist()
    assert first["binary_accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(y, hard), rel=1e-12)
    assert first["precision"] == pytest.approx(sklearn_metrics.precision_score(y, hard), rel=1e-12)
    assert first["recall"] == pytest.approx(sklearn_metrics.recall_score(y, hard), rel=1e-12)
    assert first["f1"] == pytest.approx(sklearn_metrics.f1_score(y, hard), rel=1e-12)
    assert first["mse"] == pytest.approx(sklearn_metrics.mean_squared_error(y, p), rel=1e-6)
    assert first["mae"] == pytest.approx(sklearn_metrics.mean_absolute_error(y, p), rel=1e-6)
    cli = eval_json(elementwise["model"], "--data", elementwise["data"], "--target", "label",
                    *metric_args(specs), "--batch-size", 7)
    assert cli["metrics"] == runs[7]["metrics"]


def test_two_dimensional_npy_with_a_target_column(housing, work):
    table = work / "xy.npy"
    np.save(table, np.column_stack([housing["x"], housing["y"].astype(np.float32)]))
    out = eval_json(housing["onnx"], "--data", table, "--target", "8", "--metric", "mse")
    ref = eval_json(housing["onnx"], "--data", housing["files"]["full", "npz"], "--target", "price", "--metric", "mse")
    assert out["samples"] == N and out["metrics"] == ref["metrics"]


# --- 2. modelc run: predictions to every format, atomically -------------------------------------------------

def read_predictions(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    if path.suffix == ".npy":
        return {"": np.load(path, allow_pickle=False)}
    table = pq.read_table(path) if path.suffix == ".parquet" else pcsv.read_csv(path)
    return {name: column.to_numpy() for name, column in zip(table.column_names, table.columns)}


@pytest.mark.parametrize("ext", ["npz", "npy", "parquet", "csv"])
def test_run_writes_the_oracles_predictions(housing, tmp_path, ext):
    out = tmp_path / f"pred.{ext}"
    summary = json.loads(cli_ok("run", housing["onnx"], "--data", housing["files"]["full", "npz"], "-o", out,
                                "--batch-size", 100_000, "--json").stdout)
    assert summary["samples"] == N and summary["batches"] == 1 and summary["outputs"] == ["y"]
    got = read_predictions(out)
    want = housing["pred"]                                                      # [N, 1] float32, whole array
    if ext in ("npz", "npy"):
        (array,) = got.values()
        assert array.dtype == np.float32 and array.shape == (N, 1)
        assert np.array_equal(array, want)
    else:
        assert list(got) == ["y"]                                              # [batch, 1] -> one column NAME
        assert np.array_equal(got["y"].astype(np.float32), want[:, 0])
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]          # no temporaries beside it


def test_run_default_batches_and_api(housing, tmp_path):
    from modelc.runtime.engine import run
    out = tmp_path / "p.npz"
    features = [f"f{j}" for j in range(8)]                                   # the table also holds price
    cli_ok("run", housing["onnx"], "--data", housing["files"]["full", "csv"], "-o", out,
           "--columns", "x=" + ",".join(features))
    got = read_predictions(out)["y"]
    np.testing.assert_allclose(got, housing["pred"], rtol=1e-5, atol=1e-6)   # batches of 1024: last bits may move
    np.testing.assert_array_equal(got, ort_predict(housing["onnx"], {"x": housing["x"]}, 1024)[0])
    api_out = tmp_path / "api.npy"
    summary = run(str(housing["onnx"]), str(housing["files"]["full", "parquet"]), str(api_out),
                  columns={"x": features}, progress=False)
    assert summary["samples"] == N and summary["batches"] == 3
    np.testing.assert_array_equal(np.load(api_out), got)
    no_temporaries(tmp_path)


def test_run_multi_output_to_npz_and_parquet(wide_deep, tmp_path):
    score, aux = ort_predict(wide_deep["onnx"], wide_deep["feeds"])
    assert score.shape == (N, 1) and aux.shape == (N, 3)
    npz = tmp_path / "wd.npz"
    cli_ok("run", "samples/wide_deep.model", "--init-missing", "--data", wide_deep["data"], "-o", npz, "--batch-size", 100_000)
    got = read_predictions(npz)
    assert sorted(got) == ["aux", "score"]
    np.testing.assert_array_equal(got["score"], score)
    np.testing.assert_array_equal(got["aux"], aux)
    parquet = tmp_path / "wd.parquet"
    cli_ok("run", "samples/wide_deep.model", "--init-missing", "--data", wide_deep["data"], "-o", parquet, "--batch-size", 100_000)
    table = read_predictions(parquet)
    assert list(table) == ["score", "aux_0", "aux_1", "aux_2"]
    np.testing.assert_array_equal(table["score"], score[:, 0])
    for j in range(3):
        np.testing.assert_array_equal(table[f"aux_{j}"], aux[:, j])
    no_temporaries(tmp_path)


def test_run_two_inputs_from_columns(wide_deep, tmp_path):
    """--columns maps table columns onto both inputs (float features, int64 categories)."""
    feeds = wide_deep["feeds"]
    columns = {f"cat{j}": feeds["categories"][:, j] for j in range(4)}
    columns.update({f"feat{j}": feeds["features"][:, j] for j in range(16)})   # not in input order on purpose
    data = tmp_path / "wd.parquet"
    write_table(data, columns)
    out = tmp_path / "pred.npz"
    cli_ok("run", wide_deep["onnx"], "--data", data, "-o", out, "--batch-size", 100_000,
           "--columns", "features=" + ",".join(f"feat{j}" for j in range(16)),
           "--columns", "categories=" + ",".join(f"cat{j}" for j in range(4)))
    score, aux = ort_predict(wide_deep["onnx"], feeds)
    got = read_predictions(out)
    np.testing.assert_array_equal(got["score"], score)
    np.testing.assert_array_equal(got["aux"], aux)


def test_failed_run_keeps_the_previous_output(housing, wide_deep, tmp_path):
    out = tmp_path / "pred.npy"
    out.write_bytes(b"previous")
    # fails at the end, when writing: two outputs do not fit one .npy
    assert "use .npz" in cli_error("run", wide_deep["onnx"], "--data", wide_deep["data"], "-o", out)
    assert out.read_bytes() == b"previous"
    # fails midway, in the batch loop: a string column
    bad = tmp_path / "bad.csv"
    columns = {f"f{j}": housing["x"][:50, j] for j in range(8)}
    columns["f5"] = np.array([f"v{i}" for i in range(50)])
    write_table(bad, columns)
    assert "f5" in cli_error("run", housing["onnx"], "--data", bad, "-o", out)
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "pred.npy"]


# --- 3. checkpoints: killed, then resumed ----------------------------------------------------------------

@pytest.fixture(scope="module")
def big(work):
    rng = np.random.default_rng(3)
    n = 100_000
    path = work / "big.npz"
    np.savez(path, x=(0.5 * rng.normal(size=(n, 8))).astype(np.float32), price=rng.normal(1.0, 0.5, size=n))
    return path, n


def test_killed_evaluation_resumes_to_the_same_numbers(housing, big, tmp_path):
    data, n = big
    args = ["eval", str(housing["onnx"]), "--data", str(data), "--target", "price", *metric_args(REGRESSION),
            "--batch-size", "100", "--json"]
    ck = tmp_path / "ck.npz"
    proc = subprocess.Popen([MODELC, *args, "--checkpoint", str(ck), "--checkpoint-every", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not ck.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.2)                                                      # let it get some way in
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the evaluation ended before it could be killed: give it more rows"
    with np.load(ck, allow_pickle=False) as saved:
        rows, batches = int(saved["__rows__"]), int(saved["__batches__"])
    assert 0 < rows < n and rows == 100 * batches and batches % 2 == 0
    resumed = json.loads(cli_ok(*args, "--checkpoint", ck, "--checkpoint-every", "2", "--resume").stdout)
    whole = json.loads(cli_ok(*args).stdout)
    assert resumed["samples"] == whole["samples"] == n
    assert resumed["metrics"] == whole["metrics"]                             # merged in the same order: same bits
    # a checkpoint of another evaluation (other metrics) is refused, not silently merged
    message = cli_error(*args[:-1], "--metric", "huber", "--checkpoint", ck, "--resume")
    assert "belongs to another evaluation" in message and "ck.npz" in message


def test_interrupted_api_evaluation_resumes(housing, tmp_path, monkeypatch):
    """evaluate() whose data source dies after 7 batches: the checkpoint of batch 6 resumes exactly."""
    from modelc.runtime import data as data_module
    from modelc.runtime.engine import evaluate
    source = housing["files"]["full", "parquet"]
    options = {"batch_size": 100, "progress": False}
    whole = evaluate(str(housing["onnx"]), str(source), "price", list(REGRESSION), **options)
    original = data_module.ArrowSource.batches

    def dying(self, batch_size, start=0):
        for i, batch in enumerate(original(self, batch_size, start)):
            if i == 7:
                raise KeyboardInterrupt
            yield batch

    ck = tmp_path / "ck.npz"
    monkeypatch.setattr(data_module.ArrowSource, "batches", dying)
    with pytest.raises(KeyboardInterrupt):
        evaluate(str(housing["onnx"]), str(source), "price", list(REGRESSION), checkpoint=str(ck),
                 checkpoint_every=2, **options)
    monkeypatch.setattr(data_module.ArrowSource, "batches", original)
    with np.load(ck) as saved:
        assert int(saved["__rows__"]) == 600
    resumed = evaluate(str(housing["onnx"]), str(source), "price", list(REGRESSION), checkpoint=str(ck),
                       checkpoint_every=2, resume=True, **options)
    assert resumed["samples"] == N and resumed["metrics"] == whole["metrics"]
    with pytest.raises(Exception, match="belongs to another evaluation"):
        evaluate(str(housing["onnx"]), str(source), "price", list(REGRESSION), checkpoint=str(ck), resume=True,
                 batch_size=200, progress=False)


# --- 4. bad data: a clear message, exit 1 ------------------------------------------------------------------

def test_missing_columns_suggest_the_nearest(housing, wide_deep, tmp_path):
    h, files = housing["onnx"], housing["files"]
    message = cli_error("eval", h, "--data", files["full", "csv"], "--target", "prise", "--metric", "mse")
    assert "no column 'prise'" in message and "did you mean 'price'" in message
    message = cli_error("eval", h, "--data", files["full", "npz"], "--target", "Price", "--metric", "mse")
    assert "no array 'Price'" in message and "did you mean 'price'" in message
    message = cli_error("eval", h, "--data", files["full", "parquet"], "--target", "price", "--metric", "mse",
                        "--columns", "x=f0,f1,f2,f3,f4,f5,f6,f77")
    assert "no column 'f77'" in message and "did you mean" in message
    message = cli_error("run", wide_deep["onnx"], "--data", files["full", "npz"], "-o", tmp_path / "never.npz")
    assert "model input 'features'" in message
    assert not list(tmp_path.iterdir())


def test_wrong_dtype_and_shape(housing, tmp_path):
    columns = {f"f{j}": housing["x"][:40, j] for j in range(8)}
    columns["f2"] = np.array([f"s{i}" for i in range(40)])
    columns["price"] = housing["y"][:40]
    strings = tmp_path / "strings.csv"
    write_table(strings, columns)
    message = cli_error("eval", housing["onnx"], "--data", strings, "--target", "price", "--metric", "mse")
    assert message == f"error: {strings} row 1, column 'f2': 's0' is not a number\n"  # text in numbers (#14)
    columns["f2"], columns["price"] = housing["x"][:40, 2], np.array([f"s{i}" for i in range(40)])
    write_table(strings, columns)
    message = cli_error("eval", housing["onnx"], "--data", strings, "--target", "price", "--metric", "mse")
    assert message == f"error: {strings} row 1, column 'price': 's0' is not a number\n"
    narrow = tmp_path / "narrow.npz"
    np.savez(narrow, x=housing["x"][:40, :7], price=housing["y"][:40])
    message = cli_error("eval", housing["onnx"], "--data", narrow, "--target", "price", "--metric", "mse")
    assert "[batch, 8]" in message and "[40, 7]" in message


def test_npz_arrays_of_other_lengths(housing, tmp_path):
    """Arrays the evaluation does not use neither cut the rows short nor break the read; used ones must agree."""
    x, y = housing["x"][:50], housing["y"][:50]
    ref = tmp_path / "ref.npz"
    np.savez(ref, x=x, price=y)
    extra = tmp_path / "extra.npz"
    np.savez(extra, x=x, price=y, meta=np.arange(3), version=np.array(2))
    want = eval_json(housing["onnx"], "--data", ref, "--target", "price", "--metric", "mse")
    got = eval_json(housing["onnx"], "--data", extra, "--target", "price", "--metric", "mse")
    assert got["samples"] == 50 and got["metrics"] == want["metrics"]
    ragged = tmp_path / "ragged.npz"
    np.savez(ragged, x=x, price=y[:40])
    message = cli_error("eval", housing["onnx"], "--data", ragged, "--target", "price", "--metric", "mse")
    assert "'x' 50" in message and "'price' 40" in message


def test_nan_inputs_are_counted(housing, tmp_path):
    x = housing["x"][:100].copy()
    x[[3, 10, 10, 57], [0, 2, 5, 7]] = np.nan                           # three rows with NaN
    data = tmp_path / "nan.npz"
    np.savez(data, x=x, price=housing["y"][:100])
    result = run_cli("eval", housing["onnx"], "--data", data, "--target", "price", "--metric", "mae", "--json",
                     "--batch-size", 8)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    out = json.loads(result.stdout)
    assert out["samples"] == 100 and out["nan_input_rows"] == 3 and out["nan_predictions"] == 3


def test_empty_data(housing, tmp_path):
    """No rows: exit 0, samples 0 and a warning that the metrics are undefined."""
    header_only = tmp_path / "empty.csv"
    header_only.write_text(",".join([f"f{j}" for j in range(8)] + ["price"]) + "\n")
    no_rows = tmp_path / "empty.npz"
    np.savez(no_rows, x=np.zeros((0, 8), np.float32), price=np.zeros(0))
    for data in (header_only, no_rows):
        result = run_cli("eval", housing["onnx"], "--data", data, "--target", "price", "--metric", "mse", "--json")
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        out = json.loads(result.stdout)
        assert out["samples"] == 0 and out["batches"] == 0
        assert "warning" in result.stderr and "no rows" in result.stderr
    from modelc.runtime.engine import run
    for ext in ("npz", "npy", "parquet", "csv"):                                # run: an empty prediction file
        out = tmp_path / f"none.{ext}"
        if ext in ("parquet", "csv"):
            cli_ok("run", housing["onnx"], "--data", no_rows, "-o", out)
        else:
            assert run(str(housing["onnx"]), str(no_rows), str(out), progress=False)["samples"] == 0
        (values,) = read_predictions(out).values()
        assert len(values) == 0
    no_temporaries(tmp_path)


def test_labels_outside_the_metric_range(elementwise, tmp_path):
    for bad in (7, -1):
        label = elementwise["label"][:50].copy()
        label[5] = bad
        data = tmp_path / "labels.npz"
        np.savez(data, x=elementwise["x"][:50], label=label)
        message = cli_error("eval", elementwise["model"], "--data", data, "--target", "label",
                            "--metric", "confusion_matrix(2)")
        assert "confusion_matrix(2)" in message and "outside" in message


def test_labels_outside_the_range_name_the_label_range(elementwise, tmp_path):
    label = elementwise["label"][:50].copy()
    label[5] = 7
    data = tmp_path / "labels.npz"
    np.savez(data, x=elementwise["x"][:50], label=label)
    message = cli_error("eval", elementwise["model"], "--data", data, "--target", "label",
                        "--metric", "confusion_matrix(2)")
    assert "[0, 2)" in message


def test_bad_metric_specs(housing):
    data = housing["files"]["small", "npz"]
    message = cli_error("eval", housing["onnx"], "--data", data, "--target", "price", "--metric", "msee")
    assert "unknown metric 'msee'" in message and "did you mean 'mse'" in message
    for spec in ("huber(threshold=", "huber(threshold=x+1)"):
        message = cli_error("eval", housing["onnx"], "--data", data, "--target", "price", "--metric", spec)
        assert "metric" in message, spec
    message = cli_error("eval", housing["onnx"], "--data", data, "--target", "price", "--metric", "huber(thresh=2)")
    assert "did you mean 'threshold'" in message


@pytest.mark.skipif(HAS_CUDA, reason="this onnxruntime has CUDA")
def test_cuda_without_a_gpu_is_an_error(housing, tmp_path):
    data = housing["files"]["small", "npz"]
    message = cli_error("eval", housing["onnx"], "--data", data, "--target", "price", "--metric", "mse",
                        "--provider", "cuda")
    assert "cuda" in message and "not available" in message
    message = cli_error("run", housing["onnx"], "--data", data, "-o", tmp_path / "p.npz", "--provider", "cuda")
    assert "cuda" in message and "not available" in message
    assert not (tmp_path / "p.npz").exists()


def test_missing_file_and_unsupported_extensions(housing, tmp_path):
    message = cli_error("eval", housing["onnx"], "--data", tmp_path / "absent.npz", "--target", "price",
                        "--metric", "mse")
    assert "absent.npz" in message and "no such file" in message
    text = tmp_path / "data.txt"
    text.write_text("1,2,3\n")
    message = cli_error("eval", housing["onnx"], "--data", text, "--target", "price", "--metric", "mse")
    assert "data.txt" in message and ".npz, .npy, .csv or .parquet" in message
    message = cli_error("run", housing["onnx"], "--data", housing["files"]["small", "npz"], "-o", tmp_path / "p.h5")
    assert "p.h5" in message
    message = cli_error("eval", tmp_path / "absent.onnx", "--data", housing["files"]["small", "npz"],
                        "--target", "price", "--metric", "mse")
    assert "absent.onnx" in message


# --- 5. providers -------------------------------------------------------------------------------------------

def test_reference_provider_agrees_with_cpu(housing):
    data = housing["files"]["small", "npz"]
    specs = ["mse", "mae", "r2", "huber(threshold=0.5)"]
    cpu = eval_json(housing["onnx"], "--data", data, "--target", "price", *metric_args(specs), "--batch-size", 16)
    ref = eval_json(housing["onnx"], "--data", data, "--target", "price", *metric_args(specs), "--batch-size", 16,
                    "--provider", "reference")
    assert ref["provider"] == "reference" and ref["samples"] == cpu["samples"] == SMALL
    for spec in specs:
        assert ref["metrics"][spec] == pytest.approx(cpu["metrics"][spec], rel=1e-6), spec


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="onnxruntime has no CUDAExecutionProvider")
def test_cuda_agrees_with_cpu(housing, tmp_path):
    data = housing["files"]["full", "npz"]
    cpu = eval_json(housing["onnx"], "--data", data, "--target", "price", *metric_args(REGRESSION))
    gpu = eval_json(housing["onnx"], "--data", data, "--target", "price", *metric_args(REGRESSION),
                    "--provider", "cuda")
    assert gpu["provider"] == "cuda" and gpu["samples"] == N
    for spec in REGRESSION:
        assert gpu["metrics"][spec] == pytest.approx(cpu["metrics"][spec], rel=1e-5), spec
    out = tmp_path / "gpu.npz"
    cli_ok("run", housing["onnx"], "--data", data, "-o", out, "--provider", "cuda")
    np.testing.assert_allclose(read_predictions(out)["y"], housing["pred"], rtol=1e-4, atol=1e-5)


# --- 6. a custom metric, imported for an .onnx model -------------------------------------------------------

MAX_ERROR = """\
metric max_error(y_true, y_pred) {
    state worst = max(abs(y_true - y_pred))
    return worst
}

metric mean_error(y_true, y_pred) {
    state total = sum(y_true - y_pred)
    state count = count(y_pred)
    return total / count
}
"""


def test_imported_custom_metric_equals_numpy(housing, tmp_path):
    lib = tmp_path / "errors.model"
    lib.write_text(MAX_ERROR)
    data = housing["files"]["full", "npz"]
    message = cli_error("eval", housing["onnx"], "--data", data, "--target", "price", "--metric", "max_error")
    assert "unknown metric 'max_error'" in message                          # only with --import
    out = eval_json(housing["onnx"], "--data", data, "--target", "price", "--import", lib,
                    "--metric", "max_error", "--metric", "mean_error", "--metric", "mse", "--batch-size", 100_000)
    error = housing["y"].astype(np.float32) - housing["pred"][:, 0]
    assert out["metrics"]["max_error"] == pytest.approx(float(np.max(np.abs(error))), rel=1e-6)
    assert out["metrics"]["mean_error"] == pytest.approx(float(np.mean(error.astype(np.float64))), rel=1e-6)
    assert out["metrics"]["mse"] == pytest.approx(regression_oracle(housing["y"], housing["pred"])["mse"], rel=1e-6)
