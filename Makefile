# Two entry points, each sets itself up from the project's own files:
#   make demo   runs the main job (installs the package and nothing else)
#   make test   runs the quality gates and the whole test suite (installs every extra)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.demo-installed: setup.cfg setup.py | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: setup.cfg setup.py | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e '.[test,metrics,typing,ray]'
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	$(PY) examples/scheduler.py

lint: $(VENV)/.test-installed
	$(PY) -m ruff check .
	$(PY) -m mypy

test: lint
	$(PY) -m pytest

bench: $(VENV)/.demo-installed
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info
