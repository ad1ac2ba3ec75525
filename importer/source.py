"""Writing an imported model as .model source: one body per graph (the model, each nested model, each folded
block), values flowing through pipelines (`x -> conv2d(...) -> batch_norm -> relu`), a variable where a
value is used more than once or is an output. The instance names modelc will give are worked out as the
compiler gives them (compiler/builder.py `instance_name`), so each weight is filed under its modelc path."""
from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import Any

from ..compiler.functions import FUNCTIONS
from ..compiler.keras_names import KERAS_DEFAULT_NAMES, modelc_weight_name
from ..compiler.layers import BUILTIN_LAYERS
from .fold import Unit, fold, name_prefix
from .graph import Graph, Node, Ref
from .layers import Stage, literal

KEYWORDS = {"import", "layer", "model", "metric", "param", "state", "return", "repeat", "shared", "and", "or",
            "not", "true", "false", "none"}
INDENT = "    "
WIDTH = 110


def identifier(hint: str) -> str:
    name = re.sub(r"\W", "_", hint)
    return name if re.match(r"[A-Za-z_]", name) else f"h_{name}"


class Namespace:
    """The names a file's definitions and variables may not take: keywords, built-ins, and those taken."""

    RESERVED = KEYWORDS | set(BUILTIN_LAYERS) | set(FUNCTIONS) | set(keyword.kwlist)

    def __init__(self, taken: set[str] | None = None):
        self.taken = set(taken or ()) | self.RESERVED

    def new(self, hint: str) -> str:
        base = identifier(hint)
        if base in self.RESERVED:  # Keras' `dense` as `dense_`: `dense_1` is the name Keras gives the next one
            base += "_"
        name, k = base, 0
        while name in self.taken:
            k += 1
            name = f"{base}_{k}"
        self.taken.add(name)
        return name


class Instances:
    """One scope's instance names as modelc gives them: `dense`, `dense_1`, ...; an explicit name kept."""

    def __init__(self) -> None:
        self.taken: set[str] = set()
        self.next: dict[str, int] = {}

    def _peek(self, base: str) -> tuple[str, int]:
        n = self.next.get(base, 0)
        name = f"{base}_{n}" if n else base
        while name in self.taken:
            n += 1
            name = f"{base}_{n}"
        return name, n

    def default(self, base: str) -> str:
        name, n = self._peek(base)
        self.taken.add(name)
        self.next[base] = n + 1
        return name

    def take(self, base: str, desired: str | None) -> tuple[str, bool]:
        """(the instance's name, whether the source must say name=)."""
        if desired is None or desired in self.taken or self._peek(base)[0] == desired:
            return self.default(base), False
        self.taken.add(desired)
        return desired, True


def with_name(text: str, name: str) -> str:
    return f'{text[:-1]}, name="{name}")' if text.endswith(")") else f'{text}(name="{name}")'


def keras_instance_name(name: str) -> str:
    """A Keras layer name as modelc would call the instance (`batch_normalization_2` -> `batch_norm_2`)."""
    base = re.fullmatch(r"(.*?)(_\d+)?", name).group(1)  # type: ignore[union-attr]
    return modelc_weight_name(name) if base in KERAS_DEFAULT_NAMES else name


@dataclass
class Slot:
    """A weighted instance written in a body: its path there and the node whose Keras weights it takes."""

    path: str
    node: Node


@dataclass
class Body:
    lines: list[str] = field(default_factory=list)
    slots: list[Slot] = field(default_factory=list)


def render(value: Any, text: dict[Ref, str]) -> str:
    """An argument of a keras.ops node: a tensor's text, a slice, a list of them, a constant."""
    if isinstance(value, Ref):
        return text[value]
    if isinstance(value, slice):
        parts = ["" if v is None else str(v) for v in (value.start, value.stop, value.step)]
        return ":".join(parts[:2] if value.step is None else parts)
    if isinstance(value, list):
        return "[" + ", ".join(render(v, text) for v in value) + "]"
    return literal(value)


class BodyWriter:
    """Writes one body: its statements, and the weighted instances in it."""

    def __init__(self, owner: Any, inputs: dict[Ref, str], names: Namespace, prefix: str | None = None):
        self.owner, self.text, self.names = owner, dict(inputs), names
        self.instances = Instances()
        self.prefix = prefix      # in a folded block: the Keras name prefix its layers share (None: keep names)
        self.body = Body()
        self.pending: dict[Ref, str] = {}

    def hint(self, node: Node) -> str:
        name = node.layer.name
        if self.prefix is not None:
            return name[len(self.prefix):] if self.prefix and name.startswith(self.prefix) else "h"
        return name if node.layer.calls == 1 else f"{name}_{self.owner.call_index(node)}"

    def desired(self, node: Node) -> str | None:
        if self.prefix is None:
            shared = self.owner.call_index(node)
            base = keras_instance_name(node.layer.name)
            return base if not shared else f"{base}@{shared}"
        return node.layer.name[len(self.prefix):] if self.prefix and node.layer.name.startswith(self.prefix) else None

    def source(self, ref: Ref) -> str:
        return self.pending.pop(ref) if ref in self.pending else self.text[ref]

    def instance(self, stage: Stage, node: Node, base: str | None = None) -> str:
        """A layer stage with name= where needed; its weights recorded under its path."""
        weighted = any(w is not None for w in stage.weights) or bool(stage.body and stage.body.slots)
        name, explicit = self.instances.take(base or stage.layer, self.desired(node) if weighted else None)
        if weighted:
            self.body.slots.append(Slot(name, node))
        return with_name(stage.text, name) if explicit else stage.text

    def write(self, units: list[Unit], uses: dict[Ref, int], outputs: list[Ref]) -> None:
        for k, unit in enumerate(units):
            nxt = units[k + 1] if k + 1 < len(units) else None
            expr, out, tuple_ = self.unit(unit)
            keep = (not tuple_ and uses.get(out, 0) == 1 and out not in outputs and nxt is not None
                    and self.pipes(nxt) and self.single_input(nxt) == out)
            if keep:
                self.pending[out] = expr
            else:
                var = self.names.new(self.hint(unit.segments[-1][-1] if unit.segments else unit.nodes[0]))
                self.statement(f"{var} = {expr}")
                for i in range(max(unit.nodes[-1].outputs, 1) if tuple_ else 1):
                    self.text[Ref(out.node, i)] = f"{var}[{i}]" if tuple_ else var

    def statement(self, line: str) -> None:
        if len(line) + len(INDENT) > WIDTH and " -> " in line:
            head, *stages = line.split(" -> ")
            pad = INDENT + " " * (line.index("=") + 2 if "=" in head else 4)
            line = head + "".join(f"\n{pad}-> {s}" for s in stages)
        elif len(line) + len(INDENT) > WIDTH and line.endswith(")"):
            line = wrap_arguments(line)
        self.body.lines.append(INDENT + line)

    def pipes(self, unit: Unit) -> bool:
        if unit.segments:
            return True
        stage = self.owner.stage(unit.nodes[0])
        return stage.kind in ("layer", "function") and len(unit.nodes[0].inputs) == 1 and \
            not unit.nodes[0].tensor_kwargs and not self.owner.is_tuple(unit.nodes[0])

    def single_input(self, unit: Unit) -> Ref | None:
        return unit.input if unit.segments else (unit.nodes[0].inputs or [None])[0]

    def unit(self, unit: Unit) -> tuple[str, Ref, bool]:
        """The unit's expression, the tensor it makes, whether that is a tuple."""
        if unit.segments:
            assert unit.input is not None and unit.output is not None
            return f"{self.source(unit.input)} -> {self.owner.run(self, unit)}", unit.output, False
        node = unit.nodes[0]
        out = Ref(self.owner.index_of(node))
        stage = self.owner.stage(node)
        tuple_ = self.owner.is_tuple(node)
        if stage.kind == "expr":
            assert stage.expr is not None
            ops = node.layer.module.startswith("keras.src.ops")
            args = [render(a, self.text) for a in node.args] if ops else [self.source(r) for r in node.inputs]
            return stage.expr(args), out, False
        text = self.instance(stage, node) if stage.kind == "layer" else stage.text
        post = f" -> {stage.post}" if stage.post else ""
        if self.pipes(unit):
            return f"{self.source(node.inputs[0])} -> {text}{post}", out, tuple_
        ins = [self.source(r) for r in node.inputs] + [f"{k}={self.text[r]}" for k, r in node.tensor_kwargs.items()]
        if stage.kind == "function":
            name, _, rest = text.partition("(")
            return f"{name}({', '.join(ins)}{', ' + rest[:-1] if rest else ''})", out, tuple_
        return f"{text}({', '.join(ins)}){post}", out, tuple_


def wrap_arguments(line: str) -> str:
    """A long call's arguments one per line, under its last parenthesis: `f(a,\n  b)`."""
    depth, start = 0, None
    for i in range(len(line) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(line[i], 0)
        if depth == 0:
            start = i
            break
    args, depth, begin = [], 0, start + 1 if start is not None else 0
    for i in range(begin, len(line) - 1):
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(line[i], 0)
        if line[i] == "," and depth == 0:
            args.append(line[begin:i].strip())
            begin = i + 1
    args.append(line[begin:-1].strip())
    if start is None or len(args) < 2:
        return line
    return line[:start + 1] + (",\n" + INDENT + " " * (start + 1)).join(args) + ")"


def block_prefix(segments: list[list[Node]]) -> str | None:
    """The Keras name prefix every segment's layers share (`conv2_block2_`), when what follows it is the same
    in each segment (so the block's layers keep Keras' names); None otherwise."""
    prefixes = [name_prefix([n.layer.name for n in seg]) for seg in segments]
    if not all(prefixes):
        return None
    rests = {tuple(n.layer.name[len(p):] for n in seg) for p, seg in zip(prefixes, segments)}
    return prefixes[0] if len(rests) == 1 and len(set(rests.pop())) == len(segments[0]) else None


def graph_units(owner: Any, g: Graph) -> list[Unit]:
    return fold(g, owner.stage_key, owner.foldable, owner.stageable)
