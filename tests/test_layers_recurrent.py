"""Recurrent layers (simple_rnn, lstm, gru, bidirectional) against Keras 3 itself: the same layer built in
Keras with random weights, written to .safetensors under modelc's names (Keras 3's variable paths with dots,
`lstm.lstm_cell.kernel`), bound by compile as a user would; outputs compared on onnxruntime and on onnx's
ReferenceEvaluator. Also the orthogonal initializer, the lstm sample and the diagnostics of misuse."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx.reference import ReferenceEvaluator
from safetensors.numpy import save_file

import modelc

from helpers import run_cli
from keras_oracle import keras

BATCH, TIME, FEATURES = 3, 4, 5
STATES = {"simple_rnn": 1, "lstm": 2, "gru": 1}
KERAS = {"simple_rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}


@dataclass
class Case:
    kind: str                 # simple_rnn, lstm, gru
    hp: dict                  # the layer's hyperparameters, as Keras takes them
    merge: str | None = ""    # "": no bidirectional; else its merge_mode (None: both outputs)
    states: bool = False      # initial states given as extra inputs

    @property
    def id(self) -> str:
        hp = "-".join(f"{k}={v}" for k, v in self.hp.items())
        return f"{'bi_' + str(self.merge) + '_' if self.merge != '' else ''}{self.kind}-{hp}-s{int(self.states)}"


CASES = [
    Case("simple_rnn", {"units": 3}),
    Case("simple_rnn", {"units": 2, "return_sequences": True, "go_backwards": True}),
    Case("simple_rnn", {"units": 3, "return_state": True, "use_bias": False}, states=True),
    Case("simple_rnn", {"units": 3, "return_sequences": True, "activation": "relu"}),
    Case("lstm", {"units": 4}),
    Case("lstm", {"units": 3, "return_sequences": True, "return_state": True}),
    Case("lstm", {"units": 3, "go_backwards": True}),
    Case("lstm", {"units": 3, "go_backwards": True, "return_sequences": True, "return_state": True}),
    Case("lstm", {"units": 2, "use_bias": False, "return_sequences": True}),
    Case("lstm", {"units": 3, "return_state": True}, states=True),
    Case("lstm", {"units": 3, "recurrent_activation": "relu", "activation": "softsign"}),
    Case("gru", {"units": 4}),
    Case("gru", {"units": 3, "reset_after": False, "return_sequences": True}),
    Case("gru", {"units": 3, "go_backwards": True, "return_sequences": True, "return_state": True}),
    Case("gru", {"units": 3, "use_bias": False}),
    Case("gru", {"units": 2, "use_bias": False, "reset_after": False, "return_state": True}),
    Case("gru", {"units": 3, "return_sequences": True}, states=True),
    Case("lstm", {"units": 3, "return_sequences": True}, merge="concat"),
    Case("lstm", {"units": 3, "return_sequences": True}, merge="sum"),
    Case("lstm", {"units": 3}, merge="mul"),
    Case("lstm", {"units": 3, "return_sequences": True}, merge="ave"),
    Case("lstm", {"units": 3, "return_sequences": True, "return_state": True}, merge=None),
    Case("lstm", {"units": 2, "return_state": True}, merge="concat", states=True),
    Case("gru", {"units": 3, "return_sequences": True, "return_state": True}, merge="concat"),
    Case("gru", {"units": 2, "reset_after": False}, merge=None, states=True),
    Case("simple_rnn", {"units": 3, "return_sequences": True}, merge="sum"),
]


def modelc_value(v: object) -> str:
    return str(v).lower() if isinstance(v, bool) else repr(v) if isinstance(v, str) and v not in (
        "relu", "softsign") else str(v)


def source(case: Case) -> tuple[str, list[str]]:
    """The .model text of the case and its input names."""
    n_states = STATES[case.kind] * (2 if case.merge != "" else 1) if case.states else 0
    names = ["x", *(f"s{i}" for i in range(n_states))]
    units = case.hp["units"]
    inputs = ", ".join(["x: float32[batch, 4, 5]", *(f"{n}: float32[batch, {units}]" for n in names[1:])])
    hp = ", ".join(f"{k}={modelc_value(v)}" for k, v in case.hp.items())
    layer = f"{case.kind}({hp})"
    if case.merge != "":
        layer = f"bidirectional({layer}, merge_mode=\"{case.merge or 'none'}\")"
    n_out = len(keras_outputs(case))
    picks = ", ".join(f"y[{i}]" for i in range(n_out)) if n_out > 1 else "y"
    return f"model m({inputs}) {{\n    y = {layer}({', '.join(names)})\n    return {picks}\n}}\n", names


def keras_outputs(case: Case) -> list[str]:
    sides = 2 if case.merge is None else 1
    states = STATES[case.kind] * (2 if case.merge != "" else 1) if case.hp.get("return_state") else 0
    return ["y"] * sides + ["state"] * states


def keras_model(case: Case) -> tuple["keras.Model", "keras.layers.Layer"]:
    layer = getattr(keras.layers, KERAS[case.kind])(**case.hp, name=case.kind)
    if case.merge != "":
        layer = keras.layers.Bidirectional(layer, merge_mode=case.merge, name="bidirectional")
    units = case.hp["units"]
    x = keras.Input((TIME, FEATURES))
    n_states = STATES[case.kind] * (2 if case.merge != "" else 1) if case.states else 0
    states = [keras.Input((units,)) for _ in range(n_states)]
    y = layer(x, initial_state=states) if states else layer(x)
    return keras.Model([x, *states], y), layer


def randomized_weights(layer: "keras.layers.Layer", rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random weights (biases included) set into the Keras layer, under modelc's names."""
    out = {}
    for v in layer.weights:
        value = rng.normal(0.0, 0.5, v.shape).astype(np.float32)
        v.assign(value)
        out[v.path.replace("/", ".")] = value
    return out


def run_both(proto: onnx.ModelProto, feeds: dict, reference: bool = True) -> list[list[np.ndarray]]:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return [session.run(None, feeds)] + ([ReferenceEvaluator(proto).run(None, feeds)] if reference else [])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_recurrent_matches_keras(case, tmp_path):
    rng = np.random.default_rng(0)
    model, layer = keras_model(case)
    save_file(randomized_weights(layer, rng), tmp_path / "w.safetensors")
    text, names = source(case)
    (tmp_path / "m.model").write_text(text)
    proto = modelc.compile_file(tmp_path / "m.model", weights=str(tmp_path / "w.safetensors"))
    feeds = {n: rng.normal(size=(BATCH, TIME, FEATURES) if n == "x" else (BATCH, case.hp["units"]))
             .astype(np.float32) for n in names}
    want = model.predict([feeds[n] for n in names], verbose=0)
    want = [np.asarray(w) for w in (want if isinstance(want, (list, tuple)) else [want])]
    # onnx's reference RNN/LSTM/GRU run only the default activations (LSTM/GRU ignore the attribute)
    reference = not any(k.endswith("activation") for k in case.hp)
    for got in run_both(proto, feeds, reference):
        assert len(got) == len(want)
        for i, (g, w) in enumerate(zip(got, want)):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, err_msg=f"output {i}")


def test_weight_names_mirror_keras_variable_paths():
    text = ("model m(x: float32[batch, 4, 5]) {\n    return x -> bidirectional(gru(2, return_sequences=true))"
            " -> lstm(3, return_sequences=true) -> simple_rnn(2, name=\"r\")\n}\n")
    got = [t.name for t in modelc.compile_source(text).graph.initializer]
    assert got == [f"bidirectional.{side}_gru.gru_cell.{w}" for side in ("forward", "backward")
                   for w in ("kernel", "recurrent_kernel", "bias")] + \
        [f"lstm.lstm_cell.{w}" for w in ("kernel", "recurrent_kernel", "bias")] + \
        [f"r.simple_rnn_cell.{w}" for w in ("kernel", "recurrent_kernel", "bias")]


def test_orthogonal_initializer_is_orthogonal():
    from modelc.compiler.initializers import initialize
    from modelc.compiler.ir import InitSpec
    for shape in ((6, 6), (4, 12), (12, 4), (2, 3, 5)):
        w = initialize(InitSpec("orthogonal"), shape, np.dtype(np.float64), 0, "w").reshape(-1, shape[-1])
        small = min(w.shape)
        gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
        np.testing.assert_allclose(gram, np.eye(small), atol=1e-12)
    scaled = initialize(InitSpec("orthogonal", (2.0,)), (3, 3), np.dtype(np.float64), 0, "w")
    np.testing.assert_allclose(scaled.T @ scaled, 4 * np.eye(3), atol=1e-12)
    # an lstm's default recurrent_kernel [units, 4*units]: orthonormal rows, as Keras draws it
    proto = modelc.compile_source("model m(x: float32[batch, 4, 5]) {\n    return x -> lstm(6)\n}\n", seed=1)
    r = onnx.numpy_helper.to_array(next(t for t in proto.graph.initializer if t.name.endswith("recurrent_kernel")))
    np.testing.assert_allclose(r @ r.T, np.eye(6), atol=1e-5)


def test_lstm_sample_matches_keras(tmp_path):
    """samples/lstm.model: embedding -> bidirectional LSTM -> dense, against the same network in Keras."""
    keras.utils.set_random_seed(4)
    tokens = keras.Input((12,), dtype="int32")
    embed = keras.layers.Embedding(1000, 16, name="embedding")
    bi = keras.layers.Bidirectional(keras.layers.LSTM(32, name="lstm"), name="bidirectional")
    dense = keras.layers.Dense(2, activation="softmax", name="dense")
    model = keras.Model(tokens, dense(bi(embed(tokens))))
    rng = np.random.default_rng(1)
    weights = {}
    for layer in (embed, bi, dense):
        weights.update(randomized_weights(layer, rng))
    save_file(weights, tmp_path / "lstm.safetensors")
    out = tmp_path / "lstm.onnx"
    result = run_cli("compile", "samples/lstm.model", "--weights", tmp_path / "lstm.safetensors", "-o", out)
    assert result.returncode == 0, result.stderr
    x = rng.integers(0, 1000, size=(7, 12)).astype(np.int32)
    (got,) = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"tokens": x})
    np.testing.assert_allclose(got, np.asarray(model.predict(x, verbose=0)), rtol=1e-5, atol=1e-6)


def diagnostic(text: str) -> str:
    return "\n".join(d.render() for d in modelc.check_source(text, file="t.model"))


BAD = [
    ("model m(x: float32[batch, 8]) {\n    return x -> lstm(4)\n}\n",
     "t.model:2:17: error: lstm expects a rank-3 input [batch, timesteps, features], got float32[batch, 8]"),
    ("model m(x: float32[batch, 4, 8]) {\n    return x -> bidirectional(dense(4))\n}\n",
     "t.model:2:17: error: bidirectional wraps a recurrent layer (simple_rnn, lstm, gru), got the layer dense"),
    ("model m(x: float32[batch, 4, 8], h: float32[batch, 3]) {\n    return gru(4)(x, h)\n}\n",
     "t.model:2:12: error: gru initial state must be float32[batch, 4] ([batch, units]), got float32[batch, 3]"),
    ("model m(x: float32[batch, 4, 8], h: float32[batch, 4]) {\n    return lstm(4)(x, h)\n}\n",
     "t.model:2:12: error: lstm takes its input and 2 initial states (h0, c0), got 1 state"),
    ("model m(x: float32[batch, 4, 8]) {\n    return x -> bidirectional(lstm(4), merge_mode=\"max\")\n}\n",
     "t.model:2:17: error: bidirectional merge_mode must be one of \"concat\", \"sum\", \"mul\", \"ave\", \"none\", "
     "got 'max'"),
    ("model m(x: float32[batch, 4, 8]) {\n    return x -> lstm(4, dropout=-1)\n}\n",
     "t.model:2:17: error: lstm dropout must be in [0, 1), got -1"),
    ("model m(x: float32[batch, 4, 8]) {\n    return x -> bidirectional(gru(4, recurrent_dropout=1.0))\n}\n",
     "t.model:2:17: error: gru recurrent_dropout must be in [0, 1), got 1.0"),
    ("model m(x: float32[batch, 4, 8]) {\n    return x -> simple_rnn(4, activation=gelu)\n}\n",
     "t.model:2:17: error: simple_rnn activation must be one of tanh, sigmoid, relu, softsign, softplus, "
     "got gelu"),
    ("model m(x: int32[batch, 4, 8]) {\n    return x -> gru(4)\n}\n",
     "t.model:2:17: error: gru expects a floating-point input, got int32[batch, 4, 8]"),
]


@pytest.mark.parametrize("text,message", BAD, ids=[m.split("error: ")[1][:40] for _, m in BAD])
def test_recurrent_diagnostics(text, message):
    assert message in diagnostic(text)


def test_return_state_outputs_are_picked_by_index():
    text = ("model m(x: float32[batch, 4, 5]) {\n    s = (x -> lstm(3, return_state=true))[2]\n"
            "    return s -> dense(2)\n}\n")
    proto = modelc.compile_source(text)
    (got,) = ort.InferenceSession(proto.SerializeToString()).run(None, {"x": np.ones((2, 4, 5), np.float32)})
    assert got.shape == (2, 2)


def test_the_reference_provider_refuses_activations_it_would_ignore(tmp_path):
    """onnx's ReferenceEvaluator silently runs LSTM/GRU with their default activations: eval says so instead."""
    model = tmp_path / "m.model"
    model.write_text("model m(x: float32[batch, 4, 3]) {\n    return x -> lstm(2, activation=relu)\n}\n")
    np.savez(tmp_path / "d.npz", x=np.zeros((5, 4, 3), np.float32), y=np.zeros((5, 2), np.float32))
    result = run_cli("eval", model, "--data", tmp_path / "d.npz", "--target", "y", "--metric", "mse",
                     "--provider", "reference", "--init-missing")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "the reference evaluator ignores the activations of ONNX's LSTM" in result.stderr
    assert "uses Relu, Sigmoid" in result.stderr
