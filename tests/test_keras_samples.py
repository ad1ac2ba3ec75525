"""Samples against the same network built in Keras 3, with the same weights: Keras' weights are written to
.safetensors under modelc's weight names, bound by `modelc compile --weights` as a user would, and the
compiled model's outputs must match Keras' predictions (float32, within 1e-5 relative)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnxruntime as ort
from safetensors.numpy import save_file

from helpers import run_cli
from keras_oracle import keras
from test_samples import demo_r2


def keras_book() -> tuple["keras.Model", list[tuple[str, "keras.layers.Layer"]]]:
    """The book's regressor as the book writes it; with each Keras layer that owns weights, in modelc's
    instance naming (dense, residual_block, residual_block_1, ..., dense_1)."""
    class ResidualBlock(keras.layers.Layer):
        def __init__(self, n_layers: int, n_neurons: int, **kwargs):
            super().__init__(**kwargs)
            self.hidden = [keras.layers.Dense(n_neurons, activation="elu", kernel_initializer="he_normal")
                           for _ in range(n_layers)]

        def call(self, inputs):
            z = inputs
            for layer in self.hidden:
                z = layer(z)
            return inputs + z

    inputs = keras.Input((8,))
    first = keras.layers.Dense(30, activation="elu")
    blocks = [ResidualBlock(2, 30) for _ in range(1 + 3 + 1)]
    last = keras.layers.Dense(1)
    z = first(inputs)
    for block in blocks:
        z = block(z)
    model = keras.Model(inputs, last(z))
    named = [("dense", first), *((f"residual_block{f'_{i}' if i else ''}", b) for i, b in enumerate(blocks)),
             ("dense_1", last)]
    return model, named


def dense_weights(prefix: str, layer: "keras.layers.Dense") -> dict[str, np.ndarray]:
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in layer.weights)
    return {f"{prefix}.kernel": kernel, f"{prefix}.bias": bias}


def test_book_matches_keras(tmp_path):
    keras.utils.set_random_seed(3)
    model, named = keras_book()
    weights: dict[str, np.ndarray] = {}
    for name, layer in named:
        if isinstance(layer, keras.layers.Dense):
            weights.update(dense_weights(name, layer))
        else:
            for j, dense in enumerate(layer.hidden):
                weights.update(dense_weights(f"{name}.dense{f'_{j}' if j else ''}", dense))
    save_file(weights, tmp_path / "book.safetensors")
    out = tmp_path / "book.onnx"
    result = run_cli("compile", "samples/book.model", "--weights", tmp_path / "book.safetensors", "-o", out)
    assert result.returncode == 0, result.stderr
    x = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    (got,) = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    want = np.asarray(model.predict(x, verbose=0))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_the_training_script_writes_the_weights_the_demo_evaluates(tmp_path):
    """samples/train_housing.py (Keras, jax backend) fits housing.model's network on demo_data.py's houses."""
    weights = tmp_path / "housing.safetensors"
    trained = subprocess.run([sys.executable, "samples/train_housing.py", str(weights)], capture_output=True,
                             text=True)
    assert trained.returncode == 0, trained.stderr
    r2, _ = demo_r2(str(weights), tmp_path)
    assert r2 > 0.5
