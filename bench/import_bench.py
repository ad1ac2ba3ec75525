"""On-demand benchmark: `modelc import` of ResNet50 against Keras' own `keras.saving.load_model`, same file.

    python bench/import_bench.py [--rounds K] [--workdir DIR]

ResNet50 (keras.applications, weights=None, the full 224x224 config: 25.6 M parameters) is built once by
Keras and saved as a .keras archive. Then, K rounds, each measured in a fresh process and timed after the
imports (so neither side pays for loading its own modules): Keras' `load_model` of the archive; modelc's
`import_keras` (read the archive, build and fold the graph, write the source, file the weights, check the
source with the compiler); and the whole `modelc import` (the same, plus writing .model and .safetensors).
Medians of the K rounds, and import / load_model as the ratio of medians (target <= 1). Keras runs with the
jax backend on the CPU. Never run by the test suite.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import cpu_count, cpu_model, fmt_ratio, table, verdict  # noqa: E402  (pure stdlib helpers)

KERAS_ENV = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
BUILD = """
import sys, keras
keras.applications.ResNet50(weights=None).save(sys.argv[1])
"""
TIMED = {
    "keras.saving.load_model": ("import keras", "keras.saving.load_model(path)"),
    "modelc import_keras": ("from modelc.importer import import_keras", "import_keras(path)"),
    "modelc import (files written)": ("from modelc.importer import write_import", "write_import(path, out)"),
}


def timed(setup: str, call: str, path: Path, out: Path) -> float:
    """Seconds of `call` in a fresh interpreter, after `setup` (the imports) has run."""
    code = (f"import sys, time\n{setup}\npath, out = sys.argv[1], sys.argv[2]\n"
            f"t = time.perf_counter()\n{call}\nprint(time.perf_counter() - t)")
    r = subprocess.run([sys.executable, "-c", code, str(path), str(out)], capture_output=True, text=True,
                       env=KERAS_ENV, check=True)
    return float(r.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        path, out = Path(tmp) / "resnet50.keras", Path(tmp) / "resnet50.model"
        subprocess.run([sys.executable, "-c", BUILD, str(path)], env=KERAS_ENV, check=True, capture_output=True)
        size_mb = path.stat().st_size / 1e6
        times: dict[str, list[float]] = {name: [] for name in TIMED}
        for k in range(args.rounds):
            order = list(TIMED) if k % 2 == 0 else list(reversed(TIMED))   # alternate, so neither runs warm
            for name in order:
                times[name].append(timed(*TIMED[name], path, out))
        medians = {name: statistics.median(v) for name, v in times.items()}
    keras_s = medians["keras.saving.load_model"]
    rows = [[name, f"{m:.2f} s", ", ".join(f"{t:.2f}" for t in times[name]), fmt_ratio(m / keras_s)]
            for name, m in medians.items()]
    print(f"ResNet50 (224x224, 25.6 M parameters, {path.name} {size_mb:.0f} MB) on "
          f"{cpu_model()}, {cpu_count()}; medians of {args.rounds} fresh processes, timed after imports\n")
    print(table(["what", "median", "runs", "vs load_model"], rows))
    ratio = medians["modelc import_keras"] / keras_s
    print(f"\nimport_keras / load_model = {ratio:.2f} (target <= 1): {verdict(ratio <= 1)}")


if __name__ == "__main__":
    main()
