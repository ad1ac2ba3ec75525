"""Keras 3 (jax backend) as the test oracle: imported here once, with the backend set before the import.

`make test` installs keras and jax (the test extra), so in CI a missing Keras is a failure, not a skip."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")   # never probe for accelerators from a test

if os.environ.get("CI"):
    import keras
else:
    keras = pytest.importorskip("keras")

__all__ = ["keras"]
