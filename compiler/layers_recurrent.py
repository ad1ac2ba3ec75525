"""Recurrent layers (simple_rnn, lstm, gru, bidirectional) as ONNX's RNN/LSTM/GRU operators, with Keras'
weights and names."""
from __future__ import annotations

from .layers_base import BuiltinLayer

LAYERS: list[BuiltinLayer] = []
