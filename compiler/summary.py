"""`modelc summary`: the table Keras' model.summary() prints."""
from __future__ import annotations

import io
import math
from typing import Any

from . import ir
from .types import DTYPES, show_shape


def render_summary(model: ir.Model) -> str:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f'Model: "{model.name}"')
    table.add_column("Layer (type)")
    table.add_column("Output Shape")
    table.add_column("Param #", justify="right")
    for v in model.graph.inputs:
        table.add_row(escape(f"{v.name} (Input)"), escape(show_shape(v.type.shape)), "0")
    for row in model.layers:
        shape = show_shape(row.output.shape) if row.output else "?"
        table.add_row(escape(f"{row.path} ({row.layer})"), escape(shape), f"{row.params:,}")
    total = sum(_count(w) for w in model.graph.weights)
    size = sum(_count(w) * DTYPES[w.type.dtype].itemsize for w in model.graph.weights)
    return render_text(table, f"Total params: {total:,} ({human_size(size)})", f"Weights: {len(model.graph.weights)}")


def render_text(*items: Any) -> str:
    """Rich tables and lines as plain text (no colour, 100 columns), as every summary prints them."""
    from rich.console import Console
    buf = io.StringIO()
    console = Console(file=buf, width=100, force_terminal=False, color_system=None)
    for item in items:
        console.print(item)
    return buf.getvalue().rstrip()


def size_of(shape: Any) -> int:
    """Elements of a known shape: the parameter count of a weight, in .model and .onnx summaries alike."""
    return math.prod(int(d) for d in shape)


def _count(w: ir.WeightSlot) -> int:
    return size_of(w.type.shape)


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.2f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"
