# Two entry points, each sets itself up from the project's own files:
#   make demo   runs the main job
#   make test   runs the quality gates and the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint protos clean

$(VENV)/.installed: setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(PY) examples/scheduler.py

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m mypy

test: lint
	$(PY) -m pytest

clean:
	rm -rf $(VENV) build *.egg-info
