"""The `make demo` evaluation: run a compiled model with onnxruntime on data made here, print the result."""
import sys

import numpy as np
import onnxruntime as ort

path = sys.argv[1]
session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).normal(size=(1000, 8)).astype(np.float32)
(y,) = session.run(None, {"x": x})
print(f"{path}: ran {len(x)} rows on {session.get_providers()[0]}")
print(f"  output y {y.shape} {y.dtype}: mean {y.mean():.5f}, min {y.min():.5f}, max {y.max():.5f}")
print("  first rows:", np.round(y[:3, 0], 5).tolist())
