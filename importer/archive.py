"""Reading a Keras model file without Keras: a `.keras` zip archive (`config.json` and `model.weights.h5`)
or a legacy HDF5 full-model file (the `model_config` attribute and the `model_weights` group). Each layer's
weights are found by its place in the model (a chain of layer names from the top) and returned in Keras'
`layer.weights` order."""
from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..compiler.keras_names import snake_case
from ..compiler.source import ModelcError, user_error

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

# a .keras file stores a layer's sub-layers under their attribute names; these are Keras' weight order
CHILD_ORDER = {"MultiHeadAttention": ("query_dense", "key_dense", "value_dense", "output_dense"),
               "Bidirectional": ("forward_layer", "backward_layer")}


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise user_error("reading Keras files needs h5py: pip install 'modelc-onnx[import]'") from None
    return h5py


class ImportFailure(ModelcError):
    """What the user's file cannot give (corrupt, not Keras, no weights), or a layer that does not import."""


def failure(path: str | Path, message: str) -> ImportFailure:
    return ImportFailure(user_error(f"{path}: {message}").diagnostics)


@dataclass(frozen=True)
class LayerRef:
    """One layer's place in its container: its name, its class and the key a .keras file stores it under."""

    name: str
    class_name: str
    key: str


def container_keys(layers: list[dict], sequential: bool) -> list[str | None]:
    """The keys a .keras file gives a container's layers: snake-cased class names with a counter, in order
    (keras.src.saving.saving_lib `_save_container_state`). Operations (keras.ops in a Functional model)
    are no layers and have none; a Sequential's InputLayer is not in its `layers`."""
    used: dict[str, int] = {}
    keys: list[str | None] = []
    for spec in layers:
        if is_operation(spec) or (sequential and spec["class_name"] == "InputLayer"):
            keys.append(None)
            continue
        base = snake_case(spec["class_name"])
        used[base] = used.get(base, -1) + 1
        keys.append(base if used[base] == 0 else f"{base}_{used[base]}")
    return keys


def is_operation(spec: dict) -> bool:
    """A keras.ops call recorded in a Functional model (not a layer): its module says so, or, in a legacy
    file that stores no module, its config has no layer's `trainable`."""
    module = str(spec.get("module") or "")
    return module.startswith("keras.src.ops") or (not module and "trainable" not in spec.get("config", {}))


class KerasFile:
    """A Keras model file opened for reading: its config and its weights by layer place."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.legacy = False
        try:
            head = self.path.read_bytes()[:8] if self.path.is_file() else b""
        except OSError as e:
            raise failure(path, f"cannot read: {e.strerror}") from None
        if not self.path.is_file():
            raise failure(path, "no such file")
        if head[:2] == b"PK" or zipfile.is_zipfile(self.path):
            self.config, self._h5 = self._open_archive()
        elif head == HDF5_SIGNATURE:
            self.config, self._h5 = self._open_legacy()
        else:
            raise failure(path, "not a Keras model file (neither a .keras zip archive nor an HDF5 .h5 file)")

    def _open_archive(self) -> tuple[dict, Any]:
        h5py = _h5py()
        try:
            with zipfile.ZipFile(self.path) as zf:
                names = set(zf.namelist())
                if "config.json" not in names:
                    raise failure(self.path, "a zip archive without config.json: not a .keras model file")
                config = json.loads(zf.read("config.json"))
                if "model.weights.h5" not in names:
                    raise failure(self.path, "the archive holds no weights (model.weights.h5 is missing); "
                                             "save the model with model.save(\"model.keras\")")
                data = zf.read("model.weights.h5")
            return config, h5py.File(io.BytesIO(data), "r")
        except (zipfile.BadZipFile, OSError, ValueError, KeyError) as e:
            raise failure(self.path, f"a corrupt .keras archive ({e})") from None

    def _open_legacy(self) -> tuple[dict, Any]:
        h5py = _h5py()
        try:
            f = h5py.File(self.path, "r")
            raw = f.attrs.get("model_config")
            if raw is None:
                hint = ("a weights-only file (model.save_weights): it has no architecture to import; "
                        "import the full model (.keras or model.save(\"model.h5\"))")
                raise failure(self.path, hint if "layer_names" in f.attrs or "layers" in f else
                              "an HDF5 file without a Keras model in it (no model_config attribute)")
            config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            if "model_weights" not in f:
                raise failure(self.path, "the file holds no weights (no model_weights group); "
                                         "save it with model.save(\"model.h5\")")
        except (OSError, ValueError) as e:
            raise failure(self.path, f"a corrupt HDF5 file ({e})") from None
        self.legacy = True
        return config, f

    def close(self) -> None:
        self._h5.close()

    def weights(self, where: tuple[LayerRef, ...]) -> list[tuple[str, np.ndarray]]:
        """The weights of the layer at `where` (outermost container first), in Keras' order, each with the
        name the file gives it (a legacy file's variable path; a .keras file's group path)."""
        try:
            return self._legacy_weights(where) if self.legacy else self._archive_weights(where)
        except (OSError, KeyError, ValueError) as e:
            raise failure(self.path, f"cannot read the weights of layer '{where[-1].name}' ({e})") from None

    def _archive_weights(self, where: tuple[LayerRef, ...]) -> list[tuple[str, np.ndarray]]:
        group = self._h5
        for ref in where:
            node = group.get(f"layers/{ref.key}")
            if node is None:
                return []
            group = node
        return _walk(group, where[-1].class_name, "/".join(f"layers/{r.key}" for r in where))

    def _legacy_weights(self, where: tuple[LayerRef, ...]) -> list[tuple[str, np.ndarray]]:
        top = self._h5["model_weights"].get(where[0].name)
        if top is None:
            return []
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in top.attrs.get("weight_names", [])]
        # Keras 3 writes `sequential/dense/kernel` (the model's name first), Keras 2 `dense/kernel:0`
        # (a model nested two deep is named from the inner model: `inner/dense/kernel`)
        for k in range(len(where)):
            chain = "/".join(r.name for r in where[k:])
            chosen = [n for n in names if f"/{chain}/" in f"/{n}"]
            if chosen:
                return [(n.split(":")[0], np.asarray(top[n])) for n in chosen]
        return []


def _walk(group: Any, class_name: str, path: str) -> list[tuple[str, np.ndarray]]:
    """A .keras layer group's variables: its own `vars/0, 1, ...`, then its sub-objects' in Keras' order."""
    found = []
    own = group.get("vars")
    if own is not None:
        found += [(f"{path}/vars/{i}", np.asarray(own[str(i)])) for i in range(len(own))]
    children = [k for k in group.keys() if k != "vars"]
    order = CHILD_ORDER.get(class_name, ())
    children.sort(key=lambda k: (order.index(k) if k in order else len(order), k))
    for child in children:
        found += _walk(group[child], "", f"{path}/{child}")
    return found
