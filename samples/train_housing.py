"""Train the weights `make demo` evaluates: samples/housing.model's network built in Keras 3 (jax backend),
fitted on samples/demo_data.py's houses, written to samples/housing.safetensors under modelc's weight names
(`modelc params samples/housing.model` lists them).

Keras is in the test extra, never a run-time dependency: `pip install -e '.[cpu,test]'`, then
`python samples/train_housing.py [OUT.safetensors]`. A few seconds on a CPU; the seed makes it repeatable.
"""
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import keras  # noqa: E402 - the backend is chosen before the import
import numpy as np  # noqa: E402
from demo_data import houses  # noqa: E402 - the demo's data, from the script beside this one
from safetensors.numpy import save_file  # noqa: E402

SEED, EPOCHS, BATCH = 0, 8, 128


def housing_network() -> tuple[keras.Model, dict[str, keras.layers.Dense]]:
    """housing.model in Keras, with each Dense under the weight prefix modelc gives its instance."""
    dense = {"my_dense": keras.layers.Dense(30, activation="relu")}   # my_dense(30, activation=relu)
    for i in range(3):                                                   # repeat 3 residual(30)
        block = f"residual{f'_{i}' if i else ''}"
        dense[f"{block}.dense"] = keras.layers.Dense(30, activation="elu")
        dense[f"{block}.dense_1"] = keras.layers.Dense(30, activation="elu")
    dense["dense"] = keras.layers.Dense(1)
    x = keras.Input((8,))
    h = dense["my_dense"](x)
    for i in range(3):
        block = f"residual{f'_{i}' if i else ''}"
        h = h + dense[f"{block}.dense_1"](dense[f"{block}.dense"](h))
    y = keras.ops.exp(dense["dense"](keras.ops.concatenate([x, h], axis=-1)))   # concat(x, h) -> dense(1) -> exp
    return keras.Model(x, y), dense


def main(out: str) -> None:
    keras.utils.set_random_seed(SEED)
    table = houses()
    x = np.stack([table[f"f{i}"].to_numpy() for i in range(8)], axis=1)
    y = table["price"].to_numpy().astype(np.float32)[:, None]
    model, dense = housing_network()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    history = model.fit(x, y, epochs=EPOCHS, batch_size=BATCH, verbose=0)
    weights = {}
    for prefix, layer in dense.items():
        kernel, bias = (keras.ops.convert_to_numpy(w) for w in layer.weights)
        weights.update({f"{prefix}.kernel": kernel, f"{prefix}.bias": bias})
    save_file(weights, out)
    print(f"wrote {out}: {len(weights)} weights, training mse {history.history['loss'][-1]:.4f} "
          f"(price variance {y.var():.4f})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "samples/housing.safetensors")
