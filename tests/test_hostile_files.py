"""Hostile files and faults (issue 13, defects 1, 5 and 10), each through the command line in a private folder:
outputs that are no regular file, symlinks, temporaries left by SIGTERM or by a dead process; checkpoints of
another evaluation or corrupt ones; a closed pipe, a byte-order mark, integers and floats float32 cannot hold,
imports confined to --import-root, a non-program import quoted no further than a token.

Every device-like destination is built here (a FIFO, a socket, a folder, links): never the machine's /dev."""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import modelc
from helpers import MODELC, run_cli
from modelc.cli import main

TINY = "model m(x: float32[batch, 2]) {\n    return x -> dense(1)\n}\n"


def cli(*args) -> subprocess.CompletedProcess:
    """`modelc ARGS` in this process (the command line's main): exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return subprocess.CompletedProcess(["modelc", *args], code, out.getvalue(), err.getvalue())


def ok(*args) -> subprocess.CompletedProcess:
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    return result


def fails(*args) -> str:
    """A user error: exit 1, a message, no traceback, no internal error, no temporary file named."""
    result = cli(*args)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    assert ".tmp" not in result.stderr and ".modelc-" not in result.stderr, result.stderr
    return result.stderr


def leftovers(folder: Path) -> list[str]:
    """Temporaries of any kind modelc makes (files and scratch folders)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and (".tmp" in p.name or
                                                                                  ".modelc-" in p.name))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A two-input linear model as .model and .onnx, its data (.npz and a table), its predictions by numpy."""
    work = tmp_path_factory.mktemp("hostile")
    (work / "m.model").write_text(TINY)
    ok("compile", work / "m.model", "-o", work / "m.onnx", "--init-missing", "--seed", "1")
    ok("compile", work / "m.model", "-o", work / "other.onnx", "--init-missing", "--seed", "2")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 2)).astype(np.float32)
    y = x @ np.array([0.5, -1.0]) + rng.normal(scale=0.1, size=3000)
    np.savez(work / "d.npz", x=x, y=y)
    return {"dir": work, "model": work / "m.model", "onnx": work / "m.onnx", "other": work / "other.onnx",
            "data": work / "d.npz", "x": x, "y": y}


def linear_oracle(onnx_path: Path, x: np.ndarray) -> np.ndarray:
    """The model's dense(1) by numpy from its own weights: x @ kernel + bias."""
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(onnx_path).graph.initializer}
    kernel = next(v for k, v in weights.items() if k.endswith("kernel"))
    bias = next(v for k, v in weights.items() if k.endswith("bias"))
    return x.astype(np.float64) @ kernel.astype(np.float64) + bias


# --- defect 1: output paths ---------------------------------------------------------------------------------
def special_files(folder: Path) -> dict[str, Path]:
    """A FIFO, a folder, a socket (when the path is short enough to bind) and a link to the FIFO."""
    made = {"FIFO": folder / "fifo.npz", "folder": folder / "dir.npz", "link": folder / "link.npz"}
    os.mkfifo(made["FIFO"])
    made["folder"].mkdir()
    made["link"].symlink_to(made["FIFO"])
    sock_path = folder / "s.npz"
    if len(str(sock_path)) < 100:
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(sock_path))
        s.close()
        made["socket"] = sock_path
    return made


def test_outputs_that_are_not_regular_files_are_refused(tiny, tmp_path):
    made = special_files(tmp_path)
    expected = {"FIFO": "FIFO", "folder": "folder", "link": "FIFO", "socket": "socket"}
    for kind, path in made.items():
        run = ("run", tiny["onnx"], "--data", tiny["data"], "--drop", "y", "-o", path)  # (-o FOLDER/: one file a part)
        for args in (("compile", tiny["model"], "--init-missing", "-o", path), *([run] * (kind != "folder")),
                     ("eval", tiny["onnx"], "--data", tiny["data"], "--target", "y", "--metric", "mse",
                      "--checkpoint", path)):
            message = fails(*args)
            assert f"cannot write {path}: it is a" in message and expected[kind] in message, (kind, message)
    assert stat.S_ISFIFO(os.stat(made["FIFO"]).st_mode) and made["link"].is_symlink()   # all left as they were
    assert not any(made["folder"].iterdir()) and leftovers(tmp_path) == []


def test_a_symlinked_output_is_written_through(tiny, tmp_path):
    """The link stays a link; its target gets the new bytes: the same as a write to a plain path."""
    (tmp_path / "models").mkdir()
    target = tmp_path / "models" / "real.onnx"
    target.write_bytes(b"old")
    target.chmod(0o640)
    link = tmp_path / "current.onnx"
    link.symlink_to(target)
    ok("compile", tiny["model"], "--init-missing", "--seed", "1", "-o", link)
    assert link.is_symlink() and target.read_bytes() == tiny["onnx"].read_bytes()
    assert stat.S_IMODE(target.stat().st_mode) == 0o640          # the file replaced keeps its permissions
    pred_target = tmp_path / "models" / "p.npz"
    (tmp_path / "p.npz").symlink_to(pred_target)                 # a dangling link: its target is created
    ok("run", tiny["onnx"], "--data", tiny["data"], "--drop", "y", "-o", tmp_path / "p.npz")
    with np.load(pred_target) as saved:
        np.testing.assert_allclose(saved["output"], linear_oracle(tiny["onnx"], tiny["x"]), rtol=1e-5, atol=1e-6)
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "models") == []


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_stale_temporaries_of_dead_processes_are_swept(tiny, tmp_path):
    dead, alive = dead_pid(), os.getpid()
    stale = [f".m.onnx.modelc-{dead}.tmp", f".m.onnx.tmp{dead}", f".p.csv.modelc-{dead}.tmp"]
    for name in stale + [f".m.onnx.modelc-{alive}.tmp", f".notes.tmp{dead}"]:
        (tmp_path / name).write_bytes(b"x" * 100)
    for name in (f".modelc-run-{dead}-abcd", f".modelc-run-{alive}-efgh"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "0.raw").write_bytes(b"x")
    assert run_cli("compile", tiny["model"], "--init-missing", "-o", tmp_path / "m.onnx").returncode == 0  # another process
    left = sorted(p.name for p in tmp_path.iterdir())
    # what a dead process left is gone; a live process's, and a file that only looks like an old temporary, stay
    assert left == sorted(["m.onnx", f".m.onnx.modelc-{alive}.tmp", f".notes.tmp{dead}",
                           f".modelc-run-{alive}-efgh"]), left


def terminate_when(proc: subprocess.Popen, ready, settle: float = 0.0) -> str:
    """SIGTERM `proc` once `ready()` holds (or it ended, or a minute passed); its stderr."""
    try:
        deadline = time.monotonic() + 60
        while not ready() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(settle)
        proc.send_signal(signal.SIGTERM)
    finally:
        _, stderr = proc.communicate(timeout=60)
    return stderr


def test_sigterm_removes_temporaries_as_ctrl_c_does(tiny, tmp_path):
    data = tmp_path / "long.npy"
    np.save(data, np.random.default_rng(1).normal(size=(400_000, 2)).astype(np.float32))
    out = tmp_path / "out" / "p.csv"
    out.parent.mkdir()
    proc = subprocess.Popen([MODELC, "run", str(tiny["onnx"]), "--data", str(data), "-o", str(out),
                             "--batch-size", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr = terminate_when(proc, lambda: leftovers(out.parent), settle=0.1)
    assert proc.returncode == 128 + signal.SIGTERM, (proc.returncode, stderr)
    assert "terminated" in stderr and "Traceback" not in stderr
    assert list(out.parent.iterdir()) == []                      # no scratch folder, no half file


def test_sigterm_during_eval_leaves_a_checkpoint_that_resumes_exactly(tiny, tmp_path):
    rng = np.random.default_rng(2)
    data = tmp_path / "long.npz"
    np.savez(data, x=rng.normal(size=(30_000, 2)).astype(np.float32), y=rng.normal(size=30_000))
    ck = tmp_path / "ck" / "ck.npz"
    ck.parent.mkdir()
    args = ["eval", str(tiny["onnx"]), "--data", str(data), "--target", "y", "--metric", "mse", "--metric", "mae",
            "--batch-size", "10", "--json"]
    proc = subprocess.Popen([MODELC, *args, "--checkpoint", str(ck), "--checkpoint-every", "20"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr = terminate_when(proc, ck.exists)
    assert proc.returncode == 128 + signal.SIGTERM, (proc.returncode, stderr)
    assert "terminated" in stderr and "Traceback" not in stderr
    assert [p.name for p in ck.parent.iterdir()] == ["ck.npz"]          # the last checkpoint, no temporary
    resumed = json.loads(ok(*args, "--checkpoint", ck, "--resume").stdout)
    straight = json.loads(ok(*args).stdout)
    assert resumed["samples"] == straight["samples"] == 30_000 and resumed["metrics"] == straight["metrics"]


# --- defect 5: checkpoints keyed on what they belong to ----------------------------------------------------
def test_resume_refuses_a_checkpoint_of_another_evaluation_and_says_what_changed(tiny, tmp_path):
    data = tmp_path / "d.npz"
    data.write_bytes(tiny["data"].read_bytes())
    ck = tmp_path / "ck.npz"
    base = ["eval", "--data", data, "--target", "y", "--batch-size", "500", "--json"]
    straight = json.loads(ok(*base[:1], tiny["onnx"], *base[1:], "--metric", "mse").stdout)
    ok(*base[:1], tiny["onnx"], *base[1:], "--metric", "mse", "--checkpoint", ck, "--checkpoint-every", "2")
    resumed = json.loads(ok(*base[:1], tiny["onnx"], *base[1:], "--metric", "mse", "--checkpoint", ck,
                            "--resume").stdout)
    assert resumed["metrics"] == straight["metrics"] and resumed["samples"] == 3000
    mse = float(np.mean((linear_oracle(tiny["onnx"], tiny["x"])[:, 0] - tiny["y"]) ** 2))
    assert resumed["metrics"]["mse"] == pytest.approx(mse, rel=1e-5)
    other_weights = fails("eval", tiny["other"], *base[1:], "--metric", "mse", "--checkpoint", ck, "--resume")
    assert f"checkpoint {ck} belongs to another evaluation" in other_weights and "the model" in other_weights
    assert "the metrics" not in other_weights and "the data" not in other_weights
    other_metric = fails("eval", tiny["onnx"], *base[1:], "--metric", "mae", "--checkpoint", ck, "--resume")
    assert "the metrics" in other_metric and "the model" not in other_metric
    np.savez(data, x=tiny["x"][::-1], y=tiny["y"][::-1])         # the data rewritten
    other_data = fails("eval", tiny["onnx"], *base[1:], "--metric", "mse", "--checkpoint", ck, "--resume")
    assert "the data" in other_data and "the model" not in other_data and "the metrics" not in other_data


def test_a_corrupt_checkpoint_is_named(tiny, tmp_path):
    ck = tmp_path / "ck.npz"
    args = ["eval", tiny["onnx"], "--data", tiny["data"], "--target", "y", "--metric", "mse", "--checkpoint", ck,
            "--resume"]
    ok(*args[:-1], "--checkpoint-every", "1", "--batch-size", "1000")
    whole = ck.read_bytes()
    np.save(tmp_path / "array.npy", np.arange(3))
    for garbage in (whole[: len(whole) // 2], b"\x00garbage" * 100, (tmp_path / "array.npy").read_bytes(), b""):
        ck.write_bytes(garbage)
        message = fails(*args)
        assert f"checkpoint {ck}" in message and "remove it or drop --resume" in message, message


def test_an_unwritable_checkpoint_is_noticed_before_the_evaluation(tiny, tmp_path):
    """The checkpoint is refused before the model is loaded or the data read: a missing model or data file would
    be the other error."""
    missing_data, missing_model = tmp_path / "nothing-here.npz", tmp_path / "no-model.model"
    for ck in (tmp_path / "no-folder" / "ck.npz", tmp_path / "fifo"):
        if ck.name == "fifo":
            os.mkfifo(ck)
        for model in (tiny["onnx"], missing_model):
            message = fails("eval", model, "--data", missing_data, "--target", "y", "--metric", "mse",
                            "--checkpoint", ck)
            assert f"cannot write {ck}" in message and "nothing-here" not in message, message
            assert "no-model" not in message, message
    with pytest.raises(modelc.ModelcError, match="cannot write .*no-folder"):   # the API says it as early
        modelc.evaluate(str(missing_model), str(missing_data), "y", ["mse"],
                        checkpoint=str(tmp_path / "no-folder" / "ck.npz"))


# --- defect 10: the smaller ones -------------------------------------------------------------------------------
def test_a_closed_pipe_ends_quietly(tmp_path):
    """`modelc params f | head -1`: exit 0, nothing on stderr (20,000 weights: far more than a pipe buffers)."""
    tensors = [onnx.numpy_helper.from_array(np.zeros(1, np.float32), f"weight_{i}") for i in range(20_000)]
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
                                   [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])], tensors)
    path = tmp_path / "many.onnx"
    onnx.save(onnx.helper.make_model(graph), path)
    result = subprocess.run(["bash", "-c", f"set -o pipefail; '{MODELC}' params '{path}' | head -1"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.startswith("weight_0")


def test_a_byte_order_mark_is_accepted(tmp_path):
    (tmp_path / "lib.model").write_bytes(b"\xef\xbb\xbflayer twice(x) = 2 * x\n")
    (tmp_path / "m.model").write_bytes(("\ufeffimport \"lib.model\"\n" + TINY.replace("dense(1)", "twice"))
                                       .encode("utf-8"))
    assert "ok (1 models, 1 layers" in ok("check", tmp_path / "m.model").stdout
    ok("compile", tmp_path / "m.model", "-o", tmp_path / "m.onnx")
    x = np.array([[1.5, -2.0]], np.float32)
    got = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"x": x})[0]
    np.testing.assert_array_equal(got, 2 * x)


def test_integers_and_floats_float32_cannot_hold(tiny, tmp_path):
    """int64 past 2**24: a warning naming the column, predictions as onnxruntime gives them on the float32 cast;
    a finite float64 past float32's range: an error naming the column and the row."""
    big = np.array([2**24 + 1, 3, 2**40 + 7, 5], np.int64)
    table = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": big, "b": np.arange(4, dtype=np.int64)}), table)
    result = ok("run", tiny["onnx"], "--data", table, "--columns", "x=a,b", "-o", tmp_path / "p.npz")
    assert "warning:" in result.stderr and "column 'a'" in result.stderr and "column 'b'" not in result.stderr
    assert "16777217 becomes 16777216" in result.stderr and result.stderr.count("warning:") == 1
    feeds = np.stack([big, np.arange(4)], axis=1).astype(np.float32)
    want = ort.InferenceSession(str(tiny["onnx"])).run(None, {"x": feeds})[0]
    with np.load(tmp_path / "p.npz") as saved:
        np.testing.assert_array_equal(saved["output"], want)
    wide = tmp_path / "w.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0, 1e39], "b": [0.0, 1e300, 0.0]}), wide)
    message = fails("run", tiny["onnx"], "--data", wide, "--columns", "x=a,b", "-o", tmp_path / "q.npz")
    assert f"{wide} row 2, column 'b': 1e+300 is past float32's range" in message, message
    message = fails("eval", tiny["onnx"], "--data", wide, "--columns", "x=a,b", "--target", "a", "--metric", "mse")
    assert "row 2, column 'b'" in message
    assert "row 2, column 'b'" in fails("compare", tiny["onnx"], "--data", wide, "--columns", "x=a,b")
    gaps = tmp_path / "gaps.parquet"          # NaN and infinity are no overflow: they pass as they are
    pq.write_table(pa.table({"a": [1.0, float("nan"), float("inf")], "b": [0.5, 2.0, 1e30]}), gaps)
    result = ok("run", tiny["onnx"], "--data", gaps, "--columns", "x=a,b", "--on-missing", "keep", "-o",
                tmp_path / "g.npz")
    assert "warning" not in result.stderr


@pytest.fixture
def confined(tmp_path):
    """root/m.model imports lib/ok.model (inside) and, in bad.model, ../outside.model and a link leaving root."""
    root = tmp_path / "root"
    (root / "lib").mkdir(parents=True)
    (tmp_path / "outside.model").write_text("layer twice(x) = 2 * x\n")
    (root / "lib" / "ok.model").write_text("layer twice(x) = 2 * x\n")
    (root / "lib" / "escape.model").symlink_to(tmp_path / "outside.model")
    (root / "m.model").write_text('import "lib/ok.model"\n' + TINY.replace("dense(1)", "twice"))
    (root / "bad.model").write_text('\n  import "../outside.model"\n' + TINY.replace("dense(1)", "twice"))
    (root / "link.model").write_text('import "lib/escape.model"\n' + TINY.replace("dense(1)", "twice"))
    np.savez(tmp_path / "d.npz", x=np.ones((4, 2), np.float32), y=np.ones(4))
    return root


def test_import_root_confines_imports_on_every_command(confined, tmp_path):
    root, data = confined, tmp_path / "d.npz"
    ok("check", root / "m.model", "--import-root", root)
    commands = [("check",), ("compile", "-o", tmp_path / "b.onnx"), ("summary",), ("params",),
                ("run", "--data", data, "--drop", "y", "-o", tmp_path / "p.npz"),
                ("eval", "--data", data, "--target", "y", "--metric", "mse"),
                ("compare", "--data", data)]
    for command, *rest in commands:
        message = fails(command, root / "bad.model", *rest, "--import-root", root)
        assert f"{root / 'bad.model'}:2:3: error: cannot import '../outside.model': it is outside --import-root " \
               f"{root}" in message, (command, message)
        assert '  import "../outside.model"\n  ^' in message
    message = fails("check", root / "link.model", "--import-root", root)   # a link inside that leads outside
    assert "cannot import 'lib/escape.model': it is outside --import-root" in message
    assert "does-not-exist: no such folder" in fails("check", root / "m.model", "--import-root", root / "does-not-exist")
    ok("check", root / "bad.model")                               # without the option imports go anywhere


def test_import_root_in_the_python_api(confined):
    root = confined
    diagnostics = modelc.check_file(root / "bad.model", import_root=root)
    assert len(diagnostics) == 1 and "outside --import-root" in diagnostics[0].message
    assert diagnostics[0].span.line == 2
    assert modelc.check_file(root / "m.model", import_root=root) == []
    with pytest.raises(modelc.ModelcError, match="outside --import-root"):
        modelc.compile_file(root / "bad.model", import_root=root, init_missing=True)
    assert modelc.compile_file(root / "bad.model", init_missing=True).graph.output[0].name == "output"
    with pytest.raises(modelc.ModelcError, match="outside --import-root"):
        modelc.evaluate(str(root / "bad.model"), str(root.parent / "d.npz"), "y", ["mse"], import_root=str(root),
                        init_missing=True, progress=False)


def test_an_imported_file_that_is_no_program_is_quoted_a_token_at_most(tmp_path, capsys):
    (tmp_path / "passwd").write_text("root:x:0:0:the-secret-rest-of-the-line:/root:/bin/bash\nsecond line\n")
    (tmp_path / "m.model").write_text('import "passwd"\n' + TINY)
    assert main(["check", str(tmp_path / "m.model")]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'passwd'}:1:1: error: unexpected name 'root'" in err and "\nroot\n^^^^\n" in err
    assert "secret" not in err and "bin/bash" not in err


def test_a_symlinked_model_with_external_data_stays_whole(tiny, tmp_path, monkeypatch, capsys):
    """External data (forced here: a threshold of 0 bytes) goes beside the link's target, named after it. (Loaders
    look for it beside the path they are given: onnxruntime loads the model by its real path.)"""
    from modelc.compiler import serialize
    monkeypatch.setattr(serialize, "EXTERNAL_DATA_BYTES", 0)
    monkeypatch.setattr(serialize, "INLINE_BYTES", 1)
    (tmp_path / "v2").mkdir()
    link = tmp_path / "current.onnx"
    link.symlink_to(tmp_path / "v2" / "model.onnx")
    assert main(["compile", str(tiny["model"]), "--init-missing", "--seed", "1", "-o", str(link)]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in (tmp_path / "v2").iterdir()) == ["model.onnx", "model.onnx.data"]
    got = ort.InferenceSession(str(tmp_path / "v2" / "model.onnx")).run(None, {"x": tiny["x"][:5]})[0]
    np.testing.assert_allclose(got, linear_oracle(tiny["onnx"], tiny["x"][:5]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("plant", ["symlink", "fifo"])
def test_something_planted_at_the_temporary_name_is_replaced_not_followed(tmp_path, plant):
    """The temporary file's name is predictable (`.NAME.modelc-PID.tmp`): a link planted there must not carry
    the write to its target, nor a FIFO block it; the planted entry is removed and a fresh file written."""
    source = tmp_path / "small.model"
    source.write_text("model m(x: float32[batch, 2]) {\n    return x -> dense(1)\n}\n")
    victim = tmp_path / "victim.txt"
    victim.write_text("VICTIM")
    planted = tmp_path / f".out.onnx.modelc-{os.getpid()}.tmp"
    if plant == "symlink":
        planted.symlink_to(victim)
    else:
        os.mkfifo(planted)
    assert main(["compile", str(source), "--init-missing", "-o", str(tmp_path / "out.onnx")]) == 0
    assert victim.read_text() == "VICTIM" and not os.path.lexists(planted)
    out = tmp_path / "out.onnx"
    assert out.is_file() and not out.is_symlink() and out.read_bytes()[:2] != b"VI"


@pytest.mark.parametrize("role", ["weights.safetensors", "weights.npz", "data.npz", "data.csv", "model.onnx"])
def test_a_fifo_given_as_any_input_is_refused_without_reading(tmp_path, role):
    """A FIFO as weights, data or a model would block the first read forever (SIGTERM could not end it inside
    the safetensors reader): refused from a stat, naming it."""
    source = tmp_path / "small.model"
    source.write_text("model m(x: float32[batch, 2]) {\n    return x -> dense(1)\n}\n")
    model = tmp_path / "small.onnx"
    assert main(["compile", str(source), "--init-missing", "-o", str(model)]) == 0
    np.savez(tmp_path / "ok.npz", x=np.ones((4, 2), np.float32))
    fifo = tmp_path / role
    os.mkfifo(fifo)
    kind, _ = role.split(".")
    args = {"weights": ["compile", source, "--weights", fifo, "-o", tmp_path / "o.onnx"],
            "data": ["run", model, "--data", fifo, "-o", tmp_path / "p.npz"],
            "model": ["run", fifo, "--data", tmp_path / "ok.npz", "-o", tmp_path / "p.npz"]}[kind]
    out = subprocess.run([MODELC, *map(str, args)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and f"cannot read {kind} {fifo}: it is a FIFO" in out.stderr, out.stderr


def test_integers_past_2_to_the_53_rounded_by_the_cast_are_warned_about(tmp_path):
    """float64 holds no more than 2**53 exactly: integers past it are compared as integers, so 2**62 + 1
    becoming 2**62 in float32 is seen (it was compared through float64, which rounds both sides alike)."""
    (tmp_path / "s.model").write_text("model s(x: float32[batch, 1]) {\n    return x\n}\n")
    np.savez(tmp_path / "d.npz", z=np.array([[2 ** 62 + 1], [3]], np.int64))
    out = run_cli("run", tmp_path / "s.model", "--data", tmp_path / "d.npz", "--columns", "x=z", "-o",
                  tmp_path / "p.npz")
    assert out.returncode == 0 and "column 'z' holds integers past float32's exact ones" in out.stderr, out.stderr


def test_an_output_that_is_also_an_input_is_refused_before_any_work(tmp_path):
    source = tmp_path / "m.model"
    source.write_text("model m(x: float32[batch, 2]) {\n    return x -> dense(1)\n}\n")
    data = tmp_path / "d.npz"
    np.savez(data, x=np.ones((3, 2), np.float32))
    for args, kept in ((["compile", source, "--init-missing", "-o", source], source),
                       (["run", source, "--init-missing", "--data", data, "-o", data], data)):
        before = kept.read_bytes()
        out = run_cli(*args)
        assert out.returncode == 1 and "it is also an input of this command" in out.stderr, out.stderr
        assert kept.read_bytes() == before
