"""multi_head_attention and dot_product_attention against Keras 3 itself (weights through .safetensors, as a user
binds them), at the default opset (ONNX's Attention operator) and at opset 17 (MatMul/Softmax); then the misuse of
each as golden diagnostics."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from safetensors.numpy import save_file

import modelc

from helpers import ROOT
from keras_oracle import keras
from test_layers_norm import compile_run, keras_weights, rendered

# Outputs reach |10| with random weights; float32 sums of terms that size round at a few 1e-6.
RTOL, ATOL = 1e-5, 1e-5
B, T, S, DQ, DV, DK = 2, 5, 4, 8, 6, 7


def masks(kind: str, rng: np.random.Generator) -> tuple[np.ndarray | None, str, bool]:
    """(the mask fed, its .model type, use_causal_mask) for a mask kind."""
    if kind in ("padding", "padding+causal"):
        lengths = np.array([S, 2])
        return (np.arange(S)[None, None, :] < lengths[:, None, None]), f"bool[batch, 1, {S}]", kind != "padding"
    if kind == "full":
        m = rng.random((B, T, S)) < 0.6
        m[:, :, 0] = True
        return m, f"bool[batch, {T}, {S}]", False
    if kind == "empty_row":  # a query that may attend to nothing: uniform over the keys, as in Keras
        m = np.ones((B, T, S), bool)
        m[:, 1, :] = False
        return m, f"bool[batch, {T}, {S}]", False
    return None, "", kind == "causal"


# (num_heads, key_dim, value_dim, use_bias, output_shape, mask kind, with key, return scores)
GRID = [
    (1, 4, None, True, None, "none", False, False),
    (2, 3, None, True, None, "padding", False, False),
    (2, 3, 5, False, None, "causal", True, False),
    (3, 2, 4, True, 10, "full", True, False),
    (2, 4, None, True, [2, 3], "padding+causal", False, False),
    (4, 2, 3, False, None, "none", True, True),
    (2, 3, None, True, None, "causal", False, True),
    (2, 3, 2, True, [3, 2], "padding", True, True),
    (1, 5, None, True, None, "full", False, True),
    (2, 2, None, True, None, "empty_row", False, False),
    (2, 2, None, True, None, "empty_row", False, True),
]


def case_id(case: tuple) -> str:
    n, kd, vd, bias, out, mask, key, scores = case
    return f"h{n}-k{kd}-v{vd}-{'b' if bias else 'nob'}-o{out}-{mask}{'-key' if key else ''}{'-scores' if scores else ''}"


def mha_source(case: tuple, mask_type: str, causal: bool) -> str:
    n, kd, vd, bias, out, _, key, scores = case
    hp = [str(n), str(kd)] + [f"value_dim={vd}"] * (vd is not None) + ["use_bias=false"] * (not bias)
    hp += [f"output_shape={out}"] * (out is not None)
    call = ["query", "value"] + ["key"] * key + ["attention_mask=mask"] * bool(mask_type)
    call += ["use_causal_mask=true"] * causal + ["return_attention_scores=true"] * scores
    inputs = [f"query: float32[batch, {T}, {DQ}]", f"value: float32[batch, {S}, {DV}]"]
    inputs += [f"key: float32[batch, {S}, {DK}]"] * key + [f"mask: {mask_type}"] * bool(mask_type)
    ret = "y[0], y[1]" if scores else "y"
    return (f"model m({', '.join(inputs)}) {{\n    y = multi_head_attention({', '.join(hp)})({', '.join(call)})\n"
            f"    return {ret}\n}}\n")


@pytest.mark.parametrize("opset", [None, 17], ids=["opset23", "opset17"])
@pytest.mark.parametrize("case", GRID, ids=case_id)
def test_multi_head_attention_matches_keras(tmp_path, case, opset):
    n, kd, vd, bias, out, mask_kind, key, scores = case
    rng = np.random.default_rng(len(case_id(case)))
    feeds = {"query": rng.normal(size=(B, T, DQ)), "value": rng.normal(size=(B, S, DV))}
    if key:
        feeds["key"] = rng.normal(size=(B, S, DK))
    feeds = {k: v.astype(np.float32) for k, v in feeds.items()}
    mask, mask_type, causal = masks(mask_kind, rng)
    layer = keras.layers.MultiHeadAttention(n, kd, value_dim=vd, use_bias=bias, output_shape=out)
    # Keras' jax dot_product_attention fails when value_dim != key_dim: ask Keras for its einsum form then
    einsum = scores or vd not in (None, kd)
    layer(feeds["query"], feeds["value"], key=feeds.get("key"), return_attention_scores=True)  # builds it
    weights = keras_weights(layer, "multi_head_attention")
    want = layer(feeds["query"], feeds["value"], key=feeds.get("key"), attention_mask=mask,
                 use_causal_mask=causal, return_attention_scores=einsum)
    want = [keras.ops.convert_to_numpy(w) for w in (want if einsum else [want])][:2 if scores else 1]
    if mask is not None:
        feeds["mask"] = mask
    got = compile_run(tmp_path, mha_source(case, mask_type, causal), weights, feeds, opset=opset)
    assert [g.shape for g in got] == [w.shape for w in want]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)


def ops_of(tmp_path, src: str, opset: int | None) -> set[str]:
    path = tmp_path / "ops.model"
    path.write_text(src)
    return {node.op_type for node in modelc.compile_file(path, opset=opset).graph.node}


def test_attention_operator_at_opset_23_and_matmul_softmax_at_17(tmp_path):
    src = mha_source(GRID[1], f"bool[batch, 1, {S}]", False)
    assert "Attention" in ops_of(tmp_path, src, None) and "Attention" in ops_of(tmp_path, src, 23)
    at17 = ops_of(tmp_path, src, 17)
    assert "Attention" not in at17 and {"MatMul", "Softmax"} <= at17
    # the scores come from Softmax at every opset, as in Keras
    assert "Attention" not in ops_of(tmp_path, mha_source(GRID[5], "", False), None)


def test_weights_are_named_and_shaped_as_keras(tmp_path):
    layer = keras.layers.MultiHeadAttention(2, 3, value_dim=4, output_shape=[2, 5])
    layer(np.zeros((1, T, DQ), np.float32), np.zeros((1, S, DV), np.float32), return_attention_scores=True)
    keras_shapes = {"multi_head_attention." + v.path.split("/", 1)[1].replace("/", "."): list(v.shape)
                    for v in layer.weights}
    path = tmp_path / "p.model"
    path.write_text(mha_source((2, 3, 4, True, [2, 5], "none", False, False), "", False))
    assert {p["name"]: p["shape"] for p in modelc.params(path)} == keras_shapes
    assert [p["name"] for p in modelc.params(path)] == list(keras_shapes)


def test_self_attention_with_unknown_lengths(tmp_path):
    layer = keras.layers.MultiHeadAttention(2, 4)
    x = np.random.default_rng(5).normal(size=(3, 6, 8)).astype(np.float32)
    layer(x, x)
    weights = keras_weights(layer, "mha")
    src = ("model m(x: float32[batch, n, 8]) {\n"
           "    return multi_head_attention(2, 4, name=\"mha\")(x, x, use_causal_mask=true)\n}\n")
    for opset in (None, 17):
        (got,) = compile_run(tmp_path, src, weights, {"x": x}, opset=opset)
        want = keras.ops.convert_to_numpy(layer(x, x, use_causal_mask=True))
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


# --- dot_product_attention ------------------------------------------------------------------------------
DPA = [  # (heads, head size, value head size, mask shape or None, scale, causal)
    (2, 4, 4, None, None, False),
    (1, 3, 3, None, 0.5, True),   # Keras' jax form fails when the value head size differs
    (3, 2, 2, (B, 1, T, S), None, False),
    (2, 4, 4, (T, S), None, True),
    (2, 2, 2, (S,), 0.25, False),
]


@pytest.mark.parametrize("opset", [None, 17], ids=["opset23", "opset17"])
@pytest.mark.parametrize("case", DPA, ids=str)
def test_dot_product_attention_matches_keras(tmp_path, case, opset):
    n, h, hv, mask_shape, scale, causal = case
    rng = np.random.default_rng(n * 10 + h)
    feeds = {"q": rng.normal(size=(B, T, n, h)), "k": rng.normal(size=(B, S, n, h)), "v": rng.normal(size=(B, S, n, hv))}
    feeds = {k: v.astype(np.float32) for k, v in feeds.items()}
    inputs = [f"q: float32[batch, {T}, {n}, {h}]", f"k: float32[batch, {S}, {n}, {h}]",
              f"v: float32[batch, {S}, {n}, {hv}]"]
    kwargs = [f"scale={scale}"] * (scale is not None) + ["causal=true"] * causal
    mask = None
    if mask_shape is not None:
        mask = rng.random(mask_shape) < 0.7
        mask[..., 0] = True
        feeds["mask"] = mask
        inputs.append(f"mask: bool[{', '.join('batch' if d == B and i == 0 and len(mask_shape) == 4 else str(d) for i, d in enumerate(mask_shape))}]")
        kwargs.insert(0, "mask=mask")
    src = f"model m({', '.join(inputs)}) {{\n    return dot_product_attention(q, k, v{''.join(', ' + k for k in kwargs)})\n}}\n"
    want = keras.ops.convert_to_numpy(keras.ops.dot_product_attention(
        feeds["q"], feeds["k"], feeds["v"], mask=mask, scale=scale, is_causal=causal))
    (got,) = compile_run(tmp_path, src, {}, feeds, opset=opset)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("opset", [None, 17])
def test_a_row_that_mask_and_causal_both_hide_attends_uniformly_as_in_keras(tmp_path, opset):
    """Query 0 sees only key 0 (causal), which the mask hides: Keras attends uniformly over every key."""
    q = np.random.default_rng(0).normal(size=(1, 3, 1, 2)).astype(np.float32)
    mask = np.array([[[[0, 1, 1], [1, 1, 1], [1, 1, 1]]]], bool)
    src = ("model m(q: float32[batch, 3, 1, 2], mask: bool[batch, 1, 3, 3]) {\n"
           "    return dot_product_attention(q, q, q, mask=mask, causal=true)\n}\n")
    want = keras.ops.convert_to_numpy(keras.ops.dot_product_attention(q, q, q, mask=mask, is_causal=True))
    (got,) = compile_run(tmp_path, src, {}, {"q": q, "mask": mask}, opset=opset)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


# --- diagnostics ----------------------------------------------------------------------------------------
def program(line: str, inputs: str = f"q: float32[batch, {T}, {DQ}], v: float32[batch, {S}, {DV}]") -> str:
    return f"model m({inputs}) {{\n    {line}\n}}\n"


DIAGNOSTICS = [
    ("zero_heads", "return multi_head_attention(0, 4)(q, v)",
     "t.model:2:12: error: multi_head_attention num_heads must be >= 1, got 0\n"
     "    return multi_head_attention(0, 4)(q, v)\n"
     "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^"),
    ("negative_key_dim", "return multi_head_attention(2, -1)(q, v)",
     "t.model:2:12: error: multi_head_attention key_dim must be >= 1, got -1\n"
     "    return multi_head_attention(2, -1)(q, v)\n"
     "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^"),
    ("one_input", "return multi_head_attention(2, 4)(q)",
     "t.model:2:12: error: multi_head_attention takes 2 or 3 inputs, got 1\n"
     "    return multi_head_attention(2, 4)(q)\n"
     "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^"),
    ("key_value_lengths", "return multi_head_attention(2, 4)(q, v, q)",
     f"t.model:2:12: error: multi_head_attention key and value must have the same length, got key "
     f"float32[batch, {T}, {DQ}] and value float32[batch, {S}, {DV}]\n"
     "    return multi_head_attention(2, 4)(q, v, q)\n"
     "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^"),
    ("rank_2_query", "return multi_head_attention(2, 4)(q[:, 0], v)",
     f"t.model:2:12: error: multi_head_attention takes [batch, length, features] inputs (attention over one axis), "
     f"got float32[batch, {DQ}], float32[batch, {S}, {DV}], float32[batch, {S}, {DV}]\n"
     "    return multi_head_attention(2, 4)(q[:, 0], v)\n"
     "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^"),
    ("mask_wrong_shape", "return multi_head_attention(2, 4)(q, v, attention_mask=q > 0)",
     f"t.model:2:12: error: multi_head_attention attention_mask must broadcast to [batch, T, S] = [batch, {T}, {S}] "
     f"(each axis that size or 1), got bool[batch, {T}, {DQ}]\n"
     "    return multi_head_attention(2, 4)(q, v, attention_mask=q > 0)\n"
     "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^"),
    ("mask_not_a_tensor", "return multi_head_attention(2, 4)(q, v, attention_mask=1)",
     "t.model:2:12: error: multi_head_attention hyperparameter 'attention_mask' expects a tensor, got int\n"
     "    return multi_head_attention(2, 4)(q, v, attention_mask=1)\n"
     "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^"),
    ("bad_output_shape", "return multi_head_attention(2, 4, output_shape=[0])(q, v)",
     "t.model:2:12: error: multi_head_attention output_shape must be a positive int or a list of them, got [0]\n"
     "    return multi_head_attention(2, 4, output_shape=[0])(q, v)\n"
     "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^"),
    ("scores_without_index", "return multi_head_attention(2, 4, return_attention_scores=true)(q, v) + 1.0",
     "t.model:2:12: error: '+' cannot combine 2 tensors (a multi-output layer's; pick one with [i]) and float\n"
     "    return multi_head_attention(2, 4, return_attention_scores=true)(q, v) + 1.0\n"
     "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^"),
    ("scores_index_out_of_range", "return multi_head_attention(2, 4, return_attention_scores=true)(q, v)[2]",
     "t.model:2:12: error: this layer returns 2 tensors; pick one with [0] .. [1]\n"
     "    return multi_head_attention(2, 4, return_attention_scores=true)(q, v)[2]\n"
     "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^"),
]


@pytest.mark.parametrize("line,want", [pytest.param(line, w, id=i) for i, line, w in DIAGNOSTICS])
def test_multi_head_attention_diagnostics(line, want):
    assert rendered(program(line)) == want


QKV = f"q: float32[batch, {T}, 2, 4], k: float32[batch, {S}, 2, 4], v: float32[batch, {S}, 2, 3]"
DPA_DIAGNOSTICS = [
    ("rank_3", "return dot_product_attention(q[:, :, 0], k, v)",
     f"t.model:2:12: error: dot_product_attention() q must be a [batch, length, heads, size] tensor, got tensor "
     f"float32[batch, {T}, 4]\n"
     "    return dot_product_attention(q[:, :, 0], k, v)\n"
     "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^"),
    ("head_sizes", "return dot_product_attention(q, v, v)",
     f"t.model:2:12: error: dot_product_attention() takes q [B, T, N, H], k [B, S, N, H] and v [B, S, N, Hv] with "
     f"a known N, got float32[batch, {T}, 2, 4], float32[batch, {S}, 2, 3], float32[batch, {S}, 2, 3]\n"
     "    return dot_product_attention(q, v, v)\n"
     "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^"),
    ("mask_shape", "return dot_product_attention(q, k, v, mask=q > 0)",
     f"t.model:2:12: error: dot_product_attention() mask must broadcast to [batch, heads, T, S] = "
     f"[batch, 2, {T}, {S}] (each axis that size or 1), got bool[batch, {T}, 2, 4]\n"
     "    return dot_product_attention(q, k, v, mask=q > 0)\n"
     "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^"),
    ("scale", "return dot_product_attention(q, k, v, scale=\"auto\")",
     "t.model:2:12: error: dot_product_attention() scale must be a number, got str\n"
     "    return dot_product_attention(q, k, v, scale=\"auto\")\n"
     "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^"),
]


@pytest.mark.parametrize("line,want", [pytest.param(line, w, id=i) for i, line, w in DPA_DIAGNOSTICS])
def test_dot_product_attention_diagnostics(line, want):
    assert rendered(program(line, QKV)) == want


def test_scores_have_their_own_output_name(tmp_path):
    path = tmp_path / "s.model"
    path.write_text(mha_source(GRID[5], "", False))
    proto = modelc.compile_file(path)
    onnx.checker.check_model(proto, full_check=True)
    assert [o.name for o in proto.graph.output] == ["output", "output_1"]


# --- samples/transformer.model against the same network in Keras ------------------------------------------
class KerasEncoderBlock:
    """The sample's encoder_block in Keras layers, with each weight owner under its modelc name."""

    def __init__(self):
        self.owners = {"multi_head_attention": keras.layers.MultiHeadAttention(4, 8),
                       "layer_norm": keras.layers.LayerNormalization(),
                       "dense": keras.layers.Dense(64, activation="relu"), "dense_1": keras.layers.Dense(32),
                       "layer_norm_1": keras.layers.LayerNormalization()}

    def __call__(self, x, mask):
        o = self.owners
        h = o["layer_norm"](x + o["multi_head_attention"](x, x, attention_mask=mask))
        return o["layer_norm_1"](h + o["dense_1"](o["dense"](h)))


def keras_transformer(tokens: np.ndarray, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The sample built from Keras layers (run eagerly), its weights randomized; its output and weights by name."""
    embedding, positions = keras.layers.Embedding(1000, 32), keras.layers.Embedding(16, 32)
    blocks = [KerasEncoderBlock(), KerasEncoderBlock()]
    head = [keras.layers.Dense(32, activation="relu"), keras.layers.Dense(4, activation="softmax")]

    def forward():
        mask = np.expand_dims(tokens != 0, 1)
        h = embedding(tokens) + positions(np.arange(16))
        for block in blocks:
            h = block(h, mask)
        return keras.ops.convert_to_numpy(head[1](head[0](h[:, 0])))

    forward()  # builds every layer
    scale = 0.3  # so that the softmax at the end is not saturated
    weights = keras_weights(embedding, "embedding", seed, scale)
    weights["position_embedding.embeddings"] = keras_weights(positions, "p", seed + 1, scale)["p.embeddings"]
    for i, block in enumerate(blocks):
        for name, owner in block.owners.items():
            weights.update(keras_weights(owner, f"encoder_block{f'_{i}' if i else ''}.{name}", seed + 2 + i, scale))
    for name, owner in zip(("dense", "dense_1"), head):
        weights.update(keras_weights(owner, name, seed + 4, scale))
    return forward(), weights


@pytest.mark.parametrize("opset", [None, 17], ids=["opset23", "opset17"])
def test_transformer_sample_matches_keras(tmp_path, opset):
    rng = np.random.default_rng(7)
    tokens = rng.integers(1, 1000, size=(6, 16)).astype(np.int32)
    tokens[1, 9:] = 0   # padded sequences
    tokens[4, 3:] = 0
    want, weights = keras_transformer(tokens)
    save_file(weights, str(tmp_path / "transformer.safetensors"))
    proto = modelc.compile_file(ROOT / "samples" / "transformer.model",
                                weights=str(tmp_path / "transformer.safetensors"), opset=opset)
    (got,) = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"tokens": tokens})
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
