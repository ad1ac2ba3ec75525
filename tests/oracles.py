"""Numpy oracles with Keras semantics, written from the formulas (not from the compiler's code).

Every oracle computes in float64 from the (possibly float16) inputs it is given; the
tests cast the result to the model's output dtype before comparing.  Also here: the
helpers that compile a program, run it on onnxruntime (CPU) and on onnx's reference
evaluator, read the compiled weights, and replace them with random values so that a
formula is exercised by weights other than Keras' ones/zeros defaults.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

import modelc

# --- Keras constants --------------------------------------------------------
SELU_ALPHA = 1.6732632423543772848170429916717   # keras.activations.selu
SELU_SCALE = 1.0507009873554804934193349852946
KERAS_EPSILON = 1e-7                              # keras.backend.epsilon(), Normalization's floor
TRUNCATION_STDDEV = 0.87962566103423978           # std of N(0, 1) truncated at +-2


# --- activations (keras.activations) ----------------------------------------
def f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def linear(x):
    return f64(x)


def relu(x):
    return np.maximum(f64(x), 0.0)


def elu(x, alpha=1.0):
    x = f64(x)
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


def selu(x):
    x = f64(x)
    return SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0.0)))


def sigmoid(x):
    x = f64(x)
    return 1.0 / (1.0 + np.exp(-x))


def tanh(x):
    return np.tanh(f64(x))


def softmax(x, axis=-1):
    x = f64(x)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softplus(x):
    return np.logaddexp(0.0, f64(x))      # log(1 + exp(x)), stable


def softsign(x):
    x = f64(x)
    return x / (1.0 + np.abs(x))


_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu(x):
    """keras.activations.gelu(x, approximate=False)."""
    x = f64(x)
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def silu(x):
    x = f64(x)
    return x * sigmoid(x)


def exponential(x):
    return np.exp(f64(x))


def leaky_relu(x, alpha=0.2):
    x = f64(x)
    return np.where(x >= 0, x, alpha * x)


ACTIVATIONS = {
    "linear": linear, "relu": relu, "elu": elu, "selu": selu, "sigmoid": sigmoid, "tanh": tanh,
    "softmax": softmax, "softplus": softplus, "softsign": softsign, "gelu": gelu, "silu": silu,
    "exponential": exponential, "leaky_relu": leaky_relu,
}


# --- layers (keras.layers) --------------------------------------------------
def dense(x, kernel, bias=None, activation=linear):
    y = f64(x) @ f64(kernel)
    if bias is not None:
        y = y + f64(bias)
    return activation(y)


def batch_norm(x, gamma, beta, moving_mean, moving_variance, epsilon=1e-3):
    """BatchNormalization(training=False) over the last axis."""
    x = f64(x)
    return (x - f64(moving_mean)) / np.sqrt(f64(moving_variance) + epsilon) * f64(gamma) + f64(beta)


def layer_norm(x, gamma, beta, epsilon=1e-3):
    """LayerNormalization(axis=-1): moments over the last axis, biased variance."""
    x = f64(x)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + epsilon) * f64(gamma) + f64(beta)


def normalization(x, mean, variance):
    """Normalization: (x - mean) / max(sqrt(variance), epsilon())."""
    return (f64(x) - f64(mean)) / np.maximum(np.sqrt(f64(variance)), KERAS_EPSILON)


def embedding(indices, table):
    return f64(table)[np.asarray(indices)]


def flatten(x):
    x = np.asarray(x)
    return x.reshape(x.shape[0], -1)


def reshape(x, target):
    """keras.layers.Reshape(target): the batch axis is kept, target may hold one -1."""
    x = np.asarray(x)
    return x.reshape((x.shape[0], *target))


# --- running a program ------------------------------------------------------
def compile(src: str, **kwargs) -> onnx.ModelProto:   # noqa: A001 - mirrors modelc.compile_source
    return modelc.compile_source(src, **kwargs)


def weights(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}


def randomize_weights(proto: onnx.ModelProto, seed: int = 0, positive: tuple[str, ...] = ("variance",)
                      ) -> onnx.ModelProto:
    """A copy of proto whose initializers are random (positive where the name says a variance)."""
    rng = np.random.default_rng(seed)
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    for t in out.graph.initializer:
        a = numpy_helper.to_array(t)
        if np.issubdtype(a.dtype, np.floating):
            if any(p in t.name for p in positive):
                new = rng.uniform(0.25, 2.0, a.shape)
            else:
                new = rng.normal(0.0, 1.0, a.shape)
            t.CopyFrom(numpy_helper.from_array(new.astype(a.dtype), t.name))
    return out


def run_ort(proto: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def run_reference(proto: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(o) for o in ReferenceEvaluator(proto).run(None, feeds)]


TOLERANCES = {   # (rtol, atol) per output dtype
    np.dtype(np.float64): (1e-7, 1e-9),
    np.dtype(np.float32): (1e-5, 1e-6),
    np.dtype(np.float16): (1e-3, 1e-3),
}


def assert_matches(got: np.ndarray, want: np.ndarray, what: str, tol: tuple[float, float] | None = None) -> None:
    """Same dtype and shape; floats within the dtype's tolerance, everything else exactly."""
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, expected {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    if np.issubdtype(want.dtype, np.floating):
        rtol, atol = tol or TOLERANCES[want.dtype]
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol,
                                   err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)
