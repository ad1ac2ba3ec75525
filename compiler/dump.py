"""`modelc compile --dump ir`: the lowered blocks as text."""
from __future__ import annotations

from . import ir


def dump_ir(model: ir.Model) -> str:
    lines: list[str] = []
    seen: set[int] = set()

    def block(b: ir.Block) -> None:
        if id(b) in seen:
            return
        seen.add(id(b))
        head = ", ".join(f"{v.name}: {v.type}" for v in b.inputs)
        weights = ", ".join(f"{w.name}: {w.type}" for w in b.weights)
        lines.append(f"block {b.label}({head}) weights({weights}) -> "
                     + ", ".join(f"{v.name}: {v.type}" for v in b.outputs))
        for item in b.items:
            if isinstance(item, ir.Node):
                lines.append(f"  {', '.join(item.outputs)} = {item.op}({', '.join(item.inputs)})")
            else:
                lines.append(f"  {', '.join(item.outputs)} = call {item.block.label} as {item.name}"
                             f"({', '.join(item.inputs + item.weights)})")
        for item in b.items:
            if isinstance(item, ir.Call):
                block(item.block)

    block(model.graph)
    return "\n".join(lines)
