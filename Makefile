# Two entry points, each sets itself up from the project's own files:
#   make demo   runs the main job (installs the package and nothing else)
#   make test   runs the quality gates and the whole test suite (installs every extra)
# Both first make sure of the Debian packages the rootfs containers need (runc, and
# busybox-static for a one-file rootfs): installed with apt-get when missing, as root;
# otherwise they stop and name them. crun is optional (tests that need it say why they skip).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

SYSTEM_PACKAGES ?= runc busybox-static

.PHONY: demo test lint bench clean system-packages

system-packages:
	@missing=""; \
	for package in $(SYSTEM_PACKAGES); do \
	  if command -v dpkg-query >/dev/null 2>&1; then \
	    dpkg-query -W -f='$${Status}' "$$package" 2>/dev/null | grep -q 'install ok installed' \
	      || missing="$$missing $$package"; \
	  else \
	    case "$$package" in \
	      busybox-static) [ -x /bin/busybox ] || missing="$$missing $$package" ;; \
	      *) command -v "$$package" >/dev/null 2>&1 || missing="$$missing $$package" ;; \
	    esac; \
	  fi; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing the system packages:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing \
	      || { DEBIAN_FRONTEND=noninteractive apt-get update \
	           && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; } \
	      || exit 1; \
	  else \
	    echo "Missing system packages:$$missing. Install them as root" \
	      "(apt-get install -y$$missing) or run this command as root." >&2; \
	    exit 1; \
	  fi; \
	fi

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.demo-installed: setup.cfg setup.py | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: setup.cfg setup.py | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e '.[test,metrics,typing,ray]'
	touch $@ $(VENV)/.demo-installed

demo: system-packages $(VENV)/.demo-installed
	$(PY) examples/scheduler.py

lint: $(VENV)/.test-installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

test: system-packages lint
	$(PY) -m pytest

bench: $(VENV)/.demo-installed
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info
