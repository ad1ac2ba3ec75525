"""A Keras model file as .model source and weights: the graph walked body by body (the model, nested
models, folded blocks), each layer imported through layers.py, each weight filed under its modelc path.
What does not import is an error naming the layer, its class and where it is, or (stub_unknown) a stub
layer whose params are declared from the file."""
from __future__ import annotations

import re
from typing import Hashable

import numpy as np

from .archive import KerasFile, failure
from .fold import Unit
from .graph import Graph, Node, Ref, build
from .layers import Stage, Unsupported, convert
from .source import INDENT, Body, BodyWriter, Namespace, Slot, block_prefix, graph_units, identifier

HEADER = "# Imported by `modelc import` from {file} ({kind}); weights in {weights}\n"


class Importer:
    def __init__(self, file: KerasFile, stub_unknown: bool = False):
        self.file, self.stub_unknown = file, stub_unknown
        self.names = Namespace()
        self.defs: list[str] = []
        self.stages: dict[int, Stage] = {}
        self.index: dict[int, int] = {}
        self.calls: dict[int, int] = {}
        self.top = "model"

    # --- what the body writers ask -------------------------------------------------------------------
    def index_of(self, node: Node) -> int:
        return self.index[id(node)]

    def call_index(self, node: Node) -> int:
        return self.calls[id(node)]

    def is_tuple(self, node: Node) -> bool:
        cfg = node.layer.config
        inner = cfg.get("layer", {}).get("config", {}) if node.layer.class_name == "Bidirectional" else {}
        sub = node.layer.sub
        return bool(cfg.get("return_state") or inner.get("return_state") or
                    ("merge_mode" in cfg and cfg["merge_mode"] is None) or (sub and len(sub.outputs) > 1))

    def stage_key(self, node: Node) -> Hashable:
        s = self.stage(node)
        return (s.kind, s.text, s.post, tuple(s.weights), node.layer.class_name, s.body is not None)

    def foldable(self, node: Node) -> bool:
        return node.layer.calls == 1 and not self.stage(node).stub

    def stageable(self, node: Node) -> bool:
        s = self.stage(node)
        return s.kind in ("layer", "function") and len(node.inputs) == 1 and not node.tensor_kwargs \
            and not self.is_tuple(node) and s.body is None and not s.stub and not s.post

    def stage(self, node: Node) -> Stage:
        layer = node.layer
        if id(layer) not in self.stages:
            self.stages[id(layer)] = self._stage(node)
        return self.stages[id(layer)]

    def _stage(self, node: Node) -> Stage:
        layer = node.layer
        if layer.sub is not None:
            name = self.names.new(layer.name)
            body, params = self.graph_body(layer.sub)
            self.defs.append(f"layer {name}({', '.join(params)}) {{\n" + "\n".join(body.lines) + "\n}")
            return Stage("layer", name, layer=name, body=body)
        try:
            return convert(layer.class_name, layer.config, layer.module, layer.rank)
        except Unsupported as e:
            return self.unsupported(node, str(e))

    def unsupported(self, node: Node, why: str) -> Stage:
        layer = node.layer
        cls, registered = layer.class_name, layer.registered
        custom = not layer.module.startswith("keras") or bool(registered and not registered.startswith("keras"))
        if cls == "Lambda":
            why = "Lambda layers cannot be imported: their Python code is never loaded or run; " \
                  "re-create it as a modelc layer"
        elif custom and not why:
            why = "a custom layer class cannot be imported: its Python code is never loaded or run; " \
                  "write it as a modelc layer"
        elif not why:
            why = f"Keras' {cls} has no modelc counterpart; write it as a modelc layer"
        if not self.stub_unknown:
            raise failure(self.file.path, f"{self.where(node)}: {why}, or pass --stub-unknown")
        return self.stub(node, why)

    def where(self, node: Node) -> str:
        chain = " > ".join(f"'{name}'" for name in (self.top, *(r.name for r in node.layer.where[:-1])))
        return f"layer '{node.layer.name}' ({node.layer.class_name}) in model {chain}"

    def stub(self, node: Node, why: str) -> Stage:
        arrays = self.file.weights(node.layer.where)
        name = self.names.new(node.layer.name)
        params = [identifier(n.rsplit("/", 1)[-1]) if self.file.legacy else f"w{i}" for i, (n, _) in enumerate(arrays)]
        params = [p if params.count(p) == 1 else f"{p}_{i}" for i, p in enumerate(params)]
        xs = [f"x{i}" if len(node.inputs) > 1 else "x" for i in range(max(len(node.inputs), 1))]
        lines = [f"# A stub for Keras' {node.layer.class_name} layer '{node.layer.name}' ({why.split(':')[0]}):",
                 "# its weights are declared from the file; write its body in place of `return` below",
                 f"layer {name}({', '.join(xs)}) {{"]
        lines += [f"{INDENT}param {p}: [{', '.join(map(str, a.shape))}] = zeros" for p, (_, a) in zip(params, arrays)]
        lines += [f"{INDENT}return {xs[0]}", "}"]
        self.defs.append("\n".join(lines))
        return Stage("layer", name, list(params), layer=name, stub=True)

    # --- bodies --------------------------------------------------------------------------------------
    def register(self, g: Graph) -> None:
        seen: dict[int, int] = {}
        for i, node in enumerate(g.nodes):
            self.index[id(node)] = i
            self.calls[id(node)] = seen.get(id(node.layer), 0)
            seen[id(node.layer)] = self.calls[id(node)] + 1

    def graph_body(self, g: Graph) -> tuple[Body, list[str]]:
        """A model's (or nested model's) statements, and its inputs' names."""
        self.register(g)
        inputs = {Ref(-k - 1): self.names.new(inp.name) for k, inp in enumerate(g.inputs)}
        writer = BodyWriter(self, inputs, self.names)
        writer.write(graph_units(self, g), g.uses(), g.outputs)
        writer.body.lines.append(f"{INDENT}return {', '.join(writer.text[r] for r in g.outputs)}")
        return writer.body, list(inputs.values())

    def run(self, writer: BodyWriter, unit: Unit) -> str:
        """A run's stage text in the enclosing body (`repeat 3 conv3_block`), its instances' weights recorded."""
        segs = unit.segments or []
        node = unit.nodes[0]
        if unit.shared:
            return f"repeat {len(segs)} shared {writer.instance(self.stage(node), node)}"
        if len(unit.nodes) == 1:
            stage = self.stage(node)
            for seg in segs:
                name = writer.instances.default(stage.layer) if stage.kind == "layer" else ""
                if any(w is not None for w in stage.weights):
                    writer.body.slots.append(Slot(name, seg[0]))
            return f"repeat {len(segs)} {stage.text}"
        name, body = self.block(unit)
        for seg in segs:
            instance = writer.instances.default(name)
            position = {id(n): i for i, n in enumerate(unit.nodes)}
            writer.body.slots += [Slot(f"{instance}.{s.path}", seg[position[id(s.node)]]) for s in body.slots]
        return f"repeat {len(segs)} {name}" if len(segs) > 1 else name

    def block(self, unit: Unit) -> tuple[str, Body]:
        """The user layer of a folded run: written once, from its first segment."""
        segs = unit.segments or []
        prefix = block_prefix(segs)
        hint = (prefix or "").rstrip("_")
        hint = re.sub(r"_?\d+$", "", hint) if len(segs) > 1 else hint
        name = self.names.new(hint or "block")
        assert unit.input is not None and unit.output is not None
        x = self.names.new("x")
        writer = BodyWriter(self, {unit.input: x}, self.names, prefix or "")
        uses: dict[Ref, int] = {}
        for n in unit.nodes:
            for r in [*n.inputs, *n.tensor_kwargs.values()]:
                uses[r] = uses.get(r, 0) + 1
        output = Ref(self.index_of(unit.nodes[-1]))   # the first segment's output
        uses[output] = uses.get(output, 0) + 1
        writer.write([Unit([n]) for n in unit.nodes], uses, [output])
        self.defs.append(f"layer {name}({x}) {{\n" + "\n".join(writer.body.lines)
                         + f"\n{INDENT}return {writer.text[output]}\n}}")
        return name, writer.body

    # --- weights -------------------------------------------------------------------------------------
    def collect(self, slots: list[Slot], prefix: str, out: dict[str, np.ndarray]) -> None:
        for slot in slots:
            stage, path = self.stage(slot.node), prefix + slot.path
            if stage.body is not None:
                self.collect(stage.body.slots, path + ".", out)
                continue
            arrays = self.file.weights(slot.node.layer.where)
            wanted = [w for w in stage.weights]
            if len(arrays) != len(wanted):
                raise failure(self.file.path, f"{self.where(slot.node)}: the file holds {len(arrays)} weights for "
                                              f"it, modelc expects {len(wanted)} ({', '.join(map(str, wanted))})")
            for (_, array), w in zip(arrays, wanted):
                if w is not None:
                    out[f"{path}.{w}"] = array

    def model(self, weights_name: str = "") -> tuple[str, dict[str, np.ndarray]]:
        try:
            g = build(self.file.config)
        except ValueError as e:
            raise failure(self.file.path, str(e)) from None
        except (KeyError, TypeError, IndexError) as e:
            raise failure(self.file.path, f"a model config this importer cannot read ({type(e).__name__}: {e})") \
                from None
        self.top = g.name
        name = self.names.new(g.name)
        body, params = self.graph_body(g)
        ins = ", ".join(f"{p}: {_type(i.dtype, i.shape)}" for p, i in zip(params, g.inputs))
        weights: dict[str, np.ndarray] = {}
        self.collect(body.slots, "", weights)
        kind = "legacy HDF5" if self.file.legacy else "Keras 3 archive"
        weights_name = weights_name or self.file.path.with_suffix(".safetensors").name
        head = HEADER.format(file=self.file.path.name, kind=kind, weights=weights_name)
        model = f"model {name}({ins}) {{\n" + "\n".join(body.lines) + "\n}\n"
        text = head + "".join(d + "\n\n" for d in self.defs) + model
        return text, weights


def _type(dtype: str, shape: list[int | None]) -> str:
    dims = ["batch" if i == 0 and d is None else (f"d{i}" if d is None else str(d)) for i, d in enumerate(shape)]
    return f"{dtype}[{', '.join(dims)}]"

