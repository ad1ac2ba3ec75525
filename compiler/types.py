"""Tensor types: a dtype and a shape whose dims are ints, named symbols or unknown."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

Dim = Union[int, str, None]  # 8, "batch", or unknown (None)
Shape = tuple[Dim, ...]

DTYPES = ("float16", "bfloat16", "float32", "float64", "int32", "int64", "bool")
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
INT_DTYPES = ("int32", "int64")


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
