"""BlockBuilder: appends typed nodes to one ir.Block, naming values, nodes and weights."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from . import ir
from .limits import WEIGHTS_SIZE, format_size
from .source import Span, error
from .types import DTYPES, TensorType, float16_misfit


class BlockBuilder:
    def __init__(self, label: str, inputs: list[ir.Value], loc: Span | None = None, opset: int | None = None):
        self.block = ir.Block(label, inputs, loc=loc)
        self.opset = opset                     # the target opset (None: the default one), for ops that need a newer one
        self.prefix: list[str] = []            # enclosing built-in layer instances
        self._value_names: set[str] = {v.name for v in inputs}
        self._node_names: set[str] = set()
        self._instances: dict[tuple[str, ...], set[str]] = {}
        self.row_names: set[str] = set()       # the instances block.layers has a row of
        self._consts: dict[tuple[tuple[str, ...], ir.ConstTensor], ir.Value] = {}
        self._unplaced: dict[str, ir.Node] = {}  # constants whose source location their first user gives
        self._weights: dict[str, ir.WeightSlot] = {}
        self._by_instance: dict[str, list[ir.WeightSlot]] = {}
        self._next: dict[tuple[int, str], int] = {}
        # compile --dtype float16: weights (paths) and constants float16 cannot hold stay float32 (their
        # values keep the float16 type the checks see), the ops reading them run in float32 between Casts;
        # `misfits` (shared by a model's builders) names them
        self.keep32: frozenset[str] = frozenset()
        self.misfits: list[tuple[str, str]] = []
        self._wide: set[str] = set()
        self.max_weights: int | None = None     # the model's builder: the weights' budget in bytes (limits.py)
        self.weight_bytes = 0

    # --- names -------------------------------------------------------------
    def _unique(self, base: str, taken: set[str]) -> str:
        """base, base_1, base_2, ...: the next free one, resuming the count (repeat N stays linear)."""
        key = (id(taken), base)
        name, n = base, self._next.get(key, 0)
        if n:
            name = f"{base}_{n}"
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        self._next[key] = n + 1
        return name

    def fresh(self, hint: str) -> str:
        return self._unique("/" + "/".join([*self.prefix, hint]), self._value_names)

    def instance_name(self, base: str, explicit: str | None, loc: Span | None) -> str:
        """Keras naming: `dense`, `dense_1`, ... per enclosing scope; an explicit name= is kept."""
        taken = self._instances.setdefault(tuple(self.prefix), set())
        if explicit is not None:
            if explicit in taken:
                raise error(loc, f"layer name '{explicit}' is already used in this scope")
            taken.add(explicit)
            return explicit
        return self._unique(base, taken)

    def path(self, name: str) -> str:
        return ".".join([*self.prefix, name])

    @contextmanager
    def scope(self, instance: str) -> Iterator[None]:
        self.prefix.append(instance)
        try:
            yield
        finally:
            self.prefix.pop()

    # --- nodes -------------------------------------------------------------
    def node(self, op: str, inputs: Sequence[ir.Value | str], out: TensorType, loc: Span | None = None,
             **attrs: Any) -> ir.Value:
        return self.node_multi(op, inputs, [out], loc, **attrs)[0]

    def node_multi(self, op: str, inputs: Sequence[ir.Value | str], outs: list[TensorType],
                   loc: Span | None = None, **attrs: Any) -> list[ir.Value]:
        names = [i if isinstance(i, str) else i.name for i in inputs]
        if self._wide.intersection(names):
            return self._float32_island(op, inputs, outs, loc, attrs)
        return self._append(op, names, outs, loc, attrs)

    def _append(self, op: str, names: list[str], outs: list[TensorType], loc: Span | None,
                attrs: dict[str, Any]) -> list[ir.Value]:
        values = [ir.Value(self.fresh(op), t) for t in outs]
        self._place(names, loc)
        node_name = self._unique("/".join([*self.prefix, op]), self._node_names)
        self.block.items.append(ir.Node(op, names, [v.name for v in values], attrs, node_name, loc))
        return values

    def _float32_island(self, op: str, inputs: Sequence[ir.Value | str], outs: list[TensorType],
                        loc: Span | None, attrs: dict[str, Any]) -> list[ir.Value]:
        """An op reading a value kept in float32 runs in float32: its float16 inputs cast up, its float16
        outputs cast back (onnxconverter-common's float16 converter does so for the ops of its block list)."""
        up = [self.node("Cast", [x], TensorType("float32", x.type.shape), loc, to="float32")
              if isinstance(x, ir.Value) and x.type.dtype == "float16" and x.name not in self._wide else x
              for x in inputs]
        wide = [TensorType("float32", t.shape) if t.dtype == "float16" else t for t in outs]
        values = self._append(op, [x.name if isinstance(x, ir.Value) else x for x in up], wide, loc, attrs)
        return [self.node("Cast", [v], t, loc, to="float16") if t.dtype == "float16" else v
                for v, t in zip(values, outs)]

    def const(self, values: Sequence[Any] | Any, dtype: str, shape: tuple[int, ...] | None = None,
              name: str = "Constant") -> ir.Value:
        """A Constant node; `name` (a hyperparameter's) names it where float16 cannot hold it."""
        flat = tuple(values) if isinstance(values, (list, tuple)) else (values,)
        shape = shape if shape is not None else ((len(flat),) if isinstance(values, (list, tuple)) else ())
        misfit = float16_misfit(flat) if dtype == "float16" else None
        tensor = ir.ConstTensor("float32" if misfit else dtype, shape, flat)
        key = (tuple(self.prefix), tensor)  # shared within a layer instance, and named after it: dense/Constant
        if key not in self._consts:
            self._consts[key] = self.node("Constant", [], TensorType(dtype, shape), value=tensor)
            self._unplaced[self._consts[key].name] = self.block.items[-1]  # type: ignore[assignment]
            if misfit:
                self._wide.add(self._consts[key].name)
                self.misfits.append((f"constant '{self.path(name)}'", misfit))
        return self._consts[key]

    def _place(self, inputs: list[str], loc: Span | None) -> None:
        """A constant's source location is that of the first node or call that uses it."""
        for name in inputs if loc is not None else ():
            if name in self._unplaced:
                self._unplaced.pop(name).loc = loc

    def call(self, block: ir.Block, instance: str, inputs: list[ir.Value], weights: list[str],
             loc: Span | None) -> list[ir.Value]:
        """Apply a block; a shared instance applied again is named `residual@1`, `residual@2`, ..."""
        name, k = instance, 0
        while name in self._node_names:
            k += 1
            name = f"{instance}@{k}"
        self._node_names.add(name)
        self._place([i.name for i in inputs], loc)
        outs = [ir.Value(self.fresh(name + "/" + v.name.rsplit("/", 1)[-1]), v.type) for v in block.outputs]
        self.block.items.append(ir.Call(block, name, [i.name for i in inputs], weights, [o.name for o in outs], loc))
        return outs

    # --- weights -----------------------------------------------------------
    def weight(self, name: str, type: TensorType, init: ir.InitSpec, loc: Span | None) -> ir.Value:
        """Declare (or, for a shared instance, re-use) the weight at the current path."""
        path = self.path(name)
        kept = type.dtype == "float16" and path in self.keep32
        held = TensorType("float32", type.shape) if kept else type
        if kept:
            self._wide.add(path)
        slot = self._weights.get(path)
        if slot is None:
            slot = ir.WeightSlot(path, held, init, loc)
            self._count_bytes(slot)
            self._weights[path] = slot
            self.block.weights.append(slot)
            self._by_instance.setdefault(path.split(".", 1)[0], []).append(slot)
        elif slot.type != held:
            raise error(loc, f"shared weight '{path}' is {slot.type}, but this application needs {type}")
        return ir.Value(path, type)

    def _count_bytes(self, slot: ir.WeightSlot) -> None:
        """Refuse the weight that takes the model past its budget, before any is built (check says what
        compile could not hold)."""
        if self.max_weights is None:
            return
        size = DTYPES[slot.type.dtype].itemsize
        for d in slot.type.shape:
            size *= d if isinstance(d, int) else 0
        self.weight_bytes += size
        if self.weight_bytes > self.max_weights:
            raise error(slot.loc, f"the model's weights reach {format_size(self.weight_bytes)} with '{slot.name}' "
                                  f"({slot.type}, {format_size(size)}), over "
                                  f"{WEIGHTS_SIZE.describe(self.max_weights, 'the weights of a model')}")

    def weights_under(self, instance: str) -> list[ir.WeightSlot]:
        """The weights of one top-level instance (kept per instance: a scan would make summaries quadratic)."""
        return self._by_instance.get(instance, [])

    def finish(self, outputs: list[ir.Value]) -> ir.Block:
        """Every output must be a distinct value made by a node of this block."""
        made = {o for item in self.block.items for o in item.outputs}
        final = []
        for v in outputs:
            if v.name not in made or v in final or v.name in self._wide:
                v = self.node("Identity", [v], v.type)
            final.append(v)
        self.block.outputs = final
        return self.block
