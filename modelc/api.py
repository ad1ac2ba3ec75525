"""The Python API: the same operations as the command line."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .compiler import driver
from .compiler.source import Diagnostic, ModelcError

if TYPE_CHECKING:
    import onnx

__all__ = ["compile_file", "compile_source", "check_file", "check_source", "params", "summary", "save",
           "Diagnostic", "ModelcError"]


def check_source(text: str, file: str = "<string>") -> list[Diagnostic]:
    """Parse and check; returns every diagnostic (empty when the program is fine)."""
    try:
        return driver.check_shapes(driver.load_source(text, file))
    except ModelcError as e:
        return e.diagnostics


def check_file(path: str | os.PathLike) -> list[Diagnostic]:
    try:
        return driver.check_shapes(driver.load_file(path))
    except ModelcError as e:
        return e.diagnostics


def compile_source(text: str, file: str = "<string>", model: str | None = None, weights: str | None = None,
                   seed: int = 0, opset: int | None = None, inline: bool = False,
                   init_missing: bool = False, dtype: str | None = None) -> "onnx.ModelProto":
    """Compile .model text to an ONNX ModelProto. Raises ModelcError with diagnostics."""
    return driver.compile_program(driver.load_source(text, file), model, weights, seed, opset, inline, init_missing,
                                  dtype)


def compile_file(path: str | os.PathLike, weights: str | None = None, seed: int = 0, opset: int | None = None,
                 inline: bool = False, model: str | None = None, init_missing: bool = False,
                 dtype: str | None = None, layer_outputs: bool = False) -> "onnx.ModelProto":
    """Compile a .model file to an ONNX ModelProto.

    `dtype="float16"` casts float32 inputs, weights and computation; `layer_outputs=True` makes every
    top-level layer's output a graph output too.

    >>> import modelc
    >>> proto = modelc.compile_file("samples/housing.model", seed=0)
    >>> [o.name for o in proto.graph.output]
    ['y']
    """
    return driver.compile_program(driver.load_file(path), model, weights, seed, opset, inline, init_missing,
                                  dtype, layer_outputs)


def save(proto: "onnx.ModelProto", path: str | os.PathLike) -> None:
    """Write a model atomically (external data when over 2 GB)."""
    driver.save_model(proto, path)


def params(path: str | os.PathLike, model: str | None = None) -> list[dict[str, Any]]:
    """[{"name", "shape", "dtype"}] for every weight, in order."""
    return driver.params_of(driver.load_file(path), model)


def summary(path: str | os.PathLike, model: str | None = None) -> list[dict[str, Any]]:
    """The rows of `modelc summary`, one per top-level layer instance, in graph order: its path, layer,
    output shape, parameter count and the graph value that holds its output.

    >>> import modelc
    >>> row = modelc.summary("samples/housing.model")[0]
    >>> row["path"], row["output_shape"], row["params"]
    ('my_dense', ['batch', 30], 270)
    """
    lowered = driver.lower_program(driver.load_file(path), model)
    return [{"path": r.path, "layer": r.layer, "output_shape": list(r.output.shape) if r.output else None,
             "params": r.params, "value": r.value} for r in lowered.layers]


def write_report(result: dict[str, Any], path: str | os.PathLike, model: str = "", data: Any = "") -> None:
    """`--report PAGE.html`: the dict `evaluate` or `compare` returned, as one self-contained web page."""
    from .runtime.report_page import compare_page, eval_page, write_page
    page = compare_page(result, str(model), str(data)) if "sides" in result else eval_page(result, str(model), data)
    write_page(path, page)
