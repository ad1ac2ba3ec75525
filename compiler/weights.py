"""Bind weights by name from .safetensors or .npz (never pickle), strictly, or initialize them."""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from .array_files import NpzArchive, fill
from .initializers import initialize
from .keras_names import looks_like_keras, modelc_weight_name
from .ir import WeightSlot
from .files import regular_input
from .source import Diagnostic, ModelcError, WeightsError, did_you_mean
from .types import float16_misfit, numpy_dtype

NO_WEIGHTS = "no weights: pass --weights FILE, or --init-missing to use random weights"


# safetensors' dtype names -> numpy's (a dtype numpy cannot hold, as BF16, is named in the error)
SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "I64": "int64", "I32": "int32",
                      "I16": "int16", "I8": "int8", "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8",
                      "BOOL": "bool"}


class WeightFile:
    """The arrays of a weights file by name, with their dtypes and shapes read from its header alone (a
    .safetensors' JSON header, checked against the file's size by the safetensors library; an .npz's zip
    directory and .npy headers, see array_files.py): nothing is read until `read` asks for one array, and then
    with plain reads into the array (a memory map's pages would count as resident: the weights twice)."""

    def __init__(self, path: str):
        self.path = path
        suffix = Path(path).suffix
        if suffix not in (".safetensors", ".npz"):
            raise WeightsError(Diagnostic(None, f"weights must be .safetensors or .npz, got {path}"))
        regular_input(path, "weights")
        try:
            self.specs = self._open_safetensors() if suffix == ".safetensors" else self._open_npz()
        except ModelcError as e:  # array_files' errors name the file: say it holds the weights
            raise WeightsError([Diagnostic(None, f"cannot read weights {d.message.removeprefix('cannot read ')}")
                                for d in e.diagnostics]) from None
        except Exception as e:  # noqa: BLE001 - OSError, or safetensors' SafetensorError
            raise WeightsError(Diagnostic(None, f"cannot read weights {path}: {e}")) from None

    def _open_safetensors(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        from safetensors import safe_open
        with safe_open(self.path, framework="np") as f:  # checks the header: length, JSON, dtypes, offsets in range
            slices = {name: f.get_slice(name) for name in f.keys()}
            specs = {name: (SAFETENSORS_DTYPES.get(s.get_dtype(), s.get_dtype()), tuple(s.get_shape()))
                     for name, s in slices.items()}
        self.handle: Any = open(self.path, "rb")
        length = struct.unpack("<Q", self.handle.read(8))[0]
        header = json.loads(self.handle.read(length))
        self.offsets = {name: 8 + length + header[name]["data_offsets"][0] for name in specs}
        return specs

    def _open_npz(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        self.handle = NpzArchive(self.path)
        return {name: (h.dtype.name if h.dtype.isnative else str(h.dtype), h.shape)
                for name, h in self.handle.headers.items()}

    def read(self, name: str) -> np.ndarray:
        if isinstance(self.handle, NpzArchive):
            return self.handle.read(name)
        dtype, shape = self.specs[name]
        self.handle.seek(self.offsets[name])   # safetensors stores little-endian, C order
        return fill(self.handle, np.empty(shape, np.dtype(dtype).newbyteorder("<")), f"{self.path}: weight '{name}'")

    def close(self) -> None:
        self.handle.close()


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
    given = WeightFile(path) if path else None
    specs = given.specs if given else {}
    try:
        problems = [p for slot in slots for p in _slot_problems(slot, specs, path, cast, init_missing)]
        problems += extra_weights(sorted(set(specs) - {s.name for s in slots}), {s.name for s in slots}, path)
        if problems:  # every name, shape and dtype checked from the header: nothing was read yet
            raise WeightsError(problems)
        return _arrays(slots, given, seed, cast), [s.name for s in slots if s.name not in specs]
    finally:
        if given is not None:
            given.close()


def _arrays(slots: list[WeightSlot], given: WeightFile | None, seed: int, cast: bool) -> dict[str, np.ndarray]:
    """Each slot's array, read from the file (checked already) or initialized from `seed`."""
    out: dict[str, np.ndarray] = {}
    for slot in slots:
        dtype = numpy_dtype(slot.type.dtype)
        shape = tuple(int(d) for d in slot.type.shape)  # type: ignore[arg-type]
        if given is None or slot.name not in given.specs:
            out[slot.name] = initialize(slot.init, shape, dtype, seed, slot.name)
            continue
        array = given.read(slot.name)
        if cast and array.dtype != dtype:
            # what float16 cannot hold stays float32: the driver names it and lowers it mixed-precision
            keep = dtype == np.float16 and float16_misfit(array) is not None
            array = array.astype(np.float32 if keep else dtype)
        out[slot.name] = np.ascontiguousarray(array)
    return out


def _slot_problems(slot: WeightSlot, specs: dict[str, tuple[str, tuple[int, ...]]], path: str | None, cast: bool,
                   init_missing: bool) -> list[Diagnostic]:
    """What is wrong with the file's array for one weight, from its header: its shape, its dtype, or its absence."""
    dtype = numpy_dtype(slot.type.dtype)
    shape = tuple(int(d) for d in slot.type.shape)  # type: ignore[arg-type]
    if slot.name not in specs:
        if path is None or init_missing:
            return []
        return [Diagnostic(slot.loc, f"weight '{slot.name}' {list(shape)} {slot.type.dtype} is missing "
                                     f"from {path} (use --init-missing to initialize it)")]
    stored_dtype, stored_shape = specs[slot.name]
    if stored_shape != shape:
        return [Diagnostic(slot.loc, f"weight '{slot.name}' has shape {list(stored_shape)} in "
                                     f"{path}, expected {list(shape)}")]
    floating = _kind(stored_dtype) == "f" and np.dtype(dtype).kind in "fV"
    if stored_dtype != np.dtype(dtype).name and not (cast and floating):
        return [Diagnostic(slot.loc, f"weight '{slot.name}' has dtype {stored_dtype} in {path}, "
                                     f"expected {np.dtype(dtype).name}")]
    return []


def _kind(dtype: str) -> str:
    try:
        return np.dtype(dtype).kind
    except TypeError:  # a dtype numpy does not know (BF16 in a .safetensors)
        return ""


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
