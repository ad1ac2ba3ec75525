"""The numpy side of the built-in functions and operators: what a metric's final part (its `return` and the
statements after its states) runs on the merged states. The tables in functions.py and operators.py point here.

numpy is imported on the first call, never on import: `modelc check` reads the tables without loading it.
Semantics per LANGUAGE.md §6: `/` gives 0 where the divisor is 0 (Keras' divide_no_nan).
"""
from __future__ import annotations

from typing import Any, Callable


def numpy_function(name: str) -> Callable[..., Any]:
    """numpy.NAME, looked up when called."""
    def call(*args: Any, **kwargs: Any) -> Any:
        import numpy
        return getattr(numpy, name)(*args, **kwargs)
    call.__name__ = name
    return call


def divide_no_nan(a: Any, b: Any) -> Any:
    import numpy as np
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = np.zeros(np.broadcast_shapes(a.shape, b.shape))
    np.divide(a, b, out=out, where=np.broadcast_to(b != 0, out.shape))
    return out


def sigmoid(x: Any) -> Any:
    import numpy as np
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def cumsum(x: Any, reverse: bool = False) -> Any:
    import numpy as np
    x = np.asarray(x, dtype=np.float64)
    return np.cumsum(x[::-1])[::-1] if reverse else np.cumsum(x)


MULTIOUTPUT = ("uniform_average", "variance_weighted", "raw_values")   # scikit-learn's multioutput=


def average_outputs(scores: Any, weights: Any, multioutput: Any) -> Any:
    """Per-output scores as scikit-learn's `multioutput=` returns them: "raw_values" as they are, their mean
    ("uniform_average"), or their mean weighted by `weights` ("variance_weighted"; uniform when the
    weights are all 0, as scikit-learn falls back)."""
    import numpy as np
    if multioutput not in MULTIOUTPUT:
        from .source import user_error
        raise user_error(f"multioutput={multioutput!r}: expected one of " + ", ".join(f'"{m}"' for m in MULTIOUTPUT))
    scores = np.asarray(scores, np.float64)
    if multioutput == "raw_values":
        return scores
    weights = np.asarray(weights, np.float64)
    if multioutput == "uniform_average" or not np.any(weights):
        return np.mean(scores)
    return np.sum(scores * weights) / np.sum(weights)


def trapz(y: Any, x: Any) -> Any:
    import numpy as np
    return np.trapezoid(np.asarray(y, np.float64), np.asarray(x, np.float64))


def reduction(name: str) -> Callable[..., Any]:
    """sum, mean, min or max over `axis` (all axes by default), as the ONNX lowering reduces."""
    def apply(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        import numpy as np
        return getattr(np, name)(np.asarray(x), axis=tuple(axis) if isinstance(axis, list) else axis,
                                 keepdims=keepdims)
    return apply


def min_max(name: str, elementwise: str) -> Callable[..., Any]:
    """min(x, axis=) reduces; min(a, b, ...) is element-wise."""
    reduce = reduction(name)

    def apply(*xs: Any, axis: Any = None, keepdims: bool = False) -> Any:
        import numpy as np
        if len(xs) == 1:
            return reduce(xs[0], axis, keepdims)
        out = xs[0]
        for x in xs[1:]:
            out = getattr(np, elementwise)(out, x)
        return np.asarray(out)
    return apply


def concat(*xs: Any, axis: int = -1) -> Any:
    import numpy as np
    return np.concatenate([np.atleast_1d(np.asarray(x, np.float64)) for x in xs], axis)


def cast(x: Any, dtype: str) -> Any:
    import numpy as np
    return np.asarray(x).astype(dtype)


def argmax(x: Any, axis: int = -1, keepdims: bool = False) -> Any:
    import numpy as np
    return np.argmax(x, axis=axis, keepdims=keepdims)


def where(cond: Any, x: Any, y: Any) -> Any:
    import numpy as np
    return np.where(cond, x, y)


def clip(x: Any, lo: Any, hi: Any) -> Any:
    import numpy as np
    return np.clip(x, lo, hi)


def reshape(x: Any, shape: Any) -> Any:
    import numpy as np
    return np.reshape(x, shape)


def transpose(x: Any, perm: Any = None) -> Any:
    import numpy as np
    return np.transpose(x, perm)
