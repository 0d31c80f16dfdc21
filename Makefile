# The two commands in the README: `make demo` and `make test`. Both set everything up themselves.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Flink's distribution (jars and scripts) from PyPI, without apache-flink's Python dependencies (apache-beam,
# pinned numpy, ...), which pipewatch does not use: the tests and the demo run a real local cluster with it.
FLINK_VERSION := 2.3.0
FLINK_STAMP := $(VENV)/.flink-$(FLINK_VERSION)-stamp

.PHONY: demo test bench system-deps check-python clean

demo: $(STAMP) $(FLINK_STAMP)
	$(VENV)/bin/pipewatch demo

test: $(STAMP) $(FLINK_STAMP) system-deps
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP) $(FLINK_STAMP) system-deps
	$(PY) bench/run.py

system-deps:
	@bash scripts/system-deps.sh

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "pipewatch needs Python >= 3.11; this is " + sys.version.split()[0])'

$(STAMP): pyproject.toml | check-python
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

$(FLINK_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --no-deps apache-flink==$(FLINK_VERSION) apache-flink-libraries==$(FLINK_VERSION)
	@touch $@

clean:
	rm -rf $(VENV) .pytest_cache
