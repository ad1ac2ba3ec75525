"""Shared test helpers: paths, the installed CLI, random feeds for a model's inputs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "samples").glob("*.model"))
MODELC = str(Path(sys.executable).parent / "modelc")


def fuzz_settings(ci_examples: int, **options):
    """A fuzzer's hypothesis settings. In the normal suite: `ci_examples`, the same ones every run (derandomized,
    no example database). Under `make fuzz` (HYPOTHESIS_PROFILE=fuzz, registered in conftest.py): the
    profile's number of examples (EXAMPLES), random ones."""
    from hypothesis import settings
    if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz":
        return settings(settings.get_profile("fuzz"), **options)
    return settings(max_examples=ci_examples, deadline=None, derandomize=True, database=None, **options)


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([MODELC, *map(str, args)], capture_output=True, text=True, cwd=cwd)


def random_feeds(proto, batch: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs for every graph input: normal floats, small non-negative ints."""
    import onnx
    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in proto.graph.input:
        t = inp.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else batch for d in t.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)
        if np.issubdtype(dtype, np.integer):
            feeds[inp.name] = rng.integers(0, 4, size=shape).astype(dtype)
        else:
            feeds[inp.name] = rng.normal(size=shape).astype(dtype)
    return feeds
