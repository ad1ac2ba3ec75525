"""modelc: a declarative model-graph language compiled to ONNX.

The pipeline lives in sibling packages: grammar/ (syntax), compiler/ (parse ->
check -> lower -> emit) and runtime/ (sessions, data, metrics). This package
is the Python API; `modelc check` must not import onnx, so the API is loaded lazily.
"""
from __future__ import annotations

from typing import Any

from .version import __version__ as __version__  # the package's version, from modelc/version.py

_API = {"import_keras", "compile_file", "compile_source", "check_file", "check_source", "params", "summary",
        "save", "write_report", "Diagnostic", "ModelcError", "fmt", "plot"}


def __getattr__(name: str) -> Any:
    if name in _API:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'modelc' has no attribute {name!r}")


def metric(spec: str, provider: str = "cpu", imports: Any = ()) -> Any:
    """A streaming metric by spec, e.g. metric("precision(threshold=0.7)"); Keras' names work too
    (metric("MeanSquaredError")). `imports=["lib.model"]` brings the metrics of .model files, as
    `modelc eval --import` does."""
    from .runtime.metrics import Metric
    return Metric(spec, provider=provider, imports=imports)


def evaluate(model: Any, data: Any, target: str, metrics: list[str], **options: Any) -> dict[str, Any]:
    """`modelc eval` as a function: metrics of a model over a file, glob, directory or list of files.

    engine="dask" with client=Client(...) (or scheduler="tcp://host:8786", or workers=N for a local cluster)
    evaluates one partition per task on Dask; see docs/dask.md. import_root="DIR": the model's imports may
    read only files inside DIR (--import-root).
    """
    from .compiler.imports import confined_imports
    from .runtime.engine import evaluate as _evaluate
    with confined_imports(options.pop("import_root", None)):
        return _evaluate(model, data, target, metrics, **options)


def run(model: Any, data: Any, output: str, **options: Any) -> dict[str, Any]:
    """`modelc run` as a function: predictions to a file, or to a directory (one file per partition).
    import_root="DIR": the model's imports may read only files inside DIR (--import-root)."""
    from .compiler.imports import confined_imports
    from .runtime.engine import run as _run
    with confined_imports(options.pop("import_root", None)):
        return _run(model, data, output, **options)


def plot_roc(metric: Any, path: Any = None) -> Any:
    """The ROC curve of a modelc.metric("auc") after its updates, saved to `path` (.svg, .png) when given."""
    from .runtime.plots import plot_roc as _plot
    return _plot(metric, path)


def plot_pr(metric: Any, path: Any = None) -> Any:
    """The precision-recall curve of a modelc.metric("auc") after its updates."""
    from .runtime.plots import plot_pr as _plot
    return _plot(metric, path)


def plot_confusion_matrix(metric: Any, path: Any = None, normalize: bool = False) -> Any:
    """The heatmap of a modelc.metric("confusion_matrix(k)"): counts, or rows as fractions (normalize=True)."""
    from .runtime.plots import plot_confusion_matrix as _plot
    return _plot(metric, path, normalize)


def plot_calibration(metric: Any, path: Any = None) -> Any:
    """The reliability diagram of a modelc.metric("calibration")."""
    from .runtime.plots import plot_calibration as _plot
    return _plot(metric, path)


def compare(model: Any, data: str, **options: Any) -> dict[str, Any]:
    """`modelc compare` as a function: one model across providers (cpu, openvino, node, wasm, ...), precisions
    or compile options on the same batches; the dict `--json` prints. write_report(result, "page.html") draws it."""
    from .runtime.compare import compare as _compare
    return _compare(model, data, **options)


__all__ = sorted(_API | {"metric", "evaluate", "run", "compare", "plot_roc", "plot_pr", "plot_confusion_matrix",
                         "plot_calibration"})
