"""Defaults every runtime command shares. Plain constants, importable without numpy: the command line builds
its parser from them before it knows which command runs."""

DEFAULT_BATCH = 1024                                  # rows per batch, for every engine and command
PREDICTION_FORMATS = ("npz", "npy", "parquet", "csv")  # predictions files, by suffix; writers.py has one each
DEFAULT_FORMAT = "parquet"                            # of each partition's file with `run -o DIR/`
ON_MISSING = {  # --on-missing: what becomes of a row with a missing input or target value (missing.py)
    "error": "stop at the first such row, naming the file, the row and the column",
    "skip": "leave such rows out (counted as skipped_rows in --json)",
    "keep": "pass the value on as NaN",
}
DEFAULT_ON_MISSING = "error"
DEFAULT_CALIBRATION_ROWS = 256                        # rows int8-static calibrates on (compile, compare)
PROVIDERS = {  # --provider / --providers: where a model runs (session.py holds how)
    "cpu": "onnxruntime, CPU execution provider",
    "cuda": "onnxruntime-gpu, CUDA execution provider",
    "reference": "onnx's ReferenceEvaluator (the oracle: slow, exact to the spec)",
    "openvino": "OpenVINO's runtime on the CPU (the openvino package)",
    "node": "onnxruntime-node in a Node.js process",
    "wasm": "onnxruntime-web's WebAssembly backend in headless Chromium",
}
