"""Bind weights by name from .safetensors or .npz (never pickle), strictly, or initialize them."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .initializers import initialize
from .keras_names import looks_like_keras, modelc_weight_name
from .ir import WeightSlot
from .source import Diagnostic, WeightsError, did_you_mean
from .types import float16_misfit, numpy_dtype

NO_WEIGHTS = "no weights: pass --weights FILE, or --init-missing to use random weights"


def read_weights(path: str) -> dict[str, np.ndarray]:
    suffix = Path(path).suffix
    try:
        if suffix == ".safetensors":
            from safetensors.numpy import load_file
            return dict(load_file(path))
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
    except (OSError, ValueError) as e:
        raise WeightsError(Diagnostic(None, f"cannot read weights {path}: {e}")) from None
    raise WeightsError(Diagnostic(None, f"weights must be .safetensors or .npz, got {path}"))


def bind_weights(slots: list[WeightSlot], path: str | None, seed: int, init_missing: bool,
                 cast: bool = False, require: bool = False) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every slot gets an array of its exact shape and dtype; any mismatch is reported by name.
    Returns the arrays and the names of the weights initialized (drawn from `seed`), which no file gave.

    With `cast` (compile --dtype), floating-point weights are converted to the slot's dtype instead, but a
    weight float16 cannot hold (types.float16_misfit) stays float32.
    Initialized weights are drawn in float64 and rounded, so one seed gives the same weights at any dtype.
    With `require` (run, eval, compare), a model with weights and no file is refused unless `init_missing`:
    predictions or metrics of random weights must be asked for, never a silent default.
    """
    if require and slots and path is None and not init_missing:
        raise WeightsError(Diagnostic(None, NO_WEIGHTS))
    given = read_weights(path) if path else {}
    problems: list[Diagnostic] = []
    out: dict[str, np.ndarray] = {}
    for slot in slots:
        dtype = numpy_dtype(slot.type.dtype)
        shape = tuple(int(d) for d in slot.type.shape)  # type: ignore[arg-type]
        if slot.name in given:
            array = given[slot.name]
            if array.shape != shape:
                problems.append(Diagnostic(slot.loc, f"weight '{slot.name}' has shape {list(array.shape)} in "
                                                     f"{path}, expected {list(shape)}"))
            elif cast and array.dtype.kind == "f" and np.dtype(dtype).kind in "fV":
                # what float16 cannot hold stays float32: the driver names it and lowers it mixed-precision
                keep = dtype == np.float16 and float16_misfit(array) is not None
                array = array.astype(np.float32 if keep else dtype)
            elif array.dtype != dtype:
                problems.append(Diagnostic(slot.loc, f"weight '{slot.name}' has dtype {array.dtype} in {path}, "
                                                     f"expected {np.dtype(dtype).name}"))
            out[slot.name] = np.ascontiguousarray(array)
        elif path is None or init_missing:
            out[slot.name] = initialize(slot.init, shape, dtype, seed, slot.name)
        else:
            problems.append(Diagnostic(slot.loc, f"weight '{slot.name}' {list(shape)} {slot.type.dtype} is missing "
                                                 f"from {path} (use --init-missing to initialize it)"))
    problems += extra_weights(sorted(set(given) - {s.name for s in slots}), {s.name for s in slots}, path)
    if problems:
        raise WeightsError(problems)
    return out, [s.name for s in slots if s.name not in given]


def extra_weights(extra: list[str], known: set[str], path: str | None) -> list[Diagnostic]:
    """An error for each array that is no weight of the model, and one hint if the file names weights as
    Keras does (`dense/kernel`, `batch_normalization/gamma`), with modelc's name for the first."""
    problems = []
    for name in extra:
        translated = modelc_weight_name(name)
        hint = f"; did you mean '{translated}'?" if translated in known else did_you_mean(name, known)
        problems.append(Diagnostic(None, f"weight '{name}' in {path} is not a parameter of the model{hint}"))
    keras = [name for name in extra if looks_like_keras(name)]
    if keras:
        problems.append(Diagnostic(None, f"{path} names weights as Keras does ('{keras[0]}'): modelc joins a "
                                         "weight's path with '.' and names a built-in layer's instances after "
                                         f"the layer, so '{keras[0]}' is '{modelc_weight_name(keras[0])}' in "
                                         "modelc (`modelc params MODEL` lists the names it expects)"))
    return problems
