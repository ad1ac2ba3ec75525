"""Attention: multi_head_attention with Keras' MultiHeadAttention weights and names, and the scaled dot-product
attention it shares with the built-in function dot_product_attention (functions.FUNCTIONS points here).

Both lower to ONNX's Attention operator where the target opset has it (23 and up; onnxruntime's CPU kernel runs
it about 4x faster than the unfused graph), else to MatMul/Softmax; the attention scores, when asked for, come
from the MatMul/Softmax form, as in Keras."""
from __future__ import annotations

import math
from typing import Any

from .builder import BlockBuilder
from .ir import Value
from .layers_base import BIAS_INITIALIZER, KERNEL_INITIALIZER, REQUIRED, LayerContext, float_input, int_list, \
    last_dim, layer, positive, rate
from .source import Span, error
from .types import TensorType, dims_agree, show_dim
from .values import describe, is_tensor

ATTENTION_OPSET = 23   # ONNX's Attention operator


def masked_score(dtype: str) -> float:
    """What a masked-out score becomes before the softmax: Keras' Softmax uses -1e9, or -3e4 in float16."""
    return -3e4 if dtype == "float16" else -1e9


# --- scaled dot-product attention over packed heads -----------------------------------------------------
def attend(b: BlockBuilder, loc: Span | None, q: Value, k: Value, v: Value, heads: int, mask: Value | None,
           causal: bool, scale: float, scores: bool) -> tuple[Value, Value | None]:
    """softmax(q k^T * scale, masked) v per head, over packed heads: q [B, T, heads * dk], k [B, S, heads * dk],
    v [B, S, heads * dv] -> [B, T, heads * dv]; `mask` is bool and broadcasts to [B, heads, T, S]. With `scores`,
    also the attention probabilities [B, heads, T, S]."""
    dt, (batch, t), dv = q.type.dtype, q.type.shape[:2], v.type.shape[2]
    out = TensorType(dt, (batch, t, dv))
    if causal and mask is not None:  # one mask: a row that both hide is uniform over all keys, as in Keras
        below = _causal(b, q, k, loc)
        mask = b.node("And", [mask, below],
                      TensorType("bool", _broadcast(mask.type.shape, (1, 1) + below.type.shape)), loc)
        causal = False
    if not scores and (b.opset is None or b.opset >= ATTENTION_OPSET):
        ins = [q, k, v]
        if mask is not None:  # additive, so that a row with every key masked is uniform, as in Keras
            zero, low = b.const(0.0, dt), b.const(masked_score(dt), dt)
            ins.append(_full_length(b, b.node("Where", [mask, zero, low], TensorType(dt, mask.type.shape), loc),
                                    q, k, loc))
        y = b.node("Attention", ins, out, loc, q_num_heads=heads, kv_num_heads=heads, scale=scale,
                   is_causal=int(causal))
        return y, None
    qh = _heads(b, q, heads, [0, 2, 1, 3], loc)
    qh = b.node("Mul", [qh, b.const(scale, dt)], qh.type, loc)  # Keras scales the query first
    kt = _heads(b, k, heads, [0, 2, 3, 1], loc)
    logits = b.node("MatMul", [qh, kt], TensorType(dt, qh.type.shape[:3] + kt.type.shape[3:]), loc)
    if causal:
        mask = _causal(b, q, k, loc)
    if mask is not None:
        logits = b.node("Where", [mask, logits, b.const(masked_score(dt), dt)], logits.type, loc)
    probs = b.node("Softmax", [logits], logits.type, loc, axis=-1)
    if scores and mask is not None:  # Keras' masked Softmax, which returns the scores: masked ones are 0
        probs = b.node("Where", [mask, probs, b.const(0.0, dt)], probs.type, loc)
    vh = _heads(b, v, heads, [0, 2, 1, 3], loc)
    o = b.node("MatMul", [probs, vh], TensorType(dt, probs.type.shape[:3] + vh.type.shape[3:]), loc)
    o = b.node("Transpose", [o], TensorType(dt, (batch, t, heads, vh.type.shape[3])), loc, perm=[0, 2, 1, 3])
    return b.node("Reshape", [o, b.const([0, 0, -1], "int64")], out, loc), probs if scores else None


def _full_length(b: BlockBuilder, bias: Value, q: Value, k: Value, loc: Span | None) -> Value:
    """The mask's last two axes expanded to [T, S]: onnxruntime's Attention broadcasts only the leading two."""
    t, s = q.type.shape[1], k.type.shape[1]
    if bias.type.shape[2:] == (t, s) and t is not None and s is not None:
        return bias
    lengths = [b.node("Shape", [x], TensorType("int64", (1,)), loc, start=1, end=2) for x in (q, k)]
    target = b.node("Concat", [b.const([1, 1], "int64"), *lengths], TensorType("int64", (4,)), loc, axis=0)
    return b.node("Expand", [bias, target], TensorType(bias.type.dtype, bias.type.shape[:2] + (t, s)), loc)


def _heads(b: BlockBuilder, x: Value, heads: int, perm: list[int], loc: Span | None) -> Value:
    """[B, L, heads * d] -> [B, L, heads, d], transposed by perm."""
    d = x.type.shape[2] // heads if isinstance(x.type.shape[2], int) else None
    split = TensorType(x.type.dtype, x.type.shape[:2] + (heads, d))
    y = b.node("Reshape", [x, b.const([0, 0, heads, -1], "int64")], split, loc)
    return b.node("Transpose", [y], TensorType(x.type.dtype, tuple(split.shape[i] for i in perm)), loc, perm=perm)


def _causal(b: BlockBuilder, q: Value, k: Value, loc: Span | None) -> Value:
    """[T, S] bool: query i sees key j when j <= i (aligned at the top left, as Keras' causal mask is)."""
    rows = b.node("Unsqueeze", [_positions(b, q, loc), b.const([1], "int64")],
                  TensorType("int64", (q.type.shape[1], 1)), loc)
    cols = _positions(b, k, loc)
    return b.node("GreaterOrEqual", [rows, cols], TensorType("bool", (q.type.shape[1], k.type.shape[1])), loc)


def _positions(b: BlockBuilder, x: Value, loc: Span | None) -> Value:
    """0, 1, ..., L - 1 for the length L of axis 1 of x (known or not)."""
    length = b.node("Shape", [x], TensorType("int64", (1,)), loc, start=1, end=2)
    n = b.node("Squeeze", [length, b.const([0], "int64")], TensorType("int64", ()), loc)
    return b.node("Range", [b.const(0, "int64"), n, b.const(1, "int64")], TensorType("int64", (x.type.shape[1],)),
                  loc)


def _broadcast(a: tuple, c: tuple) -> tuple:
    return tuple(y if x == 1 else x for x, y in zip(a, c))


def attention_mask(b: BlockBuilder, mask: Any, want: tuple, what: str, loc: Span | None,
                   per_query: bool = False) -> Value:
    """A mask as a bool tensor that broadcasts to `want` = [B, heads, T, S]: a numeric mask attends where nonzero
    (Keras casts it). A shorter mask gains leading axes (numpy); with `per_query` (the layer's [B, T, S]) the
    heads axis goes in before T instead, as Keras' MultiHeadAttention does."""
    if not is_tensor(mask):
        raise error(loc, f"{what} must be a tensor, got {describe(mask)}")
    shape, rank = mask.type.shape, mask.type.rank
    insert = [1] if per_query and rank == 3 else list(range(4 - rank))
    full = list(shape)
    for axis in insert:
        full.insert(axis, 1)
    ok = (2 if per_query else 1) <= rank <= 4 and all(d == 1 or dims_agree(d, w) for d, w in zip(full, want))
    if not ok:
        shown = [show_dim(d) for d in (want[:1] + want[2:] if per_query else want)]
        names = "[batch, T, S]" if per_query else "[batch, heads, T, S]"
        raise error(loc, f"{what} must broadcast to {names} = [{', '.join(shown)}] (each axis that size or 1), "
                         f"got {mask.type}")
    if mask.type.dtype != "bool":
        mask = b.node("Cast", [mask], TensorType("bool", shape), loc, to="bool")
    if insert:
        mask = b.node("Unsqueeze", [mask, b.const(insert, "int64")], TensorType("bool", tuple(full)), loc)
    return mask


# --- the built-in function dot_product_attention (Keras' keras.ops.dot_product_attention) -----------------
def lower_dot_product_attention(b: BlockBuilder, loc: Span | None, q: Any, k: Any, v: Any, mask: Any = None,
                                scale: Any = None, causal: Any = False) -> Value:
    """q [B, T, N, H], k [B, S, N, H], v [B, S, N, Hv] -> [B, T, N, Hv]; mask broadcasts to [B, N, T, S]."""
    fn = "dot_product_attention()"
    q, k, v = (_operand(x, fn, name, loc) for x, name in ((q, "q"), (k, "k"), (v, "v")))
    (batch, t, n, h), s = q.type.shape, k.type.shape[1]
    if k.type.dtype != q.type.dtype or v.type.dtype != q.type.dtype:
        raise error(loc, f"{fn} needs q, k and v of one dtype, got {q.type}, {k.type}, {v.type}")
    agree = all(dims_agree(x, y) for x, y in [(batch, k.type.shape[0]), (batch, v.type.shape[0]),
                                              (s, v.type.shape[1]), (n, k.type.shape[2]), (n, v.type.shape[2]),
                                              (h, k.type.shape[3])])
    if not agree or not isinstance(n, int):
        raise error(loc, f"{fn} takes q [B, T, N, H], k [B, S, N, H] and v [B, S, N, Hv] with a known N, "
                         f"got {q.type}, {k.type}, {v.type}")
    if scale is not None and (not isinstance(scale, (int, float)) or isinstance(scale, bool)):
        raise error(loc, f"{fn} scale must be a number, got {describe(scale)}")
    if not isinstance(causal, bool):
        raise error(loc, f"{fn} causal must be true or false, got {describe(causal)}")
    if scale is None and not isinstance(h, int):
        raise error(loc, f"{fn} needs a known head size H for its default scale 1 / sqrt(H), got {q.type}")
    if mask is not None:
        mask = attention_mask(b, mask, (batch, n, t, s), f"{fn} mask", loc)
    packed = [_pack(b, x, loc) for x in (q, k, v)]
    y, _ = attend(b, loc, *packed, n, mask, causal, 1 / math.sqrt(h) if scale is None else float(scale), False)
    hv = v.type.shape[3]
    return b.node("Reshape", [y, b.const([0, 0, n, -1], "int64")], TensorType(q.type.dtype, (batch, t, n, hv)), loc)


def _operand(x: Any, fn: str, name: str, loc: Span | None) -> Value:
    if not is_tensor(x) or x.type.rank != 4:
        raise error(loc, f"{fn} {name} must be a [batch, length, heads, size] tensor, got {describe(x)}")
    return float_input(x, fn, loc)


def _pack(b: BlockBuilder, x: Value, loc: Span | None) -> Value:
    """[B, L, N, H] -> [B, L, N * H]."""
    n, h = x.type.shape[2:]
    nh = n * h if isinstance(n, int) and isinstance(h, int) else None
    return b.node("Reshape", [x, b.const([0, 0, -1], "int64")], TensorType(x.type.dtype, x.type.shape[:2] + (nh,)), loc)


# --- multi_head_attention (Keras' MultiHeadAttention) ---------------------------------------------------
def lower_multi_head_attention(ctx: LayerContext, b: BlockBuilder, xs: list[Value], hp: dict,
                               loc: Span | None) -> Value | tuple[Value, Value]:
    # layer(query, value[, key]): Keras' call order; the key defaults to the value
    query, value = (float_input(x, "multi_head_attention", loc) for x in xs[:2])
    key = float_input(xs[2], "multi_head_attention", loc) if len(xs) > 2 else value
    _check_inputs(query, value, key, loc)
    heads, key_dim, value_dim = _sizes(hp, loc)
    out_shape = _output_shape(hp["output_shape"], last_dim(query, "multi_head_attention", loc), loc)
    q = _project(b, "query", query, heads, key_dim, hp, loc)   # weights in Keras' order
    k = _project(b, "key", key, heads, key_dim, hp, loc)
    v = _project(b, "value", value, heads, value_dim, hp, loc)
    mask = hp["attention_mask"]
    if mask is not None:
        want = (query.type.shape[0], heads, query.type.shape[1], value.type.shape[1])
        mask = attention_mask(b, mask, want, "multi_head_attention attention_mask", loc, per_query=True)
    y, scores = attend(b, loc, q, k, v, heads, mask, hp["use_causal_mask"], 1 / math.sqrt(key_dim),
                       hp["return_attention_scores"])
    out = _output(b, y, heads, value_dim, out_shape, hp, loc)
    return out if scores is None else (out, scores)


def _check_inputs(query: Value, value: Value, key: Value, loc: Span | None) -> None:
    """What Keras refuses, and what it runs over axes this layer does not (attention_axes)."""
    if any(x.type.rank != 3 for x in (query, value, key)):
        raise error(loc, "multi_head_attention takes [batch, length, features] inputs (attention over one axis), "
                         f"got {', '.join(str(x.type) for x in (query, value, key))}")
    if value.type.dtype != query.type.dtype or key.type.dtype != query.type.dtype:
        raise error(loc, f"multi_head_attention needs inputs of one dtype, got {query.type}, {value.type}, {key.type}")
    if not dims_agree(value.type.shape[1], key.type.shape[1]):
        raise error(loc, f"multi_head_attention key and value must have the same length, got key {key.type} "
                         f"and value {value.type}")
    if not all(dims_agree(query.type.shape[0], x.type.shape[0]) for x in (value, key)):
        raise error(loc, f"multi_head_attention query and value must have the same batch size, got {query.type} "
                         f"and {value.type}")


def _sizes(hp: dict, loc: Span | None) -> tuple[int, int, int]:
    heads, key_dim = hp["num_heads"], hp["key_dim"]
    value_dim = key_dim if hp["value_dim"] is None else hp["value_dim"]
    for name, n in (("num_heads", heads), ("key_dim", key_dim), ("value_dim", value_dim)):
        positive(n, name, "multi_head_attention", loc)
    rate(hp["dropout"], "dropout", "multi_head_attention", loc)
    return heads, key_dim, value_dim


def _output_shape(given: Any, features: int, loc: Span | None) -> tuple[int, ...]:
    """Keras' output_shape: an int or a list of ints (the axes after [batch, T]); by default the query's features."""
    if given is None:
        return (features,)
    dims = int_list(given, least=1)
    if not dims:
        raise error(loc, f"multi_head_attention output_shape must be a positive int or a list of them, "
                         f"got {given!r}")
    return tuple(dims)


def _project(b: BlockBuilder, name: str, x: Value, heads: int, size: int, hp: dict, loc: Span | None) -> Value:
    """Keras' EinsumDense `abc,cde->abde` as one MatMul: kernel [d, heads, size], bias [heads, size]."""
    d, dt = last_dim(x, "multi_head_attention", loc), x.type.dtype
    out = TensorType(dt, x.type.shape[:2] + (heads * size,))
    with b.scope(name):
        kernel = b.weight("kernel", TensorType(dt, (d, heads, size)), hp["kernel_initializer"], loc)
        y = b.node("MatMul", [x, _flat(b, kernel, [d, heads * size], loc)], out, loc)
        if hp["use_bias"]:
            bias = b.weight("bias", TensorType(dt, (heads, size)), hp["bias_initializer"], loc)
            y = b.node("Add", [y, _flat(b, bias, [heads * size], loc)], out, loc)
    return y


def _output(b: BlockBuilder, y: Value, heads: int, value_dim: int, out_shape: tuple[int, ...], hp: dict,
            loc: Span | None) -> Value:
    """Keras' attention_output EinsumDense: kernel [heads, value_dim, *output_shape], bias [*output_shape]."""
    dt, units = y.type.dtype, math.prod(out_shape)
    flat = TensorType(dt, y.type.shape[:2] + (units,))
    with b.scope("attention_output"):
        kernel = b.weight("kernel", TensorType(dt, (heads, value_dim, *out_shape)), hp["kernel_initializer"], loc)
        out = b.node("MatMul", [y, _flat(b, kernel, [heads * value_dim, units], loc)], flat, loc)
        if hp["use_bias"]:
            bias = b.weight("bias", TensorType(dt, out_shape), hp["bias_initializer"], loc)
            out = b.node("Add", [out, _flat(b, bias, [units], loc)], flat, loc)
    if len(out_shape) == 1:
        return out
    shaped = TensorType(dt, y.type.shape[:2] + out_shape)
    return b.node("Reshape", [out, b.const([0, 0, *out_shape], "int64")], shaped, loc)


def _flat(b: BlockBuilder, w: Value, shape: list[int], loc: Span | None) -> Value:
    """A weight reshaped for a MatMul (folded into a constant by onnxruntime)."""
    if list(w.type.shape) == shape:
        return w
    return b.node("Reshape", [w, b.const(shape, "int64")], TensorType(w.type.dtype, tuple(shape)), loc)


LAYERS = [
    layer("multi_head_attention", lower_multi_head_attention,
          "attention(query, value[, key]) with per-head projections (Keras MultiHeadAttention)",
          ("num_heads", "int", REQUIRED), ("key_dim", "int", REQUIRED), ("value_dim", "int", None),
          ("dropout", "float", 0.0), ("use_bias", "bool", True), ("output_shape", "any", None),
          KERNEL_INITIALIZER, BIAS_INITIALIZER,
          ("attention_mask", "tensor", None), ("use_causal_mask", "bool", False),
          ("return_attention_scores", "bool", False), inputs=(2, 3)),
]
