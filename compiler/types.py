"""Tensor types: the one dtype table, and shapes whose dims are ints, named symbols or unknown."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    import numpy as np

Dim = Union[int, str, None]  # 8, "batch", or unknown (None)
Shape = tuple[Dim, ...]
INT64_MAX = 2**63 - 1  # integer literals and indices are ONNX int64s


@dataclass(frozen=True)
class Dtype:
    """How the language, numpy and ONNX each name one element type."""

    name: str            # as written in a .model file; numpy's name too
    onnx: int            # the onnx.TensorProto enum (fixed by the ONNX standard; a test compares them)
    kind: str            # "float", "int" or "bool"
    itemsize: int        # bytes per element
    ml_dtypes: bool = False  # numpy knows the name only once ml_dtypes is imported


# The one dtype table: everything else (check, lowering, emission, weights, the runtime) reads it.
DTYPES: dict[str, Dtype] = {d.name: d for d in (
    Dtype("float16", 10, "float", 2),
    Dtype("bfloat16", 16, "float", 2, ml_dtypes=True),
    Dtype("float32", 1, "float", 4),
    Dtype("float64", 11, "float", 8),
    Dtype("int32", 6, "int", 4),
    Dtype("int64", 7, "int", 8),
    Dtype("bool", 9, "bool", 1),
)}
FLOAT_DTYPES = tuple(n for n, d in DTYPES.items() if d.kind == "float")
INT_DTYPES = tuple(n for n, d in DTYPES.items() if d.kind == "int")


@lru_cache(maxsize=None)
def numpy_dtype(name: str) -> "np.dtype":
    """The numpy dtype of a table entry (numpy is imported here, so `modelc check` never loads it)."""
    import numpy as np
    if DTYPES[name].ml_dtypes:
        import ml_dtypes  # noqa: F401  (registers bfloat16 with numpy)
    return np.dtype(name)


FLOAT16_MAX = 65504.0  # float16's largest finite value


def float16_misfit(values: Any) -> str | None:
    """Why float16 cannot hold these float32 values (compile --dtype float16), or None when it can:
    a magnitude over 65504 becomes inf, a nonzero one under about 3e-8 becomes 0.

        >>> float16_misfit([1.0, -332817.0]), float16_misfit([0.5, 1e-9]), float16_misfit([0.0, 1e-3])
        ('overflows float16 (largest magnitude 332817)', 'underflows float16 (smallest nonzero magnitude 1e-09)', None)
    """
    import numpy as np
    magnitude = np.abs(np.asarray(values, dtype=np.float64))
    magnitude = magnitude[np.isfinite(magnitude)]  # an inf already in the source is no float16 matter
    if magnitude.size and magnitude.max() > FLOAT16_MAX:
        return f"overflows float16 (largest magnitude {magnitude.max():g})"
    flushed = magnitude[(magnitude > 0) & (magnitude.astype(np.float16) == 0)]
    if flushed.size:
        return f"underflows float16 (smallest nonzero magnitude {flushed.min():g})"
    return None


def dtype_name(dtype: Any) -> str | None:
    """The table's name for a numpy dtype (or anything np.dtype takes), or None when the table lacks it.

        >>> import numpy as np; dtype_name(np.float32), dtype_name(np.dtype("uint8"))
        ('float32', None)
    """
    import numpy as np
    try:
        name = np.dtype(dtype).name
    except TypeError:
        return None
    return name if name in DTYPES and numpy_dtype(name) == np.dtype(dtype) else None


class ShapeError(ValueError):
    """Raised by shape helpers; lower.py turns it into a diagnostic at the right span."""


@dataclass(frozen=True)
class TensorType:
    dtype: str
    shape: Shape

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        return f"{self.dtype}{show_shape(self.shape)}"


def show_dim(d: Dim) -> str:
    return "?" if d is None else str(d)


def show_shape(shape: Shape) -> str:
    return "[" + ", ".join(show_dim(d) for d in shape) + "]"


def dims_agree(a: Dim, b: Dim) -> bool:
    """True unless the two dims are known to differ."""
    return a is None or b is None or a == b


def broadcast(*shapes: Shape) -> Shape:
    """numpy broadcasting over known and symbolic dims."""
    rank = max(len(s) for s in shapes)
    out: list[Dim] = []
    for axis in range(rank):
        dims = [s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0]
        result: Dim = 1
        for d in dims:
            if d == 1:
                continue
            if result == 1:
                result = d
            elif d is None:
                continue
            elif result is None:
                result = d
            elif d != result:
                raise ShapeError("cannot broadcast " + " and ".join(show_shape(s) for s in shapes))
        out.append(result)
    return tuple(out)


def matmul_shape(a: Shape, b: Shape) -> Shape:
    """numpy matmul rules: 1-D operands are promoted and the added axis dropped."""
    if not a or not b:
        raise ShapeError("matmul needs operands of rank >= 1")
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    if not dims_agree(a2[-1], b2[-2]):
        raise ShapeError(f"matmul inner dimensions differ: {show_shape(a)} @ {show_shape(b)}")
    batch = broadcast(a2[:-2], b2[:-2])
    out = batch + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


def normalize_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ShapeError(f"axis {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def product(dims: Shape) -> Dim:
    total = 1
    for d in dims:
        if not isinstance(d, int):
            return None
        total *= d
    return total
