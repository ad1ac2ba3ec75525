"""Every built-in layer, activation, function, operator and initializer against a numpy oracle.

Each case compiles a tiny program with modelc.compile_source, runs it on onnxruntime
(CPUExecutionProvider) and on onnx.reference.ReferenceEvaluator, and compares both with
an independent numpy implementation of Keras' (or numpy's) semantics from tests/oracles.py.
Weights are randomized in the compiled proto and read back for the oracle, so that
batch_norm & co. are exercised with weights other than their ones/zeros defaults.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import onnx
import pytest

import modelc

import oracles as O
from oracles import assert_matches, compile, randomize_weights, run_ort, run_reference, weights

BATCH = 5
FLOATS = ("float32", "float16")


# --- inputs -----------------------------------------------------------------
def normal(*shape: int, dtype: str = "float32", scale: float = 2.0) -> Callable[[np.random.Generator], np.ndarray]:
    return lambda rng: (rng.normal(0.0, scale, shape)).astype(dtype)


def positive(*shape: int, dtype: str = "float32", lo: float = 0.1, hi: float = 4.0) -> Callable:
    return lambda rng: rng.uniform(lo, hi, shape).astype(dtype)


def integers(*shape: int, dtype: str = "int32", lo: int = -5, hi: int = 6) -> Callable:
    return lambda rng: rng.integers(lo, hi, shape).astype(dtype)


def grid(*shape: int, dtype: str = "float32") -> Callable:
    """Small integral values (as floats), so comparisons meet equal elements."""
    return lambda rng: rng.integers(-2, 3, shape).astype(dtype)


def bools(*shape: int) -> Callable:
    return lambda rng: rng.random(shape) < 0.5


# --- cases ------------------------------------------------------------------
@dataclass
class Case:
    id: str
    src: str
    inputs: dict[str, Callable[[np.random.Generator], np.ndarray]]
    oracle: Callable[..., Any]              # (feeds, weights) -> array or list of arrays (float64 ok)
    dtype: str | None = None                # float64 oracle results are cast to this
    tol: tuple[float, float] | None = None
    marks: list = field(default_factory=list)

    def param(self):
        return pytest.param(self, id=self.id, marks=self.marks)


def model(body: str, **inputs: str) -> str:
    """`model m(x: float32[batch, 4]) { return EXPR }` from keyword input types."""
    sig = ", ".join(f"{k}: {v}" for k, v in inputs.items())
    return f"model m({sig}) {{\n    return {body}\n}}\n"


def run_case(case: Case, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    proto = randomize_weights(compile(case.src, seed=seed), seed=seed + 1)
    feeds = {k: gen(rng) for k, gen in case.inputs.items()}
    w = weights(proto)
    want = case.oracle(feeds, w)
    want = [np.asarray(a) for a in (want if isinstance(want, (list, tuple)) else [want])]
    if case.dtype is not None:
        want = [a.astype(case.dtype) if a.dtype == np.float64 else a for a in want]
    for runner, run in (("onnxruntime", run_ort), ("reference", run_reference)):
        got = run(proto, feeds)
        assert len(got) == len(want), f"{runner}: {len(got)} outputs, expected {len(want)}"
        for i, (g, e) in enumerate(zip(got, want)):
            assert_matches(g, e, f"{case.id} output {i} on {runner}", case.tol)


# --- element-wise functions: exp log sqrt abs tanh sigmoid relu softplus ------------------
UNARY_FUNCTIONS = {
    "exp": (np.exp, normal),
    "log": (np.log, positive),
    "sqrt": (np.sqrt, positive),
    "abs": (np.abs, normal),
    "tanh": (O.tanh, normal),
    "sigmoid": (O.sigmoid, normal),
    "relu": (O.relu, normal),
    "softplus": (O.softplus, normal),
}


def function_cases() -> list[Case]:
    cases = []
    for name, (fn, gen) in UNARY_FUNCTIONS.items():
        for dt in FLOATS:
            cases.append(Case(f"{name}_{dt}", model(f"{name}(x)", x=f"{dt}[batch, 6]"), {"x": gen(BATCH, 6, dtype=dt)},
                              lambda f, w, fn=fn: fn(np.asarray(f["x"], np.float64)), dt))
        cases.append(Case(f"{name}_pipeline", model(f"x -> {name}", x="float32[batch, 3, 4]"),
                          {"x": gen(BATCH, 3, 4)}, lambda f, w, fn=fn: fn(np.asarray(f["x"], np.float64)),
                          "float32"))
    cases += [
        Case("abs_int32", model("abs(x)", x="int32[batch, 6]"), {"x": integers(BATCH, 6)},
             lambda f, w: np.abs(f["x"])),
        Case("abs_int64", model("abs(x)", x="int64[batch, 6]"), {"x": integers(BATCH, 6, dtype="int64")},
             lambda f, w: np.abs(f["x"])),
    ]
    for dt in FLOATS:
        cases.append(Case(f"softmax_{dt}", model("softmax(x)", x=f"{dt}[batch, 6]"), {"x": normal(BATCH, 6, dtype=dt)},
                          lambda f, w: O.softmax(f["x"]), dt))
    cases += [
        Case("softmax_axis0", model("softmax(x, axis=0)", x="float32[batch, 6]"), {"x": normal(BATCH, 6)},
             lambda f, w: O.softmax(f["x"], axis=0), "float32"),
        Case("softmax_axis1_rank3", model("softmax(x, axis=1)", x="float32[batch, 3, 4]"), {"x": normal(BATCH, 3, 4)},
             lambda f, w: O.softmax(f["x"], axis=1), "float32"),
        Case("softmax_pipeline_axis", model("x -> softmax(axis=1)", x="float32[batch, 3, 4]"),
             {"x": normal(BATCH, 3, 4)}, lambda f, w: O.softmax(f["x"], axis=1), "float32"),
    ]
    # where / clip / min / max (element-wise)
    for dt in FLOATS:
        cases += [
            Case(f"where_{dt}", model("where(a > b, a, b * 2.0)", a=f"{dt}[batch, 4]", b=f"{dt}[batch, 4]"),
                 {"a": normal(BATCH, 4, dtype=dt), "b": normal(BATCH, 4, dtype=dt)},
                 lambda f, w: np.where(f["a"] > f["b"], f["a"], f["b"] * 2.0), dt),
            Case(f"clip_{dt}", model("clip(x, -0.5, 1.5)", x=f"{dt}[batch, 6]"), {"x": normal(BATCH, 6, dtype=dt)},
                 lambda f, w: np.clip(f["x"], -0.5, 1.5), dt),
            Case(f"min_elementwise_{dt}", model("min(a, b)", a=f"{dt}[batch, 4]", b=f"{dt}[batch, 4]"),
                 {"a": normal(BATCH, 4, dtype=dt), "b": normal(BATCH, 4, dtype=dt)},
                 lambda f, w: np.minimum(f["a"], f["b"]), dt),
            Case(f"max_elementwise_{dt}", model("max(a, b)", a=f"{dt}[batch, 4]", b=f"{dt}[batch, 4]"),
                 {"a": normal(BATCH, 4, dtype=dt), "b": normal(BATCH, 4, dtype=dt)},
                 lambda f, w: np.maximum(f["a"], f["b"]), dt),
        ]
    cases += [
        Case("where_bool_input_scalar_branch", model("where(c, x, 0.0)", c="bool[batch, 1]", x="float32[batch, 4]"),
             {"c": bools(BATCH, 1), "x": normal(BATCH, 4)}, lambda f, w: np.where(f["c"], f["x"], 0.0), "float32"),
        Case("where_int32", model("where(a < 0, 0, a)", a="int32[batch, 4]"), {"a": integers(BATCH, 4)},
             lambda f, w: np.where(f["a"] < 0, np.int32(0), f["a"])),
        Case("clip_int_literals", model("clip(x, 0, 1)", x="float32[batch, 6]"), {"x": normal(BATCH, 6)},
             lambda f, w: np.clip(f["x"], 0, 1), "float32"),
        Case("clip_int32", model("clip(x, -2, 3)", x="int32[batch, 6]"), {"x": integers(BATCH, 6)},
             lambda f, w: np.clip(f["x"], -2, 3).astype(np.int32)),
        Case("min_three_broadcast", model("min(a, b, c)", a="float32[batch, 4]", b="float32[4]", c="float32[batch, 1]"),
             {"a": normal(BATCH, 4), "b": normal(4), "c": normal(BATCH, 1)},
             lambda f, w: np.minimum(np.minimum(f["a"], f["b"]), f["c"]), "float32"),
        Case("max_literal", model("max(x, 0.0)", x="float32[batch, 4]"), {"x": normal(BATCH, 4)},
             lambda f, w: np.maximum(f["x"], 0.0), "float32"),
        Case("max_elementwise_int32", model("max(a, b)", a="int32[batch, 4]", b="int32[batch, 4]"),
             {"a": integers(BATCH, 4), "b": integers(BATCH, 4)}, lambda f, w: np.maximum(f["a"], f["b"])),
    ]
    return cases


# --- reductions: min max sum mean argmax -------------------------------------
def reduction_cases() -> list[Case]:
    x3 = {"x": normal(BATCH, 3, 4)}
    sig = {"x": "float32[batch, 3, 4]"}
    table = [
        # id, expression, numpy
        ("sum_all", "sum(x)", lambda x: x.sum()),
        ("sum_axis1", "sum(x, axis=1)", lambda x: x.sum(axis=1)),
        ("sum_axis_neg1_keepdims", "sum(x, axis=-1, keepdims=true)", lambda x: x.sum(axis=-1, keepdims=True)),
        ("sum_axes_list", "sum(x, axis=[0, 2])", lambda x: x.sum(axis=(0, 2))),
        ("sum_axes_list_keepdims", "sum(x, axis=[2, 1], keepdims=true)", lambda x: x.sum(axis=(1, 2), keepdims=True)),
        ("mean_all", "mean(x)", lambda x: x.mean()),
        ("mean_axis0", "mean(x, axis=0)", lambda x: x.mean(axis=0)),
        ("mean_axis_neg1_keepdims", "mean(x, axis=-1, keepdims=true)", lambda x: x.mean(axis=-1, keepdims=True)),
        ("mean_axes_list", "mean(x, axis=[1, 2])", lambda x: x.mean(axis=(1, 2))),
        ("mean_pipeline", "x -> mean(axis=1)", lambda x: x.mean(axis=1)),
        ("min_all", "min(x)", lambda x: x.min()),
        ("min_axis1", "min(x, axis=1)", lambda x: x.min(axis=1)),
        ("min_axes_keepdims", "min(x, axis=[0, 2], keepdims=true)", lambda x: x.min(axis=(0, 2), keepdims=True)),
        ("max_all", "max(x)", lambda x: x.max()),
        ("max_axis_neg1", "max(x, axis=-1)", lambda x: x.max(axis=-1)),
        ("max_axis0_keepdims", "max(x, axis=0, keepdims=true)", lambda x: x.max(axis=0, keepdims=True)),
        ("max_pipeline", "x -> max(axis=2)", lambda x: x.max(axis=2)),
        ("sum_empty_axes", "sum(x, axis=[])", lambda x: x.sum(axis=())),             # numpy: reduces nothing
        ("mean_empty_axes_keepdims", "mean(x, axis=[], keepdims=true)", lambda x: x.mean(axis=(), keepdims=True)),
    ]
    cases = [Case(i, model(e, **sig), x3, lambda f, w, fn=fn: fn(np.asarray(f["x"], np.float64)), "float32")
             for i, e, fn in table]
    cases += [
        Case("sum_float16", model("sum(x, axis=1)", x="float16[batch, 6]"), {"x": normal(BATCH, 6, dtype="float16")},
             lambda f, w: f["x"].astype(np.float64).sum(axis=1), "float16", tol=(2e-3, 4e-3)),
        Case("mean_float16", model("mean(x, axis=1)", x="float16[batch, 6]"), {"x": normal(BATCH, 6, dtype="float16")},
             lambda f, w: f["x"].astype(np.float64).mean(axis=1), "float16", tol=(2e-3, 2e-3)),
        Case("max_float16", model("max(x, axis=1)", x="float16[batch, 6]"), {"x": normal(BATCH, 6, dtype="float16")},
             lambda f, w: f["x"].max(axis=1)),
        Case("sum_int32", model("sum(x, axis=1)", x="int32[batch, 6]"), {"x": integers(BATCH, 6)},
             lambda f, w: f["x"].sum(axis=1, dtype=np.int32)),
        Case("max_int64_all", model("max(x)", x="int64[batch, 6]"), {"x": integers(BATCH, 6, dtype="int64")},
             lambda f, w: f["x"].max()),
        Case("argmax_default_axis", model("argmax(x)", **sig), x3, lambda f, w: f["x"].argmax(axis=-1)),
        Case("argmax_axis0", model("argmax(x, axis=0)", **sig), x3, lambda f, w: f["x"].argmax(axis=0)),
        Case("argmax_axis1_keepdims", model("argmax(x, axis=1, keepdims=true)", **sig), x3,
             lambda f, w: f["x"].argmax(axis=1)[:, None, :]),
        Case("argmax_ties_first", model("argmax(x, axis=1)", x="float32[batch, 6]"), {"x": grid(BATCH, 6)},
             lambda f, w: f["x"].argmax(axis=1)),
        Case("argmax_int32", model("argmax(x, axis=-1)", x="int32[batch, 6]"), {"x": integers(BATCH, 6)},
             lambda f, w: f["x"].argmax(axis=-1)),
        Case("argmax_float16", model("argmax(x, axis=-1)", x="float16[batch, 6]"),
             {"x": normal(BATCH, 6, dtype="float16")}, lambda f, w: f["x"].argmax(axis=-1)),
    ]
    return cases


# --- reshape transpose cast concat ------------------------------------------
def shape_cases() -> list[Case]:
    return [
        Case("reshape_flat", model("reshape(x, [-1])", x="float32[batch, 6]"), {"x": normal(BATCH, 6)},
             lambda f, w: f["x"].reshape(-1)),
        Case("reshape_infer_batch", model("reshape(x, [-1, 3, 2])", x="float32[batch, 6]"), {"x": normal(BATCH, 6)},
             lambda f, w: f["x"].reshape(-1, 3, 2)),
        Case("reshape_static", model("reshape(x, [6, 4])", x="float32[4, 6]"), {"x": normal(4, 6)},
             lambda f, w: f["x"].reshape(6, 4)),
        Case("reshape_infer_middle", model("reshape(x, [2, -1, 3])", x="float32[4, 6]"), {"x": normal(4, 6)},
             lambda f, w: f["x"].reshape(2, -1, 3)),
        Case("reshape_int64", model("reshape(x, [-1, 2])", x="int64[batch, 4]"),
             {"x": integers(BATCH, 4, dtype="int64")}, lambda f, w: f["x"].reshape(-1, 2)),
        Case("transpose_default_rank3", model("transpose(x)", x="float32[batch, 3, 4]"), {"x": normal(BATCH, 3, 4)},
             lambda f, w: f["x"].transpose()),
        Case("transpose_default_rank2", model("transpose(x)", x="float32[batch, 3]"), {"x": normal(BATCH, 3)},
             lambda f, w: f["x"].T),
        Case("transpose_perm", model("transpose(x, perm=[0, 2, 1])", x="float32[batch, 3, 4]"),
             {"x": normal(BATCH, 3, 4)}, lambda f, w: f["x"].transpose(0, 2, 1)),
        Case("transpose_perm_positional", model("transpose(x, [1, 2, 0])", x="float16[batch, 3, 4]"),
             {"x": normal(BATCH, 3, 4, dtype="float16")}, lambda f, w: f["x"].transpose(1, 2, 0)),
        Case("transpose_pipeline", model("x -> transpose(perm=[2, 0, 1])", x="bool[batch, 3, 4]"),
             {"x": bools(BATCH, 3, 4)}, lambda f, w: f["x"].transpose(2, 0, 1)),
        Case("cast_float32_to_int32", model("cast(x, int32)", x="float32[batch, 6]"), {"x": normal(BATCH, 6)},
             lambda f, w: f["x"].astype(np.int32)),
        Case("cast_float32_to_int64", model("cast(x, int64)", x="float32[batch, 6]"), {"x": normal(BATCH, 6)},
             lambda f, w: f["x"].astype(np.int64)),
        Case("cast_float32_to_float16", model("cast(x, float16)", x="float32[batch, 6]"), {"x": normal(BATCH, 6)},
             lambda f, w: f["x"].astype(np.float16)),
        Case("cast_float16_to_float32", model("cast(x, float32)", x="float16[batch, 6]"),
             {"x": normal(BATCH, 6, dtype="float16")}, lambda f, w: f["x"].astype(np.float32)),
        Case("cast_float32_to_float64", model("cast(x, float64)", x="float32[batch, 6]"), {"x": normal(BATCH, 6)},
             lambda f, w: f["x"].astype(np.float64)),
        Case("cast_float32_to_bool", model("cast(x, bool)", x="float32[batch, 6]"), {"x": grid(BATCH, 6)},
             lambda f, w: f["x"].astype(bool)),
        Case("cast_bool_to_float32", model("cast(x, float32)", x="bool[batch, 6]"), {"x": bools(BATCH, 6)},
             lambda f, w: f["x"].astype(np.float32)),
        Case("cast_int32_to_int64", model("cast(x, int64)", x="int32[batch, 6]"), {"x": integers(BATCH, 6)},
             lambda f, w: f["x"].astype(np.int64)),
        Case("cast_int64_to_float32", model("cast(x, float32)", x="int64[batch, 6]"),
             {"x": integers(BATCH, 6, dtype="int64")}, lambda f, w: f["x"].astype(np.float32)),
        Case("concat_default_axis", model("concat(a, b)", a="float32[batch, 3]", b="float32[batch, 2]"),
             {"a": normal(BATCH, 3), "b": normal(BATCH, 2)}, lambda f, w: np.concatenate([f["a"], f["b"]], axis=-1)),
        Case("concat_axis0_three", model("concat(a, b, c, axis=0)", a="float32[2, 3]", b="float32[1, 3]",
                                         c="float32[4, 3]"),
             {"a": normal(2, 3), "b": normal(1, 3), "c": normal(4, 3)},
             lambda f, w: np.concatenate([f["a"], f["b"], f["c"]], axis=0)),
        Case("concat_axis1_rank3", model("concat(a, b, axis=1)", a="float32[batch, 2, 4]", b="float32[batch, 3, 4]"),
             {"a": normal(BATCH, 2, 4), "b": normal(BATCH, 3, 4)},
             lambda f, w: np.concatenate([f["a"], f["b"]], axis=1)),
        Case("concat_int64", model("concat(a, b)", a="int64[batch, 2]", b="int64[batch, 1]"),
             {"a": integers(BATCH, 2, dtype="int64"), "b": integers(BATCH, 1, dtype="int64")},
             lambda f, w: np.concatenate([f["a"], f["b"]], axis=-1)),
        Case("concat_pipeline", model("a -> concat(b)", a="float32[batch, 3]", b="float32[batch, 2]"),
             {"a": normal(BATCH, 3), "b": normal(BATCH, 2)}, lambda f, w: np.concatenate([f["a"], f["b"]], axis=-1)),
    ]


# --- operators ---------------------------------------------------------------
ARITH = {"+": ("add", np.add), "-": ("sub", np.subtract), "*": ("mul", np.multiply), "/": ("div", np.divide)}
COMPARE = {"<": ("lt", np.less), "<=": ("le", np.less_equal), ">": ("gt", np.greater),
           ">=": ("ge", np.greater_equal), "==": ("eq", np.equal), "!=": ("ne", np.not_equal)}


def operator_cases() -> list[Case]:
    cases = []
    for op, (name, fn) in ARITH.items():
        for dt in FLOATS:
            cases.append(Case(f"{name}_{dt}", model(f"a {op} b", a=f"{dt}[batch, 4]", b=f"{dt}[batch, 4]"),
                              {"a": normal(BATCH, 4, dtype=dt), "b": positive(BATCH, 4, dtype=dt, lo=0.5)},
                              lambda f, w, fn=fn: fn(f["a"].astype(np.float64), f["b"].astype(np.float64)), dt))
        cases.append(Case(f"{name}_broadcast", model(f"a {op} b", a="float32[batch, 1, 4]", b="float32[3, 1]"),
                          {"a": normal(BATCH, 1, 4), "b": positive(3, 1, lo=0.5)},
                          lambda f, w, fn=fn: fn(f["a"].astype(np.float64), f["b"].astype(np.float64)), "float32"))
        cases.append(Case(f"{name}_literal", model(f"a {op} 2", a="float16[batch, 4]"),
                          {"a": normal(BATCH, 4, dtype="float16")},
                          lambda f, w, fn=fn: fn(f["a"].astype(np.float64), 2.0), "float16"))
        cases.append(Case(f"{name}_literal_left", model(f"0.5 {op} a", a="float32[batch, 4]"),
                          {"a": positive(BATCH, 4, lo=0.5)},
                          lambda f, w, fn=fn: fn(0.5, f["a"].astype(np.float64)), "float32"))
    for op, (name, fn) in list(ARITH.items())[:3]:
        for dt in ("int32", "int64"):
            cases.append(Case(f"{name}_{dt}", model(f"a {op} b", a=f"{dt}[batch, 4]", b=f"{dt}[4]"),
                              {"a": integers(BATCH, 4, dtype=dt), "b": integers(4, dtype=dt)},
                              lambda f, w, fn=fn: fn(f["a"], f["b"])))
    for dt in FLOATS:
        cases += [
            Case(f"pow_{dt}", model("a ** b", a=f"{dt}[batch, 4]", b=f"{dt}[batch, 4]"),
                 {"a": positive(BATCH, 4, dtype=dt, hi=3.0), "b": normal(BATCH, 4, dtype=dt, scale=1.0)},
                 lambda f, w: f["a"].astype(np.float64) ** f["b"].astype(np.float64), dt),
            Case(f"neg_{dt}", model("-a", a=f"{dt}[batch, 4]"), {"a": normal(BATCH, 4, dtype=dt)},
                 lambda f, w: -f["a"]),
        ]
    cases += [
        Case("pow_literal_square", model("a ** 2", a="float32[batch, 4]"), {"a": normal(BATCH, 4)},
             lambda f, w: f["a"].astype(np.float64) ** 2, "float32"),
        Case("pow_literal_half", model("a ** 0.5", a="float32[batch, 4]"), {"a": positive(BATCH, 4)},
             lambda f, w: f["a"].astype(np.float64) ** 0.5, "float32"),
        Case("pow_literal_base", model("2.0 ** a", a="float32[batch, 4]"), {"a": normal(BATCH, 4)},
             lambda f, w: 2.0 ** f["a"].astype(np.float64), "float32"),
        Case("pow_right_assoc_neg", model("-a ** 2", a="float32[batch, 4]"), {"a": normal(BATCH, 4)},
             lambda f, w: -(f["a"].astype(np.float64) ** 2), "float32"),
        Case("neg_int32", model("-a", a="int32[batch, 4]"), {"a": integers(BATCH, 4)}, lambda f, w: -f["a"]),
        Case("precedence", model("a + b * c - a / c", a="float32[batch, 4]", b="float32[4]", c="float32[batch, 1]"),
             {"a": normal(BATCH, 4), "b": normal(4), "c": positive(BATCH, 1, lo=0.5)},
             lambda f, w: (lambda a, b, c: a + b * c - a / c)(*(f[k].astype(np.float64) for k in "abc")), "float32"),
        # matmul
        Case("matmul_2d", model("a @ b", a="float32[batch, 4]", b="float32[4, 3]"),
             {"a": normal(BATCH, 4), "b": normal(4, 3)}, lambda f, w: f["a"].astype(np.float64) @ f["b"], "float32"),
        Case("matmul_3d_2d", model("a @ b", a="float32[batch, 2, 4]", b="float32[4, 3]"),
             {"a": normal(BATCH, 2, 4), "b": normal(4, 3)}, lambda f, w: f["a"].astype(np.float64) @ f["b"],
             "float32"),
        Case("matmul_batched_broadcast", model("a @ b", a="float32[2, 1, 3, 4]", b="float32[5, 4, 2]"),
             {"a": normal(2, 1, 3, 4), "b": normal(5, 4, 2)}, lambda f, w: f["a"].astype(np.float64) @ f["b"],
             "float32"),
        Case("matmul_vector_matrix", model("a @ b", a="float32[4]", b="float32[4, 3]"),
             {"a": normal(4), "b": normal(4, 3)}, lambda f, w: f["a"].astype(np.float64) @ f["b"], "float32"),
        Case("matmul_matrix_vector", model("a @ b", a="float32[batch, 4]", b="float32[4]"),
             {"a": normal(BATCH, 4), "b": normal(4)}, lambda f, w: f["a"].astype(np.float64) @ f["b"], "float32"),
        Case("matmul_float16", model("a @ b", a="float16[batch, 4]", b="float16[4, 3]"),
             {"a": normal(BATCH, 4, dtype="float16", scale=1.0), "b": normal(4, 3, dtype="float16", scale=1.0)},
             lambda f, w: f["a"].astype(np.float64) @ f["b"].astype(np.float64), "float16", tol=(2e-3, 4e-3)),
        Case("matmul_int32", model("a @ b", a="int32[batch, 4]", b="int32[4, 3]"),
             {"a": integers(BATCH, 4), "b": integers(4, 3)}, lambda f, w: f["a"] @ f["b"]),
    ]
    for op, (name, fn) in COMPARE.items():
        for dt in ("float32", "float16", "int32"):
            cases.append(Case(f"{name}_{dt}", model(f"a {op} b", a=f"{dt}[batch, 4]", b=f"{dt}[4]"),
                              {"a": grid(BATCH, 4, dtype=dt), "b": grid(4, dtype=dt)},
                              lambda f, w, fn=fn: fn(f["a"], f["b"])))
        cases.append(Case(f"{name}_literal", model(f"a {op} 1", a="float32[batch, 4]"), {"a": grid(BATCH, 4)},
                          lambda f, w, fn=fn: fn(f["a"], 1.0)))
    cases += [
        Case("eq_bool", model("a == b", a="bool[batch, 4]", b="bool[batch, 4]"),
             {"a": bools(BATCH, 4), "b": bools(BATCH, 4)}, lambda f, w: f["a"] == f["b"]),
        Case("ne_bool", model("a != b", a="bool[batch, 4]", b="bool[batch, 4]"),
             {"a": bools(BATCH, 4), "b": bools(BATCH, 4)}, lambda f, w: f["a"] != f["b"]),
        Case("and", model("a and b", a="bool[batch, 4]", b="bool[4]"), {"a": bools(BATCH, 4), "b": bools(4)},
             lambda f, w: f["a"] & f["b"]),
        Case("or", model("a or b", a="bool[batch, 4]", b="bool[batch, 1]"), {"a": bools(BATCH, 4), "b": bools(BATCH, 1)},
             lambda f, w: f["a"] | f["b"]),
        Case("not", model("not a", a="bool[batch, 4]"), {"a": bools(BATCH, 4)}, lambda f, w: ~f["a"]),
        Case("logic_precedence", model("not a and b or a", a="bool[batch, 4]", b="bool[batch, 4]"),
             {"a": bools(BATCH, 4), "b": bools(BATCH, 4)}, lambda f, w: ((~f["a"]) & f["b"]) | f["a"]),
        Case("logic_with_comparisons", model("x > 0 and x < 1 or x == -1", x="float32[batch, 6]"),
             {"x": grid(BATCH, 6)}, lambda f, w: ((f["x"] > 0) & (f["x"] < 1)) | (f["x"] == -1)),
        Case("bool_literal", model("a and true", a="bool[batch, 4]"), {"a": bools(BATCH, 4)}, lambda f, w: f["a"]),
    ]
    return cases


# --- indexing and slicing ----------------------------------------------------
INDEXES = {
    "slice_range": "[:, 0:4]",
    "ellipsis_last": "[..., -1]",
    "int_first": "[0]",
    "int_negative": "[-1]",
    "int_axis1": "[:, 1]",
    "step2": "[:, ::2]",
    "reverse": "[:, ::-1]",
    "negative_step_range": "[:, 4:1:-1]",
    "negative_step_to_start": "[:, 3::-2]",
    "negative_start": "[:, -3:]",
    "negative_stop": "[:, :-1]",
    "stop_past_end": "[:, 2:100]",
    "mixed_int_slice": "[1:3, :, 2]",
    "int_then_ellipsis": "[:, -1, ...]",
    "ellipsis_slice": "[..., 1:3]",
    "ellipsis_middle": "[0, ..., 1]",
    "all_ints": "[1, 2, 3]",
    "full_slice_noop": "[:, :]",
    "empty_slice": "[:, 3:3]",
}


def index_cases() -> list[Case]:
    cases = [Case(f"index_{k}", model(f"x{idx}", x="float32[batch, 6, 4]"), {"x": normal(BATCH, 6, 4)},
                  lambda f, w, idx=idx: eval("x" + idx, {"x": f["x"]}))   # noqa: S307 - numpy's own indexing
             for k, idx in INDEXES.items()]
    cases += [
        Case("index_int64", model("x[:, 1:]", x="int64[batch, 3]"), {"x": integers(BATCH, 3, dtype="int64")},
             lambda f, w: f["x"][:, 1:]),
        Case("index_float16_chain", model("x[1:][:, -2]", x="float16[batch, 3]"),
             {"x": normal(BATCH, 3, dtype="float16")}, lambda f, w: f["x"][1:][:, -2]),
    ]
    return cases


# --- activations (as layers, as dense activation=, as a layer hyperparameter) --------------
ACTIVATION_SPECS = {
    # id: (spelling in .model, oracle)
    "linear": ("linear", O.linear),
    "relu": ("relu", O.relu),
    "elu": ("elu", O.elu),
    "elu_alpha": ("elu(alpha=0.5)", lambda x: O.elu(x, alpha=0.5)),
    "selu": ("selu", O.selu),
    "sigmoid": ("sigmoid", O.sigmoid),
    "tanh": ("tanh", O.tanh),
    "softmax": ("softmax", O.softmax),
    "softplus": ("softplus", O.softplus),
    "softsign": ("softsign", O.softsign),
    "gelu": ("gelu", O.gelu),
    "silu": ("silu", O.silu),
    "exponential": ("exponential", O.exponential),
    "leaky_relu": ("leaky_relu", O.leaky_relu),
    "leaky_relu_positional": ("leaky_relu(0.1)", lambda x: O.leaky_relu(x, 0.1)),
    "leaky_relu_alpha": ("leaky_relu(alpha=0.05)", lambda x: O.leaky_relu(x, 0.05)),
}


def activation_cases() -> list[Case]:
    cases = []
    for key, (spelling, fn) in ACTIVATION_SPECS.items():
        for dt in FLOATS:
            cases.append(Case(f"{key}_{dt}", model(f"x -> {spelling}", x=f"{dt}[batch, 6]"),
                              {"x": normal(BATCH, 6, dtype=dt)}, lambda f, w, fn=fn: fn(f["x"]), dt))
        cases.append(Case(f"{key}_rank3", model(f"x -> {spelling}", x="float32[batch, 3, 4]"),
                          {"x": normal(BATCH, 3, 4)}, lambda f, w, fn=fn: fn(f["x"]), "float32"))
        cases.append(Case(f"dense_activation_{key}", model(f"x -> dense(4, activation={spelling})", x="float32[batch, 6]"),
                          {"x": normal(BATCH, 6, scale=1.0)},
                          lambda f, w, fn=fn: O.dense(f["x"], w["dense.kernel"], w["dense.bias"], fn), "float32"))
        cases.append(Case(f"layer_hparam_{key}",
                          "layer act_apply(activation: layer = linear)(x) = activation(x * 2.0)\n"
                          + model(f"x -> act_apply(activation={spelling})", x="float32[batch, 6]"),
                          {"x": normal(BATCH, 6, scale=1.0)}, lambda f, w, fn=fn: fn(f["x"] * 2.0), "float32"))
    cases.append(Case("softmax_layer_axis1", model("x -> softmax(axis=1)", x="float32[batch, 3, 4]"),
                      {"x": normal(BATCH, 3, 4)}, lambda f, w: O.softmax(f["x"], axis=1), "float32"))
    cases.append(Case("activation_chain", model("x -> relu -> gelu -> leaky_relu -> selu", x="float32[batch, 6]"),
                      {"x": normal(BATCH, 6)}, lambda f, w: O.selu(O.leaky_relu(O.gelu(O.relu(f["x"])))), "float32"))
    return cases


# --- layers --------------------------------------------------------------------
def bn(f, w, eps=1e-3, x="x"):
    return O.batch_norm(f[x], w["batch_norm.gamma"], w["batch_norm.beta"], w["batch_norm.moving_mean"],
                        w["batch_norm.moving_variance"], eps)


NORM_MEAN = [1.0, -2.0, 0.5]
NORM_VAR = [0.0, 4.0, 0.25]   # a zero variance meets Keras' epsilon() floor


def layer_cases() -> list[Case]:
    return [
        Case("dense_rank2", model("x -> dense(4)", x="float32[batch, 6]"), {"x": normal(BATCH, 6)},
             lambda f, w: O.dense(f["x"], w["dense.kernel"], w["dense.bias"]), "float32"),
        Case("dense_no_bias", model("x -> dense(3, use_bias=false)", x="float32[batch, 6]"), {"x": normal(BATCH, 6)},
             lambda f, w: O.dense(f["x"], w["dense.kernel"]), "float32"),
        Case("dense_rank3", model("x -> dense(3, activation=tanh)", x="float32[batch, 5, 8]"),
             {"x": normal(BATCH, 5, 8)}, lambda f, w: O.dense(f["x"], w["dense.kernel"], w["dense.bias"], O.tanh),
             "float32"),
        Case("dense_float64", model("x -> dense(3)", x="float64[batch, 6]"), {"x": normal(BATCH, 6, dtype="float64")},
             lambda f, w: O.dense(f["x"], w["dense.kernel"], w["dense.bias"])),
        Case("dense_float16", model("x -> dense(3, activation=relu)", x="float16[batch, 6]"),
             {"x": normal(BATCH, 6, dtype="float16", scale=0.5)},
             lambda f, w: O.dense(f["x"], w["dense.kernel"], w["dense.bias"], O.relu), "float16", tol=(3e-3, 5e-3)),
        Case("dense_stack_names", model("x -> dense(4, activation=relu) -> dense(2, name=\"head\")", x="float32[batch, 6]"),
             {"x": normal(BATCH, 6)},
             lambda f, w: O.dense(O.dense(f["x"], w["dense.kernel"], w["dense.bias"], O.relu),
                                  w["head.kernel"], w["head.bias"]), "float32"),
        Case("dropout_identity", model("x -> dropout(0.5)", x="float32[batch, 6]"), {"x": normal(BATCH, 6)},
             lambda f, w: f["x"]),
        Case("dropout_keyword_then_relu", model("x -> dropout(rate=0.3) -> relu", x="float32[batch, 6]"),
             {"x": normal(BATCH, 6)}, lambda f, w: O.relu(f["x"]), "float32"),
        Case("batch_norm_default", model("x -> batch_norm", x="float32[batch, 4]"), {"x": normal(BATCH, 4)},
             lambda f, w: bn(f, w), "float32"),
        Case("batch_norm_epsilon", model("x -> batch_norm(epsilon=0.1)", x="float32[batch, 4]"),
             {"x": normal(BATCH, 4)}, lambda f, w: bn(f, w, 0.1), "float32"),
        Case("batch_norm_rank3", model("x -> batch_norm", x="float32[batch, 3, 4]"), {"x": normal(BATCH, 3, 4)},
             lambda f, w: bn(f, w), "float32"),
        Case("batch_norm_float16", model("x -> batch_norm", x="float16[batch, 4]"),
             {"x": normal(BATCH, 4, dtype="float16")}, lambda f, w: bn(f, w), "float16", tol=(3e-3, 3e-3)),
        Case("layer_norm_default", model("x -> layer_norm", x="float32[batch, 6]"), {"x": normal(BATCH, 6)},
             lambda f, w: O.layer_norm(f["x"], w["layer_norm.gamma"], w["layer_norm.beta"]), "float32"),
        Case("layer_norm_epsilon", model("x -> layer_norm(epsilon=0.5)", x="float32[batch, 6]"),
             {"x": normal(BATCH, 6, scale=0.5)},
             lambda f, w: O.layer_norm(f["x"], w["layer_norm.gamma"], w["layer_norm.beta"], 0.5), "float32"),
        Case("layer_norm_rank3", model("x -> layer_norm", x="float32[batch, 3, 4]"), {"x": normal(BATCH, 3, 4)},
             lambda f, w: O.layer_norm(f["x"], w["layer_norm.gamma"], w["layer_norm.beta"]), "float32"),
        Case("layer_norm_float16", model("x -> layer_norm", x="float16[batch, 6]"),
             {"x": normal(BATCH, 6, dtype="float16")},
             lambda f, w: O.layer_norm(f["x"], w["layer_norm.gamma"], w["layer_norm.beta"]), "float16",
             tol=(3e-3, 5e-3)),
        Case("layer_norm_small_variance", model("x -> layer_norm", x="float32[batch, 6]"),
             {"x": normal(BATCH, 6, scale=0.01)},
             lambda f, w: O.layer_norm(f["x"], w["layer_norm.gamma"], w["layer_norm.beta"]), "float32"),
        Case("normalization_lists", model(f"x -> normalization(mean={NORM_MEAN}, variance={NORM_VAR})",
                                          x="float32[batch, 3]"),
             {"x": normal(BATCH, 3)}, lambda f, w: O.normalization(f["x"], NORM_MEAN, NORM_VAR), "float32",
             tol=(1e-5, 1e-6)),
        Case("normalization_scalars", model("x -> normalization(mean=0.5, variance=4.0)", x="float32[batch, 3]"),
             {"x": normal(BATCH, 3)}, lambda f, w: O.normalization(f["x"], 0.5, 4.0), "float32"),
        Case("normalization_weights", model("x -> normalization", x="float32[batch, 3]"), {"x": normal(BATCH, 3)},
             lambda f, w: O.normalization(f["x"], w["normalization.mean"], w["normalization.variance"]), "float32"),
        Case("embedding_int32", model("i -> embedding(10, 4)", i="int32[batch, 5]"),
             {"i": integers(BATCH, 5, lo=0, hi=10)}, lambda f, w: O.embedding(f["i"], w["embedding.embeddings"]),
             "float32"),
        Case("embedding_int64_rank1", model("i -> embedding(7, 3)", i="int64[batch]"),
             {"i": integers(BATCH, dtype="int64", lo=0, hi=7)},
             lambda f, w: O.embedding(f["i"], w["embedding.embeddings"]), "float32"),
        Case("flatten_rank3", model("x -> flatten", x="float32[batch, 3, 4]"), {"x": normal(BATCH, 3, 4)},
             lambda f, w: O.flatten(f["x"])),
        Case("flatten_rank4", model("x -> flatten", x="int64[batch, 2, 3, 2]"),
             {"x": integers(BATCH, 2, 3, 2, dtype="int64")}, lambda f, w: O.flatten(f["x"])),
        Case("flatten_rank2", model("x -> flatten", x="float32[batch, 6]"), {"x": normal(BATCH, 6)},
             lambda f, w: O.flatten(f["x"])),
        Case("reshape_layer", model("x -> reshape([3, 4])", x="float32[batch, 12]"), {"x": normal(BATCH, 12)},
             lambda f, w: O.reshape(f["x"], (3, 4))),
        Case("reshape_layer_infer", model("x -> reshape([-1, 2])", x="float32[batch, 3, 4]"),
             {"x": normal(BATCH, 3, 4)}, lambda f, w: O.reshape(f["x"], (-1, 2))),
        Case("reshape_layer_rank3", model("x -> reshape([2, 3, 2])", x="float16[batch, 3, 4]"),
             {"x": normal(BATCH, 3, 4, dtype="float16")}, lambda f, w: O.reshape(f["x"], (2, 3, 2))),
        Case("concat_layer_call", model("concat(a, b) -> dense(2)", a="float32[batch, 3]", b="float32[batch, 2]"),
             {"a": normal(BATCH, 3), "b": normal(BATCH, 2)},
             lambda f, w: O.dense(np.concatenate([f["a"], f["b"]], -1), w["dense.kernel"], w["dense.bias"]), "float32"),
        Case("concat_layer_axis", "layer join(a, b) = concat(a, b, axis=1)\n"
             + model("join(a, b)", a="float32[batch, 2, 4]", b="float32[batch, 1, 4]"),
             {"a": normal(BATCH, 2, 4), "b": normal(BATCH, 1, 4)},
             lambda f, w: np.concatenate([f["a"], f["b"]], axis=1)),
        Case("concat_layer_single", model("a -> concat", a="float32[batch, 3]"), {"a": normal(BATCH, 3)},
             lambda f, w: f["a"]),
    ]


ALL = {
    "function": function_cases(),
    "reduction": reduction_cases(),
    "shape": shape_cases(),
    "operator": operator_cases(),
    "index": index_cases(),
    "activation": activation_cases(),
    "layer": layer_cases(),
}


@pytest.mark.parametrize("case", [c.param() for c in ALL["function"]])
def test_function(case):
    run_case(case)


@pytest.mark.parametrize("case", [c.param() for c in ALL["reduction"]])
def test_reduction(case):
    run_case(case)


@pytest.mark.parametrize("case", [c.param() for c in ALL["shape"]])
def test_shape_function(case):
    run_case(case)


@pytest.mark.parametrize("case", [c.param() for c in ALL["operator"]])
def test_operator(case):
    run_case(case)


@pytest.mark.parametrize("case", [c.param() for c in ALL["index"]])
def test_index(case):
    run_case(case)


@pytest.mark.parametrize("case", [c.param() for c in ALL["activation"]])
def test_activation(case):
    run_case(case)


@pytest.mark.parametrize("case", [c.param() for c in ALL["layer"]])
def test_layer(case):
    run_case(case)


@pytest.mark.parametrize("group", list(ALL))
def test_case_ids_are_unique(group):
    ids = [c.id for c in ALL[group]]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


# --- default weights are Keras' defaults ------------------------------------------
def test_default_weights_are_keras_defaults():
    proto = compile(model("x -> dense(3) -> batch_norm -> layer_norm -> normalization", x="float32[batch, 4]"))
    w = weights(proto)
    assert list(w) == ["dense.kernel", "dense.bias", "batch_norm.gamma", "batch_norm.beta", "batch_norm.moving_mean",
                       "batch_norm.moving_variance", "layer_norm.gamma", "layer_norm.beta", "normalization.mean",
                       "normalization.variance"]
    for name, value in [("dense.bias", 0), ("batch_norm.gamma", 1), ("batch_norm.beta", 0),
                        ("batch_norm.moving_mean", 0), ("batch_norm.moving_variance", 1), ("layer_norm.gamma", 1),
                        ("layer_norm.beta", 0), ("normalization.mean", 0), ("normalization.variance", 1)]:
        assert w[name].dtype == np.float32 and (w[name] == value).all(), name
    assert w["dense.kernel"].shape == (4, 3) and np.abs(w["dense.kernel"]).max() <= math.sqrt(6 / 7)
    table = weights(compile(model("i -> embedding(50, 8)", i="int32[batch]")))["embedding.embeddings"]
    # keras.layers.Embedding: embeddings_initializer="uniform" = RandomUniform(-0.05, 0.05)
    assert table.shape == (50, 8) and table.dtype == np.float32
    assert np.abs(table).max() <= 0.05 and np.abs(table).max() > 0.045 and table.std() > 0.02


# --- initializers -------------------------------------------------------------------
FAN_IN, FAN_OUT = 128, 512      # unequal, so fan_in, fan_out and fan_avg scalings all differ
INIT_SRC = """
layer holder(x: [batch, n]) {{
    param w: [{fan_in}, {fan_out}] = {init}
    return x @ w
}}
model m(x: float32[batch, {fan_in}]) {{
    return x -> holder
}}
"""


def init_param(init: str, fan_in: int = FAN_IN, fan_out: int = FAN_OUT, seed: int = 0) -> np.ndarray:
    proto = compile(INIT_SRC.format(init=init, fan_in=fan_in, fan_out=fan_out), seed=seed)
    w = weights(proto)["holder.w"]
    assert w.shape == (fan_in, fan_out) and w.dtype == np.float32
    return w.astype(np.float64)


def check_uniform(w: np.ndarray, lo: float, hi: float) -> None:
    span = hi - lo
    assert w.min() >= lo and w.max() <= hi
    assert w.min() < lo + 0.01 * span and w.max() > hi - 0.01 * span      # the range is used
    assert abs(w.mean() - (lo + hi) / 2) < 0.01 * span
    assert w.var() == pytest.approx(span ** 2 / 12, rel=0.03)
    counts, _ = np.histogram(w, bins=10, range=(lo, hi))                  # flat
    assert counts.min() > 0.9 * w.size / 10 and counts.max() < 1.1 * w.size / 10


def check_truncated_normal(w: np.ndarray, std: float) -> None:
    """Keras' variance-scaling "truncated_normal": N(0, std / .8796) cut at 2 of its stddevs."""
    cut = 2 * std / O.TRUNCATION_STDDEV
    assert np.abs(w).max() <= cut * (1 + 1e-6)
    assert np.abs(w).max() > 0.97 * cut                                  # the tails go out to the cut
    assert abs(w.mean()) < 0.02 * std
    assert w.std() == pytest.approx(std, rel=0.02)
    inner = (np.abs(w) < cut / 2).mean()                                  # P(|z| < 1 | |z| < 2) = 0.7152
    assert inner == pytest.approx(math.erf(1 / math.sqrt(2)) / math.erf(2 / math.sqrt(2)), abs=0.01)


VARIANCE_SCALING = {
    # name: (distribution, Keras variance)
    "glorot_uniform": ("uniform", 2.0 / (FAN_IN + FAN_OUT)),
    "glorot_normal": ("normal", 2.0 / (FAN_IN + FAN_OUT)),
    "he_uniform": ("uniform", 2.0 / FAN_IN),
    "he_normal": ("normal", 2.0 / FAN_IN),
    "lecun_uniform": ("uniform", 1.0 / FAN_IN),
    "lecun_normal": ("normal", 1.0 / FAN_IN),
}


@pytest.mark.parametrize("name", list(VARIANCE_SCALING))
def test_initializer_variance_scaling(name):
    distribution, variance = VARIANCE_SCALING[name]
    w = init_param(name)
    if distribution == "uniform":
        limit = math.sqrt(3 * variance)     # glorot: sqrt(6 / (fan_in + fan_out)), he: sqrt(6 / fan_in)
        check_uniform(w, -limit, limit)
    else:
        check_truncated_normal(w, math.sqrt(variance))


@pytest.mark.parametrize("name", ["zeros", "ones"])
def test_initializer_constant_names(name):
    w = init_param(name, 4, 3)
    assert (w == {"zeros": 0.0, "ones": 1.0}[name]).all()


def test_initializer_constant_value():
    assert (init_param("constant(0.25)", 4, 3) == 0.25).all()


def test_initializer_random_normal_args():
    w = init_param("random_normal(1.5, 0.5)")
    assert w.mean() == pytest.approx(1.5, abs=0.01) and w.std() == pytest.approx(0.5, rel=0.02)
    assert np.abs(w - 1.5).max() > 3 * 0.5          # not truncated


def test_initializer_random_uniform_args():
    check_uniform(init_param("random_uniform(-0.3, 0.7)"), -0.3, 0.7)


def test_initializer_keyword_arguments():
    w = init_param("random_normal(mean=1.5, stddev=0.5)")
    assert w.mean() == pytest.approx(1.5, abs=0.01) and w.std() == pytest.approx(0.5, rel=0.02)


def test_initializer_dense_kernel_initializer_call():
    w = weights(compile(model("x -> dense(3, kernel_initializer=constant(0.5))", x="float32[batch, 4]")))
    assert (w["dense.kernel"] == 0.5).all()


def test_initializer_random_normal_default():
    """keras.initializers.RandomNormal(): mean 0, stddev 0.05, not truncated."""
    w = init_param("random_normal")
    assert abs(w.mean()) < 0.001 and w.std() == pytest.approx(0.05, rel=0.02)
    assert np.abs(w).max() > 3 * 0.05


def test_initializer_random_uniform_default():
    """keras.initializers.RandomUniform(): [-0.05, 0.05]."""
    check_uniform(init_param("random_uniform"), -0.05, 0.05)


@pytest.mark.parametrize("spec, check", [
    (("constant", (0.25,)), lambda w: (w == 0.25).all()),
    (("random_normal", (1.5, 0.5)), lambda w: abs(w.mean() - 1.5) < 0.01 and abs(w.std() / 0.5 - 1) < 0.02),
    (("random_normal", (1.5,)), lambda w: abs(w.mean() - 1.5) < 0.001 and abs(w.std() / 0.05 - 1) < 0.02),
    (("random_uniform", (-0.3, 0.7)), lambda w: w.min() >= -0.3 and w.max() <= 0.7 and abs(w.mean() - 0.2) < 0.01),
    (("truncated_normal", (0.0, 0.1)), lambda w: np.abs(w).max() <= 0.2 and abs(w.std() / (0.1 * .8796) - 1) < .02),
], ids=["constant", "random_normal", "random_normal_mean_only", "random_uniform", "truncated_normal"])
def test_initializer_arguments_in_initializers_module(spec, check):
    """The numeric side of parameterized initializers, below the call syntax."""
    from modelc.compiler.initializers import initialize
    from modelc.compiler.ir import InitSpec
    w = initialize(InitSpec(*spec), (FAN_IN, FAN_OUT), np.dtype(np.float32), seed=0, name="w")
    assert w.dtype == np.float32 and w.shape == (FAN_IN, FAN_OUT)
    assert check(w.astype(np.float64))


def test_initializer_through_dense_kernel_initializer():
    w = weights(compile(model(f"x -> dense({FAN_OUT}, kernel_initializer=he_uniform)", x=f"float32[batch, {FAN_IN}]")))
    limit = math.sqrt(6 / FAN_IN)
    check_uniform(w["dense.kernel"].astype(np.float64), -limit, limit)
    assert (w["dense.bias"] == 0).all()


@pytest.mark.parametrize("name", ["glorot_uniform", "he_normal", "random_normal", "random_uniform"])
def test_initializer_seed_reproducible(name):
    a, b, c = (init_param(name, 16, 8, seed=s) for s in (7, 7, 8))
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)


def test_seed_reproducible_whole_model():
    src = model("x -> dense(8) -> dense(8) -> layer_norm -> dense(1)", x="float32[batch, 4]")
    a, b, c = (compile(src, seed=s) for s in (3, 3, 4))
    assert a.SerializeToString() == b.SerializeToString()
    wa, wc = weights(a), weights(c)
    assert not np.array_equal(wa["dense.kernel"], wc["dense.kernel"])
    assert not np.array_equal(wa["dense.kernel"], wa["dense_1.kernel"][:4])   # one stream per weight


# --- inline, symbolic batch, opsets --------------------------------------------------
USER_LAYERS = """
layer my_dense(units: int, activation: layer = linear)(x: [..., n]) {
    param kernel: [n, units] = glorot_normal
    param bias: [units] = zeros
    return activation(x @ kernel + bias)
}
layer residual(units: int)(x: [batch, units]) {
    h = x -> dense(units, activation=elu) -> layer_norm -> dense(units, activation=gelu)
    return x + h
}
model m(x: float32[batch, 8]) {
    h = x -> my_dense(6, activation=leaky_relu(0.1)) -> repeat 2 residual(6)
    return concat(x, h) -> dense(1) -> exponential
}
"""


def user_layers_oracle(x: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    h = O.dense(x, w["my_dense.kernel"], w["my_dense.bias"], lambda z: O.leaky_relu(z, 0.1))
    for r in ("residual", "residual_1"):
        g = O.dense(h, w[f"{r}.dense.kernel"], w[f"{r}.dense.bias"], O.elu)
        g = O.layer_norm(g, w[f"{r}.layer_norm.gamma"], w[f"{r}.layer_norm.beta"])
        h = h + O.dense(g, w[f"{r}.dense_1.kernel"], w[f"{r}.dense_1.bias"], O.gelu)
    return O.dense(np.concatenate([x, h], -1), w["dense.kernel"], w["dense.bias"], O.exponential)


def test_inline_matches_functions():
    functions = randomize_weights(compile(USER_LAYERS, seed=5), seed=9)
    inline = randomize_weights(compile(USER_LAYERS, seed=5, inline=True), seed=9)
    assert functions.functions and not inline.functions
    assert weights(functions).keys() == weights(inline).keys()
    for k in weights(functions):
        np.testing.assert_array_equal(weights(functions)[k], weights(inline)[k], err_msg=k)
    x = np.random.default_rng(0).normal(size=(7, 8)).astype(np.float32)
    want = user_layers_oracle(x, weights(functions)).astype(np.float32)
    for run in (run_ort, run_reference):
        (a,), (b,) = run(functions, {"x": x}), run(inline, {"x": x})
        np.testing.assert_array_equal(a, b)
        assert_matches(a, want, f"user layers on {run.__name__}")


def test_symbolic_batch_accepts_any_size():
    proto = randomize_weights(compile(USER_LAYERS, seed=1), seed=2)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == 8
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    w = weights(proto)
    for n in (1, 2, 13):
        x = np.random.default_rng(n).normal(size=(n, 8)).astype(np.float32)
        want = user_layers_oracle(x, w).astype(np.float32)
        for run in (run_ort, run_reference):
            (y,) = run(proto, {"x": x})
            assert_matches(y, want, f"batch {n} on {run.__name__}")


OPSET_SRC = """
model m(x: float32[batch, 3, 4]) {
    a = mean(x, axis=1) + max(x, axis=-1, keepdims=true)[:, 0] + min(x, axis=[1, 2], keepdims=true)[:, 0]
    b = sum(x, axis=2) -> layer_norm
    return a, b
}
"""


def opset_oracle(x: np.ndarray, w: dict) -> list[np.ndarray]:
    x = x.astype(np.float64)
    a = x.mean(axis=1) + x.max(axis=-1, keepdims=True)[:, 0] + x.min(axis=(1, 2), keepdims=True)[:, 0]
    b = O.layer_norm(x.sum(axis=2), w["layer_norm.gamma"], w["layer_norm.beta"])
    return [a.astype(np.float32), b.astype(np.float32)]


@pytest.mark.parametrize("opset", [
    pytest.param(None, id="default"),
    pytest.param(18, id="18"),
    pytest.param(17, id="17"),   # ReduceMean/Max/Min take axes as an attribute before 18
])
def test_opsets_with_reductions_and_layer_norm(opset):
    proto = randomize_weights(compile(OPSET_SRC, opset=opset), seed=4)
    if opset is not None:
        assert proto.opset_import[0].version == opset
    onnx.checker.check_model(proto, full_check=True)
    x = np.random.default_rng(0).normal(size=(BATCH, 3, 4)).astype(np.float32)
    want = opset_oracle(x, weights(proto))
    for run in (run_ort, run_reference):
        for i, (g, e) in enumerate(zip(run(proto, {"x": x}), want)):
            assert_matches(g, e, f"opset {opset} output {i} on {run.__name__}")


@pytest.mark.parametrize("opset", [None, 17])
def test_opsets_layer_norm_and_sum(opset):
    """The parts of the opset model that opset 17 does support (ReduceSum takes axes as an input since 13)."""
    src = model("sum(x, axis=2) -> layer_norm", x="float32[batch, 3, 4]")
    proto = randomize_weights(compile(src, opset=opset), seed=4)
    onnx.checker.check_model(proto, full_check=True)
    x = np.random.default_rng(0).normal(size=(BATCH, 3, 4)).astype(np.float32)
    w = weights(proto)
    want = O.layer_norm(x.astype(np.float64).sum(axis=2), w["layer_norm.gamma"], w["layer_norm.beta"])
    for run in (run_ort, run_reference):
        assert_matches(run(proto, {"x": x})[0], want.astype(np.float32), f"opset {opset} on {run.__name__}")


# --- misuse is a diagnostic, never a wrong graph or a traceback ---------------------------
@pytest.mark.parametrize("body, inputs, message", [
    ("max(a, b, axis=1)", {"a": "float32[4, 6]", "b": "float32[4, 6]"}, "element-wise and takes no axis"),
    ("min(a, 0.5, keepdims=true)", {"a": "float32[4, 6]"}, "element-wise and takes no axis"),
    ("argmax(a, axis=[0, 1])", {"a": "float32[4, 6]"}, "axis must be one int"),
    ("concat(a, a, axis=[0, 1])", {"a": "float32[4, 6]"}, "axis must be one int"),
    ("softmax(a, axis=[0, 1])", {"a": "float32[4, 6]"}, "axis must be one int"),
    ("softmax(a, axis=2)", {"a": "float32[4, 6]"}, "out of range"),
    ("a -> softmax(axis=5)", {"a": "float32[batch, 6]"}, "out of range"),
    ("reshape(a, [0, -1])", {"a": "float32[4, 6]"}, "sizes >= 1"),
    ("reshape(a, [0, 6])", {"a": "float32[batch, 6]"}, "sizes >= 1"),
    ("reshape(a, [5, -1])", {"a": "float32[4, 6]"}, "cannot reshape"),
    ("a -> reshape([4])", {"a": "float32[batch, 6]"}, "cannot reshape"),
    ("transpose(a, perm=[0, 0])", {"a": "float32[4, 6]"}, "not a permutation"),
    ("a -> dense(2)", {"a": "int32[batch, 3]"}, "floating-point"),
    ("a -> embedding(5, 2)", {"a": "float32[batch, 3]"}, "integer indices"),
    ("a[:, 6]", {"a": "float32[batch, 6]"}, "out of range"),
], ids=["max_several_with_axis", "min_several_with_keepdims", "argmax_axis_list", "concat_axis_list",
        "softmax_axis_list", "softmax_axis_out_of_range", "softmax_layer_axis_out_of_range", "reshape_zero_infer",
        "reshape_zero", "reshape_indivisible", "reshape_layer_size", "transpose_not_permutation", "dense_int_input",
        "embedding_float_input", "index_out_of_range"])
def test_misuse_is_a_diagnostic(body, inputs, message):
    with pytest.raises(modelc.ModelcError) as info:
        compile(model(body, **inputs))
    text = str(info.value)
    assert message in text and "internal error" not in text, text
