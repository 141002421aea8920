# make setup | run | test | lint | bench   (see README.md)
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

.PHONY: setup run test lint bench compare clean-venv

setup: $(STAMP)

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv

$(STAMP): uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --extra dev --extra k8s --python python3.11
	touch $(STAMP)

run: setup
	dvc repro
	dvc metrics show

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check tasks flows tests benchmarks

bench: setup
	$(PY) benchmarks/word2vec_vs_gensim.py

clean-venv:
	rm -rf $(VENV) .tools

compare: setup
	python -m tasks.compare --train
