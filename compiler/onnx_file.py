"""`modelc summary` and `modelc params` on an .onnx file: its inputs, outputs, layer functions and weights,
read from the protobuf alone (external weight data is never loaded)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .files import regular_input
from .source import user_error
from .summary import human_size, render_text, size_of
from .types import DTYPES, show_shape

if TYPE_CHECKING:
    import onnx

DTYPE_OF_ONNX = {d.onnx: name for name, d in DTYPES.items()}


def load_onnx(path: str) -> "onnx.ModelProto":
    import onnx
    from google.protobuf.message import DecodeError
    regular_input(path, "model")
    try:
        return onnx.load(path, load_external_data=False)
    except DecodeError as e:
        raise user_error(f"cannot read {path}: not an ONNX model ({e})") from None


def onnx_params(proto: "onnx.ModelProto") -> list[dict[str, Any]]:
    """The graph's initializers as `modelc params --json` lists a .model's weights; a type modelc's language has
    no name for (int8 weights of a quantized model) under ONNX's own name, lower-cased."""
    import onnx
    return [{"name": t.name, "shape": list(t.dims),
             "dtype": DTYPE_OF_ONNX.get(t.data_type) or onnx.TensorProto.DataType.Name(t.data_type).lower()}
            for t in proto.graph.initializer]


def value_type(v: "onnx.ValueInfoProto") -> str:
    t = v.type.tensor_type
    dims = tuple(d.dim_param or d.dim_value for d in t.shape.dim)
    return DTYPE_OF_ONNX.get(t.elem_type, "?") + show_shape(dims)


def count(row: dict[str, Any]) -> int:
    return size_of(row["shape"])


def layer_rows(proto: "onnx.ModelProto", local: set[tuple[str, str]]) -> dict[str, tuple[str, set[str]]]:
    """Instance -> (its layer function, or "ops" for plain ops named `dense/MatMul`, and the weights it
    takes), in graph order: what the .model summary's rows would be."""
    weights = {t.name for t in proto.graph.initializer}
    rows: dict[str, tuple[str, set[str]]] = {}
    for node in proto.graph.node:
        if (node.domain, node.op_type) in local:
            name, role = node.name, node.op_type
        elif "/" in node.name.strip("/"):
            name, role = node.name.strip("/").split("/")[0], "ops"
        else:
            continue
        rows.setdefault(name, (role, set()))[1].update(i for i in node.input if i in weights)
    return rows


def render_onnx_summary(proto: "onnx.ModelProto") -> str:
    """Keras' summary table for an .onnx file: inputs, each application of a layer function (with the
    params of the weights it takes), outputs; then the weights and the totals."""
    from rich.markup import escape
    from rich.table import Table

    params = {row["name"]: row for row in onnx_params(proto)}
    local = {(f.domain, f.name) for f in proto.functions}
    table = Table(title=f'Model: "{proto.graph.name}"')
    for column in ("Name (role)", "Type", "Param #"):
        table.add_column(column, justify="right" if column == "Param #" else "left")
    for v in proto.graph.input:
        table.add_row(escape(f"{v.name} (Input)"), escape(value_type(v)), "0")
    for name, (role, weights) in layer_rows(proto, local).items():
        table.add_row(escape(f"{name} ({role})"), "", f"{sum(count(params[w]) for w in weights):,}")
    for v in proto.graph.output:
        table.add_row(escape(f"{v.name} (Output)"), escape(value_type(v)), "")
    weights = Table(title="Weights")
    for column in ("Name", "Shape", "Dtype"):
        weights.add_column(column)
    for row in params.values():
        weights.add_row(escape(row["name"]), escape(show_shape(tuple(row["shape"]))), row["dtype"])
    import onnx
    size = sum(count(params[t.name]) * onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
               for t in proto.graph.initializer)
    functions = ", ".join(sorted(f.name for f in proto.functions)) or "none"
    return render_text(table, weights, f"Total params: {sum(count(r) for r in params.values()):,} "
                       f"({human_size(size)})", f"Weights: {len(params)}", f"Layer functions: {functions}",
                       f"Made by {proto.producer_name or '?'} {proto.producer_version}, opset "
                       f"{proto.opset_import[0].version}")
