"""Attention: multi_head_attention with Keras' MultiHeadAttention weights and names."""
from __future__ import annotations

from .layers_base import BuiltinLayer

LAYERS: list[BuiltinLayer] = []
