# The only entry point for people and CI. `make book` builds the book on the synthetic sample,
# `make test` runs ruff and the tests (which need the executed chapters and the built book).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stamp-deps
DATA   ?= data/sample
EXECUTED := _build/executed
export MPLBACKEND := Agg
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: help setup sample execute book html test lint clean lab

help:
	@echo "make book   set up .venv, generate $(DATA), execute the chapters, build _build/html"
	@echo "make test   everything above, then ruff and pytest (unit + chapter + rendered-book tests)"
	@echo "make lab    JupyterLab with the package and the python3 kernel"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[book,dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (s12ls)" >/dev/null
	@touch $(STAMP)

setup: $(STAMP)

$(DATA)/synthetic_manifest.json: s12ls_utils/synthetic.py | $(STAMP)
	$(BIN)/s12ls synth $(DATA) --overwrite

sample: $(DATA)/synthetic_manifest.json

# Execute every chapter once with papermill (defaults = the synthetic sample); tests read these copies.
execute: sample
	$(BIN)/python .ci/execute_chapters.py --out $(EXECUTED)

# Build the HTML book from the executed copies (execution off, warnings are errors).
html:
	$(BIN)/python .ci/execute_chapters.py --out $(EXECUTED) --stage-only
	$(BIN)/jupyter-book build $(EXECUTED) --path-output . -W --keep-going
	@echo "book: $(CURDIR)/_build/html/index.html"

book: execute html

lint: | $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check s12ls_utils tests benchmarks

test: book lint
	S12LS_EXECUTED=$(EXECUTED) $(BIN)/python -m pytest

lab: sample
	$(BIN)/jupyter lab --notebook-dir=.

clean:
	rm -rf _build results runs
