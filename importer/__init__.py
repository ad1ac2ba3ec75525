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
        text, weights = Importer(file, stub_unknown).model(weights_name)
    finally:
        file.close()
    _verify(path, text, weights)
    return text, weights


def _verify(path: str | os.PathLike, text: str, weights: dict[str, np.ndarray]) -> None:
    """The written source checks, and its weights are exactly the file's, name for name and shape for shape:
    what `modelc compile --weights` will bind. A difference is the importer's fault, said as such."""
    from ..compiler import driver
    from ..compiler.source import ModelcError
    from .archive import failure
    try:
        params = driver.params_of(driver.load_source(text, str(Path(path).with_suffix(".model"))))
    except ModelcError as e:
        raise failure(path, "the imported source does not compile (please report it with the Keras file): "
                            + "; ".join(d.message for d in e.diagnostics)) from None
    want = {p["name"]: tuple(p["shape"]) for p in params}
    got = {k: tuple(v.shape) for k, v in weights.items()}
    if want != got:
        wrong = sorted(set(want.items()) ^ set(got.items()))[:4]
        raise failure(path, f"the imported weights do not match the source's (please report it with the Keras "
                            f"file): {wrong}")


def write_import(path: str | os.PathLike, output: str | os.PathLike | None = None,
                 stub_unknown: bool = False) -> tuple[Path, Path, int]:
    """`modelc import`: OUTPUT (.model) and the .safetensors beside it, both written atomically; returns
    their paths and the number of weights."""
    from safetensors.numpy import save_file

    from ..compiler.files import atomic_write
    from ..compiler.source import user_error
    model = Path(output) if output else Path(path).with_suffix(".model")
    weights = model.with_suffix(".safetensors")
    if not model.resolve().parent.is_dir():
        raise user_error(f"cannot write {model}: the folder {model.parent} does not exist")
    if model.suffix != ".model":  # the weights go beside it as .safetensors: one name must not serve both
        raise user_error(f"-o {model}: the source is written to a .model file (and its weights beside it as "
                         f"{weights.name}); give a name ending in .model")
    if Path(path).resolve() in (model.resolve(), weights.resolve()):
        raise user_error(f"-o {model} would overwrite the Keras file {path} it imports")
    text, arrays = import_keras(path, stub_unknown, weights.name)
    with atomic_write(weights, model) as (tmp_weights, tmp_model):
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp_weights))
        tmp_model.write_text(text)
    return model, weights, len(arrays)
