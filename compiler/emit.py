"""ir.Model -> onnx.ModelProto: one FunctionProto per distinct layer body, or one flat graph."""
from __future__ import annotations

from typing import Iterable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..version import __version__
from . import ir
from .types import DTYPES, TensorType, numpy_dtype

LOCAL_DOMAIN = "modelc.layers"
DEFAULT_OPSET = 23   # newest opset the pinned onnxruntime (1.32) runs every op of; see README
MIN_OPSET = 17       # LayerNormalization
IR_VERSION = 10      # read by onnxruntime >= 1.20



def value_info(name: str, t: TensorType) -> onnx.ValueInfoProto:
    """Set directly: helper.make_tensor_value_info costs more than the rest of a weight's emission."""
    info = onnx.ValueInfoProto(name=name)
    tensor_type = info.type.tensor_type
    tensor_type.elem_type = DTYPES[t.dtype].onnx
    shape = tensor_type.shape
    shape.SetInParent()  # a scalar still has a (empty) shape
    for d in t.shape:
        dim = shape.dim.add()
        if isinstance(d, int):
            dim.dim_value = d
        elif d is not None:
            dim.dim_param = d
    return info


def const_tensor(c: ir.ConstTensor, name: str = "value") -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(c.values, dtype=numpy_dtype(c.dtype)).reshape(c.shape), name)


def axes_as_input(op: str, opset: int) -> bool:
    """ReduceSum takes axes as an input from opset 13, the other reductions from 18."""
    return op.startswith("Reduce") and (op == "ReduceSum" or opset >= 18)


def make_nodes(node: ir.Node, rename: dict[str, str], prefix: str, opset: int) -> list[onnx.NodeProto]:
    if "axes" in node.attrs and axes_as_input(node.op, opset):
        axes_name = rename.get(node.outputs[0], node.outputs[0]) + "_axes"
        axes = helper.make_node("Constant", [], [axes_name], name=prefix + node.name + "/axes",
                                value=numpy_helper.from_array(np.array(node.attrs["axes"], np.int64)))
        attrs = {k: v for k, v in node.attrs.items() if k != "axes"}
        reduce = ir.Node(node.op, [*node.inputs, axes_name], node.outputs, attrs, node.name, node.loc)
        return [axes, make_node(reduce, rename, prefix)]
    return [make_node(node, rename, prefix)]


def make_node(node: ir.Node, rename: dict[str, str], prefix: str) -> onnx.NodeProto:
    attrs = {}
    for key, value in node.attrs.items():
        if isinstance(value, ir.ConstTensor):
            value = const_tensor(value)
        elif key == "to":
            value = DTYPES[value].onnx
        attrs[key] = value
    proto = helper.make_node(node.op, [rename.get(i, i) for i in node.inputs],
                             [rename.get(o, o) for o in node.outputs], name=prefix + node.name, **attrs)
    if node.loc is not None:
        proto.doc_string = str(node.loc)
    return proto


# onnxruntime refuses functions nested deeper than this ("local function call depth 101 exceeds the maximum
# supported depth of 100"): calls whose functions would nest deeper are expanded inline into the graph.
MAX_FUNCTION_DEPTH = 100


class Emitter:
    def __init__(self, opset: int, inline: bool):
        self.opset = opset
        self.inline = inline
        self.functions: dict[int, onnx.FunctionProto] = {}
        self.function_names: set[str] = set()
        self.heights: dict[int, int] = {}

    def height(self, block: ir.Block) -> int:
        """How deep functions nest from a call of this block: 1, plus its deepest call's."""
        if id(block) not in self.heights:
            self.heights[id(block)] = 1 + max((self.height(i.block) for i in block.items if isinstance(i, ir.Call)),
                                              default=0)
        return self.heights[id(block)]

    def opsets(self) -> list[onnx.OperatorSetIdProto]:
        ids = [helper.make_opsetid("", self.opset)]
        if self.functions:
            ids.append(helper.make_opsetid(LOCAL_DOMAIN, 1))
        return ids

    def nodes(self, block: ir.Block, rename: dict[str, str], prefix: str,
              in_graph: bool = False) -> Iterable[onnx.NodeProto]:
        """The block's nodes; in inline mode calls expand with names prefixed by their path, and so, in the
        graph, does a call whose functions would nest deeper than MAX_FUNCTION_DEPTH (within a function
        every call fits: its callees are shallower)."""
        for item in block.items:
            if isinstance(item, ir.Node):
                yield from make_nodes(item, rename, prefix, self.opset)
                continue
            actual = [rename.get(n, n) for n in (*item.inputs, *item.weights)]
            outs = [rename.get(o, o) for o in item.outputs]
            if not self.inline and not (in_graph and self.height(item.block) > MAX_FUNCTION_DEPTH):
                fn = self.function(item.block)
                node = helper.make_node(fn.name, actual, outs, name=prefix + item.name, domain=LOCAL_DOMAIN)
                if item.loc is not None:
                    node.doc_string = str(item.loc)
                yield node
                continue
            inner_prefix = f"{prefix}{item.name}/"
            value_prefix = "/" + inner_prefix.rstrip("/")
            formals = [v.name for v in item.block.inputs] + [w.name for w in item.block.weights]
            inner = {f: a for f, a in zip(formals, actual)}
            inner.update({v.name: o for v, o in zip(item.block.outputs, outs)})
            for sub in item.block.items:
                for o in sub.outputs:
                    inner.setdefault(o, value_prefix + o)
            yield from self.nodes(item.block, inner, inner_prefix, in_graph)

    def function(self, block: ir.Block) -> onnx.FunctionProto:
        if id(block) not in self.functions:
            name, n = block.label, 1
            while name in self.function_names:
                n += 1
                name = f"{block.label}_v{n}"
            self.function_names.add(name)
            self.functions[id(block)] = onnx.FunctionProto()  # placeholder against re-entry
            body = list(self.nodes(block, {}, ""))
            opsets = [helper.make_opsetid("", self.opset), helper.make_opsetid(LOCAL_DOMAIN, 1)]
            fn = helper.make_function(
                LOCAL_DOMAIN, name, [v.name for v in block.inputs] + [w.name for w in block.weights],
                [v.name for v in block.outputs], body, opsets, doc_string=str(block.loc or ""))
            self.functions[id(block)] = fn
        return self.functions[id(block)]


def emit_model(model: ir.Model, weights: dict[str, np.ndarray] | None, opset: int = DEFAULT_OPSET,
               inline: bool = False, metadata: dict[str, str] | None = None,
               extra_outputs: list[ir.Value] | None = None) -> onnx.ModelProto:
    """The ModelProto. With weights=None the weights are declared as typed graph inputs instead of
    initializers: the same graph for the checker, without copying gigabytes (see attach_weights)."""
    em = Emitter(opset, inline)
    graph_block = model.graph
    nodes = list(em.nodes(graph_block, {}, "", in_graph=True))
    inputs = [value_info(v.name, v.type) for v in graph_block.inputs]
    if weights is None:
        inputs += [value_info(w.name, w.type) for w in graph_block.weights]
    initializers = [] if weights is None else \
        [numpy_helper.from_array(weights[w.name], w.name) for w in graph_block.weights]
    graph = helper.make_graph(
        nodes, model.name, inputs,
        [value_info(v.name, v.type) for v in graph_block.outputs + [e for e in extra_outputs or []
                                                                   if e not in graph_block.outputs]],
        initializer=initializers)
    proto = helper.make_model(graph, opset_imports=em.opsets(), producer_name="modelc", producer_version=__version__,
                              functions=[f for f in em.functions.values()])
    proto.ir_version = IR_VERSION
    for key, value in (metadata or {}).items():
        proto.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    return proto


def attach_weights(proto: onnx.ModelProto, slots: list[ir.WeightSlot], weights: dict[str, np.ndarray]) -> None:
    """Turn the weight inputs of a weights=None model into initializers, in place, one copy per tensor."""
    names = {w.name for w in slots}
    kept = [i for i in proto.graph.input if i.name not in names]
    del proto.graph.input[:]
    proto.graph.input.extend(kept)
    for w in slots:
        array = np.ascontiguousarray(weights[w.name])
        tensor = proto.graph.initializer.add()
        tensor.name = w.name
        tensor.data_type = DTYPES[w.type.dtype].onnx
        tensor.dims.extend(array.shape)
        tensor.raw_data = array.tobytes()  # little-endian hosts, as numpy_helper.from_array assumes too
