"""Evaluation and prediction over partitioned data: the local engine over globs, directories and lists, and the
Dask engine on a LocalCluster of 2 worker processes on loopback (one cluster for the module, closed at the end)."""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from helpers import run_cli

if os.environ.get("CI"):   # `make test` installs the [dask] extra: in CI a missing Dask is a failure, not a skip
    import distributed
else:
    distributed = pytest.importorskip("distributed")

import modelc  # noqa: E402
from modelc.compiler.source import ModelcError  # noqa: E402
from modelc.runtime.engine import PartitionErrors, evaluate, run  # noqa: E402
from modelc.runtime.engine_dask import LOOPBACK_NO_DASHBOARD  # noqa: E402
from modelc.runtime.model import LoadedModel  # noqa: E402
from modelc.runtime.partitions import expand_data, output_paths, plan_partitions  # noqa: E402

FEATURES = {"x": [f"f{j}" for j in range(8)]}   # run has no --target: say which columns feed x
REGRESSION = ["mse", "mae", "r2", "huber(threshold=0.5)"]
COUNTING = ["accuracy", "precision", "recall", "f1", "confusion_matrix(2)", "auc(bins=50)"]
# float metrics: float64 sums merged in another order (~1e-16), and float32 predictions whose last bits move with
# onnxruntime's thread count (~4e-11 here) and with the batch cuts of split files (≤ 1.2e-10 here); the local
# engine itself moves by 5e-9 on this data between --batch-size 500 and 1024
FLOAT_RTOL = 1e-8


def write_table(path: Path, columns: dict[str, np.ndarray], row_group_size: int) -> None:
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dask")


@pytest.fixture(scope="module")
def housing(work):
    """housing.model as ONNX; 5 Parquet files of 2,000-3,500 rows (row groups of 500), one of which is split."""
    proto = modelc.compile_file("samples/housing.model", seed=0)
    onnx_path = work / "housing.onnx"
    modelc.save(proto, onnx_path)
    rng = np.random.default_rng(0)
    folder = work / "houses"
    folder.mkdir()
    for i, rows in enumerate((2000, 2500, 3500, 2000, 3000)):
        x = (0.5 * rng.normal(size=(rows, 8))).astype(np.float32)
        price = np.exp(0.3 * x[:, 0]) + 0.1 * rng.normal(size=rows)
        write_table(folder / f"part-{i}.parquet", {**{f"f{j}": x[:, j] for j in range(8)}, "price": price}, 500)
    return {"onnx": onnx_path, "loaded": LoadedModel(proto, [], str(onnx_path)), "dir": folder,
            "glob": str(folder / "part-*.parquet"), "files": sorted(str(p) for p in folder.glob("*.parquet"))}


@pytest.fixture(scope="module")
def labels(work):
    """A model whose predictions do not depend on the batch cut (no matrix product), 0/1 labels, as .npz files."""
    model = work / "ew.model"
    model.write_text("model ew(x: float32[batch]) {\n    return sigmoid(x * 2.0)\n}\n")
    rng = np.random.default_rng(1)
    folder = work / "labels"
    folder.mkdir()
    for i in range(4):
        x = rng.normal(size=1500 + 250 * i).astype(np.float32)
        label = (rng.random(len(x)) < 1 / (1 + np.exp(-3 * x))).astype(np.int64)
        np.savez(folder / f"shard-{i}.npz", x=x, label=label)
    return {"model": str(model), "dir": folder}


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       silence_logs=40, **LOOPBACK_NO_DASHBOARD)
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def assert_close(dask_metrics: dict, local_metrics: dict, exact: bool = False) -> None:
    assert dask_metrics.keys() == local_metrics.keys()
    for k, v in local_metrics.items():
        if exact:
            assert dask_metrics[k] == v, k
        else:
            assert np.allclose(dask_metrics[k], v, rtol=FLOAT_RTOL, atol=0), (k, dask_metrics[k], v)


# --- partitions and the local engine ------------------------------------------------------------------------
def test_partitions_of_globs_directories_and_lists(housing, tmp_path):
    assert expand_data(housing["glob"]) == housing["files"] == expand_data(housing["dir"])
    assert expand_data(housing["files"][::-1]) == housing["files"][::-1]   # a list keeps the order given
    (housing["dir"] / "_SUCCESS").write_text("")                           # job markers are not data
    assert expand_data(str(housing["dir"])) == housing["files"]
    with pytest.raises(ModelcError, match="matches no"):
        expand_data(str(tmp_path / "none-*.parquet"))
    with pytest.raises(ModelcError, match="holds no"):
        expand_data(tmp_path)
    # part-2 (3,500 rows in 7 row groups of 500) is split at row-group boundaries, at most 1,200 rows a task
    parts = plan_partitions(housing["files"], partition_rows=1200)
    split = [p for p in parts if p.path.endswith("part-2.parquet")]
    assert [p.row_groups for p in split] == [(0, 1), (2, 3), (4, 5), (6,)]
    assert [p.rows for p in split] == [1000, 1000, 1000, 500] and split[1].label.endswith("(row groups 2-3)")
    assert sum(p.rows for p in parts) == 13000 and len(parts) == 2 + 3 + 4 + 2 + 3
    names = output_paths(parts, "out", "parquet")
    assert len(set(names)) == len(names) and "out/part-2-0001.parquet" in names


def test_local_engine_reads_the_files_one_after_another(housing, labels, work):
    """A glob, a directory and a list give what one file of all the rows gives (exactly for counts)."""
    whole = work / "whole.parquet"
    pq.write_table(pa.concat_tables([pq.read_table(f) for f in housing["files"]]), whole, row_group_size=500)
    one = evaluate(housing["loaded"], str(whole), "price", REGRESSION, progress=False, batch_size=500)
    for data in (housing["glob"], housing["dir"], housing["files"]):
        got = evaluate(housing["loaded"], data, "price", REGRESSION, progress=False, batch_size=500)
        assert got["samples"] == one["samples"] == 13000
        assert_close(got["metrics"], one["metrics"])
    x = np.concatenate([np.load(f)["x"] for f in sorted(labels["dir"].glob("*.npz"))])
    y = np.concatenate([np.load(f)["label"] for f in sorted(labels["dir"].glob("*.npz"))])
    np.savez(work / "labels-all.npz", x=x, label=y)
    one = evaluate(labels["model"], str(work / "labels-all.npz"), "label", COUNTING, progress=False)
    got = evaluate(labels["model"], str(labels["dir"]), "label", COUNTING, progress=False)
    assert got["metrics"] == one["metrics"]


def test_several_files_resume_at_any_row_and_name_a_file_that_differs(housing, tmp_path):
    """MultiSource.batches(start=k) skips k rows across files (CSV too, whose length is unknown ahead)."""
    from modelc.runtime.partitions import open_data
    csv = tmp_path / "part-9.csv"
    pcsv.write_csv(pq.read_table(housing["files"][0]), csv)
    files = [housing["files"][1], str(csv), housing["files"][2]]
    source = open_data(files)
    source.select(["f0", "price"])
    everything = np.concatenate([b["price"] for b in source.batches(700)])
    assert len(everything) == 2500 + 2000 + 3500
    for start in (0, 1, 2500, 2501, 4499, 4500, 7999, 8000):
        got = [b["price"] for b in source.batches(700, start=start)]
        assert np.array_equal(np.concatenate(got) if got else np.empty(0), everything[start:]), start
    odd = tmp_path / "odd.parquet"
    pq.write_table(pq.read_table(housing["files"][0]).drop(["price"]), odd)
    with pytest.raises(ModelcError, match="odd.parquet has no column 'price'"):
        evaluate(housing["loaded"], [housing["files"][0], str(odd)], "price", ["mse"], progress=False)


# --- Dask: equal to the local engine -----------------------------------------------------------------------
def test_eval_on_dask_equals_local(housing, labels, client):
    local = evaluate(housing["loaded"], housing["glob"], "price", REGRESSION, progress=False)
    dask = evaluate(housing["loaded"], housing["glob"], "price", REGRESSION, progress=False, engine="dask",
                    client=client, partition_rows=3000)
    assert dask["engine"] == "dask" and dask["partitions"] == 6 and dask["workers"] == 2
    assert dask["samples"] == local["samples"] == 13000 and dask["nan_input_rows"] == 0
    assert_close(dask["metrics"], local["metrics"])
    # what crosses the wire per task: the job and a partition out, metric states back; the model once per worker
    figures = dask["dask"]
    assert figures["task_bytes"] < 2048 and figures["state_bytes"] < 2048 < figures["model_bytes_per_worker"]
    # counting metrics: exactly the local numbers
    local = evaluate(labels["model"], str(labels["dir"]), "label", COUNTING, progress=False)
    dask = modelc.evaluate(labels["model"], str(labels["dir"]), "label", COUNTING, progress=False, engine="dask",
                           client=client)
    assert_close(dask["metrics"], local["metrics"], exact=True)


def test_no_rows_on_dask_are_undefined_metrics_as_locally(housing, client, tmp_path):
    empty = tmp_path / "empty.parquet"
    write_table(empty, {**{f"f{j}": np.zeros(0, np.float32) for j in range(8)}, "price": np.zeros(0)}, 500)
    with pytest.warns(RuntimeWarning, match="no rows"):
        local = evaluate(housing["loaded"], str(empty), "price", ["mse", "r2"], progress=False)
    with pytest.warns(RuntimeWarning, match="no rows"):
        dask = evaluate(housing["loaded"], str(empty), "price", ["mse", "r2"], progress=False, engine="dask",
                        client=client)
    assert dask["samples"] == local["samples"] == 0
    assert all(np.isnan(v) for v in [*dask["metrics"].values(), *local["metrics"].values()])


def test_each_worker_builds_its_session_once(housing, client):
    """12 partitions on 2 workers: at most one session build per worker (the model is not sent with tasks)."""
    from modelc.runtime import dask_worker
    before = client.run(lambda: dict(dask_worker.BUILT))
    evaluate(housing["loaded"], housing["files"], "price", ["mse"], progress=False, client=client,
             partition_rows=500, batch_size=250)
    after = client.run(lambda: dict(dask_worker.BUILT))
    builds = [{k: v for k, v in after[w].items() if k not in before.get(w, {})} for w in after]
    assert all(len(b) <= 1 and all(v == 1 for v in b.values()) for b in builds), builds
    assert sum(len(b) for b in builds) >= 1
    assert client.run(lambda: len(dask_worker._RUNNERS)) == {w: 0 for w in after}   # freed after the job


def test_eval_cli_on_a_scheduler_and_on_local_workers(housing):
    """--scheduler ADDRESS (here a cluster of the test's own) and --workers N (a LocalCluster of the CLI's)."""
    base = ["eval", housing["onnx"], "--data", housing["glob"], "--target", "price", "--metric", "mse",
            "--metric", "r2", "--json"]
    local = run_cli(*base)
    assert local.returncode == 0, local.stderr
    workers = run_cli(*base, "--engine", "dask", "--workers", "2", "--progress")
    assert workers.returncode == 0, workers.stderr
    a, b = json.loads(local.stdout), json.loads(workers.stdout)
    assert b["engine"] == "dask" and b["workers"] == 2 and b["samples"] == a["samples"]
    assert_close(b["metrics"], a["metrics"])
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                                  host="127.0.0.1", **LOOPBACK_NO_DASHBOARD) as cluster:
        sched = run_cli(*base[:3], housing["files"][0], "--data", housing["files"][1], *base[4:], "--engine",
                        "dask", "--scheduler", cluster.scheduler_address)
    assert sched.returncode == 0, sched.stderr
    assert json.loads(sched.stdout)["samples"] == 4500


def read_dir(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: pq.read_table(p)["y"].to_numpy() for p in sorted(folder.glob("*.parquet"))}


def test_run_on_dask_writes_one_file_per_partition(housing, client, tmp_path):
    local = run(housing["loaded"], housing["glob"], str(tmp_path / "local") + "/", progress=False,
                columns=FEATURES, partition_rows=3000)
    dask = run(housing["loaded"], housing["glob"], str(tmp_path / "dask") + "/", progress=False, engine="dask",
               client=client, columns=FEATURES, partition_rows=3000)
    assert local["partitions"] == dask["partitions"] == dask["written"] == 6 and dask["samples"] == 13000
    a, b = read_dir(tmp_path / "local"), read_dir(tmp_path / "dask")
    assert a.keys() == b.keys() and len(a) == 6 and not list((tmp_path / "dask").glob(".*"))
    for name in a:   # same rows and batch cuts; onnxruntime's thread count (2 here, 1 per worker) moves last bits
        assert np.allclose(a[name], b[name], rtol=1e-6, atol=0), (name, np.max(np.abs(a[name] / b[name] - 1)))
    # a rerun skips what is there: remove one file, and only that one is written again
    (tmp_path / "dask" / "part-2-0001.parquet").unlink()
    again = run(housing["loaded"], housing["glob"], str(tmp_path / "dask") + "/", progress=False, engine="dask",
                client=client, columns=FEATURES, partition_rows=3000)
    assert (again["written"], again["skipped"], again["samples"]) == (1, 5, 500)
    assert np.array_equal(read_dir(tmp_path / "dask")["part-2-0001.parquet"], b["part-2-0001.parquet"])


# --- failures ---------------------------------------------------------------------------------------------
def test_missing_and_corrupt_partitions_are_named_and_nothing_else_is_lost(housing, client, tmp_path):
    corrupt = tmp_path / "a-corrupt.parquet"          # first in the list: the plan comes from the next file
    corrupt.write_bytes(b"PAR1 not really parquet")
    missing = tmp_path / "gone.parquet"
    data = [str(corrupt), *housing["files"][:3], str(missing), *housing["files"][3:]]
    good = evaluate(housing["loaded"], housing["files"], "price", REGRESSION, progress=False)
    with pytest.raises(PartitionErrors) as caught:
        evaluate(housing["loaded"], data, "price", REGRESSION, progress=False, client=client)
    message = str(caught.value)
    assert str(corrupt) in message and str(missing) in message and "2 of 7 partitions failed" in message
    partial = caught.value.result
    assert partial["samples"] == 13000 and {f["file"] for f in partial["failed_partitions"]} == {str(corrupt),
                                                                                                 str(missing)}
    assert_close(partial["metrics"], good["metrics"])
    # the CLI prints the other partitions' metrics, names the files on stderr, exits 1
    args = [a for f in data for a in ("--data", f)]
    cli = run_cli("eval", housing["onnx"], *args, "--target", "price", "--metric", "mse", "--json",
                  "--engine", "dask", "--workers", "1")
    assert cli.returncode == 1 and str(corrupt) in cli.stderr and str(missing) in cli.stderr
    assert json.loads(cli.stdout)["samples"] == 13000
    # run: the good partitions are written; a rerun writes nothing new and names the same two files
    out = tmp_path / "pred"
    with pytest.raises(PartitionErrors, match="gone.parquet"):
        run(housing["loaded"], data, str(out) + "/", progress=False, client=client, columns=FEATURES)
    assert len(list(out.glob("*.parquet"))) == 5 and not list(out.glob(".*"))
    with pytest.raises(PartitionErrors) as again:
        run(housing["loaded"], data, str(out) + "/", progress=False, client=client, columns=FEATURES)
    assert again.value.result["skipped"] == 5 and again.value.result["written"] == 0


def test_without_the_dask_extra_the_error_says_how_to_install(housing, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)   # `import distributed` now fails
    with pytest.raises(ModelcError, match=r"pip install 'modelc-onnx\[dask\]'"):
        evaluate(housing["loaded"], housing["glob"], "price", ["mse"], engine="dask", workers=2)
    with pytest.raises(ModelcError, match="needs --engine dask"):
        evaluate(housing["loaded"], housing["glob"], "price", ["mse"], engine="local", workers=2)


def test_a_worker_killed_mid_evaluation_changes_nothing(client, work):
    """SIGKILL one worker process while partitions are in flight: Dask reruns its tasks on the other worker
    (and on the one the nanny restarts); the numbers equal those of an undisturbed run, bit for bit."""
    proto = modelc.compile_file("samples/housing.model", seed=0)
    loaded = LoadedModel(proto, [], "housing")
    rng = np.random.default_rng(7)
    folder = work / "big"
    folder.mkdir()
    for i in range(24):
        x = rng.normal(size=(50_000, 8)).astype(np.float32)
        write_table(folder / f"p{i:02d}.parquet", {**{f"f{j}": x[:, j] for j in range(8)},
                                                   "price": rng.gamma(2.0, size=len(x))}, 10_000)
    specs = ["mse", "mae", "r2"]
    calm = evaluate(loaded, str(folder), "price", specs, progress=False, client=client)

    done = lambda dask_scheduler: sum(1 for k, ts in dask_scheduler.tasks.items()  # noqa: E731
                                      if str(k).startswith("modelc-eval-") and ts.state == "memory")
    busy = lambda dask_scheduler: {a: [str(ts.key) for ts in ws.processing  # noqa: E731
                                       if str(ts.key).startswith("modelc-eval-")]
                                    for a, ws in dask_scheduler.workers.items()}
    pids = client.run(os.getpid)
    outcome: dict = {}
    def evaluate_in_thread() -> None:
        try:
            outcome["result"] = evaluate(loaded, str(folder), "price", specs, progress=False, client=client)
        except BaseException as e:  # noqa: BLE001 - shown by the assertion below
            outcome["error"] = e
    thread = threading.Thread(target=evaluate_in_thread)
    thread.start()
    deadline = time.monotonic() + 30
    in_flight: dict = {}
    while time.monotonic() < deadline:  # wait until a worker is running a partition of this job
        in_flight = client.run_on_scheduler(busy)
        if any(in_flight.values()):
            break
        time.sleep(0.005)
    finished_at_kill = client.run_on_scheduler(done)
    address = max(in_flight, key=lambda a: len(in_flight[a]))   # a worker running a partition right now
    victim = pids[address]
    os.kill(victim, signal.SIGKILL)
    thread.join(60)
    assert "result" in outcome, f"the evaluation did not finish after the kill: {outcome.get('error')!r}"
    assert finished_at_kill < 24, finished_at_kill            # the kill came while partitions were in flight
    assert in_flight[address], in_flight                       # ... one of them on the worker killed
    assert victim not in client.run(os.getpid).values()       # that process is gone (a new one took its place)
    result = outcome["result"]
    assert result["samples"] == calm["samples"] == 24 * 50_000 and result["partitions"] == 24
    assert result["metrics"] == calm["metrics"]               # exactly: same partitions, same merge tree
    client.wait_for_workers(2, timeout=30)


def test_a_model_with_external_data_runs_on_dask_from_its_file(housing, client, tmp_path, monkeypatch):
    """Weights in external data (over 2 GB; here the threshold is lowered) go to the workers as the file's folder,
    not as bytes: the workers read them, and the metrics equal the local ones of the same model inline."""
    from modelc.compiler import serialize
    monkeypatch.setattr(serialize, "EXTERNAL_DATA_BYTES", 0)
    external = tmp_path / "housing.onnx"
    modelc.save(housing["loaded"].proto, external)
    assert (tmp_path / "housing.onnx.data").exists()
    local = evaluate(housing["loaded"], housing["glob"], "price", REGRESSION, progress=False)
    dask, inline = (evaluate(model, housing["glob"], "price", REGRESSION, progress=False, client=client,
                             partition_rows=3000) for model in (str(external), str(housing["onnx"])))
    assert dask["samples"] == local["samples"] == 13000
    sent = inline["dask"]["model_bytes_per_worker"] - dask["dask"]["model_bytes_per_worker"]
    assert sent >= 0.9 * (tmp_path / "housing.onnx.data").stat().st_size   # the weights stayed in their file
    # with external data onnxruntime runs without pre-packing (session.py): another GEMM, other float32 last bits
    for k, v in local["metrics"].items():
        assert np.allclose(dask["metrics"][k], v, rtol=1e-6, atol=0), (k, dask["metrics"][k], v)
