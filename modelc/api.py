"""The Python API: the same operations as the command line."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .compiler import driver
from .compiler.imports import confined_imports
from .compiler.source import Diagnostic, ModelcError

if TYPE_CHECKING:
    import numpy as np
    import onnx

__all__ = ["import_keras", "compile_file", "compile_source", "check_file", "check_source", "params", "summary", "save",
           "Diagnostic", "ModelcError", "fmt", "plot", "write_report"]


def _budgeted(program: driver.LoadedProgram, max_weights_size: int | str | None) -> driver.LoadedProgram:
    """The program with its weights' budget: bytes or a size such as "64GB" (None: MODELC_MAX_WEIGHTS_SIZE
    or 16 GB), as --max-weights-size gives it."""
    program.max_weights = max_weights_size
    return program


def check_source(text: str, file: str = "<string>", max_weights_size: int | str | None = None, *,
                 import_root: str | os.PathLike | None = None) -> list[Diagnostic]:
    """Parse and check; returns every diagnostic (empty when the program is fine). `import_root`: imports may
    read only files inside that folder (--import-root)."""
    try:
        with confined_imports(import_root):
            return driver.check_shapes(_budgeted(driver.load_source(text, file), max_weights_size))
    except ModelcError as e:
        return e.diagnostics


def check_file(path: str | os.PathLike, max_weights_size: int | str | None = None, *,
               import_root: str | os.PathLike | None = None) -> list[Diagnostic]:
    try:
        with confined_imports(import_root):
            return driver.check_shapes(_budgeted(driver.load_file(path), max_weights_size))
    except ModelcError as e:
        return e.diagnostics


def compile_source(text: str, file: str = "<string>", model: str | None = None, weights: str | None = None,
                   seed: int = 0, opset: int | None = None, inline: bool = False,
                   init_missing: bool = False, dtype: str | None = None,
                   max_weights_size: int | str | None = None, *,
                   import_root: str | os.PathLike | None = None) -> "onnx.ModelProto":
    """Compile .model text to an ONNX ModelProto. Raises ModelcError with diagnostics."""
    with confined_imports(import_root):
        program = _budgeted(driver.load_source(text, file), max_weights_size)
    return driver.compile_program(program, model, weights, seed, opset, inline, init_missing, dtype)


def compile_file(path: str | os.PathLike, weights: str | None = None, seed: int = 0, opset: int | None = None,
                 inline: bool = False, model: str | None = None, init_missing: bool = False,
                 dtype: str | None = None, layer_outputs: bool = False,
                 max_weights_size: int | str | None = None, *,
                 import_root: str | os.PathLike | None = None) -> "onnx.ModelProto":
    """Compile a .model file to an ONNX ModelProto.

    `dtype="float16"` casts float32 inputs, weights and computation; `layer_outputs=True` makes every
    top-level layer's output a graph output too; `max_weights_size` ("64GB", or bytes) is the weights' budget.

    >>> import modelc
    >>> proto = modelc.compile_file("samples/housing.model", seed=0)
    >>> [o.name for o in proto.graph.output]
    ['y']
    """
    with confined_imports(import_root):
        program = _budgeted(driver.load_file(path), max_weights_size)
    return driver.compile_program(program, model, weights, seed, opset, inline, init_missing, dtype, layer_outputs)


def save(proto: "onnx.ModelProto", path: str | os.PathLike) -> None:
    """Write a model atomically (external data when over 2 GB)."""
    driver.save_model(proto, path)


def params(path: str | os.PathLike, model: str | None = None, *, import_root: str | os.PathLike | None = None
           ) -> list[dict[str, Any]]:
    """[{"name", "shape", "dtype"}] for every weight, in order."""
    with confined_imports(import_root):
        return driver.params_of(driver.load_file(path), model)


def summary(path: str | os.PathLike, model: str | None = None, *, import_root: str | os.PathLike | None = None
            ) -> list[dict[str, Any]]:
    """The rows of `modelc summary`, one per top-level layer instance, in graph order: its path, layer,
    output shape, parameter count and the graph value that holds its output.

    >>> import modelc
    >>> row = modelc.summary("samples/housing.model")[0]
    >>> row["path"], row["output_shape"], row["params"]
    ('my_dense', ['batch', 30], 270)
    """
    with confined_imports(import_root):
        lowered = driver.lower_program(driver.load_file(path), model)
    return [{"path": r.path, "layer": r.layer, "output_shape": list(r.output.shape) if r.output else None,
             "params": r.params, "value": r.value} for r in lowered.layers]


def import_keras(path: str | os.PathLike, stub_unknown: bool = False) -> "tuple[str, dict[str, np.ndarray]]":
    """A Keras model file (.keras, or a legacy .h5 full-model file) as .model source and its weights by
    modelc path, as `modelc import` writes them (no Keras needed: h5py, the `import` extra)."""
    from .importer import import_keras as run
    return run(path, stub_unknown)


def fmt(text: str, file: str = "<string>") -> str:
    """`modelc fmt` on text: the canonical layout, comments kept. Raises ModelcError when it does not parse.

    >>> import modelc
    >>> print(modelc.fmt("layer f(x)=x->relu  # a comment"), end="")
    layer f(x) = x -> relu  # a comment
    """
    from .editor.fmt import format_text
    return format_text(text, file)


def plot(path: str | os.PathLike, output: str | os.PathLike, model: str | None = None, expand: bool = False) -> None:
    """`modelc plot`: the model's graph to a .svg or .png (Graphviz's dot renders them) or a .dot file."""
    from .editor.plot import render, to_dot
    render(to_dot(driver.lower_program(driver.load_file(path), model), expand=expand), output)


def write_report(result: dict[str, Any], path: str | os.PathLike, model: str = "", data: Any = "") -> None:
    """`--report PAGE.html`: the dict `evaluate` or `compare` returned, as one self-contained web page."""
    from .runtime.report_page import compare_page, eval_page, write_page
    page = compare_page(result, str(model), str(data)) if "sides" in result else eval_page(result, str(model), data)
    write_page(path, page)
