"""Metric states: the one table of state rules (sum, count, min, max, bincount), each with its per-batch ONNX
reduction, its merge and its default; and the one split of a metric body into its per-batch part and
its final part. Lowering (lower_metric.py), check.py and the runtime (runtime/metrics.py) all read them.

    >>> import numpy as np
    >>> merge_state("max", np.array([2.0, 7.0]), np.array([5.0, 1.0])).tolist()
    [5.0, 7.0]

numpy is imported when states merge, never on import.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from . import ir
from . import nodes as N
from .arguments import bind_arguments
from .builder import BlockBuilder
from .source import Span, error, user_error
from .types import INT_DTYPES, TensorType, product
from .values import describe, is_tensor

if TYPE_CHECKING:
    import numpy as np

NAN_PREDICTIONS = "nan_predictions"  # the state counting rows with a NaN prediction (merged as a sum)

FLOAT32_EXACT = 2 ** 24   # float32 holds every integer up to here: a count of fewer elements sums exactly in it


@dataclass(frozen=True)
class Batch:
    """What a state's reduction knows of the batch besides its tensors."""

    weight: ir.Value | None = None   # the sample weight [batch], float64, or None
    max_rows: int | None = None      # the most rows a batch will have (None: unknown), which lets counts sum in
    #                                  float32, twice as fast as float64 in onnxruntime, where that is exact


# (builder, loc, the batch, arguments, keyword arguments) -> this batch's state
LowerState = Callable[[BlockBuilder, Span | None, Batch, list[Any], dict[str, Any]], ir.Value]


@dataclass(frozen=True)
class StateRule:
    params: tuple[str, ...]                       # its arguments: `state s = bincount(index, length, weights=w)`
    lower: LowerState                             # one batch's state, in ONNX
    merge: Callable[[Any, Any], Any]              # two states (of batches, workers, partitions) into one
    fill: float                                   # the state of no rows at all


@dataclass
class StateSpec:
    output: str        # the graph output carrying this batch's value
    name: str          # as declared: `state total = ...`
    rule: str          # how batches merge: a key of STATE_RULES
    dtype: str
    shape: tuple


# --- the split of a metric body --------------------------------------------------------------------
@dataclass
class MetricBody:
    per_batch: list[N.Statement] = field(default_factory=list)   # assigns and states, in order: ONNX, per batch
    final: list[N.Statement] = field(default_factory=list)       # what reads a state, and the return: numpy

    @property
    def states(self) -> list[N.StateDecl]:
        return [s for s in self.per_batch if isinstance(s, N.StateDecl)]


def names_in(e: Any) -> set[str]:
    found: set[str] = set()
    stack = [e]
    while stack:
        node = stack.pop()
        if isinstance(node, N.Name):
            found.add(node.id)
        elif isinstance(node, list):
            stack.extend(node)
        elif hasattr(node, "__dataclass_fields__"):
            stack.extend(getattr(node, f) for f in node.__dataclass_fields__ if f != "loc")
    return found


def split_metric(d: N.Definition) -> MetricBody:
    """A statement runs on the merged states once it reads a state (or what was computed from one)."""
    body, late = MetricBody(), set()
    for stmt in d.body:
        if isinstance(stmt, N.Return) or isinstance(stmt, N.Assign) and names_in(stmt.value) & late:
            body.final.append(stmt)
            late.add(getattr(stmt, "name", ""))
        elif isinstance(stmt, (N.Assign, N.StateDecl)):  # a `param` in a metric: check.py reports it
            body.per_batch.append(stmt)
            late.update([stmt.name] if isinstance(stmt, N.StateDecl) else [])
    return body


def state_rule(stmt: N.StateDecl) -> str | None:
    """The rule of `state NAME = RULE(...)`, or None when the value is no call of a rule."""
    e = stmt.value
    if isinstance(e, N.Call) and isinstance(e.func, N.Name) and e.func.id in STATE_RULES:
        return e.func.id
    return None


# --- one reduction per rule ------------------------------------------------------------------------
def broadcast_weight(b: BlockBuilder, w: ir.Value, x: ir.Value, loc: Span | None) -> ir.Value:
    """sample_weight [batch] -> [batch, 1, ...] to meet x [batch, ...]; per-element weights [batch, d] meet x
    [batch, d, ...] alike."""
    if x.type.rank < w.type.rank:
        raise error(loc, f"a weighted state needs a tensor with the batch axis first and the weights' axes, got "
                         f"{x.type} against weights {w.type}")
    if x.type.rank == w.type.rank:
        return w
    axes = list(range(w.type.rank, x.type.rank))
    return b.node("Unsqueeze", [w, b.const(axes, "int64")],
                  TensorType("float64", w.type.shape + (1,) * len(axes)), loc)


def _one_tensor(rule: str, args: list[Any], kwargs: dict[str, Any], loc: Span | None) -> ir.Value:
    if len(args) != 1 or kwargs or not is_tensor(args[0]):
        raise error(loc, f"state {rule}() takes one tensor, got {', '.join(describe(a) for a in args) or 'nothing'}")
    return args[0]


def _as_float64(b: BlockBuilder, x: ir.Value, loc: Span | None) -> ir.Value:
    return b.node("Cast", [x], TensorType("float64", x.type.shape), loc, to="float64")


def batch_axis_only(rule: str, args: list[Any], kwargs: dict[str, Any],
                    loc: Span | None) -> tuple[list[Any], tuple | None]:
    """`sum(x, axis=0)`, `count(x, axis=0)`: the state keeps x's trailing axes (one value per column), which
    must be fixed sizes so that every batch's state has one shape. Returns the other arguments and the state's
    shape (None: a scalar, every axis reduced)."""
    given = bind_arguments(f"{rule}()", STATE_RULES[rule].params, args, kwargs, loc)
    x, axis = given.get("x"), given.get("axis")
    if axis is None:
        return [x], None
    if axis != 0 or isinstance(axis, bool):
        raise error(loc, f"a state's {rule}() reduces the batch axis: axis=0 (one value per column), no axis= "
                         f"(one value), or for sum axis=[] (x is a batch's total already), got axis={axis!r}")
    if is_tensor(x) and not all(isinstance(d, int) for d in x.type.shape[1:]):
        raise error(loc, f"{rule}(x, axis=0) keeps x's trailing axes, which need fixed sizes; x is {x.type}")
    return [x], tuple(x.type.shape[1:]) if is_tensor(x) else ()


def exact_in_float32(x: ir.Value, max_rows: int | None) -> bool:
    """Whether a sum of the bools x is exact in float32: at most FLOAT32_EXACT elements in any batch."""
    rest = x.type.shape[1:]
    if x.type.dtype != "bool" or max_rows is None or x.type.rank == 0 or not all(isinstance(d, int) for d in rest):
        return False
    return max_rows * math.prod(rest) <= FLOAT32_EXACT


def count_of(b: BlockBuilder, x: ir.Value, loc: Span | None, max_rows: int | None, shape: tuple = (),
             **reduce: Any) -> ir.Value:
    """A sum of bools or ints as a count, int64. It is summed in float64 (exact to 2**53) and cast:
    onnxruntime's int64 ReduceSum runs about 4x slower than its float64 one; bools of a batch known to be
    small sum in float32, exactly and twice as fast again."""
    dtype = "float32" if exact_in_float32(x, max_rows) else "float64"
    values = b.node("Cast", [x], TensorType(dtype, x.type.shape), loc, to=dtype)
    total = b.node("ReduceSum", [values], TensorType(dtype, shape), loc, keepdims=0, **reduce)
    return b.node("Cast", [total], TensorType("int64", shape), loc, to="int64")


def lower_sum(b: BlockBuilder, loc: Span | None, batch: Batch, args: list[Any], kwargs: dict[str, Any]) -> ir.Value:
    if kwargs.get("axis") == []:   # x is a batch's total already (class_counts weighs its own rows)
        return _batch_total(b, loc, batch.weight, args, kwargs)
    args, shape = batch_axis_only("sum", args, kwargs, loc)
    x = _one_tensor("sum", args, {}, loc)
    reduce = {"axes": [0]} if shape is not None else {}
    shape, weight = shape or (), batch.weight
    if weight is None and x.type.dtype in ("bool", *INT_DTYPES):
        return count_of(b, x, loc, batch.max_rows, shape, **reduce)
    x64 = _as_float64(b, x, loc)
    if weight is not None:
        x64 = b.node("Mul", [x64, broadcast_weight(b, weight, x, loc)], x64.type, loc)
    return b.node("ReduceSum", [x64], TensorType("float64", shape), loc, keepdims=0, **reduce)


def _batch_total(b: BlockBuilder, loc: Span | None, weight: ir.Value | None, args: list[Any],
                 kwargs: dict[str, Any]) -> ir.Value:
    """`state s = sum(x, axis=[])`: x is already this batch's total (a helper that weighs its rows itself, such as
    class_counts), of a fixed shape; batches add up."""
    given = dict(kwargs)
    axis = given.pop("axis")
    x = _one_tensor("sum", args, given, loc)
    if axis != []:
        raise error(loc, f"a state sums the whole batch, or takes axis=[] for a batch's total; got axis={axis!r}")
    if not all(isinstance(d, int) for d in x.type.shape):
        raise error(loc, f"sum(x, axis=[]) takes a total of a fixed shape, without the batch axis; got {x.type}")
    if weight is not None:
        raise error(loc, "sum(x, axis=[]) is not weighted automatically: declare sample_weight as the metric's "
                         "third input and weigh the rows before the total")
    _check_budget(product(x.type.shape), loc)  # type: ignore[arg-type]
    return _as_float64(b, x, loc)


# The most values one state may hold (a bincount's bins, a total's elements): 2**24 float64 values, 128 MiB.
STATE_BUDGET = 1 << 24


def _check_budget(size: int, loc: Span | None) -> None:
    if size > STATE_BUDGET:
        raise error(loc, f"a state of {size:,} values is over the budget of {STATE_BUDGET:,} values per state")


def lower_count(b: BlockBuilder, loc: Span | None, batch: Batch, args: list[Any], kwargs: dict[str, Any]) -> ir.Value:
    args, shape = batch_axis_only("count", args, kwargs, loc)
    weight = batch.weight
    x = _one_tensor("count", args, {}, loc)
    if weight is None and shape is None:
        return b.node("Size", [x], TensorType("int64", ()), loc)
    if weight is None:  # the rows, once per column
        rows = b.node("Shape", [x], TensorType("int64", (1,)), loc, start=0, end=1)
        shape_of = b.const(list(shape) or [1], "int64")
        each = b.node("Expand", [rows, shape_of], TensorType("int64", shape or (1,)), loc)
        return each if shape else b.node("Reshape", [each, b.const([], "int64")], TensorType("int64", ()), loc)
    w = broadcast_weight(b, weight, x, loc)
    ones = b.node("Expand", [w, b.node("Shape", [x], TensorType("int64", (x.type.rank,)), loc)],
                  TensorType("float64", x.type.shape), loc)
    reduce = {"axes": [0]} if shape is not None else {}
    return b.node("ReduceSum", [ones], TensorType("float64", shape or ()), loc, keepdims=0, **reduce)


def lower_extreme(rule: str) -> LowerState:
    """min / max over the batch; rows of weight 0 do not take part."""
    def lower(b: BlockBuilder, loc: Span | None, batch: Batch, args: list[Any], kwargs: dict[str, Any]) -> ir.Value:
        x = _one_tensor(rule, args, kwargs, loc)
        x64 = _as_float64(b, x, loc)
        if batch.weight is not None:
            w = broadcast_weight(b, batch.weight, x, loc)
            keep = b.node("Greater", [w, b.const(0.0, "float64")], TensorType("bool", w.type.shape), loc)
            x64 = b.node("Where", [keep, x64, b.const(STATE_RULES[rule].fill, "float64")], x64.type, loc)
        return b.node("ReduceMin" if rule == "min" else "ReduceMax", [x64], TensorType("float64", ()), loc,
                      keepdims=0)
    return lower


def lower_bincount(b: BlockBuilder, loc: Span | None, batch: Batch, args: list[Any],
                   kwargs: dict[str, Any]) -> ir.Value:
    """Counts (or sums of `weights`) per index in [0, length); indices outside land in an extra last bin,
    which the runtime reports as an error."""
    weight = batch.weight
    given = bind_arguments("bincount()", STATE_RULES["bincount"].params, args, kwargs, loc)
    index, length, weights = given.get("index"), given.get("length"), given.get("weights")
    if not is_tensor(index) or index.type.dtype not in INT_DTYPES:
        raise error(loc, f"bincount() takes integer indices, got {describe(index)}")
    if not isinstance(length, int) or isinstance(length, bool) or length < 1:
        raise error(loc, f"bincount() length must be a positive int, got {describe(length)}")
    _check_budget(length, loc)
    if weights is not None and not is_tensor(weights):
        raise error(loc, f"bincount() weights must be a tensor, got {describe(weights)}")
    if weights is not None and (weights.type.rank != index.type.rank or any(
            isinstance(w, int) and isinstance(i, int) and w != i
            for w, i in zip(weights.type.shape, index.type.shape))):
        raise error(loc, f"bincount() weights {weights.type} do not match its indices {index.type}: one weight per "
                         "index")   # (class labels [batch] against scores [batch, k], in a metric of one score a row)
    dtype = "float64" if weights is not None or weight is not None else "int64"
    if isinstance(index, ir.Filled) and index.size is not None and dtype == "int64":   # every row in one bin
        spot = index.value if 0 <= index.value < length else length
        return b.node("Mul", [b.const([int(i == spot) for i in range(length + 1)], "int64"), index.size],
                      TensorType("int64", (length + 1,)), loc)
    updates = _bincount_updates(b, loc, index, weights, dtype)
    if weight is not None:
        updates = b.node("Mul", [updates, broadcast_weight(b, weight, updates, loc)], updates.type, loc)
    updates = b.node("Reshape", [updates, b.const([-1], "int64")], TensorType(dtype, (None,)), loc)
    flat = TensorType("int64", (None,))
    idx = b.node("Reshape", [b.node("Cast", [index], TensorType("int64", index.type.shape), loc, to="int64"),
                             b.const([-1], "int64")], flat, loc)
    # one pass sends every index outside [0, length) to the extra bin: -1 is the last position of the
    # length + 1 bins in ScatterElements (negative indices count from the end), as is `length` itself
    idx = b.node("Clip", [idx, b.const(-1, "int64"), b.const(length, "int64")], flat, loc)
    return b.node("ScatterElements", [b.const([0] * (length + 1), dtype), idx, updates],
                  TensorType(dtype, (length + 1,)), loc, axis=0, reduction="add")


def _bincount_updates(b: BlockBuilder, loc: Span | None, index: ir.Value, weights: ir.Value | None,
                      dtype: str) -> ir.Value:
    """What each row adds to its bin: its weight, or 1."""
    if weights is not None:
        return _as_float64(b, weights, loc)
    shape = b.node("Shape", [index], TensorType("int64", (index.type.rank,)), loc)
    return b.node("ConstantOfShape", [shape], TensorType(dtype, index.type.shape), loc,
                  value=ir.ConstTensor(dtype, (1,), (1,)))


# --- merges ------------------------------------------------------------------------------------------
def _add(a: Any, b: Any) -> Any:
    return a + b


def _minimum(a: Any, b: Any) -> Any:
    import numpy as np
    return np.minimum(a, b)


def _maximum(a: Any, b: Any) -> Any:
    import numpy as np
    return np.maximum(a, b)


STATE_RULES: dict[str, StateRule] = {
    "sum": StateRule(("x", "axis"), lower_sum, _add, 0.0),
    "count": StateRule(("x", "axis"), lower_count, _add, 0.0),
    "min": StateRule(("x",), lower_extreme("min"), _minimum, float("inf")),
    "max": StateRule(("x",), lower_extreme("max"), _maximum, float("-inf")),
    "bincount": StateRule(("index", "length", "weights"), lower_bincount, _add, 0.0),
}


def merge_state(rule: str, a: Any, b: Any) -> Any:
    """Two values of one state merged by its rule: what the runtime does across batches, workers and partitions."""
    return STATE_RULES[rule].merge(a, b)


def merge_states(into: dict[str, Any], new: dict[str, Any], rules: dict[str, str]) -> None:
    """Merge the states `new` into `into`, each by its rule; a state `into` lacks is copied in."""
    import numpy as np
    for name, value in new.items():
        value = np.asarray(value)
        if name in into and np.shape(into[name]) != value.shape:  # another class count, other thresholds
            raise user_error(f"state '{name}' of shape {list(value.shape)} cannot merge into one of shape "
                             f"{list(np.shape(into[name]))}: the batches (or the metrics merged) have other class "
                             "counts or options")
        into[name] = value.copy() if name not in into else merge_state(rules[name], into[name], value)


def default_state(spec: StateSpec) -> "np.ndarray":
    """The value of a state no batch has updated."""
    import numpy as np
    return np.full(tuple(int(d) for d in spec.shape if d is not None), STATE_RULES[spec.rule].fill, dtype=spec.dtype)
