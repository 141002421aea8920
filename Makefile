# make help | setup | run | test | lint | bench | compare   (see README.md)
# Offline: DATA_MIRROR='../shared/mirror/nltk|../shared/mirror/mnist' make run
# (folders or base URLs separated by `|`, tried in order for each file; quote the value).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# uv installs the locked environment; use the machine's uv or a private copy in .tools/.
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
STAMP := $(VENV)/.synced
# Stage commands (`python -m tasks.X` in dvc.yaml) must find the project's interpreter.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export PIPELINE_RUN_ID ?= make-$(shell date -u +%Y%m%dT%H%M%SZ)

.PHONY: help setup run test lint bench compare clean-venv browser

help:
	@echo "make setup    create .venv from uv.lock (every other target does it when needed)"
	@echo "make run      dvc repro (the whole pipeline), then a one-line-per-stage summary"
	@echo "make test     the test suite (installs Debian's chromium for the UI test if missing)"
	@echo "make lint     ruff over tasks flows tests benchmarks"
	@echo "make bench    word2vec vs gensim benchmark (benchmarks/)"
	@echo "make compare  train the four Kim CNN variants, write metrics/compare.md"

setup: $(STAMP)

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv

# --compile-bytecode: every process (CLI, stage, DVC, test worker) imports TensorFlow, Prefect,
# MLflow or DVC; without .pyc files each one compiles them again wherever bytecode cannot be
# written (read-only venvs, PYTHONDONTWRITEBYTECODE=1): ~1.5 s of CPU per `import mlflow`.
$(STAMP): uv.lock pyproject.toml Makefile | $(UV)
	$(UV) sync --frozen --extra dev --extra k8s --python python3.11 --compile-bytecode
	touch $(STAMP)

run: setup
	$(PY) -m tasks.repro

# /usr/bin/chromium for tests/test_ui_browser.py; the same script .ci/run uses.
browser:
	scripts/install-chromium

test: setup browser
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check tasks flows tests benchmarks

bench: setup
	$(PY) benchmarks/word2vec_vs_gensim.py

clean-venv:
	rm -rf $(VENV) .tools

compare: setup
	$(PY) -m tasks.compare --train
