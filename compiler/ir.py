"""The lowered program: blocks of ONNX-level nodes and calls, with typed values.

One Block is one layer body (an ONNX function) or the model's graph. A Call
applies a block; weights enter a block as inputs named by their path relative
to it ("dense.kernel"), since an ONNX function holds no initializers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from .source import Span
from .types import TensorType


@dataclass(frozen=True)
class Value:
    name: str
    type: TensorType


@dataclass(frozen=True)
class Filled(Value):
    """A tensor of rank 1 known to hold one value everywhere: a state may count it without reading it. `size`:
    its length, an int64 [1] computed from another tensor's shape, so that counting it never computes it."""
    value: int = 0
    size: Value | None = None


@dataclass(frozen=True)
class UnitWeights(Value):
    """The sample weights of an unweighted batch, all ones: a helper that weighs rows (class_counts) may count them
    instead; `max_rows`, the most rows a batch will have (None: unknown), says whether counts are exact in float32."""
    max_rows: int | None = None


@dataclass(frozen=True)
class ConstTensor:
    """A literal tensor for a Constant node: flat values in row-major order."""

    dtype: str
    shape: tuple[int, ...]
    values: tuple


@dataclass
class Node:
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any]
    name: str
    loc: Span | None = None


@dataclass(frozen=True)
class InitSpec:
    """An initializer (`glorot_uniform`, `constant(0.1)`) with its arguments."""

    name: str
    args: tuple[float, ...] = ()


@dataclass
class WeightSlot:
    """A weight as a block sees it: a path relative to the block."""

    name: str
    type: TensorType
    init: InitSpec
    loc: Span | None = None


@dataclass
class Call:
    block: "Block"
    name: str              # instance path relative to the calling block
    inputs: list[str]
    weights: list[str]     # the caller's names for block.weights, in order
    outputs: list[str]
    loc: Span | None = None


@dataclass
class Block:
    label: str             # the layer's name: becomes the function's name
    inputs: list[Value]
    outputs: list[Value] = field(default_factory=list)
    weights: list[WeightSlot] = field(default_factory=list)
    items: list[Union[Node, Call]] = field(default_factory=list)
    loc: Span | None = None
    layers: list["LayerRow"] = field(default_factory=list)      # its layer instances (a model's: the summary)
    repeats: list["RepeatGroup"] = field(default_factory=list)  # its `repeat` stages (modelc plot draws each once)


@dataclass
class LayerRow:
    """One row of `modelc summary`: a top-level layer instance of the model (or of a layer's block)."""

    path: str
    layer: str
    output: TensorType | None
    params: int
    value: str = ""        # the graph value holding the output (compare --layers marks it an output)


@dataclass
class RepeatGroup:
    """A `repeat N` stage of a block: the layer instances it applied, in order (one for `repeat N shared`)."""

    loc: Span | None
    count: int
    shared: bool
    paths: list[str]


@dataclass
class Model:
    name: str
    graph: Block           # graph.weights are absolute paths: the model's initializers
    output_names: list[str]
    layers: list[LayerRow] = field(default_factory=list)
    source_hash: str = ""
    misfits: list[tuple[str, str]] = field(default_factory=list)  # (what, why) float16 cannot hold: kept float32
