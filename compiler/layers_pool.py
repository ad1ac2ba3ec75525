"""Pooling and shape layers (max/avg/global pooling, zero padding, cropping, upsampling, permute,
repeat_vector, rescaling): Keras' semantics."""
from __future__ import annotations

from .layers_base import BuiltinLayer

LAYERS: list[BuiltinLayer] = []
