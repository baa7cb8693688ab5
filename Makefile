# lit_vision — every target works as the first command on a fresh clone (it installs what it needs).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOGDIR ?= outputs
PYTEST_WORKERS ?= 2
ARGS ?=

.PHONY: help install train test test-full bench bench-gpu lint format tensorboard clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# Re-installs only when pyproject.toml is newer than the stamp.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# pip's "Location ... is ignored" lines come from this machine's pip config, not from the project.
	@set -o pipefail; $(PY) -m pip install --upgrade --quiet pip 2>&1 | { grep -v "is ignored: it is neither" || true; }
	@set -o pipefail; $(PY) -m pip install --quiet -e ".[dev,trackers]" 2>&1 | { grep -v "is ignored: it is neither" || true; }
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install lit_vision with its dev tools (idempotent)

train: $(STAMP)  ## train the default experiment (digits CNN, offline); pass overrides with ARGS="..."
	$(PY) train.py $(ARGS)

test: $(STAMP)  ## the fast test suite (about 10 minutes on 2 cores)
	$(PY) -m pytest -m "not slow" -n $(PYTEST_WORKERS) $(ARGS)

test-full: $(STAMP)  ## every test, slow ones included
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(ARGS)

bench: $(STAMP)  ## benchmark suite: writes bench/results.json and bench/results.md
	$(PY) -m bench $(ARGS)

bench-gpu: $(STAMP)  ## GPU measurements (cifar10_fast, precisions, 2-GPU DDP): bench/gpu/; ARGS=--dry-run anywhere
	$(PY) -m bench.gpu $(ARGS)

lint: $(STAMP)  ## ruff check + format check
	$(PY) -m ruff check src tests bench train.py
	$(PY) -m ruff format --check src tests bench train.py

format: $(STAMP)  ## apply ruff fixes and formatting
	$(PY) -m ruff check --fix src tests bench train.py
	$(PY) -m ruff format src tests bench train.py

tensorboard: $(STAMP)  ## serve TensorBoard over outputs/ and multirun/
	$(VENV)/bin/tensorboard --logdir_spec outputs:outputs,multirun:multirun --bind_all

clean:  ## remove run outputs and caches (keeps .venv and data)
	rm -rf outputs multirun lightning_logs .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
