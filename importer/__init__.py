"""`modelc import`: a Keras model file (.keras, or a legacy .h5 full-model file) as readable .model source
and a .safetensors file of its weights under modelc's weight paths. Neither Keras nor TensorFlow is
imported: the archive is read with zipfile, json and h5py (the `import` extra)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def import_keras(path: str | os.PathLike, stub_unknown: bool = False,
                 weights_name: str = "") -> tuple[str, dict[str, np.ndarray]]:
    """The .model source of a Keras model file and its weights by modelc path."""
    from .archive import KerasFile
    from .convert import Importer
    file = KerasFile(path)
    try:
        return Importer(file, stub_unknown).model(weights_name)
    finally:
        file.close()


def write_import(path: str | os.PathLike, output: str | os.PathLike | None = None,
                 stub_unknown: bool = False) -> tuple[Path, Path, int]:
    """`modelc import`: OUTPUT (.model) and the .safetensors beside it, both written atomically; returns
    their paths and the number of weights."""
    from safetensors.numpy import save_file

    from ..compiler.files import atomic_write
    model = Path(output) if output else Path(path).with_suffix(".model")
    weights = model.with_suffix(".safetensors")
    if not model.resolve().parent.is_dir():
        from ..compiler.source import user_error
        raise user_error(f"cannot write {model}: the folder {model.parent} does not exist")
    text, arrays = import_keras(path, stub_unknown, weights.name)
    with atomic_write(weights, model) as (tmp_weights, tmp_model):
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp_weights))
        tmp_model.write_text(text)
    return model, weights, len(arrays)
