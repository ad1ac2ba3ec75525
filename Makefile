# modelc: `make demo` and `make test` each create .venv and install the project into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check dist bench bench-env clean gpu cpu parser fuzz platforms

# RUNTIME=cpu (default) installs onnxruntime; RUNTIME=gpu installs onnxruntime-gpu instead.
RUNTIME ?= cpu

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(RUNTIME),test,dask]"
	touch $(STAMP)

# Switch this .venv to onnxruntime-gpu (never both packages at once: they share the module name).
gpu:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip uninstall --quiet -y onnxruntime onnxruntime-gpu || true
	$(BIN)/python -m pip install --quiet -e ".[gpu,test,dask]"
	touch $(STAMP)

cpu:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip uninstall --quiet -y onnxruntime onnxruntime-gpu || true
	$(BIN)/python -m pip install --quiet -e ".[cpu,test,dask]"
	touch $(STAMP)

# housing.safetensors: trained by samples/train_housing.py on demo_data.py's houses (r2 about 0.91)
demo: $(STAMP)
	@mkdir -p out
	$(BIN)/modelc check samples/housing.model
	$(BIN)/modelc summary samples/housing.model
	$(BIN)/modelc compile samples/housing.model -o out/housing.onnx --weights samples/housing.safetensors
	$(BIN)/python samples/demo_data.py out/houses.parquet
	$(BIN)/modelc eval out/housing.onnx --data out/houses.parquet --target price \
		--metric mse --metric mae --metric r2 --metric "huber(threshold=2.0)"

test: $(STAMP)
	$(BIN)/python -m pytest

# The hypothesis fuzzers (every @given test: hypothesis marks them) with EXAMPLES random examples each, outside CI
# (the normal suite runs a few, the same each time): make fuzz EXAMPLES=100000
EXAMPLES ?= 100000
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz FUZZ_EXAMPLES=$(EXAMPLES) $(BIN)/python -m pytest -q -m hypothesis tests/

# --provider openvino, node and wasm (docs/platforms.md): their Python packages, then onnxruntime-node and -web at
# the versions runtime/js/package-lock.json pins (no install script runs: the CPU binaries ship in the package).
# wasm also needs Chromium: `apt-get install chromium` (CI's .ci/run does it).
platforms: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[$(RUNTIME),test,dask,platforms]"
	cd runtime/js && ONNXRUNTIME_NODE_INSTALL=skip npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

# an sdist and a wheel in dist/ (tests/test_wheel.py installs the wheel outside the checkout)
dist: $(STAMP)
	$(BIN)/python -m pip install --quiet build
	$(BIN)/python -m build --outdir dist .

# lint (ruff, pinned in the test extra) and the shape of the code (imports one way, short functions)
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q tests/test_layout.py

bench: $(STAMP)
	$(BIN)/python bench/run.py

# The frameworks compared against live in their own venv, never in the package's dependencies.
BENCH_VENV := .bench-venv
bench-env: $(STAMP)
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet torch==2.13.0 torchmetrics keras jax onnx onnxscript numpy
	$(BENCH_VENV)/bin/python -m pip install --quiet -e ".[cpu]"

# grammar/model_parser.py, the parser generated from grammar/model.lark (tests/test_parser_build.py says when stale)
parser: $(STAMP)
	$(BIN)/python -m modelc.grammar.generate_parser

clean:
	rm -rf out .pytest_cache dist build
