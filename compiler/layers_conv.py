"""Convolution layers (conv1d/2d/3d, depthwise, separable, transposed): Keras' semantics, padding and weight names."""
from __future__ import annotations

from .layers_base import BuiltinLayer

LAYERS: list[BuiltinLayer] = []
