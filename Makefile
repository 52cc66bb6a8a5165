# The two commands of the README: `make demo` runs flowscope with the reference
# trading platform and its load; `make test` checks everything.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo serve test lint typecheck unit bench clean

$(VENV)/.installed: pyproject.toml setup.py collector/_fastflatten.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/flowscope demo

serve: $(VENV)/.installed
	$(BIN)/flowscope serve

lint: $(VENV)/.installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(VENV)/.installed
	$(BIN)/mypy flowscope

# mermaid's own parser checks every diagram (tests/analyzer/test_diagrams.py); needs node and npm.
MERMAID := tests/analyzer/mermaid
$(MERMAID)/node_modules/.package-lock.json: $(MERMAID)/package-lock.json
	npm ci --prefix $(MERMAID) --no-audit --no-fund

# The OpenTelemetry JavaScript SDK's exporters send to a live server (tests/collector/test_js_sdk_exporters.py).
JS_SDK := tests/collector/js_sdk
$(JS_SDK)/node_modules/.package-lock.json: $(JS_SDK)/package-lock.json
	npm ci --prefix $(JS_SDK) --no-audit --no-fund

unit: $(VENV)/.installed $(MERMAID)/node_modules/.package-lock.json $(JS_SDK)/node_modules/.package-lock.json
	$(BIN)/pytest -q

test: lint typecheck unit

bench: $(VENV)/.installed
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/disk.py
	$(BIN)/python bench/analyzer.py
	$(BIN)/python bench/retention.py
	$(BIN)/python bench/soak.py
	$(BIN)/python bench/grpc_flood.py
	$(BIN)/python bench/big_spans.py
	$(BIN)/python bench/big_spans.py --transport grpc --senders 32
	$(BIN)/python bench/small_requests.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
