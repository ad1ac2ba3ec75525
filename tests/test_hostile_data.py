"""Hostile weights, data and golden files (issue 13, defects 3 and 9): names, shapes and sizes are checked from
the headers before any payload is read, so a zip bomb or a lying header costs no memory, and every malformed
file is exit 1 with a message that names it, never a traceback. Each bomb's peak RSS is measured in a fresh
process that runs the command (resource.getrusage of its one child)."""
from __future__ import annotations

import json
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from safetensors.numpy import save_file

from helpers import MODELC, run_cli

SOURCE = "model m(x: float32[batch, 4]) {\n    y = x -> dense(2)\n    return y\n}\n"
BOMB_BYTES = 2**30          # a true bomb: 1 GiB of zeros deflated to about 1 MB (anything loaded whole shows)
RSS_LIMIT_MB = 300
MEASURE = """import json, resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps([r.returncode, r.stderr, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024]))"""


def peak_rss(*args) -> tuple[int, str, float]:
    """Exit code, stderr and peak RSS in MB of `modelc ARGS`, measured in a fresh process that runs only it."""
    out = subprocess.run([sys.executable, "-c", MEASURE, MODELC, *map(str, args)], capture_output=True, text=True,
                         check=True)
    code, stderr, mb = json.loads(out.stdout)
    return code, stderr, mb


def npy_member(z: zipfile.ZipFile, name: str, shape: tuple, payload: int | bytes, descr: str = "<f4") -> None:
    """A member NAME.npy whose header says `shape` and which holds `payload` (bytes, or that many zeros)."""
    with z.open(f"{name}.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False, "shape": shape})
        if isinstance(payload, bytes):
            f.write(payload)
            return
        chunk = bytes(min(payload, 64 << 20))
        for _ in range(payload // len(chunk)):
            f.write(chunk)


def write_npz(path, members: dict[str, tuple[tuple, int | bytes]]):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, (shape, payload) in members.items():
            npy_member(z, name, shape, payload)
    return path


def true_bomb(path, name: str):
    """1 GiB of zeros whose header tells the truth: shape [1, 2**28] float32."""
    return write_npz(path, {name: ((1, BOMB_BYTES // 4), BOMB_BYTES)})


def lying_header(path, name: str):
    """32 real bytes under a header claiming [8, 2**30] float32 (32 GiB)."""
    return write_npz(path, {name: ((8, 2**30), bytes(32))})


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "m.model"
    path.write_text(SOURCE)
    return path


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32))
    return path


def golden(folder, npz_writer):
    """A --against folder whose stored outputs (output 'y') are the hostile .npz."""
    folder.mkdir()
    (folder / "meta.json").write_text(json.dumps({"reference": "cpu"}))
    npz_writer(folder / "cpu.npz", "y")
    return folder


@pytest.mark.parametrize("bomb", [true_bomb, lying_header], ids=["true-bomb", "lying-header"])
@pytest.mark.parametrize("where", ["run --data", "compile --weights", "compare --against"])
def test_npz_bombs_stay_under_300_mb(model, data, tmp_path, where, bomb):
    if where == "run --data":
        args = ["run", model, "--init-missing", "--data", bomb(tmp_path / "bomb.npz", "x"), "-o", tmp_path / "p.npz"]
    elif where == "compile --weights":
        args = ["compile", model, "--weights", bomb(tmp_path / "bomb.npz", "dense.kernel"), "-o", tmp_path / "m.onnx"]
    else:
        args = ["compare", model, "--init-missing", "--data", data, "--providers", "cpu",
                "--against", golden(tmp_path / "golden", bomb)]
    code, stderr, mb = peak_rss(*args)
    assert code == 1, stderr
    assert "bomb.npz" in stderr or "golden" in stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    # what is wrong is said from the header: the shape the model wants, or the bytes the file really holds
    assert ("expects shape" in stderr or "expected [4, 2]" in stderr or "the model gives" in stderr) \
        if bomb is true_bomb else "its header says float32 [8, 1073741824]" in stderr
    print(f"{where} {bomb.__name__}: peak RSS {mb:.0f} MB")
    assert mb < RSS_LIMIT_MB, f"{where} peaked at {mb:.0f} MB"


@pytest.mark.parametrize("where", ["data", "weights"])
@pytest.mark.parametrize("case", ["negative", "short", "long"])
def test_npz_headers_that_lie_are_refused(model, tmp_path, where, case):
    """A negative size is not an empty array; a member shorter or longer than its header says is refused."""
    name = "x" if where == "data" else "dense.kernel"
    shape = {"data": (3, 4), "weights": (4, 2)}[where]
    members = {"negative": ((-5, shape[1]), b""), "short": (shape, bytes(4 * shape[0] * shape[1] - 4)),
               "long": (shape, bytes(4 * shape[0] * shape[1] + 4))}
    path = write_npz(tmp_path / "bad.npz", {name: members[case]})
    result = run_cli(*(["run", model, "--init-missing", "--data", path, "-o", tmp_path / "p.npz"] if where == "data"
                       else ["compile", model, "--weights", path, "-o", tmp_path / "m.onnx"]))
    assert result.returncode == 1, result.stderr
    assert "bad.npz" in result.stderr and f"array '{name}'" in result.stderr and "Traceback" not in result.stderr
    assert ("negative size" if case == "negative" else "the file is truncated or its header is wrong") in result.stderr
    assert not (tmp_path / "p.npz").exists() and not (tmp_path / "m.onnx").exists()


def weights_npz(path, stored: bool = False):
    rng = np.random.default_rng(0)
    arrays = {"dense.kernel": rng.normal(size=(4, 2)).astype(np.float32),
              "dense.bias": rng.normal(size=2).astype(np.float32)}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED) as z:
        for name, a in arrays.items():
            with z.open(f"{name}.npy", "w") as f:
                np.lib.format.write_array(f, a)
    return path


def data_npz(path, stored: bool = False):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED) as z:
        with z.open("x.npy", "w") as f:
            np.lib.format.write_array(f, np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32))
    return path


def truncated(path):
    raw = path.read_bytes()
    path.write_bytes(raw[:len(raw) // 2])


def encrypted(path):
    """The encryption flag set in the local and central headers (as a zip with a password has it)."""
    raw = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = raw.find(signature)
        while at >= 0:
            raw[at + offset] |= 1
            at = raw.find(signature, at + 4)
    path.write_bytes(bytes(raw))


def bad_crc(path):
    """One payload byte changed in a stored member's last bytes: only the CRC says so, at the member's end."""
    raw = bytearray(path.read_bytes())
    raw[raw.find(b"PK\x01\x02") - 10] ^= 0xFF  # the end of the last member's data
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage", [truncated, encrypted, bad_crc], ids=["truncated", "encrypted", "bad-crc"])
@pytest.mark.parametrize("where", ["data", "weights"])
def test_broken_npz_is_a_user_error(model, tmp_path, where, damage):
    path = (data_npz if where == "data" else weights_npz)(tmp_path / "broken.npz", stored=True)
    damage(path)
    result = run_cli(*(["run", model, "--init-missing", "--data", path, "-o", tmp_path / "p.npz"] if where == "data"
                       else ["compile", model, "--weights", path, "-o", tmp_path / "m.onnx"]))
    assert result.returncode == 1, result.stderr
    assert "broken.npz" in result.stderr and "Traceback" not in result.stderr
    assert "internal error" not in result.stderr
    said = {truncated: "zip file", encrypted: "encrypted", bad_crc: "Bad CRC-32"}[damage]
    assert said in result.stderr
    assert not (tmp_path / "p.npz").exists() and not (tmp_path / "m.onnx").exists()


def safetensors_file(path, header: dict | bytes, payload: bytes, length: int | None = None):
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + payload)


KERNEL = {"dtype": "F32", "shape": [4, 2], "data_offsets": [0, 32]}
BIAS = {"dtype": "F32", "shape": [2], "data_offsets": [32, 40]}
MALFORMED_SAFETENSORS = {
    "header-length": ({"dense.kernel": KERNEL, "dense.bias": BIAS}, bytes(40), 10**12, "header too large"),
    "short-file": (b"", b"", 3, "header"),
    "bad-json": (b"{not json", b"", None, "invalid JSON"),
    "offset-out-of-range": ({"dense.kernel": KERNEL, "dense.bias": {**BIAS, "data_offsets": [32, 4000]}}, bytes(40),
                            None, "offset"),
    "overlapping": ({"dense.kernel": KERNEL, "dense.bias": {**BIAS, "data_offsets": [28, 36]}}, bytes(40), None,
                    "offset"),
    "unknown-dtype": ({"dense.kernel": {**KERNEL, "dtype": "F99"}, "dense.bias": BIAS}, bytes(40), None, "F99"),
    "wrong-dtype": ({"dense.kernel": {**KERNEL, "dtype": "I32"}, "dense.bias": BIAS}, bytes(40), None,
                    "weight 'dense.kernel' has dtype int32"),
    "bfloat16": ({"dense.kernel": {**KERNEL, "dtype": "BF16", "data_offsets": [0, 16]},
                  "dense.bias": {**BIAS, "data_offsets": [16, 24]}}, bytes(24), None, "dtype BF16"),
    "huge-shape": ({"dense.kernel": {**KERNEL, "shape": [2**20, 2**20]}, "dense.bias": BIAS}, bytes(40), None,
                   "offset"),
}


@pytest.mark.parametrize("case", list(MALFORMED_SAFETENSORS))
def test_malformed_safetensors_is_a_user_error(model, tmp_path, case):
    header, payload, length, said = MALFORMED_SAFETENSORS[case]
    path = tmp_path / "bad.safetensors"
    safetensors_file(path, header, payload, length)
    result = run_cli("compile", model, "--weights", path, "-o", tmp_path / "m.onnx")
    assert result.returncode == 1, result.stderr
    assert "bad.safetensors" in result.stderr and said in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_safetensors_is_checked_before_a_tensor_is_read(model, tmp_path, monkeypatch):
    """A name, shape or dtype that does not fit is found from the header: no tensor is read at all."""
    from modelc.compiler import driver, weights
    from modelc.compiler.source import ModelcError
    path = tmp_path / "w.safetensors"
    save_file({"dense.kernel": np.zeros((4, 3), np.float32), "dense.bias": np.zeros(2, np.float32)}, str(path))
    read = []
    real = weights.fill

    def spying(f, array, what):
        read.append(what.rsplit(" ", 1)[-1])
        return real(f, array, what)
    monkeypatch.setattr(weights, "fill", spying)
    with pytest.raises(ModelcError, match=r"weight 'dense.kernel' has shape \[4, 3\]"):
        driver.compile_program(driver.load_file(model), weights=str(path))
    assert read == []
    kernel = np.arange(8, dtype=np.float32).reshape(4, 2)
    save_file({"dense.kernel": kernel, "dense.bias": np.ones(2, np.float32)}, str(path))
    proto = driver.compile_program(driver.load_file(model), weights=str(path))
    assert read == ["'dense.kernel'", "'dense.bias'"]
    from onnx import numpy_helper
    stored = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    np.testing.assert_array_equal(stored["dense.kernel"], kernel)


def test_npy_data_whose_header_lies_is_refused_before_a_read(model, tmp_path):
    """A .npy whose header claims [8, 2**30] float32 (32 GiB) over 32 bytes: refused from the file's size."""
    path = tmp_path / "x.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (8, 2**30)})
        f.write(bytes(32))
    code, stderr, mb = peak_rss("run", model, "--init-missing", "--data", path, "-o", tmp_path / "p.npz")
    assert code == 1 and "x.npy" in stderr and "the file is truncated or its header is wrong" in stderr, stderr
    assert mb < RSS_LIMIT_MB


def test_data_is_read_a_batch_at_a_time(model, tmp_path):
    """1 GiB of honest rows of the right width ([2**26, 4] float32, deflated to about 1 MB): compare over its first
    batch reads that batch, not the array."""
    path = write_npz(tmp_path / "rows.npz", {"x": ((2**26, 4), BOMB_BYTES)})
    code, stderr, mb = peak_rss("compare", model, "--init-missing", "--data", path, "--max-batches", "1",
                                "--batch-size", "256")
    assert code == 0, stderr
    assert mb < RSS_LIMIT_MB, f"compare --max-batches 1 peaked at {mb:.0f} MB"
