"""Keras weight initializers, drawn with numpy from one seed per weight name."""
from __future__ import annotations

import math
import zlib
from typing import Callable

import numpy as np

from .ir import InitSpec

# name -> (number of arguments it accepts, defaults)
INITIALIZER_ARGS: dict[str, tuple[float, ...]] = {
    "zeros": (), "ones": (), "constant": (0.0,),
    "glorot_uniform": (), "glorot_normal": (), "he_uniform": (), "he_normal": (),
    "lecun_uniform": (), "lecun_normal": (),
    "random_normal": (0.0, 0.05), "random_uniform": (-0.05, 0.05),
    "truncated_normal": (0.0, 0.05),
}

# Keras draws "truncated_normal" variance scaling from N(0, s / .8796...) cut at 2 std.
TRUNCATION_STDDEV = 0.87962566103423978


def compute_fans(shape: tuple[int, ...]) -> tuple[float, float]:
    """Keras' compute_fans: the last two axes, times the receptive field for conv kernels."""
    if len(shape) == 0:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    if len(shape) == 2:
        return float(shape[0]), float(shape[1])
    receptive = math.prod(shape[:-2])
    return float(shape[-2] * receptive), float(shape[-1] * receptive)


def _truncated_normal(rng: np.random.Generator, mean: float, stddev: float, shape: tuple[int, ...]) -> np.ndarray:
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2.0
    while bad.any():  # redraw the tails, as tf.random.truncated_normal does
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2.0
    return mean + stddev * out


def _variance_scaling(scale: float, mode: str, distribution: str) -> Callable:
    def draw(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_avg": (fan_in + fan_out) / 2.0}[mode]
        variance = scale / max(1.0, n)
        if distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return rng.uniform(-limit, limit, shape)
        return _truncated_normal(rng, 0.0, math.sqrt(variance) / TRUNCATION_STDDEV, shape)
    return draw


SCALING = {
    "glorot_uniform": _variance_scaling(1.0, "fan_avg", "uniform"),
    "glorot_normal": _variance_scaling(1.0, "fan_avg", "normal"),
    "he_uniform": _variance_scaling(2.0, "fan_in", "uniform"),
    "he_normal": _variance_scaling(2.0, "fan_in", "normal"),
    "lecun_uniform": _variance_scaling(1.0, "fan_in", "uniform"),
    "lecun_normal": _variance_scaling(1.0, "fan_in", "normal"),
}


def weight_rng(seed: int, name: str) -> np.random.Generator:
    """One stream per weight: a weight's values depend on the seed and its name only.

    Philox takes its key directly; default_rng would hash a SeedSequence per weight, which is
    most of the cost of initializing 10,000 small layers.
    """
    return np.random.Generator(np.random.Philox(key=(seed % 2**64) << 32 | zlib.crc32(name.encode())))


def initialize(spec: InitSpec, shape: tuple[int, ...], dtype: np.dtype, seed: int, name: str) -> np.ndarray:
    defaults = INITIALIZER_ARGS[spec.name]
    args = tuple(spec.args) + defaults[len(spec.args):]  # random_normal(1.5) keeps stddev 0.05, as Keras
    if spec.name in ("zeros", "ones", "constant"):  # no draw: filled in the target dtype directly
        fill = {"zeros": 0.0, "ones": 1.0}.get(spec.name, args[0] if args else 0.0)
        return np.full(shape, fill, dtype=dtype)
    rng = weight_rng(seed, name)
    if spec.name in SCALING:
        values = SCALING[spec.name](rng, shape)
    elif spec.name == "random_normal":
        values = rng.normal(args[0], args[1], shape)
    elif spec.name == "random_uniform":
        values = rng.uniform(args[0], args[1], shape)
    elif spec.name == "truncated_normal":
        values = _truncated_normal(rng, args[0], args[1], shape)
    else:
        raise KeyError(spec.name)
    return np.ascontiguousarray(values, dtype=dtype)
