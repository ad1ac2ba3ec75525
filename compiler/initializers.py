"""The one table of Keras' weight initializers: each with its arguments (names, defaults, aliases) and how
it draws, with numpy, from one random stream per weight name and seed.

numpy is imported when a weight is drawn, never on import: check.py reads the table without loading it.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .arguments import bind_arguments
from .ir import InitSpec
from .source import Span, error
from .values import describe

if TYPE_CHECKING:
    import numpy as np

Draw = Callable[["np.random.Generator", tuple[float, ...], tuple[int, ...]], "np.ndarray"]

# Keras draws "truncated_normal" variance scaling from N(0, s / .8796...) cut at 2 std.
TRUNCATION_STDDEV = 0.87962566103423978


@dataclass(frozen=True)
class Initializer:
    params: tuple[str, ...] = ()                 # Keras' argument names, in order
    defaults: tuple[float, ...] = ()             # Keras' defaults
    fill: Callable[[tuple[float, ...]], float] | None = None   # a constant: no random draw
    draw: Draw | None = None                     # (rng, args, shape) -> float64 values
    aliases: dict[str, str] = field(default_factory=dict)      # other names of arguments


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


def truncated_normal(rng: "np.random.Generator", mean: float, stddev: float, shape: tuple[int, ...]) -> "np.ndarray":
    import numpy as np
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2.0
    while bad.any():  # redraw the tails, as tf.random.truncated_normal does
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2.0
    return mean + stddev * out


def orthogonal(rng: "np.random.Generator", gain: float, shape: tuple[int, ...]) -> "np.ndarray":
    """Keras' Orthogonal: the Q of a normal matrix's QR (signs fixed by R's diagonal), over the last axis."""
    import numpy as np
    rows, cols = math.prod(shape[:-1]), (shape[-1] if shape else 1)
    q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
    q = q * np.sign(np.diag(r))
    return gain * (q.T if rows < cols else q).reshape(shape)


def variance_scaling(scale: float, mode: str, distribution: str) -> Initializer:
    def draw(rng: "np.random.Generator", args: tuple[float, ...], shape: tuple[int, ...]) -> "np.ndarray":
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_avg": (fan_in + fan_out) / 2.0}[mode]
        variance = scale / max(1.0, n)
        if distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return rng.uniform(-limit, limit, shape)
        return truncated_normal(rng, 0.0, math.sqrt(variance) / TRUNCATION_STDDEV, shape)
    return Initializer(draw=draw)


INITIALIZERS: dict[str, Initializer] = {
    "zeros": Initializer(fill=lambda args: 0.0),
    "ones": Initializer(fill=lambda args: 1.0),
    "constant": Initializer(("value",), (0.0,), fill=lambda args: args[0]),
    "glorot_uniform": variance_scaling(1.0, "fan_avg", "uniform"),
    "glorot_normal": variance_scaling(1.0, "fan_avg", "normal"),
    "he_uniform": variance_scaling(2.0, "fan_in", "uniform"),
    "he_normal": variance_scaling(2.0, "fan_in", "normal"),
    "lecun_uniform": variance_scaling(1.0, "fan_in", "uniform"),
    "lecun_normal": variance_scaling(1.0, "fan_in", "normal"),
    "random_normal": Initializer(("mean", "stddev"), (0.0, 0.05),
                                 draw=lambda rng, args, shape: rng.normal(args[0], args[1], shape)),
    # random_uniform(lo, hi), as LANGUAGE.md writes it, and Keras' minval/maxval
    "random_uniform": Initializer(("minval", "maxval"), (-0.05, 0.05),
                                  draw=lambda rng, args, shape: rng.uniform(args[0], args[1], shape),
                                  aliases={"lo": "minval", "hi": "maxval"}),
    "truncated_normal": Initializer(("mean", "stddev"), (0.0, 0.05),
                                    draw=lambda rng, args, shape: truncated_normal(rng, args[0], args[1], shape)),
    "orthogonal": Initializer(("gain",), (1.0,), draw=lambda rng, args, shape: orthogonal(rng, args[0], shape)),
}


def bind_initializer(name: str, args: list[Any], kwargs: dict[str, Any], loc: Span | None) -> InitSpec:
    """`constant(0.1)`, `random_normal(mean=0, stddev=0.1)`: Keras' argument names and defaults."""
    entry = INITIALIZERS[name]
    kwargs = {entry.aliases.get(k, k): v for k, v in kwargs.items()}
    given = bind_arguments(name, entry.params, args, kwargs, loc)
    values = list(entry.defaults)
    for i, k in enumerate(entry.params):
        if k in given:
            v = given[k]
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise error(loc, f"{name} argument '{k}' must be a number, got {describe(v)}")
            values[i] = float(v)
    return InitSpec(name, tuple(values))


def weight_rng(seed: int, name: str) -> "np.random.Generator":
    """One stream per weight: a weight's values depend on the seed and its name only.

    Philox takes its key directly; default_rng would hash a SeedSequence per weight, which is
    most of the cost of initializing 10,000 small layers.
    """
    import numpy as np
    return np.random.Generator(np.random.Philox(key=(seed % 2**64) << 32 | zlib.crc32(name.encode())))


def initialize(spec: InitSpec, shape: tuple[int, ...], dtype: "np.dtype", seed: int, name: str) -> "np.ndarray":
    import numpy as np
    entry = INITIALIZERS[spec.name]
    args = tuple(spec.args) + entry.defaults[len(spec.args):]  # random_normal(1.5) keeps stddev 0.05, as Keras
    if entry.fill is not None:  # no draw: filled in the target dtype directly
        return np.full(shape, entry.fill(args), dtype=dtype)
    assert entry.draw is not None, spec.name
    return np.ascontiguousarray(entry.draw(weight_rng(seed, name), args, shape), dtype=dtype)
