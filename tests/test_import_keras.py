"""`modelc import` against Keras 3: each model is built in Keras, saved as .keras (and as a legacy .h5 where
Keras still writes it), imported by modelc in a subprocess that refuses to import Keras, TensorFlow or jax,
compiled with the imported weights, run on onnxruntime and compared with Keras' own predictions."""
from __future__ import annotations

import json
import zipfile
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_oracle import keras

import modelc

L = keras.layers
RNG = np.random.default_rng(0)
BATCH = 2

BLOCKER = """
import json, sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("keras", "tensorflow", "jax"):
            raise ImportError(f"modelc import imported {name}")
sys.meta_path.insert(0, Refuse())
import contextlib, io
from modelc.cli import main
results = []
for job in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        results.append([main(["import", *job]), err.getvalue()])
assert not [m for m in sys.modules if m.split(".")[0] in ("keras", "tensorflow", "jax")]
print(json.dumps(results))
"""


def import_without_keras(jobs: list[list[str]]) -> list[list]:
    """`modelc import` for each job in one fresh interpreter where importing Keras (or TF, jax) fails: each
    job's exit code and what it wrote on stderr."""
    r = subprocess.run([sys.executable, "-c", BLOCKER, json.dumps(jobs)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


# --- the models ----------------------------------------------------------------------------------------
def floats(*shape: int) -> np.ndarray:
    return RNG.normal(size=(BATCH, *shape)).astype("float32")


def ints(high: int, *shape: int) -> np.ndarray:
    return RNG.integers(0, high, size=(BATCH, *shape)).astype("int32")


def randomize(model):
    """Non-trivial weights everywhere (batch norm statistics and biases too), reproducibly."""
    rng = np.random.default_rng(1)
    for w in model.weights:
        shape = tuple(w.shape)
        if w.path.split("/")[-2].startswith("normalization"):
            continue   # an adapted Normalization keeps the statistics it computed
        if "variance" in w.path:
            w.assign(rng.uniform(0.5, 1.5, size=shape).astype(w.dtype))
        else:
            w.assign((rng.normal(size=shape) * 0.3).astype(w.dtype))
    return model


def mlp_dense():
    return keras.Sequential([keras.Input((8,)), L.Dense(16, activation="relu"), L.Dense(16, activation="tanh"),
                             L.Dense(16, use_bias=False, activation="sigmoid"), L.Dense(1)]), [floats(8)]


def mlp_norms():
    return keras.Sequential([keras.Input((8,)), L.Dense(12), L.BatchNormalization(), L.Activation("gelu"),
                             L.Dropout(0.3), L.Dense(12), L.LayerNormalization(epsilon=1e-5), L.ReLU(),
                             L.Dense(12, activation="selu"), L.UnitNormalization(), L.Dense(8, activation="softmax")]), \
        [floats(8)]


def mlp_activations():
    x = keras.Input((6,), name="x")
    h = L.Dense(8, activation=keras.activations.softplus)(x)
    h = L.LeakyReLU(negative_slope=0.1)(h)
    h = L.Dense(8, activation="swish")(h)
    h = L.ELU(alpha=0.5)(h)
    h = L.Dense(8, activation="softsign")(h)
    h = L.ReLU(max_value=6.0)(h)
    h = L.Dense(8, activation=L.LeakyReLU(negative_slope=0.3))(h)        # an activation given as a layer
    h = L.Dense(8, activation="relu6")(L.Dense(8, activation=L.ReLU(max_value=6.0))(h))
    h = L.Softmax()(L.Dense(4, activation="exponential")(h))
    return keras.Model(x, h), [floats(6)]


def mlp_normalization():
    x = keras.Input((5,))
    adapted = L.Normalization()
    adapted.adapt(RNG.normal(2.0, 3.0, size=(64, 5)).astype("float32"))
    fixed = L.Normalization(mean=[1.0, 2.0, 3.0, 4.0, 5.0], variance=[1.0, 4.0, 9.0, 1.0, 0.25])
    h = L.Concatenate()([adapted(x), fixed(x)])
    return keras.Model(x, L.Dense(3)(h)), [floats(5)]


def mlp_embedding_reshape():
    ids = keras.Input((4,), dtype="int32", name="ids")
    h = L.Embedding(20, 6)(ids)
    h = L.Flatten()(h)
    h = L.Reshape((4, 6))(h)
    h = L.Permute((2, 1))(h)
    h = L.Flatten()(h)
    h = L.RepeatVector(2)(L.Dense(5)(h))
    return keras.Model(ids, L.Rescaling(0.5, offset=1.0)(L.Flatten()(h))), [ints(20, 4)]


def book_regressor():
    x = keras.Input((8,), name="x")
    h = L.Dense(30, activation="elu", kernel_initializer="he_normal")(x)
    for _ in range(4):
        z = h
        for _ in range(2):
            z = L.Dense(30, activation="elu", kernel_initializer="he_normal")(z)
        h = L.Add()([h, z])
    return keras.Model(x, L.Dense(1)(h)), [floats(8)]


def wide_deep():
    features = keras.Input((16,), name="features")
    categories = keras.Input((4,), dtype="int32", name="categories")
    wide = L.Dense(1, use_bias=False, name="wide")(features)
    ids = L.GlobalAveragePooling1D()(L.Embedding(100, 8)(categories))
    both = L.Concatenate()([features, ids])
    deep = L.Dense(32, activation="relu")(both)
    deep = L.Dense(32, activation="relu")(deep)
    deep = L.LayerNormalization()(deep)
    score = L.Activation("sigmoid", name="score")(L.Add()([wide, L.Dense(1, name="deep")(deep)]))
    aux = L.Dense(3, activation="softmax", name="aux")(both)
    return keras.Model([features, categories], [score, aux]), [floats(16), ints(100, 4)]


def shared_layer():
    a, b = keras.Input((6,), name="a"), keras.Input((6,), name="b")
    encode = L.Dense(4, activation="tanh", name="encode")
    tied = L.Dense(4, name="tied")
    d = L.Subtract()([encode(a), encode(b)])
    h = tied(tied(tied(d)))
    return keras.Model([a, b], L.Dense(1)(h)), [floats(6), floats(6)]


def nested_model():
    inner = keras.Sequential([keras.Input((8,)), L.Dense(8, activation="relu"), L.BatchNormalization()],
                             name="inner")
    x = keras.Input((8,), name="x")
    sub_in = keras.Input((8,))
    sub = keras.Model(sub_in, L.Dense(4)(inner(sub_in)), name="encoder")
    h = L.Multiply()([sub(x), L.Dense(4)(x)])
    return keras.Sequential([keras.Input((8,)), keras.Model(x, h, name="middle"), L.Dense(2)]), [floats(8)]


def outputs_inside_runs():
    """Outputs that a fold could swallow: a model output that also feeds a later layer, and two parallel
    layers of one kind named as Keras names them (they fold by name prefix)."""
    x = keras.Input((3,), name="x")
    p = L.Dense(2, name="p")(x)
    q = L.Dense(2, name="q")(p)
    a, b = L.Dense(2, name="dense_1")(x), L.Dense(2, name="dense_2")(x)
    return keras.Model(x, [p, q, a, b]), [floats(3)]


def merges():
    a, b = keras.Input((5,), name="a"), keras.Input((5,), name="b")
    parts = [L.Add()([a, b]), L.Subtract()([a, b]), L.Multiply()([a, b]), L.Average()([a, b]),
             L.Maximum()([a, b]), L.Minimum()([a, b])]
    return keras.Model([a, b], L.Concatenate(axis=1)(parts)), [floats(5), floats(5)]


def cnn_sample():
    """samples/resnet.model's network."""
    def block(x, filters, stride):
        y = L.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
        y = L.ReLU()(L.BatchNormalization()(y))
        y = L.BatchNormalization()(L.Conv2D(filters, 3, padding="same", use_bias=False)(y))
        if stride > 1:
            x = L.BatchNormalization()(L.Conv2D(filters, 1, strides=stride, use_bias=False)(x))
        return L.ReLU()(L.Add()([x, y]))
    image = keras.Input((32, 32, 3), name="image")
    h = L.MaxPooling2D(2)(L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, padding="same", use_bias=False)(image))))
    h = block(block(block(h, 16, 1), 32, 2), 32, 1)
    return keras.Model(image, L.Softmax()(L.Dense(10)(L.GlobalAveragePooling2D()(h)))), [floats(32, 32, 3)]


def transformer_sample():
    """samples/transformer.model's encoder (positions as a second input's embedding)."""
    tokens = keras.Input((16,), dtype="int32", name="tokens")
    positions = keras.Input((16,), dtype="int32", name="positions")
    mask = keras.ops.expand_dims(keras.ops.not_equal(tokens, 0), 1)
    x = L.Add()([L.Embedding(1000, 32)(tokens), L.Embedding(16, 32)(positions)])
    for _ in range(2):
        a = L.MultiHeadAttention(4, 8)(x, x, attention_mask=mask)
        h = L.LayerNormalization()(L.Add()([x, a]))
        f = L.Dense(32)(L.Dense(64, activation="relu")(h))
        x = L.LayerNormalization()(L.Add()([h, f]))
    out = L.Dense(4, activation="softmax")(L.Dense(32, activation="relu")(x[:, 0]))
    return keras.Model([tokens, positions], out), [ints(1000, 16), np.tile(np.arange(16, dtype="int32"), (BATCH, 1))]


def lstm_sample():
    """samples/lstm.model's network."""
    return keras.Sequential([keras.Input((12,), dtype="int32"), L.Embedding(1000, 16), L.Bidirectional(L.LSTM(32)),
                             L.Dense(2, activation="softmax")]), [ints(1000, 12)]


def recurrent_states():
    x = keras.Input((7, 5), name="x")
    seq, h = L.GRU(6, return_sequences=True, return_state=True)(x)
    r = L.SimpleRNN(4, go_backwards=True)(seq)
    b = L.Bidirectional(L.GRU(3, reset_after=False), merge_mode="sum")(seq)
    return keras.Model(x, [L.Concatenate()([r, b, h])]), [floats(7, 5)]


def conv1d_pooling():
    x = keras.Input((20, 3), name="x")
    h = L.Conv1D(8, 3, padding="causal", dilation_rate=2, activation="relu")(x)
    h = L.MaxPooling1D(2)(L.ZeroPadding1D(1)(h))
    h = L.AveragePooling1D(3, strides=1, padding="same")(L.Cropping1D((1, 2))(h))
    h = L.UpSampling1D(2)(L.SeparableConv1D(4, 3)(h))
    return keras.Model(x, L.Concatenate()([L.GlobalMaxPooling1D()(h), L.GlobalAveragePooling1D()(h)])), \
        [floats(20, 3)]


def conv2d_family():
    x = keras.Input((12, 12, 4), name="x")
    h = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(x)
    h = L.SeparableConv2D(6, 3, strides=2, padding="same", activation="relu")(h)
    h = L.Conv2DTranspose(4, 3, strides=2, padding="same")(h)
    h = L.UpSampling2D(2, interpolation="bilinear")(L.Cropping2D(((1, 1), (2, 0)))(L.ZeroPadding2D(((0, 1), (1, 1)))(h)))
    h = L.GroupNormalization(groups=2)(L.Conv2D(6, (3, 1), groups=2)(h))
    return keras.Model(x, L.GlobalMaxPooling2D()(L.AveragePooling2D(2)(h))), [floats(12, 12, 4)]


def keras_ops():
    x = keras.Input((6,), name="x")
    h = L.Dense(6)(x)
    return keras.Model(x, h[:, 1:4] * 2.0 + h[:, 0:3]), [floats(6)]


CASES = {f.__name__: f for f in (mlp_dense, mlp_norms, mlp_activations, mlp_normalization, mlp_embedding_reshape,
                                 book_regressor, wide_deep, shared_layer, nested_model, outputs_inside_runs, merges,
                                 cnn_sample,
                                 transformer_sample, lstm_sample, recurrent_states, conv1d_pooling, conv2d_family,
                                 keras_ops)}
APPLICATIONS = {"MobileNetV2": 32, "ResNet50": 32, "EfficientNetB0": 32, "DenseNet121": 32}


def build_application(name: str, size: int):
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classes=10,
                                              classifier_activation=None)
    return model, [RNG.uniform(0, 255, size=(BATCH, size, size, 3)).astype("float32")]


def prepare(root: Path, built: dict) -> dict:
    """Each model predicted by Keras, saved, and imported by modelc in one Keras-free process."""
    jobs = []
    for name, (model, feeds) in built.items():
        if name not in APPLICATIONS:
            randomize(model)
        if name in APPLICATIONS:   # compiled once: faster than eager for a deep network
            want = model.predict(feeds[0], verbose=0)
        else:
            want = model(feeds if len(feeds) > 1 else feeds[0], training=False)
        want = [keras.ops.convert_to_numpy(w) for w in (want if isinstance(want, (list, tuple)) else [want])]
        assert all(np.ptp(w) > 0 for w in want), f"{name}: a constant prediction checks nothing"
        for fmt in ["keras", "h5"]:
            model.save(root / f"{name}.{fmt}")
            jobs.append([str(root / f"{name}.{fmt}"), "-o", str(root / f"{name}_{fmt}.model")])
        built[name] = (feeds, want)
    results = dict(zip((Path(j[0]).name for j in jobs), import_without_keras(jobs)))
    return {name: (*built[name], results) for name in built}


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("import")
    return root, prepare(root, {name: make() for name, make in CASES.items()})


@pytest.fixture(scope="module")
def applications(tmp_path_factory):
    root = tmp_path_factory.mktemp("applications")
    return root, prepare(root, {name: build_application(name, size) for name, size in APPLICATIONS.items()})


def check_round_trip(root: Path, name: str, fmt: str, built: dict) -> None:
    import onnxruntime as ort
    feeds, want, results = built[name]
    code, stderr = results[f"{name}.{fmt}"]
    assert code == 0, stderr
    source = root / f"{name}_{fmt}.model"
    assert modelc.check_file(source) == []
    proto = modelc.compile_file(source, weights=source.with_suffix(".safetensors"))
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {i.name: f for i, f in zip(session.get_inputs(), feeds)})
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5 * float(np.abs(w).max()))


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("name", list(CASES))
def test_round_trip_matches_keras(imported, name, fmt):
    check_round_trip(*imported[:1], name, fmt, imported[1])


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("name", list(APPLICATIONS))
def test_applications_round_trip(applications, name, fmt):
    check_round_trip(applications[0], name, fmt, applications[1])


def test_resnet50_is_folded_into_repeated_blocks(applications):
    """ResNet50's 16 bottleneck blocks: one user layer per stage's first block, one repeated for the rest."""
    source = (applications[0] / "ResNet50_keras.model").read_text()
    for stage, n in (("conv2_block", 2), ("conv3_block", 3), ("conv4_block", 5), ("conv5_block", 2)):
        assert f"-> repeat {n} {stage}" in source
        assert source.count(f"layer {stage}(") == 1 and source.count(f"layer {stage}1(") == 1
    assert len(source.splitlines()) <= 160   # 53 convolutions and 53 batch norms: folded, not copied
    assert source.count("conv2d(") <= 30


def test_densenet_blocks_repeat(applications):
    source = (applications[0] / "DenseNet121_keras.model").read_text()
    assert "repeat 6 conv2_block" in source and "repeat 16 conv5_block" in source
    assert len(source.splitlines()) <= 120


# --- what cannot import ----------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="test_import")
class Scale(L.Layer):
    """A custom layer class with a weight: x * scale."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

    def call(self, x):
        return x * self.scale


def import_main(capsys, *args: str) -> tuple[int, str]:
    from modelc.cli import main
    code = main(["import", *map(str, args)])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    return code, err


def test_lambda_layer_is_refused_with_its_place(tmp_path, capsys):
    x = keras.Input((4,), name="x")
    inner = keras.Model(x, L.Lambda(lambda t: t * 2.0, name="double")(L.Dense(4)(x)), name="block_2")
    outer = keras.Input((4,))
    path = tmp_path / "lam.keras"
    keras.Model(outer, L.Dense(1)(inner(outer)), name="outer").save(path)
    code, err = import_main(capsys, path, "-o", tmp_path / "lam.model")
    assert code == 1
    assert f"{path}: layer 'double' (Lambda) in model 'outer' > 'block_2': Lambda layers cannot be imported: " \
           "their Python code is never loaded or run" in err
    assert "--stub-unknown" in err and not (tmp_path / "lam.model").exists()


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_custom_layer_class_is_refused_then_stubbed(tmp_path, capsys, fmt):
    x = keras.Input((6,), name="x")
    scale = Scale(name="scale_it")
    model = randomize(keras.Model(x, L.Dense(2)(scale(L.Dense(6)(x))), name="custom"))
    path = tmp_path / f"custom.{fmt}"
    model.save(path)
    code, err = import_main(capsys, path, "-o", tmp_path / "custom.model")
    assert code == 1 and "layer 'scale_it' (Scale) in model 'custom': a custom layer class cannot be imported" in err
    assert import_main(capsys, path, "-o", tmp_path / "custom.model", "--stub-unknown")[0] == 0
    source = (tmp_path / "custom.model").read_text()
    param = "scale" if fmt == "h5" else "w0"   # a legacy file names its weights; a .keras archive numbers them
    assert f"layer scale_it(x) {{\n    param {param}: [6] = zeros\n    return x\n}}" in source
    # the weights bind to the stub as they are; with its body written, the model is Keras' again
    weights = tmp_path / "custom.safetensors"
    filled = source.replace("    return x\n}", f"    return x * {param}\n}}", 1)
    proto = modelc.compile_source(filled, weights=str(weights))
    import onnxruntime as ort
    feeds = floats(6)
    got = ort.InferenceSession(proto.SerializeToString()).run(None, {"x": feeds})[0]
    np.testing.assert_allclose(got, keras.ops.convert_to_numpy(model(feeds)), rtol=1e-5, atol=1e-6)


def test_unreadable_files_are_clear_errors(tmp_path, capsys):
    good = tmp_path / "good.keras"
    keras.Sequential([keras.Input((3,)), L.Dense(2)]).save(good)
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    unweighted = tmp_path / "unweighted.keras"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(unweighted, "w") as dst:
        dst.writestr("config.json", src.read("config.json"))
    subclassed = tmp_path / "subclassed.keras"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(subclassed, "w") as dst:
        dst.writestr("config.json", json.dumps({"class_name": "MyModel", "config": {"units": 4}}))
        dst.writestr("model.weights.h5", src.read("model.weights.h5"))
    text = tmp_path / "notes.keras"
    text.write_text("not a model\n")
    weights_only = tmp_path / "only.weights.h5"
    keras.Sequential([keras.Input((3,)), L.Dense(2)]).save_weights(weights_only)
    for path, message in [(corrupt, "a corrupt .keras archive"),
                          (unweighted, "the archive holds no weights (model.weights.h5 is missing)"),
                          (subclassed, "its model is a MyModel without a layer graph in its config"),
                          (text, "not a Keras model file (neither a .keras zip archive nor an HDF5 .h5 file)"),
                          (weights_only, "a weights-only file (model.save_weights)"),
                          (tmp_path / "missing.keras", "no such file")]:
        code, err = import_main(capsys, path, "-o", tmp_path / "out.model")
        assert code == 1 and f"{path}: {message}" in err, err
    assert not (tmp_path / "out.model").exists()


# --- the command line, the Python API, the docs ------------------------------------------------------------
def test_imported_model_compiles_from_the_command_line_and_api_matches(imported, tmp_path):
    """`modelc compile model.model --weights model.safetensors` just works; `modelc.import_keras` returns
    what `modelc import` wrote."""
    from helpers import run_cli
    from safetensors.numpy import load_file
    root, built = imported
    source = root / "book_regressor_keras.model"
    r = run_cli("compile", source, "--weights", source.with_suffix(".safetensors"), "-o", tmp_path / "book.onnx")
    assert r.returncode == 0 and "initialized" not in r.stderr, r.stderr
    import onnxruntime as ort
    feeds, want, _ = built["book_regressor"]
    got = ort.InferenceSession(str(tmp_path / "book.onnx")).run(None, {"x": feeds[0]})[0]
    np.testing.assert_allclose(got, want[0], rtol=1e-5, atol=1e-5 * float(np.abs(want[0]).max()))
    text, weights = modelc.import_keras(root / "book_regressor.keras")
    written = load_file(str(source.with_suffix(".safetensors")))
    assert text.splitlines()[1:] == source.read_text().splitlines()[1:]   # the header names the weights file
    assert weights.keys() == written.keys() and all(np.array_equal(weights[k], written[k]) for k in weights)
    assert "-> repeat 4 block" in text   # the book's ResidualBlock, applied 4 times


def test_without_h5py_the_import_extra_is_named(imported):
    root, _ = imported
    code = ("import sys\nclass Refuse:\n    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'h5py': raise ImportError(name)\n"
            "sys.meta_path.insert(0, Refuse())\nfrom modelc.cli import main\n"
            f"sys.exit(main(['import', {str(root / 'mlp_dense.keras')!r}, '-o', {str(root / 'x.model')!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 1 and "pip install 'modelc-onnx[import]'" in r.stderr and "Traceback" not in r.stderr


def test_docs_name_every_keras_class_that_imports():
    from modelc.compiler.keras_names import KERAS_LAYERS
    from modelc.importer.layers import MERGES, SPECIAL
    doc = (Path(__file__).resolve().parents[1] / "docs" / "importing.md").read_text()
    table = doc[doc.index("### Keras names and modelc names"):doc.index("## How folding works")]
    for keras_class, name in KERAS_LAYERS.items():
        assert f"`{keras_class}`" in table and f"`{name}`" in table, keras_class
    for keras_class in [*SPECIAL, *(m for m in MERGES if m[0].isupper() and m not in ("Divide", "TrueDivide",
                                                                                       "NotEqual", "Equal",
                                                                                       "Greater", "Less"))]:
        assert f"`{keras_class}`" in doc, keras_class


def as_keras2(src: Path, dst: Path) -> None:
    """A legacy .h5 rewritten as tf.keras 2 wrote it: inbound nodes as `[[name, node, index, kwargs]]`, no
    `module` or `registered_name`, `batch_input_shape`, weight names with `:0`."""
    import shutil

    import h5py
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        for spec in config["config"]["layers"]:
            spec.pop("module", None), spec.pop("registered_name", None)
            if spec["class_name"] == "InputLayer":
                spec["config"]["batch_input_shape"] = spec["config"].pop("batch_shape")
            nodes = []
            for node in spec["inbound_nodes"]:
                args = node["args"][0] if isinstance(node["args"][0], list) else node["args"][:1]
                nodes.append([[*a["config"]["keras_history"], {}] for a in args])
            spec["inbound_nodes"] = nodes
        f.attrs["model_config"] = json.dumps(config)
        for group in f["model_weights"].values():
            names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
            for n in names:
                group.move(n, n + ":0")
            group.attrs["weight_names"] = [(n + ":0").encode() for n in names]


def test_a_keras2_file_imports(imported, tmp_path, capsys):
    root, built = imported
    as_keras2(root / "wide_deep.h5", tmp_path / "wide_deep.h5")
    code, err = import_main(capsys, tmp_path / "wide_deep.h5", "-o", tmp_path / "wide_deep_h5.model")
    assert code == 0, err
    check_round_trip(tmp_path, "wide_deep", "h5", {"wide_deep": (*built["wide_deep"][:2], {"wide_deep.h5": [0, ""]})})


def test_an_output_named_after_a_built_in_keeps_clear_of_keras_next_name(tmp_path, capsys):
    """Keras' `dense` cannot be a variable (it is the layer): it becomes `dense_`, not `dense_1`, which is
    the name Keras gives the next Dense; `--output dense_1` then picks Keras' dense_1, not its dense."""
    x = keras.Input((3,), name="x")
    first = L.Dense(2, name="dense")(x)
    keras.Model(x, [first, L.Dense(2, name="dense_1")(first)]).save(tmp_path / "names.keras")
    code, _ = import_main(capsys, tmp_path / "names.keras", "-o", tmp_path / "names.model")
    assert code == 0
    assert "return dense_, dense_1" in (tmp_path / "names.model").read_text()
