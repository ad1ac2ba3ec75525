"""AST of a .model file: one dataclass per grammar rule, each with its source span."""
from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Union

from .source import Span


# --- expressions -----------------------------------------------------------
@dataclass
class Number:          # 3, 0.5, 1e-3; is_int keeps `3` apart from `3.0`
    loc: Span
    value: float | int
    is_int: bool


@dataclass
class String:          # "relu_1"
    loc: Span
    value: str


@dataclass
class Bool:            # true, false
    loc: Span
    value: bool


@dataclass
class Name:            # x, units, relu
    loc: Span
    id: str


@dataclass
class ListExpr:        # [2, -1]
    loc: Span
    items: list["Expr"]


@dataclass
class Binary:          # a + b, a @ b, a and b, a <= b
    loc: Span
    op: str
    left: "Expr"
    right: "Expr"


@dataclass
class Unary:           # -a, not a
    loc: Span
    op: str
    operand: "Expr"


@dataclass
class Keyword:         # axis=-1
    loc: Span
    name: str
    value: "Expr"


@dataclass
class Call:            # exp(x), dense(4), dense(4)(x)
    loc: Span
    func: "Expr"
    args: list["Expr"]
    kwargs: list[Keyword]


@dataclass
class Slice:           # 0:4, ::2
    loc: Span
    start: "Expr | None"
    stop: "Expr | None"
    step: "Expr | None"


@dataclass
class EllipsisIndex:   # ... inside x[..., -1]
    loc: Span


@dataclass
class Index:           # x[:, 0:4]
    loc: Span
    target: "Expr"
    items: list["Expr | Slice | EllipsisIndex"]


@dataclass
class StageRef:        # `-> relu` (args None) or `-> dense(4, name="d")`
    loc: Span
    name: str
    args: list["Expr"] | None
    kwargs: list[Keyword]


MAX_REPEAT = 100_000  # a typo like `repeat 1000000000` gets a diagnostic instead of a hang


@dataclass
class Repeat:          # `-> repeat 3 residual(30)`, `-> repeat 2 shared dense(8)`, `-> repeat n_layers d`
    loc: Span
    count: "Expr"         # integer arithmetic over literals and hyperparameters
    shared: bool
    stage: "Stage"


@dataclass
class Pipe:            # value -> stage
    loc: Span
    value: "Expr"
    stage: "Stage"


Stage = Union[StageRef, Repeat]
Expr = Union[Number, String, Bool, Name, ListExpr, Binary, Unary, Call, Index, Pipe]


# --- declarations ----------------------------------------------------------
@dataclass
class Dim:             # 8, batch, ...
    loc: Span
    value: int | str   # "..." for any number of leading dims


@dataclass
class ScalarType:      # int, float, bool, str, layer
    loc: Span
    name: str


@dataclass
class TensorTypeSpec:  # [batch, n] or float32[batch, 8]
    loc: Span
    dtype: str | None
    dims: list[Dim]


TypeSpec = Union[ScalarType, TensorTypeSpec]


@dataclass
class Param:           # `units: int = 3` (hyperparameter) or `x: [batch, n]` (input)
    loc: Span
    name: str
    type: TypeSpec | None
    default: Expr | None


# --- statements ------------------------------------------------------------
@dataclass
class Assign:          # h = EXPR
    loc: Span
    name: str
    value: Expr


@dataclass
class ParamDecl:       # param kernel: [n, units] = glorot_normal
    loc: Span
    name: str
    type: TensorTypeSpec
    init: Expr


@dataclass
class StateDecl:       # state total = sum(loss)
    loc: Span
    name: str
    value: Expr


@dataclass
class Return:          # return y, aux
    loc: Span
    values: list[Expr]


Statement = Union[Assign, ParamDecl, StateDecl, Return]


# --- definitions -----------------------------------------------------------
@dataclass
class Import:
    loc: Span
    path: str


@dataclass
class Definition:      # layer, model and metric share one shape
    loc: Span
    kind: str          # "layer" | "model" | "metric"
    name: str
    hparams: list[Param]
    inputs: list[Param]
    body: list[Statement]
    name_loc: Span | None = None


@dataclass
class Program:
    file: str
    imports: list[Import] = field(default_factory=list)
    definitions: list[Definition] = field(default_factory=list)


# --- to and from JSON (the prelude ships checked, as runtime/prelude.json) -------------------------
NODE_TYPES: dict[str, type] = {cls.__name__: cls for cls in (
    Number, String, Bool, Name, ListExpr, Binary, Unary, Keyword, Call, Slice, EllipsisIndex, Index, StageRef,
    Repeat, Pipe, Dim, ScalarType, TensorTypeSpec, Param, Assign, ParamDecl, StateDecl, Return, Import,
    Definition)}
SPAN_FIELDS = {"loc", "name_loc"}   # the fields that hold a Span; no other field is a list of four ints


def to_json(value: Any) -> Any:
    """A node as JSON data: {"_": its class, field: value, ...}; a span as [line, col, end_line, end_col]
    (the file is the one the nodes are read back for). No pickle: the data names only node classes."""
    if isinstance(value, Span):
        return [value.line, value.col, value.end_line, value.end_col]
    if is_dataclass(value):
        return {"_": type(value).__name__, **{f.name: to_json(getattr(value, f.name)) for f in fields(value)}}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value


def from_json(data: Any, file: str) -> Any:
    """The nodes of `to_json(nodes)`, their spans in `file`."""
    if isinstance(data, list):
        return [from_json(v, file) for v in data]
    if not isinstance(data, dict):
        return data
    cls = NODE_TYPES[data["_"]]
    values = {}
    for f in fields(cls):
        raw = data[f.name]
        is_span = f.name in SPAN_FIELDS and raw is not None
        values[f.name] = Span(file, *raw) if is_span else from_json(raw, file)
    return cls(**values)
