"""`run` over labelled data (--drop, --target, --keep) and messy tables (--on-missing, text in numbers), through
the command line: exact messages and exit codes, predictions checked against a run over clean columns."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from helpers import run_cli

N = 40
HEADER = "f0,f1,f2,f3,f4,f5,f6,f7,price"
LEAVE_OUT = "leave some out with --drop COL, or name them with --columns x=COL1,COL2,..."
MISSING_HINT = "missing value; --on-missing skip leaves such rows out, --on-missing keep passes them on as NaN"


def ok(*args) -> str:
    result = run_cli(*args)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return result.stdout


def fails(*args) -> str:
    """A user error: exit 1, one diagnostic on stderr, no traceback. Returns stderr."""
    result = run_cli(*args)
    assert result.returncode == 1 and "Traceback" not in result.stderr, (result.returncode, result.stderr)
    return result.stderr


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("labelled") / "housing.onnx"
    ok("compile", "samples/housing.model", "-o", path, "--init-missing")
    return path


@pytest.fixture
def houses(tmp_path) -> dict[str, np.ndarray]:
    """Eight features, a price and an ID, as .parquet and .csv in tmp_path; and the predictions of the features."""
    rng = np.random.default_rng(1)
    columns = {f"f{j}": (0.5 * rng.normal(size=N)).astype(np.float32) for j in range(8)}
    columns["price"] = rng.normal(size=N)
    columns["id"] = np.array([f"h{i:03d}" for i in range(N)])
    for suffix in ("parquet", "csv"):
        (pq.write_table if suffix == "parquet" else pcsv.write_csv)(pa.table(columns), tmp_path / f"houses.{suffix}")
    np.savez(tmp_path / "features.npz", x=np.stack([columns[f"f{j}"] for j in range(8)], axis=1))
    return columns


def predictions(model: Path, folder: Path) -> np.ndarray:
    ok("run", model, "--data", folder / "features.npz", "-o", folder / "plain.npz")
    return np.load(folder / "plain.npz")["y"][:, 0]


# --- point 5: run with labelled data --------------------------------------------------------------------
def test_run_on_labelled_data_says_how_to_leave_columns_out(model, houses, tmp_path):
    err = fails("run", model, "--data", tmp_path / "houses.parquet", "-o", tmp_path / "p.parquet")
    assert err == (f"error: model input 'x' takes 8 columns, {tmp_path}/houses.parquet has 10: "
                   f"f0, f1, f2, f3, f4, f5, f6, f7, price, id; {LEAVE_OUT}\n")


@pytest.mark.parametrize("flags", [["--drop", "price", "--drop", "id"], ["--drop", "price,id"],
                                   ["--target", "price", "--drop", "id"]])
def test_run_drop_and_target_leave_columns_out(model, houses, tmp_path, flags):
    out = json.loads(ok("run", model, "--data", tmp_path / "houses.csv", "-o", tmp_path / "p.npz", *flags, "--json"))
    assert out["samples"] == N and "kept" not in out
    np.testing.assert_allclose(np.load(tmp_path / "p.npz")["y"][:, 0], predictions(model, tmp_path), rtol=1e-6)


@pytest.mark.parametrize("suffix", ["parquet", "csv", "npz"])
def test_run_keep_copies_columns_beside_the_outputs(model, houses, tmp_path, suffix):
    out_path = tmp_path / f"p.{suffix}"
    out = json.loads(ok("run", model, "--data", tmp_path / "houses.parquet", "-o", out_path, "--target", "price",
                        "--drop", "id", "--keep", "id,price", "--json"))
    assert list(out)[-1] == "kept" and out["kept"] == ["id", "price"]
    if suffix == "npz":
        got = dict(np.load(out_path))
        assert got["id"].dtype == np.dtype("<U4")
        y = got["y"][:, 0]
    else:
        table = pq.read_table(out_path) if suffix == "parquet" else pcsv.read_csv(out_path)
        assert table.column_names == ["id", "price", "y"]
        got = {name: table.column(name).to_numpy() for name in table.column_names}
        y = got["y"]
    assert list(got["id"]) == list(houses["id"])
    np.testing.assert_array_equal(got["price"], houses["price"])
    np.testing.assert_allclose(y, predictions(model, tmp_path), rtol=1e-6)


def test_run_keep_into_partition_files(model, houses, tmp_path):
    ok("run", model, "--data", tmp_path / "houses.parquet", "-o", f"{tmp_path}/out/", "--target", "price",
       "--drop", "id", "--keep", "id")
    assert pq.read_table(tmp_path / "out" / "houses.parquet").column_names == ["id", "y"]


def test_run_keep_and_target_errors(model, houses, tmp_path):
    data = ["--data", tmp_path / "houses.csv", "--drop", "id"]
    assert fails("run", model, *data, "-o", tmp_path / "p.npy", "--target", "price", "--keep", "id") == \
        "error: a .npy holds one array; --keep needs predictions in .npz, .parquet or .csv\n"
    assert fails("run", model, *data, "-o", f"{tmp_path}/d/", "--format", "npy", "--keep", "id") == \
        "error: a .npy holds one array; --keep needs predictions in .npz, .parquet or .csv\n"
    columns = "it has: f0, f1, f2, f3, f4, f5, f6, f7, price, id"
    assert fails("run", model, *data, "-o", tmp_path / "p.csv", "--target", "prise") == \
        f"error: {tmp_path}/houses.csv has no column 'prise' for --target; did you mean 'price'?; {columns}\n"
    assert fails("run", model, *data, "-o", tmp_path / "p.csv", "--target", "price", "--keep", "idd") == \
        f"error: {tmp_path}/houses.csv has no column 'idd' for --keep; did you mean 'id'?; {columns}\n"
    assert fails("run", model, *data, "-o", tmp_path / "p.csv", "--columns", "x=f0,f1,f2,f3,f4,f5,f6,id") == \
        "error: --columns x=... names 'id', which --drop leaves out\n"


def test_run_keep_refuses_a_column_named_like_an_output(model, houses, tmp_path):
    table = pq.read_table(tmp_path / "houses.parquet").rename_columns([*[f"f{j}" for j in range(8)], "y", "id"])
    pq.write_table(table, tmp_path / "named.parquet")
    assert fails("run", model, "--data", tmp_path / "named.parquet", "-o", tmp_path / "p.csv", "--drop", "y,id",
                 "--keep", "y") == ("error: --keep column 'y' has the name of a model output's column in the "
                                    "predictions; rename it in the data, or leave it out of --keep\n")


def test_eval_drop_and_the_python_api(model, houses, tmp_path):
    import modelc
    out = json.loads(ok("eval", model, "--data", tmp_path / "houses.csv", "--target", "price", "--drop", "id",
                        "--metric", "mse", "--json"))
    mse = np.mean((predictions(model, tmp_path).astype(np.float64) - houses["price"].astype(np.float32)) ** 2)
    assert out["samples"] == N and out["metrics"]["mse"] == pytest.approx(mse, rel=1e-5)
    summary = modelc.run(model, tmp_path / "houses.parquet", str(tmp_path / "api.parquet"), target="price",
                         drop=["id"], keep="id")
    assert summary["kept"] == ["id"] and pq.read_table(tmp_path / "api.parquet").column_names == ["id", "y"]


# --- point 6: messy tables ------------------------------------------------------------------------------------
def messy_csv(path: Path, cells: dict[tuple[int, int], str], rows: int = 6) -> Path:
    """A CSV of `rows` clean rows, the (row, column) -> text of `cells` written over them (rows from 1)."""
    lines = [HEADER] + [["0.1"] * 8 + [f"{1 + 0.1 * i:.1f}"] for i in range(rows)]
    for (row, col), text in cells.items():
        lines[row][col] = text
    path.write_text("\n".join([lines[0], *(",".join(line) for line in lines[1:])]) + "\n")
    return path


@pytest.mark.parametrize("command", ["run", "eval"])
def test_missing_cells_are_errors_by_default(model, tmp_path, command):
    data = messy_csv(tmp_path / "m.csv", {(3, 1): "", (5, 8): "NA"})
    args = ["-o", tmp_path / "p.csv", "--target", "price"] if command == "run" else ["--target", "price",
                                                                                      "--metric", "mse"]
    assert fails(command, model, "--data", data, *args) == f"error: {data} row 3, column 'f1': {MISSING_HINT}\n"
    target_only = messy_csv(tmp_path / "t.csv", {(5, 8): "NA"})
    assert fails("eval", model, "--data", target_only, "--target", "price", "--metric", "mse") == \
        f"error: {target_only} row 5, column 'price': {MISSING_HINT}\n"
    # run leaves its --target out of the inputs: a missing label is no missing input
    ok("run", model, "--data", target_only, "-o", tmp_path / "p.csv", "--target", "price")


def test_on_missing_skip_and_keep(model, tmp_path):
    data = messy_csv(tmp_path / "m.csv", {(3, 1): "", (5, 8): "NA"})
    eval_args = ["eval", model, "--data", data, "--target", "price", "--metric", "mse", "--json"]
    skipped = json.loads(ok(*eval_args, "--on-missing", "skip"))
    assert skipped["samples"] == 4 and list(skipped)[-1] == "skipped_rows" and skipped["skipped_rows"] == 2
    kept = json.loads(ok(*eval_args, "--on-missing", "keep"))
    assert kept["samples"] == 6 and kept["nan_input_rows"] == 1 and kept["nan_target_rows"] == 1
    assert "skipped_rows" not in kept
    out = json.loads(ok("run", model, "--data", data, "-o", tmp_path / "p.csv", "--target", "price",
                        "--keep", "price", "--on-missing", "skip", "--json"))
    assert out["samples"] == 5 and out["skipped_rows"] == 1 and list(out)[-2:] == ["kept", "skipped_rows"]
    assert pcsv.read_csv(tmp_path / "p.csv").column("price").to_pylist() == [1.0, 1.1, 1.3, None, 1.5]  # a kept label as it is
    text = ok("eval", model, "--data", data, "--target", "price", "--metric", "mse", "--on-missing", "keep")
    assert "rows with a NaN target: 1" in text


def test_clean_data_keeps_the_json_keys(model, tmp_path):
    data = messy_csv(tmp_path / "clean.csv", {})
    out = json.loads(ok("eval", model, "--data", data, "--target", "price", "--metric", "mse", "--json"))
    assert list(out) == ["metrics", "samples", "batches", "provider", "output", "seconds", "rows_per_second",
                         "nan_predictions", "nan_input_rows", "fused"]
    out = json.loads(ok("run", model, "--data", data, "-o", tmp_path / "p.npz", "--target", "price", "--json"))
    assert list(out) == ["output", "samples", "batches", "provider", "outputs", "seconds", "rows_per_second"]


def test_on_missing_counts_rows_within_each_file(model, tmp_path):
    """Parquet null and NaN; rows numbered within their own file, across files and row-group partitions."""
    columns = {f"f{j}": pa.array(np.full(20, 0.1, np.float32)) for j in range(8)}
    f5 = [0.1] * 20
    f5[13] = None
    (tmp_path / "parts").mkdir()
    pq.write_table(pa.table({**columns, "price": np.ones(20)}), tmp_path / "parts" / "a.parquet")
    pq.write_table(pa.table({**columns, "f5": pa.array(f5, pa.float32()), "price": np.ones(20)}),
                   tmp_path / "parts" / "b.parquet", row_group_size=5)
    expected = f"{tmp_path}/parts/b.parquet row 14, column 'f5': {MISSING_HINT}"
    assert fails("eval", model, "--data", tmp_path / "parts", "--target", "price", "--metric", "mse",
                 "--batch-size", "3") == f"error: {expected}\n"
    err = fails("run", model, "--data", tmp_path / "parts", "-o", f"{tmp_path}/out/", "--drop", "price",
                "--partition-rows", "5")
    assert f"error: {tmp_path}/parts/b.parquet (row group 2) row 14, column 'f5': {MISSING_HINT}" in err
    nan = pa.table({**columns, "price": np.where(np.arange(20) == 6, np.nan, 1.0)})
    pq.write_table(nan, tmp_path / "nan.parquet")
    assert fails("eval", model, "--data", tmp_path / "nan.parquet", "--target", "price", "--metric", "mse") == \
        f"error: {tmp_path}/nan.parquet row 7, column 'price': {MISSING_HINT}\n"


def test_resume_after_skipped_rows(model, tmp_path):
    data = messy_csv(tmp_path / "m.csv", {(2, 0): "NA", (4, 2): ""}, rows=9)
    args = ["eval", model, "--data", data, "--target", "price", "--metric", "mse", "--on-missing", "skip",
            "--batch-size", "3", "--json"]
    whole = json.loads(ok(*args))
    ok(*args, "--checkpoint", tmp_path / "ck.npz", "--checkpoint-every", "1")
    resumed = json.loads(ok(*args, "--checkpoint", tmp_path / "ck.npz", "--resume"))
    assert resumed["samples"] == whole["samples"] == 7 and resumed["skipped_rows"] == 2
    assert resumed["metrics"] == whole["metrics"]


@pytest.mark.parametrize("row", [4, 250_000])
def test_text_in_a_column_of_numbers(model, tmp_path, row):
    """In the block the reader takes its types from, or far past it (a second read locates the cell)."""
    rows = max(row, 6)
    data = messy_csv(tmp_path / "t.csv", {(row, 2): "abc"}, rows=rows) if row < 10 else None
    if data is None:
        data = tmp_path / "t.csv"
        line = ",".join(["0.1"] * 8 + ["1.0"])
        body = [line] * rows
        body[row - 1] = "0.1,0.1,abc,0.1,0.1,0.1,0.1,0.1,1.0"
        data.write_text("\n".join([HEADER, *body]) + "\n")
    for policy in ("error", "keep"):
        assert fails("eval", model, "--data", data, "--target", "price", "--metric", "mse", "--on-missing",
                     policy) == f"error: {data} row {row}, column 'f2': 'abc' is not a number\n"


def test_text_target_and_bad_policy(model, tmp_path):
    data = messy_csv(tmp_path / "t.csv", {(2, 8): "cheap"})
    assert fails("eval", model, "--data", data, "--target", "price", "--metric", "mse") == \
        f"error: {data} row 2, column 'price': 'cheap' is not a number\n"
    import modelc
    with pytest.raises(modelc.ModelcError, match="--on-missing must be one of error, skip, keep, got 'drop'"):
        modelc.run(model, data, str(tmp_path / "p.npz"), target="price", on_missing="drop")


def test_on_missing_on_dask(model, tmp_path):
    pytest.importorskip("distributed")
    data = messy_csv(tmp_path / "m.csv", {(3, 1): "", (5, 8): "NA"})
    out = json.loads(ok("eval", model, "--data", data, "--target", "price", "--metric", "mse", "--on-missing",
                        "skip", "--engine", "dask", "--workers", "1", "--json"))
    assert out["samples"] == 4 and out["skipped_rows"] == 2 and list(out)[-1] == "skipped_rows"


def test_resuming_a_skipping_eval_equals_a_straight_run(tmp_path, monkeypatch):
    """Rows left out travel with their batch: a checkpoint never counts rows of batches read ahead."""
    import modelc.runtime.engine as engine
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6000, 8)).astype(np.float64)
    x[[5, 10, 1500, 4321], [0, 3, 7, 2]] = np.nan
    data = tmp_path / "miss.csv"
    import pyarrow as pa
    import pyarrow.csv as pcsv
    pcsv.write_csv(pa.table({**{f"f{j}": x[:, j] for j in range(8)}, "price": rng.random(6000)}), data)
    options = dict(target="price", metrics=["mae"], on_missing="skip", checkpoint=str(tmp_path / "ck.npz"),
                   checkpoint_every=1, batch_size=1000, weights="samples/housing.safetensors", progress=False)
    saves = []
    real_save = engine.Checkpoints.save

    def save_then_stop(self, tally):
        real_save(self, tally)
        saves.append(1)
        if len(saves) == 2:
            raise KeyboardInterrupt
    monkeypatch.setattr(engine.Checkpoints, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        engine.evaluate("samples/housing.model", str(data), **options)
    monkeypatch.setattr(engine.Checkpoints, "save", real_save)
    resumed = engine.evaluate("samples/housing.model", str(data), resume=True, **options)
    straight = engine.evaluate("samples/housing.model", str(data), **{**options, "checkpoint": None})
    assert (resumed["samples"], resumed["skipped_rows"]) == (straight["samples"], straight["skipped_rows"]) \
        == (5996, 4)
    assert resumed["metrics"]["mae"] == pytest.approx(straight["metrics"]["mae"], rel=1e-12)
