# Two commands do all the set-up on a fresh machine: `make test` and `make demo`.
# Both create .venv from pyproject.toml the first time (and again whenever pyproject.toml changes).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test test-fast demo demo-text clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip freeze --exclude-editable > $(VENV)/installed-versions.txt
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

demo: $(STAMP)
	$(PY) -m tools.demo digits

demo-text: $(STAMP)
	$(PY) -m tools.demo markov

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

clean-venv:
	rm -rf $(VENV)
