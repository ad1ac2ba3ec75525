"""Folding: runs of structurally identical blocks become one user `layer` applied with `repeat N`.

A graph's nodes are in topological order. After node i, the *live* tensors are those made so far (model
inputs included) that a later node or the model's outputs still use. Where node i's output is the only live
tensor, the graph can be cut: everything after depends on it alone. The nodes between two cuts form a
*segment* with one input and one output (a residual block, a DenseNet conv block; in a plain chain every
node is its own segment); a one-node segment whose Keras name continues the name prefix of the segment
before it joins it (ResNet's `conv2_block1_out` relu after the block's add). A segment's signature is its
layers' imported text (class, hyperparameters, weight names) and its inner wiring, names left out.
Consecutive segments with equal signatures form a run: a run of one-node segments is written `repeat N
stage`; a run of larger segments, or one segment that branches and whose layers share a Keras name prefix
(`conv2_block1_`), becomes a user layer, applied with `repeat N` when N > 1. Segments that apply a shared
layer stay inline, except a shared layer applied to its own output N times: `repeat N shared stage`."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Hashable

from .graph import Graph, Node, Ref


@dataclass
class Unit:
    """One step of a body: a node, or a run of segments (lists of nodes) with one input and one output."""

    nodes: list[Node]                      # the node, or the first segment
    segments: list[list[Node]] | None = None
    input: Ref | None = None
    output: Ref | None = None
    shared: bool = False

    @property
    def count(self) -> int:
        return len(self.segments or [])


def cuts(g: Graph) -> list[int]:
    """The node indices after which the graph can be cut (their output is the only live tensor)."""
    last: dict[Ref, int] = {}
    for i, n in enumerate(g.nodes):
        for r in [*n.inputs, *n.tensor_kwargs.values()]:
            last[r] = i
    for r in g.outputs:
        last[r] = len(g.nodes)
    live: set[Ref] = {Ref(-k - 1) for k in range(len(g.inputs)) if Ref(-k - 1) in last}
    found = []
    for i, n in enumerate(g.nodes):
        live = {r for r in live if last[r] > i}
        live |= {Ref(i, k) for k in range(n.outputs) if last.get(Ref(i, k), -1) > i}
        if live == {Ref(i)} and n.outputs == 1:
            found.append(i)
    return found


def segments(g: Graph) -> list[tuple[Ref | None, list[int]]]:
    """The segments between cuts, each with its one input (None: several, or the model's inputs are many)."""
    bounds = cuts(g)
    out, start, prev = [], 0, (Ref(-1) if len(g.inputs) == 1 else None)
    for end in bounds + ([len(g.nodes) - 1] if not bounds or bounds[-1] != len(g.nodes) - 1 else []):
        idx = list(range(start, end + 1))
        if idx:
            external = {r for i in idx for r in [*g.nodes[i].inputs, *g.nodes[i].tensor_kwargs.values()]
                        if not start <= r.node <= end}
            out.append((prev if prev is not None and external <= {prev} else None, idx))
        start, prev = end + 1, Ref(end)
    return _attach_tails(g, out)


def name_prefix(names: list[str]) -> str:
    """The Keras name prefix several layers share, up to an underscore (`conv2_block1_`), or ""."""
    prefix = os.path.commonprefix(names) if len(names) > 1 else ""
    return prefix[:prefix.rfind("_") + 1]


def _attach_tails(g: Graph, segs: list[tuple[Ref | None, list[int]]]) -> list[tuple[Ref | None, list[int]]]:
    """A one-node segment whose Keras name continues the name prefix of the block before it joins that block
    (ResNet's `conv2_block1_out` after `conv2_block1_add`): a block's last step often follows its merge."""
    merged: list[tuple[Ref | None, list[int]]] = []
    for inp, idx in segs:
        if merged and len(idx) == 1 and len(merged[-1][1]) > 1:
            prefix = name_prefix([g.nodes[i].layer.name for i in merged[-1][1]])
            if prefix and g.nodes[idx[0]].layer.name.startswith(prefix):
                merged[-1][1].append(idx[0])
                continue
        merged.append((inp, list(idx)))
    return merged


def escapes(g: Graph, idx: list[int]) -> bool:
    """Whether a tensor made inside the segment, other than its last node's, is needed outside it (a model
    output, or another node's input): such a segment cannot become one layer with one output."""
    inside, last = set(idx), idx[-1]
    needed = [*g.outputs, *(r for i, n in enumerate(g.nodes) if i not in inside
                            for r in [*n.inputs, *n.tensor_kwargs.values()])]
    return any(r.node in inside and r.node != last for r in needed)


def feeds_only(g: Graph, ref: Ref, idx: list[int]) -> bool:
    """Whether a segment's output goes only into the segment `idx` (inside a run it has no name of its own)."""
    inside = set(idx)
    return ref not in g.outputs and all(i in inside for i, n in enumerate(g.nodes)
                                        for r in [*n.inputs, *n.tensor_kwargs.values()] if r == ref)


def is_chain(g: Graph, idx: list[int]) -> bool:
    """Each node takes only the one before it: nothing a user layer would make clearer."""
    return all(not g.nodes[i].tensor_kwargs and (k == 0 or g.nodes[i].inputs == [Ref(idx[k - 1])])
               for k, i in enumerate(idx))


def signature(g: Graph, idx: list[int], stage_key: Callable[[Node], Hashable]) -> Hashable:
    """A segment's structure: each node's imported text and where its inputs come from (-1: the segment's
    input), without the layers' names."""
    first = idx[0]

    def rel(r: Ref) -> tuple[int, int]:
        return (r.node - first if r.node >= first else -1, r.index)
    return tuple((stage_key(g.nodes[i]), tuple(rel(r) for r in g.nodes[i].inputs),
                  tuple((k, rel(r)) for k, r in g.nodes[i].tensor_kwargs.items())) for i in idx)


def fold(g: Graph, stage_key: Callable[[Node], Hashable], foldable: Callable[[Node], bool],
         stageable: Callable[[Node], bool]) -> list[Unit]:
    """The graph's nodes as units: single nodes, and runs of identical segments (see the module's doc).
    `foldable`: a node may go into a user layer; `stageable`: a node may be a `repeat N` stage."""
    segs = segments(g)
    units: list[Unit] = []
    k = 0
    while k < len(segs):
        inp, idx = segs[k]
        first = g.nodes[idx[0]]
        j = k + 1
        if inp is not None and len(idx) == 1 and first.layer.calls > 1 and stageable(first):
            while j < len(segs) and segs[j][0] is not None and len(segs[j][1]) == 1 and \
                    g.nodes[segs[j][1][0]].layer is first.layer:
                j += 1
            if j - k == first.layer.calls:
                units.append(Unit([first], [[first]] * (j - k), inp, Ref(segs[j - 1][1][-1]), shared=True))
                k = j
                continue
        if inp is None or escapes(g, idx) or not all(foldable(g.nodes[i]) for i in idx) or \
                (len(idx) == 1 and not stageable(first)):
            units += [Unit([g.nodes[i]]) for s in segs[k:j] for i in s[1]]
            k = j
            continue
        sig = signature(g, idx, stage_key)
        while j < len(segs) and segs[j][0] is not None and len(segs[j][1]) == len(idx) and not escapes(g, segs[j][1]) \
                and feeds_only(g, Ref(segs[j - 1][1][-1]), segs[j][1]) \
                and all(foldable(g.nodes[i]) for i in segs[j][1]) and signature(g, segs[j][1], stage_key) == sig:
            j += 1
        if j - k == 1 and (is_chain(g, idx) or not name_prefix([g.nodes[i].layer.name for i in idx])):
            units += [Unit([g.nodes[i]]) for i in idx]
        else:
            run = [[g.nodes[i] for i in s[1]] for s in segs[k:j]]
            units.append(Unit(run[0], run, inp, Ref(segs[j - 1][1][-1])))
        k = j
    return units
