"""Figure 3: a model with ~1 GB of weights compiled and saved, against numpy writing the same bytes.

`x -> dense(8192) x 4` on float32[batch, 8192]: four 8192×8192 float32 kernels + biases = 1.07 GB.
Under 2 GB, so modelc.save writes one .onnx file (no external data). Files go to a temporary folder
(on the same file system for both sides) and are deleted after each run; nothing is fsync'ed, on
either side, so both measure writing into the page cache.
"""
from __future__ import annotations

import math
import subprocess
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from common import ROOT, Deadline, Stats, fmt_ratio, fmt_s, hot_spots_md, log, measure, table

UNITS = 8192
LAYERS = 4
SOURCE = f"""\
model wide(x: float32[batch, {UNITS}]) {{
    return x -> {" -> ".join(["dense(%d)" % UNITS] * LAYERS)}
}}
"""


def nbytes(units: int = UNITS, layers: int = LAYERS) -> int:
    return layers * (units * units + units) * 4


@dataclass
class Fig3:
    units: int = UNITS
    layers: int = LAYERS
    stats: dict[str, Stats] = field(default_factory=dict)
    file_bytes: int = 0
    cli_bytes: int = 0
    npy_bytes: int = 0
    notes: list[str] = field(default_factory=list)
    profile: str = ""


def run(deadline: Deadline, quick: bool = False) -> Fig3:
    import numpy as np
    import modelc
    units = 1024 if quick else UNITS
    src = SOURCE.replace(str(UNITS), str(units))
    fig = Fig3(units=units)
    tmp = Path(tempfile.mkdtemp(prefix="modelc-bench-"))
    limit = math.sqrt(6.0 / (units + units))
    held: dict = {}

    def modelc_compile():
        held["proto"] = modelc.compile_source(src, seed=0)

    def modelc_save():
        modelc.save(held.pop("proto"), tmp / "m.onnx")
        fig.file_bytes = (tmp / "m.onnx").stat().st_size
        (tmp / "m.onnx").unlink()

    model_file = tmp / "wide.model"
    model_file.write_text(src)
    cli = [str(ROOT / ".venv" / "bin" / "modelc"), "compile", str(model_file), "-o", str(tmp / "cli.onnx"), "--seed", "0"]

    def modelc_cli():
        proc = subprocess.run(cli, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"modelc compile failed: {proc.stderr[-300:]}")
        fig.cli_bytes = (tmp / "cli.onnx").stat().st_size
        (tmp / "cli.onnx").unlink()

    def numpy_arrays():
        rng = np.random.default_rng(0)
        out = []
        for _ in range(LAYERS):
            out.append(rng.uniform(-limit, limit, (units, units)).astype(np.float32))  # glorot_uniform
            out.append(np.zeros(units, dtype=np.float32))
        return out

    def numpy_init_save():
        total = 0
        for i, a in enumerate(numpy_arrays()):
            np.save(tmp / f"w{i}.npy", a)
            total += (tmp / f"w{i}.npy").stat().st_size
        fig.npy_bytes = total
        for f in tmp.glob("*.npy"):
            f.unlink()

    def numpy_save_only():
        for i, a in enumerate(held["arrays"]):
            np.save(tmp / f"w{i}.npy", a)
        for f in tmp.glob("*.npy"):
            f.unlink()

    try:
        log(f"fig3: {LAYERS} × dense({units}), {nbytes(units) / 1e9:.2f} GB, in {tmp}")
        # round-robin: compile (proto kept), save that proto, numpy; compile + save = the sum per round
        s = measure({"modelc: compile_source": modelc_compile, "modelc: save": modelc_save,
                     "numpy: init same arrays + np.save": numpy_init_save,
                     "CLI: `modelc compile FILE -o OUT` (whole process)": modelc_cli}, repeats=3, budget_s=130,
                    deadline=deadline)
        fig.stats["modelc: compile_source + save"] = Stats(
            [a + b for a, b in zip(s["modelc: compile_source"].times, s["modelc: save"].times)])
        fig.stats.update(s)
        held["arrays"] = numpy_arrays()
        fig.stats["numpy: np.save only (arrays ready)"] = measure({"s": numpy_save_only}, 3, 30, deadline)["s"]
        held.clear()
        ratio = fig.stats["modelc: compile_source + save"].median / fig.stats["numpy: init same arrays + np.save"].median
        if ratio > 1.5:
            small = units // 2
            src_small = src.replace(str(units), str(small))
            log("fig3 profile")

            def compile_save_small():
                modelc.save(modelc.compile_source(src_small, seed=0), tmp / "p.onnx")
                (tmp / "p.onnx").unlink()
            fig.profile = hot_spots_md(f"Hot spots of `compile_source` + `save` for {LAYERS} × dense({small}) "
                                       f"({nbytes(small) / 1e9:.2f} GB)", compile_save_small, deadline, top=10)
    finally:
        held.clear()
        shutil.rmtree(tmp, ignore_errors=True)
    return fig


def render(fig: Fig3) -> tuple[str, list[tuple[str, str, bool | None]]]:
    gb = nbytes(fig.units, fig.layers) / 1e9
    base = fig.stats["numpy: init same arrays + np.save"].median
    base_io = fig.stats["numpy: np.save only (arrays ready)"].median
    rows = [[k, fmt_s(s.median), f"{gb / s.median:.2f} GB/s", fmt_ratio(s.median / base), fmt_ratio(s.median / base_io),
             s.n] for k, s in fig.stats.items()]
    out = [f"Model: `x -> dense({fig.units})` × {fig.layers} on float32[batch, {fig.units}]: {gb:.2f} GB of float32 "
           f"weights (glorot_uniform kernels, zero biases); .onnx file {fig.file_bytes / 1e9:.3f} GB (CLI: "
           f"{fig.cli_bytes / 1e9:.3f} GB), .npy files "
           f"{fig.npy_bytes / 1e9:.3f} GB (one file, no external data: under 2 GB). Baseline A: numpy drawing the same "
           "arrays (same distribution, float64 draw cast to float32, as modelc's initializer does) and `np.save` "
           "of each; baseline B: `np.save` alone of ready arrays (pure write). No fsync on either side. The API "
           "path (`compile_source` returns a ModelProto holding the weights; `save` serializes it) and the command "
           "line (which writes from the numpy buffers, never building the full proto) are both measured; the CLI "
           "row includes its process start-up (see figure 4), the numpy baseline does not.\n",
           table(["what", "time", "rate", "/ A (init + np.save)", "/ B (np.save only)", "repeats"], rows)]
    out += [f"\n{n}" for n in fig.notes]
    if fig.profile:
        out.append(fig.profile)
    m = fig.stats["modelc: compile_source + save"].median
    summary = [("3. 1 GB model: compile + save / numpy init + np.save (target ≤ 1.5×)", fmt_ratio(m / base), m / base <= 1.5),
               ("3. 1 GB model: compile + save / np.save alone", fmt_ratio(m / base_io), None)]
    cli = fig.stats.get("CLI: `modelc compile FILE -o OUT` (whole process)")
    if cli is not None and cli.n:
        summary.insert(1, ("3. 1 GB model: CLI `modelc compile` / numpy init + np.save (target ≤ 1.5×)",
                           fmt_ratio(cli.median / base), cli.median / base <= 1.5))
    return "\n".join(out), summary


if __name__ == "__main__":
    f = run(Deadline(600), quick="--quick" in sys.argv)
    print(render(f)[0])
