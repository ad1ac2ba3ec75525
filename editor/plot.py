"""`modelc plot`: a picture of a model's graph, as Graphviz DOT; Graphviz's `dot` renders .svg and .png.

Each layer instance is a box with its name, type, output shape and parameter count: the rows of
`modelc summary` (ir.Block.layers, the same numbers). A `repeat N` stage is one box with its count. A
function or operator between layers (`concat`, `+`) is a small ellipse named by its ONNX op. Inputs and
outputs are marked. `expand` opens each user layer into a cluster of its own layers, recursively, wired
through its inputs and outputs. Nothing is laid out here: `dot` does that, and a .dot file needs no Graphviz at all.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..compiler import ir
from ..compiler.files import atomic_write
from ..compiler.source import user_error
from ..compiler.types import show_shape

FORMATS = ("svg", "png", "dot")
INSTALL_GRAPHVIZ = ("Graphviz's `dot` program renders .svg and .png and is not on PATH: install it "
                    "(apt-get install graphviz, brew install graphviz, conda install graphviz), or write "
                    "-o FILE.dot, which needs nothing")
STYLES = {   # the look of each kind of node
    "input": 'shape=invhouse, style=filled, fillcolor="#dbeafe"',
    "output": 'shape=house, style=filled, fillcolor="#dcfce7"',
    "layer": 'shape=box, style="rounded,filled", fillcolor="#f8fafc"',
    "repeat": 'shape=box3d, style=filled, fillcolor="#fef3c7"',
    "op": 'shape=ellipse, fontsize=10, style=filled, fillcolor="#f1f5f9"',
}
PASS_THROUGH = {"Identity"}   # a returned name, a dropout at inference: the value is its input's
HIDDEN = {"Constant"}


@dataclass
class Graph:
    """DOT statements being written: nodes, clusters and edges, with the node producing each value."""
    lines: list[str] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)

    def node(self, node_id: str, kind: str, label: str, indent: str) -> None:
        self.lines.append(f'{indent}{quote(node_id)} [label={quote(label)}, {STYLES[kind]}];')

    def edge(self, source: str | None, target: str) -> None:
        if source is not None and source != target and (source, target) not in self.edges:
            self.edges.append((source, target))


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def layer_label(row: ir.LayerRow, title: str | None = None) -> str:
    shape = show_shape(row.output.shape) if row.output else "?"
    return f"{title or f'{row.path} ({row.layer})'}\n{shape}\n{row.params:,} params"


def to_dot(model: ir.Model, expand: bool = False) -> str:
    """The model's graph in the DOT language."""
    g = Graph()
    producers: dict[str, str] = {}
    for v in model.graph.inputs:
        g.node(f"input:{v.name}", "input", f"{v.name}\n{show_shape(v.type.shape)}", "  ")
        producers[v.name] = f"input:{v.name}"
    draw_block(g, model.graph, producers, "", expand, "  ")
    for v in model.graph.outputs:
        g.node(f"output:{v.name}", "output", f"{v.name}\n{show_shape(v.type.shape)}", "  ")
        g.edge(producers.get(v.name), f"output:{v.name}")
    head = [f"digraph {quote(model.name)} {{", f"  label={quote(f'model {model.name}')}; labelloc=t;",
            '  node [fontname="Helvetica"]; edge [fontname="Helvetica"]; graph [fontname="Helvetica"];']
    edges = [f"  {quote(a)} -> {quote(b)};" for a, b in g.edges]
    return "\n".join([*head, *g.lines, *edges, "}"]) + "\n"


def owner_of(item: ir.Node | ir.Call, rows: dict[str, ir.LayerRow]) -> str | None:
    """The layer instance an item belongs to (`dense/MatMul` to dense, the call `residual@2` to residual);
    None for an operator between layers."""
    if isinstance(item, ir.Node) and "/" not in item.name:
        return None
    owner = item.name.split("/", 1)[0].split("@", 1)[0]
    return owner if owner in rows else None


def box_label(owner: str, rows: dict[str, ir.LayerRow], group: ir.RepeatGroup | None) -> str:
    if group is None:
        return layer_label(rows[owner])
    members = [rows[p] for p in group.paths]
    names = members[0].path if len(members) == 1 else f"{members[0].path} … {members[-1].path}"
    title = f"repeat {group.count}{' shared' if group.shared else ''} × {members[-1].layer}\n{names}"
    return layer_label(ir.LayerRow(names, members[-1].layer, members[-1].output, sum(m.params for m in members)),
                       title)


def visible(block: ir.Block) -> bool:
    return any(isinstance(i, ir.Call) or i.op not in HIDDEN | PASS_THROUGH for i in block.items)


def draw_block(g: Graph, block: ir.Block, producers: dict[str, str], prefix: str, expand: bool,
               indent: str) -> None:
    """The boxes of one block, and the edges into them; `producers` (value -> node) is filled as it goes."""
    rows = {r.path: r for r in block.layers}
    group_of = {p: grp for grp in block.repeats if grp.paths for p in grp.paths}
    opened: dict[str, dict[str, str | None]] = {}   # an expanded box: its block's outputs -> inner producers
    drawn: set[str] = set()
    owners = [owner_of(item, rows) for item in block.items]
    # a layer with no node of its own (dropout at inference) passes its input on: drawn when that is made
    itemless: dict[str, list[str]] = {}
    for r in block.layers:
        if r.path not in owners:
            itemless.setdefault(r.value, []).append(r.path)

    def place(owner: str) -> str:
        group = group_of.get(owner)
        box = prefix + (f"repeat:{group.paths[0]}" if group else f"layer:{owner}")
        if box not in drawn:
            drawn.add(box)
            g.node(box, "repeat" if group else "layer", box_label(owner, rows, group), indent)
        return box

    def made(values: list[str]) -> None:
        for value in values:
            for owner in itemless.pop(value, []):
                box = place(owner)
                g.edge(producers.get(value), box)
                producers[value] = box

    made([v.name for v in block.inputs])
    for item, owner in zip(block.items, owners):
        if owner is None:
            draw_operator(g, item, producers, prefix, indent)  # type: ignore[arg-type]
        elif expand and isinstance(item, ir.Call) and visible(item.block):
            open_layer(g, item, owner, rows, group_of.get(owner), producers, opened, prefix, expand, indent)
        else:
            box = place(owner)
            for value in item.inputs:
                g.edge(producers.get(value), box)
            for value in item.outputs:
                producers[value] = box
        made(item.outputs)


def open_layer(g: Graph, call: ir.Call, owner: str, rows: dict[str, ir.LayerRow], group: ir.RepeatGroup | None,
               producers: dict[str, str], opened: dict[str, dict[str, str | None]], prefix: str, expand: bool,
               indent: str) -> None:
    """A user layer drawn as a cluster; a later instance of the same repeat stage reuses its cluster."""
    key = group.paths[0] if group else owner
    box = prefix + (f"repeat:{key}" if group else f"layer:{key}")
    if key not in opened:
        opened[key] = draw_cluster(g, call, box, box_label(owner, rows, group), producers, expand, indent)
        return
    for out, inner in zip(call.outputs, call.block.outputs):
        producers[out] = opened[key].get(inner.name)  # type: ignore[assignment]


def draw_operator(g: Graph, node: ir.Node, producers: dict[str, str], prefix: str, indent: str) -> None:
    if node.op in HIDDEN:
        return
    if node.op in PASS_THROUGH:
        producers[node.outputs[0]] = producers.get(node.inputs[0])  # type: ignore[assignment]
        return
    box = f"{prefix}op:{node.name}"
    g.node(box, "op", node.op, indent)
    for value in node.inputs:
        g.edge(producers.get(value), box)
    for value in node.outputs:
        producers[value] = box


def draw_cluster(g: Graph, call: ir.Call, box: str, label: str, producers: dict[str, str], expand: bool,
                 indent: str) -> dict[str, str | None]:
    """A user layer opened: a cluster of its block's boxes, its inputs wired to what feeds the call."""
    inner = {formal.name: producers.get(actual) for formal, actual in zip(call.block.inputs, call.inputs)}
    g.lines.append(f"{indent}subgraph {quote('cluster_' + box)} {{")
    g.lines.append(f'{indent}  label={quote(label)}; style="rounded,filled"; fillcolor="#fafafa";')
    draw_block(g, call.block, inner, box + "/", expand, indent + "  ")  # type: ignore[arg-type]
    g.lines.append(f"{indent}}}")
    outputs = {v.name: inner.get(v.name) for v in call.block.outputs}
    for out, formal in zip(call.outputs, call.block.outputs):
        producers[out] = outputs[formal.name]  # type: ignore[assignment]
    return outputs


def render(dot: str, output: str | Path) -> None:
    """Write the picture: .dot as it is, .svg and .png through Graphviz's `dot`, atomically."""
    path = Path(output)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise user_error(f"cannot plot to {path}: the output must end in .svg, .png or .dot")
    with atomic_write(path) as (tmp,):
        if fmt == "dot":
            tmp.write_text(dot, encoding="utf-8")
            return
        program = shutil.which("dot")
        if program is None:
            raise user_error(INSTALL_GRAPHVIZ)
        done = subprocess.run([program, f"-T{fmt}", "-o", str(tmp)], input=dot.encode(), capture_output=True)
        if done.returncode != 0:
            raise user_error(f"Graphviz's dot failed on {path}: {done.stderr.decode(errors='replace').strip()}")
