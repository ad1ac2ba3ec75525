"""Behaviour snapshot of the `modelc` command line, to prove that a refactor changes nothing.

    python bench/snapshot.py write DIR [--modelc PATH] [--root CHECKOUT]   # DIR/snapshot (+ DIR/scratch)
    python bench/snapshot.py diff DIR_A DIR_B          # the two DIR/snapshot byte for byte; exit 1 if they differ

`write` drives only the `modelc` executable (numpy/pyarrow make seeded data) over every model in samples/:
check, summary, params, compile, run to every format, eval, compare, and failing invocations. Each call is
stored as JSON (argv, exit code, stdout, stderr) without timing keys and with paths as <DIR>/<ROOT>;
predictions canonically (.npz: members without zip metadata; .parquet: contents without the writer's version).
"""
from __future__ import annotations

import argparse
import difflib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

ROWS = 2_000
TIMING_KEYS = {"seconds", "rows_per_second", "task_seconds", "startup_seconds", "latency"}  # and any *_ms
REGRESSION = ["mse", "mae", "rmse", "r2", "log_cosh", "mean", "huber(threshold=2.0)"]
BINARY = ["accuracy", "binary_accuracy", "precision(threshold=0.7)", "recall", "f1", "auc",
          'auc(bins=4096, spacing="logit")', "pr_auc", "binary_crossentropy"]
CLASSES = ["accuracy", "top_k_accuracy(k=3)", "sparse_categorical_crossentropy", "confusion_matrix(k=10)"]
CUSTOM_METRICS = """\
metric max_error(y_true, y_pred) {
    state worst = max(abs(y_true - y_pred))
    return worst
}
"""


@dataclass(frozen=True)
class Sample:
    """A model of samples/: inputs (shape after the batch, dtype) and evaluations (output, target, metrics)."""
    file: str
    inputs: dict[str, tuple[tuple[int, ...], str]]
    evals: list[tuple[str, str, list[str]]]


SAMPLES = {  # model name -> spec; check_coverage() stops the run if samples/ holds a model not listed
    "housing": Sample("housing.model", {"x": ((8,), "float32")}, [("y", "price", REGRESSION)]),
    "classifier": Sample("classifier.model", {"image": ((8, 8, 1), "float32")}, [("probs", "digit", CLASSES)]),
    "wide_deep": Sample("wide_deep.model", {"features": ((16,), "float32"), "categories": ((4,), "int64")},
                        [("score", "label", BINARY),
                         ("aux", "kind", ["accuracy", "sparse_categorical_crossentropy", "confusion_matrix(k=3)"])]),
    "tensor_ops": Sample("tensor_ops.model", {"x": ((6,), "float32")}, [("total", "price", REGRESSION)]),
    "mixer": Sample("imports.model", {"x": ((12,), "float32")}, [("output", "y12", REGRESSION)]),
    # new samples go last: each sample's data seed is its place in this table
    "book": Sample("book.model", {"x": ((8,), "float32")}, [("output", "price", REGRESSION)]),
}
# Samples whose run here would cost minutes (a CNN at batch size 1 over every row): their models are checked
# above, and compiled, run and compared with Keras by tests/test_samples.py and tests/test_layers_*.py.
NOT_SNAPSHOT = {"resnet.model": 1, "transformer.model": 1, "lstm.model": 1}
TARGETS: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "price": lambda rng: np.exp(0.5 * rng.normal(size=ROWS)).astype(np.float32),
    "label": lambda rng: rng.integers(0, 2, ROWS),
    "digit": lambda rng: rng.integers(0, 10, ROWS),
    "kind": lambda rng: rng.integers(0, 3, ROWS),
    "y12": lambda rng: rng.normal(size=(ROWS, 12)).astype(np.float32),
}


def strip_timing(value: Any) -> Any:
    """The JSON value without timing-dependent keys, recursively."""
    if isinstance(value, dict):
        return {k: strip_timing(v) for k, v in value.items() if k not in TIMING_KEYS and not k.endswith("_ms")}
    return [strip_timing(v) for v in value] if isinstance(value, list) else value


def canonical(path: Path) -> bytes:
    """A predictions file's content, without what varies from one write to the next."""
    if path.suffix == ".npz":  # the members, not the zip headers (dates, offsets, extra fields)
        with zipfile.ZipFile(path) as z:
            return b"".join(f"{i.filename} {i.file_size} {i.compress_type}\n".encode() + z.read(i)
                            for i in z.infolist())
    if path.suffix != ".parquet":
        return path.read_bytes()
    table = pq.read_table(path)  # not the bytes: the footer names the writer's version
    parts = [f"row groups: {pq.ParquetFile(path).num_row_groups}\n{table.schema.remove_metadata()}\n".encode()]
    for column in table.columns:
        np.save(buffer := io.BytesIO(), column.to_numpy(), allow_pickle=False)
        parts.append(buffer.getvalue())
    return b"".join(parts)


def make_data(spec: Sample, seed: int) -> dict[str, np.ndarray]:
    """Seeded inputs, the targets of the sample's evaluations and a sample-weight array `weight`."""
    rng = np.random.default_rng(seed)
    arrays = {name: rng.integers(0, 100, (ROWS, *shape)) if dtype == "int64"
              else rng.normal(size=(ROWS, *shape)).astype(dtype) for name, (shape, dtype) in spec.inputs.items()}
    arrays.update({target: TARGETS[target](rng) for _, target, _ in spec.evals})
    arrays["weight"] = rng.uniform(0.1, 2.0, ROWS).astype(np.float32)
    return arrays


def to_table(arrays: dict[str, np.ndarray]) -> pa.Table:
    """Arrays as table columns: [rows] -> NAME, [rows, ...] -> NAME_0, NAME_1, ..."""
    columns: dict[str, np.ndarray] = {}
    for name, a in arrays.items():
        flat = a.reshape(len(a), -1)
        columns.update({name: a} if a.ndim == 1 else {f"{name}_{j}": flat[:, j] for j in range(flat.shape[1])})
    return pa.table(columns)


def columns_args(spec: Sample) -> list[str]:
    return [a for name, (shape, _) in spec.inputs.items()
            for a in ("--columns", f"{name}=" + ",".join(f"{name}_{j}" for j in range(int(np.prod(shape)))))]


def metric_args(metrics: list[str]) -> list[str]:
    return [a for m in metrics for a in ("--metric", m)]


def checkout_of(modelc: str) -> Path | None:
    """The checkout whose .venv/bin holds the modelc executable (an editable install), if it is one."""
    path = Path(shutil.which(modelc) or modelc).absolute().parent.parent.parent
    return path if (path / "pyproject.toml").is_file() else None


class Snapshot:
    """Runs `modelc` with scratch files under DIR/scratch; stores stable records under DIR/snapshot."""

    def __init__(self, modelc: str, root: Path, out: Path):
        self.modelc, self.root, self.out = modelc, root.resolve(), out.resolve()
        self.scratch, self.snap = self.out / "scratch", self.out / "snapshot"
        (self.scratch / "tmp").mkdir(parents=True)
        # modelc runs in scratch/ on a copy of samples/ named relatively: ONNX doc strings hold the source path
        shutil.copytree(self.root / "samples", self.scratch / "samples")
        self.env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1", "TMPDIR": str(self.scratch / "tmp")}
        self.calls = 0
        places = {str(self.out): "<DIR>", str(self.root): "<ROOT>"}  # and modelc's own (e.g. the prelude's path)
        places.update({str(c): "<ROOT>" for c in [checkout_of(modelc)] if c and str(c) not in places})
        self.placeholders = sorted(places.items(), key=lambda p: -len(p[0]))

    def stable(self, text: str) -> str:
        for path, tag in self.placeholders:
            text = text.replace(path, tag)
        return text

    def save(self, name: str, content: bytes) -> None:
        (self.snap / name).parent.mkdir(parents=True, exist_ok=True)
        (self.snap / name).write_bytes(content)

    def __call__(self, name: str, *args: Any) -> dict[str, Any]:
        """Run `modelc ARGS`; store and return {argv, rc, stdout (parsed JSON, else lines), stderr (lines)}."""
        argv = [str(a) for a in args]
        done = subprocess.run([self.modelc, *argv], capture_output=True, text=True, env=self.env, cwd=self.scratch)
        self.calls += 1
        stdout: Any = self.stable(done.stdout)
        try:
            stdout = strip_timing(json.loads(stdout))
        except json.JSONDecodeError:
            stdout = stdout.splitlines()
        record = {"argv": [self.stable(a) for a in argv], "rc": done.returncode, "stdout": stdout,
                  "stderr": self.stable(done.stderr).splitlines()}
        self.save(f"{name}.json", (json.dumps(record, indent=1, ensure_ascii=False) + "\n").encode())
        return record

    def run(self, name: str, model: Path, data: Path, suffix: str, *extra: Any) -> Path:
        """`modelc run` to a predictions file; stores the record and the canonical predictions."""
        output = self.scratch / f"{name.replace('/', '_')}{suffix}"
        self(name, "run", model, "--data", data, "-o", output, "--json", *extra)
        if output.exists():
            self.save(f"{name}{suffix}.snap", canonical(output))
        return output


def check_coverage(s: Snapshot) -> None:
    """`modelc check` every sample file; stop if a file holds a different number of models than SAMPLES."""
    for path in sorted((s.scratch / "samples").rglob("*.model")):
        relative = path.relative_to(s.scratch / "samples").as_posix()
        record = s(f"check/{relative}", "check", f"samples/{relative}")
        found = re.search(r"\((\d+) models", " ".join(record["stdout"]))
        listed = sum(spec.file == relative for spec in SAMPLES.values()) + NOT_SNAPSHOT.get(relative, 0)
        if found is None or int(found.group(1)) != listed:
            sys.exit(f"snapshot: {relative}: check found {found and found.group(1)} models, SAMPLES lists {listed}")


def snapshot_sample(s: Snapshot, name: str, spec: Sample, npz: Path) -> Path:
    """Summary, params, compile, run to every format, eval and compare of one model; returns its .onnx."""
    model, onnx = Path("samples", spec.file), s.scratch / f"{name}.onnx"
    s(f"{name}/summary", "summary", model, "--model", name)
    s(f"{name}/params", "params", model, "--model", name, "--json")
    s(f"{name}/compile", "compile", model, "--model", name, "--seed", 0, "-o", onnx)
    if onnx.exists():  # a failed compile is recorded, and so is what fails after it
        s.save(f"{name}/compiled.onnx", onnx.read_bytes())
    predictions = s.run(f"{name}/run", onnx, npz, ".npz")
    single_output = predictions.exists() and len(zipfile.ZipFile(predictions).namelist()) == 1
    for suffix in [".parquet", ".csv"] + [".npy"] * single_output:
        s.run(f"{name}/run", onnx, npz, suffix)
    s.run(f"{name}/run_from_model", model, npz, ".npz", "--model", name, "--seed", 0, "--init-missing",
          "--batch-size", 300)
    for i, (output, target, metrics) in enumerate(spec.evals):
        tag, common = f"{name}/eval_{output}", ["--data", npz, "--target", target, "--output", output, "--json"]
        s(tag, "eval", onnx, *common, *metric_args(metrics))
        s(f"{tag}_weighted", "eval", onnx, *common, "--sample-weight", "weight", *metric_args(metrics))
        for batch in (1, 7, 1000):
            s(f"{tag}_batch{batch}", "eval", onnx, *common, "--batch-size", batch, *metric_args(metrics))
        if i == 0:
            s(f"{tag}_from_model", "eval", model, "--model", name, "--seed", 0, "--init-missing", *common,
              *metric_args(metrics))
            s(f"{tag}_reference", "eval", onnx, *common, "--provider", "reference", *metric_args(metrics[:3]))
    output, target, metrics = spec.evals[0]
    sides = {"providers": ["--providers", "cpu,reference", "--target", target, *metric_args(metrics[:2])],
             "fp16": ["--variants", "fp32,fp16"], "inline": ["--variants", "functions,inline"]}
    for side, options in sides.items():
        s(f"{name}/compare_{side}", "compare", model, "--model", name, "--init-missing", "--data", npz, "--output", output,
          "--json", *options)
    return onnx


def snapshot_files(s: Snapshot, name: str, spec: Sample, arrays: dict[str, np.ndarray], onnx: Path) -> None:
    """Eval over Parquet, CSV and a folder of Parquet files (local engine); run from Parquet and partitioned."""
    table, parts = to_table(arrays), s.scratch / f"{name}_parts"
    parquet, csv = s.scratch / f"{name}.parquet", s.scratch / f"{name}.csv"
    pq.write_table(table, parquet, row_group_size=500)
    pcsv.write_csv(table, csv)
    parts.mkdir()
    for k in range(4):
        pq.write_table(table.slice(k * ROWS // 4, ROWS // 4), parts / f"part-{k}.parquet")
    output, target, metrics = spec.evals[0]
    columns = columns_args(spec) if len(spec.inputs) > 1 else []  # one input: the columns but target and weight
    for kind, data in (("parquet", parquet), ("csv", csv), ("folder", parts)):
        s(f"{name}/eval_{kind}", "eval", onnx, "--data", data, "--target", target, "--output", output,
          "--sample-weight", "weight", "--engine", "local", "--json", *columns, *metric_args(metrics))
    s.run(f"{name}/run_from_parquet", onnx, parquet, ".csv", *columns_args(spec))
    partitioned = s.scratch / f"{name}_predictions"
    s(f"{name}/run_partitioned", "run", onnx, "--data", parts, "-o", f"{partitioned}/", "--json", *columns_args(spec))
    for path in sorted(partitioned.glob("*")):
        s.save(f"{name}/run_partitioned/{path.name}.snap", canonical(path))


def snapshot_housing_extras(s: Snapshot, onnx: Path, npz: Path) -> None:
    """An imported custom metric, and failing invocations (exit code and stderr)."""
    (s.scratch / "errors.model").write_text(CUSTOM_METRICS)
    common, parquet = ["--data", npz, "--target", "price", "--json"], s.scratch / "housing.parquet"
    s("housing/eval_import", "eval", onnx, *common, "--import", s.scratch / "errors.model",
      *metric_args(["max_error", "mse", "mae"]))
    failing: dict[str, list[Any]] = {
        "unknown_metric": ["eval", onnx, *common, "--metric", "max_error"],
        "bad_metric_argument": ["eval", onnx, *common, "--metric", "huber(nope=1)"],
        "missing_column": ["eval", onnx, "--data", parquet, "--target", "no_such_column", "--metric", "mse"],
        "extra_column": ["eval", onnx, "--data", parquet, "--target", "price", "--metric", "mse"],
        "unknown_output": ["eval", onnx, *common, "--output", "nope", "--metric", "mse"],
        "eval_batch_size_0": ["eval", onnx, *common, "--batch-size", 0, "--metric", "mse"],
        "run_batch_size_0": ["run", onnx, "--data", npz, "-o", s.scratch / "never.npz", "--batch-size", 0],
        "missing_data": ["eval", onnx, "--data", s.scratch / "absent.npz", "--target", "price", "--metric", "mse"],
    }
    for tag, args in failing.items():
        s(f"errors/{tag}", *args)


def write(out: Path, modelc: str, root: Path) -> None:
    if not (root / "samples").is_dir():
        sys.exit(f"snapshot: no samples/ in {root}; give --root CHECKOUT")
    if out.exists() and any(p.name not in ("scratch", "snapshot") for p in out.iterdir()):
        sys.exit(f"snapshot: {out} holds more than scratch/ and snapshot/; give an empty or new folder")
    for sub in ("scratch", "snapshot"):
        shutil.rmtree(out / sub, ignore_errors=True)
    started, s = time.perf_counter(), Snapshot(modelc, root, out)
    check_coverage(s)
    for seed, (name, spec) in enumerate(SAMPLES.items()):
        arrays = make_data(spec, seed)
        np.savez(npz := s.scratch / f"{name}.npz", **arrays)
        onnx = snapshot_sample(s, name, spec, npz)
        if name in ("housing", "wide_deep"):
            snapshot_files(s, name, spec, arrays, onnx)
        if name == "housing":
            snapshot_housing_extras(s, onnx, npz)
    files = sum(p.is_file() for p in s.snap.rglob("*"))
    print(f"wrote {s.snap}: {files} files from {s.calls} modelc calls in {time.perf_counter() - started:.1f} s")


def show_difference(name: str, a: bytes, b: bytes) -> None:
    try:
        lines = list(difflib.unified_diff(a.decode().splitlines(), b.decode().splitlines(), f"A/{name}", f"B/{name}",
                                          n=2, lineterm=""))
        print("\n".join(lines[:30] + [f"... {len(lines) - 30} more diff lines"] * (len(lines) > 30)))
    except UnicodeDecodeError:
        at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        print(f"{name}: {len(a)} vs {len(b)} bytes, first difference at byte {at}: "
              f"{a[at:at + 16].hex(' ')} vs {b[at:at + 16].hex(' ')}")


def diff(a: Path, b: Path) -> int:
    """Compare two snapshots file by file; 0 when identical, 1 otherwise."""
    files = [{p.relative_to(d / "snapshot").as_posix() for p in (d / "snapshot").rglob("*") if p.is_file()}
             for d in (a, b)]
    if not files[0] or not files[1]:
        sys.exit(f"snapshot: no snapshot under {a if not files[0] else b}/snapshot")
    differ = 0
    for name in sorted(files[0] | files[1]):
        if name not in files[0] or name not in files[1]:
            print(f"{name}: only in {a if name in files[0] else b}")
        elif (left := (a / "snapshot" / name).read_bytes()) != (right := (b / "snapshot" / name).read_bytes()):
            show_difference(name, left, right)
        else:
            continue
        differ += 1
    total = len(files[0] | files[1])
    print(f"{differ} of {total} files differ" if differ else f"identical: {total} files")
    return 1 if differ else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("write", help="snapshot the behaviour of a modelc checkout into DIR")
    p.add_argument("dir", type=Path)
    beside = Path(sys.executable).parent / "modelc"
    p.add_argument("--modelc", default=str(beside) if beside.exists() else "modelc",
                   help="the modelc executable (default: the one beside this python, else on PATH)")
    p.add_argument("--root", type=Path, help="checkout whose samples/ to use (default: the one holding --modelc "
                   "as ROOT/.venv/bin/modelc, else the repo holding this script)")
    p = sub.add_parser("diff", help="compare two snapshots; exit 1 if they differ")
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.command == "diff":
        return diff(args.a, args.b)
    checkout = checkout_of(args.modelc)
    this_repo = Path(__file__).resolve().parents[1]
    root = args.root or (checkout if checkout and (checkout / "samples").is_dir() else this_repo)
    write(args.dir, args.modelc, root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
