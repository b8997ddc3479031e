# seizure-lightning: `make help` lists the targets.
# `make test` and `make experiment NAME=...` work on a fresh clone: they create .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU wheel by default; on a CUDA cluster e.g. TORCH_SPEC="torch==2.13.0 --index-url <your wheel index>"
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
NAME ?= chb_loso
DATA_ROOT ?=
FOLD ?=
ARGS ?=
LAUNCHER ?= local
PYTEST_ARGS ?=
# The recipes read these from the environment, quoted, so a value is never run as shell code
# (DATA_ROOT='x;touch y' is a folder name, not two commands). ARGS is split into words only.
export NAME DATA_ROOT FOLD ARGS LAUNCHER PYTEST_ARGS

.DEFAULT_GOAL := help
.PHONY: help install test test-all lint experiment sweep corpus bench clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo "  variables: NAME=$$NAME DATA_ROOT=<dataset> FOLD=<patient> ARGS='key=value ...' LAUNCHER=local|slurm"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[test,onnx]"
	@touch $@

install: $(STAMP) ## create .venv: torch (TORCH_SPEC) first, then the project in editable mode

test: $(STAMP) ## the fast default suite (unit + fast integration; < 5 min on 2 CPU cores)
	set -f; $(BIN)/python -m pytest -q -m "not slow" -n auto --dist loadfile --durations=15 $$PYTEST_ARGS

test-all: $(STAMP) ## every test, the slow end-to-end studies too (what CI runs)
	set -f; $(BIN)/python -m pytest -q -n auto --dist loadfile --durations=25 $$PYTEST_ARGS

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .

experiment: $(STAMP) ## run a LOSO study: make experiment NAME=chb_loso [DATA_ROOT=...] [FOLD=chb03] [ARGS="trainer.max_epochs=5"]
	set -f; $(BIN)/python -m experiments run "$$NAME" $${FOLD:+"folds=[$$FOLD]"} $$ARGS

sweep: $(STAMP) ## one job per held-out patient: make sweep NAME=chb_loso LAUNCHER=slurm|local [ARGS=...]
	set -f; $(BIN)/python -m experiments sweep "$$NAME" "launcher.name=$$LAUNCHER" $${FOLD:+"folds=[$$FOLD]"} $$ARGS

corpus: $(STAMP) ## build the default synthetic CHB-MIT-shaped corpus under data/synthetic
	$(BIN)/python -m datamodules synth data/synthetic

bench: $(STAMP) ## speed, memory and model cost side by side with braindecode -> bench/results.json
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python -m pip install -q --no-deps braindecode==0.8.1
	$(BIN)/python -m bench

clean: ## remove caches, runs and build leftovers (keeps .venv and data/)
	rm -rf cache runs lightning_logs wandb .pytest_cache bench/work
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
