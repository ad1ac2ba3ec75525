"""`eval --checkpoint`: the merged states and counters of a local evaluation, saved atomically every N batches,
and loaded by `--resume` only into the evaluation they came from.

A checkpoint carries the identity of its evaluation in four parts, so that a mismatch says what changed
(docs/outputs.md):
- model: a SHA-256 of the graph and every weight (of a .model, the compiled graph with its weights; weights
  kept in external files count by size and modification time);
- metrics: the specs, and the text of the files that define them (the prelude, the model's file, --import);
- data: each file's path, size and modification time (no read of the data: a file rewritten in place with
  the same size within the file system's time resolution is not noticed);
- options: target, batch size, columns, sample weights, --drop, --on-missing.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..compiler.files import atomic_write, check_writable, regular_input
from ..compiler.source import user_error
from .metrics import MetricSet
from .model import LoadedModel
from .partitions import expand_data
from .tasks import Tally

FORMAT = "modelc-checkpoint-2"
PARTS = {"model": "the model (its graph or weights)", "metrics": "the metrics (specs or their definitions)",
         "data": "the data (files, sizes or modification times)",
         "options": "the options (target, batch size, columns, sample weights, --drop or --on-missing)"}


def checkpoint_key(loaded: LoadedModel, metric_set: MetricSet, data: Any, options: dict[str, Any]) -> str:
    """The identity of one evaluation, part by part (JSON)."""
    parts = {"model": model_digest(loaded), "metrics": metrics_digest(metric_set), "data": data_digest(data),
             "options": _digest(json.dumps(options, sort_keys=True, default=str).encode())}
    return json.dumps({"format": FORMAT, **parts}, sort_keys=True)


def model_digest(loaded: LoadedModel) -> str:
    """SHA-256 over the graph and every weight, tensor by tensor (a model over 2 GB never becomes one string)."""
    proto, h = loaded.proto, hashlib.sha256()
    graph = proto.graph
    for group in (proto.opset_import, proto.functions, graph.input, graph.output, graph.node, graph.sparse_initializer):
        for item in group:
            h.update(item.SerializeToString(deterministic=True))
    base = os.path.dirname(os.path.abspath(loaded.source)) if os.path.exists(loaded.source) else os.getcwd()
    for tensor in graph.initializer:
        h.update(tensor.SerializeToString(deterministic=True))
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            h.update(_file_identity(os.path.join(base, location)).encode())
    return h.hexdigest()


def metrics_digest(metric_set: MetricSet) -> str:
    h = hashlib.sha256(json.dumps(metric_set.specs).encode())
    for file in sorted({lv.layer.loc.file for _, lv in metric_set.bound}):  # type: ignore[union-attr]
        h.update(file.encode() + b"\0" + _file_bytes(file))
    return h.hexdigest()


def data_digest(data: Any) -> str:
    return _digest("\n".join(_file_identity(f) for f in expand_data(data)).encode())


def _file_identity(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return f"{os.path.abspath(path)} missing"
    return f"{os.path.abspath(path)} {st.st_size} {st.st_mtime_ns}"


def _file_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError:
        return b""


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Checkpoints:
    """The checkpoint file of one evaluation: `path` (None: no checkpoints), saved every `every` batches."""

    COUNTERS = ("rows", "batches", "nan_inputs", "nan_targets", "missing_rows")

    def __init__(self, path: str | None, every: int, key: str = ""):
        self.path, self.every, self.key = path, every, key

    def check(self) -> None:
        """Before the evaluation starts: a path that cannot be written (or is no regular file) is an error now,
        not at the first checkpoint."""
        if self.path:
            check_writable(self.path)

    def load(self) -> Tally:
        if not self.path or not Path(self.path).exists():
            return Tally()
        regular_input(self.path, "checkpoint")
        saved = self._read()
        self._same_evaluation(str(saved.pop("__key__")))
        counters = {c: int(saved.pop(f"__{c}__")) for c in self.COUNTERS if f"__{c}__" in saved}
        return Tally(states={k: v for k, v in saved.items() if not k.startswith("__")}, **counters)

    def _read(self) -> dict[str, np.ndarray]:
        """Every array of the checkpoint file; anything else (truncated, garbage, another format) is named."""
        try:
            with np.load(self.path, allow_pickle=False) as saved:
                arrays = {k: saved[k] for k in saved.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, AttributeError, TypeError) as e:
            raise user_error(f"checkpoint {self.path} cannot be read (truncated or not a modelc checkpoint: "
                             f"{e}); remove it or drop --resume") from None
        if "__key__" not in arrays or arrays["__key__"].dtype.kind != "U":
            raise user_error(f"checkpoint {self.path} is not a modelc checkpoint (no evaluation key); remove it "
                             "or drop --resume")
        return arrays

    def _same_evaluation(self, saved: str) -> None:
        try:
            theirs = json.loads(saved)
        except ValueError:
            theirs = None
        if not isinstance(theirs, dict) or theirs.get("format") != FORMAT:
            raise user_error(f"checkpoint {self.path} was written by another version of modelc; remove it or "
                             "drop --resume")
        ours = json.loads(self.key)
        changed = [what for part, what in PARTS.items() if theirs.get(part) != ours[part]]
        if changed:
            raise user_error(f"checkpoint {self.path} belongs to another evaluation: since it was saved, "
                             f"{' and '.join(changed)} changed; remove it or drop --resume")

    def save(self, tally: Tally) -> None:
        if not self.path:
            return
        arrays = {"__key__": np.array(self.key), **{f"__{c}__": np.array(getattr(tally, c)) for c in self.COUNTERS},
                  **tally.states}
        with atomic_write(self.path) as (tmp,):
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
