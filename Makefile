# One task runner for people and CI. Everything installs into .venv from this repo's own files.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin

.PHONY: install build run test lint bench eval clean

$(VENV)/.installed: pyproject.toml setup.py
	PYTHON=$(PYTHON) ./scripts/ensure-system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools==84.2.1"
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Rebuild the C cores after editing them (pip install -e builds them once).
build: install
	$(PY) setup.py -q build_ext --inplace

# The main job on the embedded default store (./lightkeeper-data): hash sample photos into a
# bank, match edited copies and unrelated photos against it, then serve the HTTP API.
run: install
	LK=$(BIN)/lightkeeper ./scripts/demo.sh

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# The suite on every core (at most 4), a test file per worker at a time: each worker starts its
# own PostgreSQL server and browser, and databases and directories are per test, so files do not
# share state. 11 min on one process, under 7 on this 2-core VM. PYTEST_PARALLEL= runs it serially.
PYTEST_PARALLEL ?= -n auto --maxprocesses 4 --dist loadfile

# PostgreSQL cases must run here (the tests start their own server), never skip quietly.
test: build lint
	LIGHTKEEPER_REQUIRE_POSTGRES=1 LIGHTKEEPER_REQUIRE_BROWSER=1 $(BIN)/pytest -q --durations=15 $(PYTEST_PARALLEL)

bench: install
	$(PY) -m pip install -q -e '.[dev,bench]'
	$(PY) bench/run.py

# Accuracy on real photos (docs/accuracy.md): builds the corpus where missing, evaluates it,
# rewrites the report, its figures and the generated section of docs/accuracy.md.
eval: install
	LK=$(BIN)/lightkeeper ./scripts/eval.sh

clean:
	rm -rf build src/lightkeeper/*.so src/lightkeeper/*/*.so
