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
MATRIX   := _build/matrix
CHROMIUM ?= /usr/bin/chromium
# pytest worker processes (pytest-xdist); each test file runs whole in one of them, so module fixtures are built once;
# `make test` prints the 30 slowest phases (what tests/conftest.py's SLOW_FILES ordering is tuned from)
PYTEST_JOBS ?= 2
export MPLBACKEND := Agg
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: help setup sample execute book html matrix book-and-matrix browser test lint clean lab

help:
	@echo "make book   set up .venv, generate $(DATA), execute the chapters, build _build/html"
	@echo "make test   everything above, the parameter matrix, then ruff and pytest (unit + chapter + rendered-book tests)"
	@echo "make lab    JupyterLab with the package and the python3 kernel"

# Python writes each module's .pyc the first time a process imports it. Where PYTHONDONTWRITEBYTECODE is set (as on
# these machines) it never does, and every process compiled its imports again (11 s against 4.5 s to import the
# chapters' stack; a fresh-clone make test took 1,256 s so). Compiling the whole venv at install (uv's
# --compile-bytecode) costs about 50 s, most of it for modules nothing here imports: compiling on first import
# costs only what is used.
unexport PYTHONDONTWRITEBYTECODE

# torch with pip, which takes the local CPU wheel (uv looks only at PyPI, where torch 2.13.0 is a CUDA build of
# several GB); the rest with uv, which resolves and downloads in parallel (8 s against pip's 67 s, measured on a
# fresh venv here); torch 2.13.0+cpu satisfies the project's torch==2.13.0, so uv keeps it.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --no-compile torch==2.13.0 uv==0.13.9
	$(BIN)/uv pip install --python $(BIN)/python -q -e ".[book,dev]"
	@# rfc3987-syntax (jsonschema[format-nongpl], via jupyter-events) compiles 38 parsers at import: 1.3-2.2 s of
	@# every `import nbformat` (each kernel, papermill and pytest process); without it jsonschema skips the
	@# "iri" format check, which nothing here uses (import nbformat: 0.24 s)
	$(BIN)/uv pip uninstall --python $(BIN)/python -q rfc3987-syntax
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (s12ls)" >/dev/null
	@touch $(STAMP)

setup: $(STAMP)

$(DATA)/synthetic_manifest.json: s12ls_utils/sample/generate.py s12ls_utils/sample/plan.py | $(STAMP)
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

# The chapters rerun as readers rerun them (papermill parameters, other sensors and models, an S2-only data
# folder), on small settings, in two lanes; after `make execute` (the cases use its task folders) and without
# touching the book's record. Prints each case's duration; tests/test_parameter_matrix.py reads the results.
matrix: execute
	$(BIN)/python .ci/parameter_matrix.py --out $(MATRIX) --data $(DATA)

# For make test: the book's chapters, its HTML build and the matrix's cases in one pool of two lanes, so that a lane
# done with its chapters starts cases instead of waiting for the other (the book's record is checked from its last
# chapter on).
book-and-matrix: sample
	$(BIN)/python .ci/parameter_matrix.py --out $(MATRIX) --data $(DATA) --book $(EXECUTED) --execute-book \
	  --after-book "make html"

# Headless Chromium for tests/test_rendered_book.py: Debian's package, driven by Playwright (which never
# downloads a browser here). Installed when missing and we are root (CI); otherwise the test is skipped
# with this message, unless S12LS_REQUIRE_BROWSER=1 (set by .ci/run) makes that an error.
browser:
	@if [ -x "$(CHROMIUM)" ]; then \
	  echo "browser: $(CHROMIUM) ($$("$(CHROMIUM)" --version 2>/dev/null || echo 'version unknown'))"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "browser: installing Debian's chromium (apt-get)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends \
	    chromium fonts-liberation fonts-dejavu-core libgl1-mesa-dri >/dev/null; \
	  test -x "$(CHROMIUM)"; \
	else \
	  echo "browser: $(CHROMIUM) is missing and this is not root: install Debian's chromium" \
	       "(apt-get install chromium); the rendered-book test is skipped until then"; \
	fi

lint: | $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check s12ls_utils tests benchmarks .ci book

# The chapters and the parameter matrix run first (tests/test_parameter_matrix.py checks the cases' outcomes), then
# the book is built: tests/test_rendered_book.py opens every page of _build/html in Chromium.
test: book-and-matrix lint browser
	S12LS_EXECUTED=$(EXECUTED) S12LS_MATRIX=$(MATRIX) S12LS_CHROMIUM=$(CHROMIUM) \
	  $(BIN)/python -m pytest -n $(PYTEST_JOBS) --dist loadfile --no-loadscope-reorder --durations=30

# JupyterLab on this checkout (chapters under book/), the venv's `python3` kernel as default; the
# server refuses root unless told, which is what containers run as.
lab: sample
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" --MappingKernelManager.default_kernel_name=python3 \
	  $(if $(filter 0,$(shell id -u)),--allow-root)

clean:
	rm -rf _build results runs
