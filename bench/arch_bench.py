"""Real architectures against torch (issue 9's performance section): run on demand under .bench-venv.

    .bench-venv/bin/python bench/arch_bench.py [--repeats K] [--quick]

1. samples/resnet.model and samples/transformer.model: modelc's ONNX on onnxruntime against the same network
   written in torch (NCHW for the CNN) and exported with torch.onnx.export (TorchScript exporter, opset 18), on
   onnxruntime with the same default session options (ORT_ENABLE_ALL); batch 1 and 64. Target ≥ 0.97×.
2. The layout changes (Transpose, and onnxruntime's nchwc Reorder nodes) left in onnxruntime's optimized graph
   of modelc's resnet, and whether any sit between two convolutions; node counts by op type after
   optimization for both sides of figure 1.
3. samples/lstm.model against torch eager (nn.Embedding + bidirectional nn.LSTM + nn.Linear) under
   torch.inference_mode(); batch 1 and 64. Target ≥ 1.0×.

Both sides get the same weights: modelc compiles with seed 0, its normalization statistics and biases are
redrawn at random (so the check sees them), and torch loads them from the initializers; outputs are checked
equal (rtol 1e-4, atol 1e-5) before timing. Every call is timed; the two sides take turns every ~10 ms, so
load from elsewhere on this shared machine falls on both alike. A case is K runs of ~0.3 s a side: each run
gives rows/s at its median call time, the tables show the median over runs (min–max), the median of the
per-run ratios, and the ratio at the fastest tenth of all calls (the quiet-machine estimate).
Scratch files (exported and optimized graphs): bench/.scratch-arch/.
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, cpu_count, cpu_model, fmt_ratio, load_average, table, verdict  # noqa: E402

import modelc  # noqa: E402

SCRATCH = ROOT / "bench" / ".scratch-arch"
SAMPLES = ROOT / "samples"
BATCHES = (1, 64)
EXPORT_OPSET = 18  # the TorchScript exporter's well-trodden opset, as in bench/torch_bench.py
Weights = dict[str, np.ndarray]


# --- weights ----------------------------------------------------------------------------------------------
def compile_sample(name: str) -> tuple[onnx.ModelProto, Weights]:
    """The sample compiled with seed 0, constant-initialized statistics and biases redrawn at random."""
    proto = modelc.compile_file(str(SAMPLES / f"{name}.model"), seed=0)
    rng = np.random.default_rng(1)
    weights = {}
    for init in proto.graph.initializer:
        w = numpy_helper.to_array(init)
        if init.name.endswith(("gamma", "moving_variance")):
            w = rng.uniform(0.5, 1.5, w.shape).astype(w.dtype)
        elif init.name.endswith(("beta", "moving_mean", "bias")):
            w = rng.normal(0, 0.1, w.shape).astype(w.dtype)
        init.CopyFrom(numpy_helper.from_array(w, init.name))
        weights[init.name] = w
    return proto, weights


def load(param: torch.Tensor, value: np.ndarray) -> None:
    with torch.no_grad():
        param.copy_(torch.from_numpy(np.ascontiguousarray(value)).reshape(param.shape))


def dense(mod: nn.Linear, w: Weights, key: str) -> nn.Linear:
    """A Keras Dense (kernel [in, out]) into a torch Linear."""
    load(mod.weight, w[f"{key}.kernel"].T)
    load(mod.bias, w[f"{key}.bias"])
    return mod


def conv_bn(w: Weights, conv: str, bn: str, cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    """Keras conv (kernel [kh, kw, in, out]) + BatchNormalization; "same" padding as Keras pads it."""
    pad: nn.Module = nn.Identity()
    if k > 1:  # "same": symmetric at stride 1; at stride 2 on an even size the odd element goes at the end
        pad = nn.ZeroPad2d((0, 1, 0, 1) if stride == 2 else (k // 2,) * 4)
    c, b = nn.Conv2d(cin, cout, k, stride, bias=False), nn.BatchNorm2d(cout, eps=1e-3)
    load(c.weight, w[f"{conv}.kernel"].transpose(3, 2, 0, 1))
    for param, key in [(b.weight, "gamma"), (b.bias, "beta"), (b.running_mean, "moving_mean"),
                       (b.running_var, "moving_variance")]:
        load(param, w[f"{bn}.{key}"])
    return nn.Sequential(pad, c, b)


class Block(nn.Module):
    """relu(shortcut(x) + bn(conv(relu(bn(conv(x)))))): samples/resnet.model's `residual` and `downsample`."""

    def __init__(self, w: Weights, scope: str, cin: int, cout: int, stride: int):
        super().__init__()
        self.a = conv_bn(w, f"{scope}.conv2d", f"{scope}.batch_norm", cin, cout, 3, stride)
        self.b = conv_bn(w, f"{scope}.conv2d_1", f"{scope}.batch_norm_1", cout, cout, 3)
        self.shortcut = (conv_bn(w, f"{scope}.conv2d_2", f"{scope}.batch_norm_2", cin, cout, 1, stride)
                         if stride > 1 else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.shortcut(x) + self.b(torch.relu(self.a(x))))


def torch_resnet(w: Weights) -> nn.Module:
    return nn.Sequential(conv_bn(w, "conv2d", "batch_norm", 3, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
                         Block(w, "residual", 16, 16, 1), Block(w, "downsample", 16, 32, 2),
                         Block(w, "residual_1", 32, 32, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         dense(nn.Linear(32, 10), w, "dense"), nn.Softmax(-1))


def encoder_layer(w: Weights, scope: str) -> nn.TransformerEncoderLayer:
    """Keras MultiHeadAttention (kernels [d, heads, key_dim]) + post-norm feed-forward, as torch's layer."""
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True, layer_norm_eps=1e-3)
    mha = f"{scope}.multi_head_attention"
    qkv = ("query", "key", "value")  # torch packs the three projections, [out, in] each, into one matrix
    load(layer.self_attn.in_proj_weight, np.concatenate([w[f"{mha}.{p}.kernel"].reshape(32, 32).T for p in qkv]))
    load(layer.self_attn.in_proj_bias, np.concatenate([w[f"{mha}.{p}.bias"].ravel() for p in qkv]))
    load(layer.self_attn.out_proj.weight, w[f"{mha}.attention_output.kernel"].reshape(32, 32).T)
    load(layer.self_attn.out_proj.bias, w[f"{mha}.attention_output.bias"])
    dense(layer.linear1, w, f"{scope}.dense")
    dense(layer.linear2, w, f"{scope}.dense_1")
    for mod, key in [(layer.norm1, "layer_norm"), (layer.norm2, "layer_norm_1")]:
        load(mod.weight, w[f"{scope}.{key}.gamma"])
        load(mod.bias, w[f"{scope}.{key}.beta"])
    return layer


class TorchTransformer(nn.Module):
    def __init__(self, w: Weights):
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(torch.tensor(w["embedding.embeddings"]))
        self.positions = nn.Parameter(torch.tensor(w["position_embedding.embeddings"]))
        self.blocks = nn.ModuleList([encoder_layer(w, "encoder_block"), encoder_layer(w, "encoder_block_1")])
        self.head = nn.Sequential(dense(nn.Linear(32, 32), w, "dense"), nn.ReLU(),
                                  dense(nn.Linear(32, 4), w, "dense_1"), nn.Softmax(-1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        padding = tokens == 0  # True: no query attends to this key
        x = self.embedding(tokens) + self.positions
        for block in self.blocks:
            x = block(x, src_key_padding_mask=padding)
        return self.head(x[:, 0])


class TorchSentiment(nn.Module):
    """samples/lstm.model: Keras' LSTM gates i, f, c, o are torch's i, f, g, o, transposed; one bias."""

    def __init__(self, w: Weights):
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(torch.tensor(w["embedding.embeddings"]))
        self.lstm = nn.LSTM(16, 32, batch_first=True, bidirectional=True)
        for side, suffix in [("forward", ""), ("backward", "_reverse")]:
            cell = f"bidirectional.{side}_lstm.lstm_cell"
            load(getattr(self.lstm, f"weight_ih_l0{suffix}"), w[f"{cell}.kernel"].T)
            load(getattr(self.lstm, f"weight_hh_l0{suffix}"), w[f"{cell}.recurrent_kernel"].T)
            load(getattr(self.lstm, f"bias_ih_l0{suffix}"), w[f"{cell}.bias"])
            load(getattr(self.lstm, f"bias_hh_l0{suffix}"), np.zeros_like(w[f"{cell}.bias"]))
        self.dense = dense(nn.Linear(64, 2), w, "dense")

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(self.embedding(tokens))
        return torch.softmax(self.dense(torch.cat([h[0], h[1]], -1)), -1)


# --- onnxruntime ------------------------------------------------------------------------------------------
def session(model: bytes | Path, optimized: Path | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()  # defaults: ORT_ENABLE_ALL, intra-op threads = physical cores
    if optimized is not None:
        options.optimized_model_filepath = str(optimized)
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def export(net: nn.Module, example: torch.Tensor, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (example,), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=EXPORT_OPSET)
    return path


# --- timing -----------------------------------------------------------------------------------------------
Run = list[float]  # seconds per call, one entry per session.run (or eager forward)
BLOCK_S = 0.01  # the two sides take turns every ~10 ms, so load from elsewhere falls on both alike


def block_size(fn: Callable[[], object]) -> int:
    """Warm up, then how many calls fill about BLOCK_S."""
    for _ in range(5):
        fn()
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < BLOCK_S:
        fn()
        n += 1
    return n


def alternate(fns: dict[str, Callable[[], object]], repeats: int, window_s: float) -> dict[str, list[Run]]:
    """`repeats` runs of timed calls per function; within a run the functions take turns in blocks of ~10 ms,
    the order flipped every turn, until each has run about `window_s`."""
    sizes = {k: block_size(fn) for k, fn in fns.items()}
    out: dict[str, list[Run]] = {k: [] for k in fns}
    for _ in range(repeats):
        runs: dict[str, Run] = {k: [] for k in fns}
        turn = 0
        while min(sum(r) for r in runs.values()) < window_s:
            for k in (list(fns) if turn % 2 == 0 else list(fns)[::-1]):
                for _ in range(sizes[k]):
                    t = time.perf_counter()
                    fns[k]()
                    runs[k].append(time.perf_counter() - t)
            turn += 1
        for k in fns:
            out[k].append(runs[k])
    return out


def spread(xs: list[float]) -> str:
    return f"{np.median(xs):,.0f} ({min(xs):,.0f}–{max(xs):,.0f})"


def ratio_row(name: str, batch: int, times: dict[str, list[Run]], target: float) -> list[str]:
    """Per side, rows/s at each run's median call time; the ratio of the two sides in each run (they ran side by
    side); and the ratio at the fastest tenth of all calls: what a quiet machine would show."""
    ours = [batch / float(np.median(run)) for run in times["modelc"]]
    theirs = [batch / float(np.median(run)) for run in times["torch"]]
    ratios = [a / b for a, b in zip(ours, theirs)]
    r = float(np.median(ratios))
    fastest = float(np.percentile(np.concatenate(times["torch"]), 10)
                    / np.percentile(np.concatenate(times["modelc"]), 10))
    return [name, str(batch), spread(ours), spread(theirs), f"{fmt_ratio(r)} ({min(ratios):.2f}–{max(ratios):.2f})",
            fmt_ratio(fastest), f"≥ {target}×", verdict(r >= target)]


# --- figures ----------------------------------------------------------------------------------------------
def inputs(name: str, batch: int, rng: np.random.Generator) -> np.ndarray:
    if name == "resnet":
        return rng.normal(size=(batch, 32, 32, 3)).astype(np.float32)
    length = {"transformer": 16, "lstm": 12}[name]
    tokens = rng.integers(1, 1000, (batch, length)).astype(np.int32)
    tokens[:, length // 2:][rng.uniform(size=(batch, length - length // 2)) < 0.5] = 0  # padding at the end
    return tokens


def check_and_time(name: str, batch: int, fns: dict[str, Callable[[], np.ndarray]], args: argparse.Namespace,
                   target: float) -> list[str]:
    """Assert modelc's output equals torch's, then time the two (a table row)."""
    np.testing.assert_allclose(fns["modelc"](), fns["torch"](), rtol=1e-4, atol=1e-5, err_msg=f"{name} batch {batch}")
    return ratio_row(name, batch, alternate(fns, args.repeats, args.window), target)


def against_export(name: str, build: Callable[[Weights], nn.Module], args: argparse.Namespace,
                   counts: dict[str, collections.Counter[str]]) -> list[list[str]]:
    """Figure 1 for one sample; the node counts of both optimized graphs go into `counts`."""
    proto, weights = compile_sample(name)
    net = build(weights).eval()
    nchw = (lambda x: np.ascontiguousarray(x.transpose(0, 3, 1, 2))) if name == "resnet" else (lambda x: x)
    rng = np.random.default_rng(0)
    exported = export(net, torch.from_numpy(nchw(inputs(name, 2, rng))), SCRATCH / f"{name}.torch.onnx")
    ours = session(proto.SerializeToString(), SCRATCH / f"{name}.modelc.opt.onnx")
    theirs = session(exported, SCRATCH / f"{name}.torch.opt.onnx")
    for side in ("modelc", "torch"):
        counts[f"{name} {side}"] = collections.Counter(
            n.op_type for n in onnx.load(str(SCRATCH / f"{name}.{side}.opt.onnx")).graph.node)
    rows = []
    for batch in BATCHES:
        x = inputs(name, batch, rng)
        xt = nchw(x)
        with torch.inference_mode():  # the export is checked against eager torch too
            np.testing.assert_allclose(theirs.run(None, {"x": xt})[0], net(torch.from_numpy(xt)).numpy(),
                                       rtol=1e-4, atol=1e-5, err_msg=f"{name} batch {batch}: export vs eager")
        rows.append(check_and_time(name, batch, {"modelc": lambda: ours.run(None, {proto.graph.input[0].name: x})[0],
                                                 "torch": lambda: theirs.run(None, {"x": xt})[0]}, args, 0.97))
    return rows


def layout_changes(path: Path) -> list[list[str]]:
    """Per layout-changing op in an optimized graph (Transpose, nchwc Reorder*): how many, and how many have a
    convolution both upstream and downstream (they sit between two convolutions)."""
    nodes = list(onnx.load(str(path)).graph.node)  # onnxruntime saves them in topological order
    conv = {id(n) for n in nodes if n.op_type in ("Conv", "FusedConv")}
    after, before, live, needed = set(), set(), set(), set()  # nodes with a conv upstream / downstream
    for n in nodes:
        if live.intersection(n.input):
            after.add(id(n))
        if id(n) in conv | after:
            live.update(n.output)
    for n in reversed(nodes):
        if needed.intersection(n.output):
            before.add(id(n))
        if id(n) in conv | before:
            needed.update(n.input)
    return [[op, str(sum(n.op_type == op for n in nodes)),
             str(sum(n.op_type == op and id(n) in after & before for n in nodes))]
            for op in ("Transpose", "ReorderInput", "ReorderOutput")]


def lstm_against_eager(args: argparse.Namespace) -> list[list[str]]:
    """Figure 3: modelc's ONNX on onnxruntime against torch eager."""
    proto, weights = compile_sample("lstm")
    net = TorchSentiment(weights).eval()
    ours = session(proto.SerializeToString())
    rng, rows = np.random.default_rng(0), []
    for batch in BATCHES:
        x = inputs("lstm", batch, rng)
        xt = torch.from_numpy(x.astype(np.int64))

        def eager() -> np.ndarray:
            with torch.inference_mode():
                return net(xt).numpy()
        rows.append(check_and_time("lstm", batch, {"modelc": lambda: ours.run(None, {"tokens": x})[0], "torch": eager},
                                   args, 1.0))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=9, help="timed runs per case (default 9)")
    ap.add_argument("--quick", action="store_true", help="3 short runs: a smoke test of the bench itself")
    args = ap.parse_args()
    args.window = 0.1 if args.quick else 0.3  # seconds of calls per side in each run
    args.repeats = 3 if args.quick else args.repeats
    SCRATCH.mkdir(parents=True, exist_ok=True)
    ort.set_default_logger_severity(3)  # quiet the warning on saving an optimized graph with nchwc ops in it
    print(f"{cpu_model()}, {cpu_count()} cores, load {load_average()}; onnxruntime {ort.__version__}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads); "
          f"{args.repeats} runs of ~{args.window} s a side")
    heads = ["model", "batch", "modelc rows/s", "torch rows/s", "modelc / torch", "fastest 10%", "target", ""]
    rows: list[list[str]] = []
    counts: dict[str, collections.Counter[str]] = {}
    for name, build in [("resnet", torch_resnet), ("transformer", TorchTransformer)]:
        rows += against_export(name, build, args, counts)
    print("\n### 1. modelc ONNX vs torch.onnx.export, both on onnxruntime (rows/s: median of runs, min–max)\n")
    print(table(heads, rows))

    print("\n### 2. Layout changes left in onnxruntime's optimized graph of modelc's resnet\n")
    print(table(["op", "nodes", "between two convolutions"], layout_changes(SCRATCH / "resnet.modelc.opt.onnx")))
    ops = sorted(set().union(*counts.values()))
    print("\nNodes by op type after optimization:\n")
    print(table(["op", *counts], [[op, *(str(c[op]) for c in counts.values())] for op in ops]))

    print("\n### 3. LSTM: modelc ONNX on onnxruntime vs torch eager (rows/s: median of runs, min–max)\n")
    print(table(heads, lstm_against_eager(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
