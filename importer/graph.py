"""A Keras model config as a graph of layer applications: Sequential and Functional models, models nested
as layers, layers applied more than once (shared), several inputs and outputs, and the keras.ops a
Functional model records. Nodes come in a topological order that follows the config's."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .archive import LayerRef, container_keys, is_operation

MODEL_CLASSES = ("Functional", "Sequential", "Model")


@dataclass(frozen=True)
class Ref:
    """A tensor: output `index` of node `node` of its graph (a negative node: model input -node - 1)."""

    node: int
    index: int = 0


@dataclass
class Layer:
    """A Keras layer object, applied by one node or (shared) by several."""

    class_name: str
    name: str
    config: dict
    where: tuple[LayerRef, ...]      # its place: the containers from the top, then itself
    module: str = ""
    registered: str = ""
    rank: int | None = None           # its input's rank, where the config's build_config says it
    sub: "Graph | None" = None        # a nested model's own graph
    calls: int = 0


@dataclass
class Node:
    layer: Layer
    inputs: list[Ref]                 # the tensor arguments, in order (a list argument flattened)
    tensor_kwargs: dict[str, Ref] = field(default_factory=dict)
    args: list[Any] = field(default_factory=list)   # the call's arguments, tensors as Refs (keras.ops)
    outputs: int = 1


@dataclass
class Input:
    name: str
    dtype: str
    shape: list[int | None]


@dataclass
class Graph:
    name: str
    class_name: str
    inputs: list[Input]
    nodes: list[Node]
    outputs: list[Ref]
    where: tuple[LayerRef, ...] = ()

    def uses(self) -> dict[Ref, int]:
        """How many times each tensor is used (as an input or an output of the graph)."""
        count: dict[Ref, int] = {}
        for ref in [r for n in self.nodes for r in [*n.inputs, *n.tensor_kwargs.values()]] + self.outputs:
            count[ref] = count.get(ref, 0) + 1
        return count


def build(config: dict, where: tuple[LayerRef, ...] = ()) -> Graph:
    """The graph of a model config (`{"class_name": ..., "config": {...}}`)."""
    cls, cfg = config["class_name"], config["config"]
    if not isinstance(cfg, dict) or "layers" not in cfg:
        raise ValueError(f"its model is a {cls.rsplit('>', 1)[-1]} without a layer graph in its config (a subclassed "
                         "Model: its call() is Python code, never loaded or run); rebuild it as a Functional model")
    if cls == "Sequential":
        return _sequential(cfg, where)
    return _functional(cls, cfg, where)


def _layer(spec: dict, key: str | None, where: tuple[LayerRef, ...]) -> Layer:
    cls, cfg = spec["class_name"], spec.get("config", {})
    registered = str(spec.get("registered_name") or "")
    if ">" in cls:   # a legacy file names a registered custom class `package>Class`
        registered, cls = cls, cls.rsplit(">", 1)[1]
    name = cfg.get("name") or spec.get("name") or key or cls
    here = (*where, LayerRef(name, cls, key or ""))
    module = "keras.src.ops" if is_operation(spec) else str(spec.get("module") or "keras.layers")
    shape = (spec.get("build_config") or {}).get("input_shape")
    rank = len(shape) if isinstance(shape, list) and shape and not isinstance(shape[0], list) else None
    layer = Layer(cls, name, cfg, here, module, registered=registered, rank=rank)
    if cls in MODEL_CLASSES or (isinstance(cfg, dict) and "layers" in cfg and cls not in ("Bidirectional",)):
        layer.sub = build(spec, here)
    return layer


def _input_of(spec: dict, name: str | None = None) -> Input:
    cfg = spec.get("config", {})
    shape = cfg.get("batch_shape") or cfg.get("batch_input_shape") or [None, *(cfg.get("shape") or [])]
    return Input(name or cfg.get("name", "x"), str(cfg.get("dtype") or "float32"), list(shape))


def _sequential(cfg: dict, where: tuple[LayerRef, ...]) -> Graph:
    specs = cfg["layers"]
    keys = container_keys(specs, sequential=True)
    if specs and specs[0]["class_name"] == "InputLayer":
        first = _input_of(specs[0])
    else:
        shape = cfg.get("build_input_shape") or (specs[0].get("build_config") or {}).get("input_shape") \
            or specs[0].get("config", {}).get("batch_input_shape")   # Keras 2
        dtype = cfg.get("dtype") if isinstance(cfg.get("dtype"), str) else "float32"
        first = Input("x", dtype, list(shape or [None]))
    nodes: list[Node] = []
    for spec, key in zip(specs, keys):
        if spec["class_name"] == "InputLayer":
            continue
        layer = _layer(spec, key, where)
        layer.calls = 1
        nodes.append(Node(layer, [Ref(len(nodes) - 1)]))
    return Graph(cfg.get("name", "sequential"), "Sequential", [first], nodes, [Ref(len(nodes) - 1)], where)


def _refs(value: Any) -> list:
    """Keras' [name, node, index] triples: one, a list of them, or a dict of them (named inputs or outputs)."""
    if isinstance(value, dict):
        return [r for v in value.values() for r in _refs(v)]
    return [value] if value and isinstance(value[0], str) else list(value or [])


class _Tensors:
    """Turns a node's serialized arguments into Refs, keeping the constants (keras.ops' arguments)."""

    def __init__(self, where: dict[tuple[str, int], int]):
        self.where = where

    def ref(self, history: list) -> Ref:
        return Ref(self.where[(history[0], history[1])], history[2])

    def walk(self, value: Any, found: list[Ref]) -> Any:
        if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
            ref = self.ref(value["config"]["keras_history"])
            found.append(ref)
            return ref
        if isinstance(value, dict) and value.get("class_name") == "__slice__":
            return slice(*(value["config"].get(k) for k in ("start", "stop", "step")))
        if isinstance(value, list):
            return [self.walk(v, found) for v in value]
        return value


def _keras3_node(node: Any) -> dict:
    """A Keras 2 inbound node (`[[name, node, index, kwargs], ...]`) in Keras 3's form (`{"args", "kwargs"}`)."""
    if isinstance(node, dict):
        return node

    def tensor(ref: list) -> dict:
        return {"class_name": "__keras_tensor__", "config": {"keras_history": list(ref[:3])}}
    tensors = [tensor(ref) for ref in node]
    kwargs = {k: tensor(v) if isinstance(v, list) and v and isinstance(v[0], str) else v
              for ref in node if len(ref) > 3 and isinstance(ref[3], dict) for k, v in ref[3].items()}
    return {"args": tensors if len(tensors) == 1 else [tensors], "kwargs": kwargs}


def _functional(cls: str, cfg: dict, where: tuple[LayerRef, ...]) -> Graph:
    specs = cfg["layers"]
    for spec in specs:
        spec["inbound_nodes"] = [_keras3_node(n) for n in spec.get("inbound_nodes", [])]
    keys = container_keys(specs, sequential=False)
    position = {(s.get("name") or s["config"]["name"]): i for i, s in enumerate(specs)}
    inputs = [r[0] for r in _refs(cfg["input_layers"])]
    index: dict[tuple[str, int], int] = {}
    for k, name in enumerate(inputs):
        index[(name, 0)] = -k - 1
    pending = [(position[_name(s)], j, s, key) for s, key in zip(specs, keys) if s["class_name"] != "InputLayer"
               for j in range(len(s.get("inbound_nodes", [])))]
    layers = {_name(s): _layer(s, key, where) for s, key in zip(specs, keys) if s["class_name"] != "InputLayer"}
    nodes: list[Node] = []
    while pending:   # Kahn's algorithm, the earliest ready application in config order first
        for item in sorted(pending, key=lambda p: (p[0], p[1])):
            _, j, spec, _key = item
            inbound = spec["inbound_nodes"][j]
            if all((h[0], h[1]) in index for h in _histories(inbound)):
                break
        else:
            raise ValueError("the model's layers form a cycle or use an unknown layer")
        pending.remove(item)
        nodes.append(_node(layers[_name(spec)], inbound, _Tensors(index)))
        index[(_name(spec), j)] = len(nodes) - 1
    specs_by_name = {_name(s): s for s in specs}
    ins = [_input_of(specs_by_name[n], n) for n in inputs]
    tensors = _Tensors(index)
    outputs = [tensors.ref(r) for r in _refs(cfg["output_layers"])]
    return _prune(Graph(cfg.get("name", "model"), cls, ins, nodes, outputs, where))


def _name(spec: dict) -> str:
    return spec.get("name") or spec["config"]["name"]


def _histories(value: Any) -> list[list]:
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            return [value["config"]["keras_history"]]
        return [h for v in value.values() for h in _histories(v)]
    if isinstance(value, list):
        return [h for v in value for h in _histories(v)]
    return []


def _node(layer: Layer, inbound: dict, tensors: _Tensors) -> Node:
    inputs: list[Ref] = []
    args = tensors.walk(inbound.get("args", []), inputs)
    kwargs: dict[str, Ref] = {}
    for key, value in (inbound.get("kwargs") or {}).items():
        found: list[Ref] = []
        tensors.walk(value, found)
        if found:
            kwargs[key] = found[0]
    layer.calls += 1
    return Node(layer, inputs, kwargs, args)


def _prune(g: Graph) -> Graph:
    """Only the nodes the outputs depend on, renumbered (a Functional config may hold unused branches)."""
    needed, stack = set(), list(g.outputs)
    while stack:
        ref = stack.pop()
        if ref.node >= 0 and ref.node not in needed:
            needed.add(ref.node)
            node = g.nodes[ref.node]
            stack += [*node.inputs, *node.tensor_kwargs.values()]
    kept = sorted(needed)
    new = {old: i for i, old in enumerate(kept)}

    def re(r: Any) -> Any:
        if isinstance(r, Ref):
            return Ref(new[r.node], r.index) if r.node >= 0 else r
        return [re(v) for v in r] if isinstance(r, list) else r
    nodes = [Node(n.layer, re(n.inputs), {k: re(v) for k, v in n.tensor_kwargs.items()}, re(n.args), n.outputs)
             for n in (g.nodes[i] for i in kept)]
    for n in nodes:
        n.outputs = 1 + max([r.index for m in nodes for r in [*m.inputs, *m.tensor_kwargs.values()]
                             if r.node >= 0 and nodes[r.node] is n] + [0])
    g.nodes, g.outputs = nodes, [re(r) for r in g.outputs]
    return g
