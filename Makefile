# Two entry points for a new machine: `make serve` and `make test`.
# Both create .venv on first use; durable-rules compiles from source (needs gcc and Python headers).

PYTHON ?= $(shell for p in python3.12 python3.11 python3; do \
	  if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] <= (3, 12)))' 2>/dev/null; \
	  then echo $$p; break; fi; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint typecheck unit bench cards-review docs clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 or 3.12 is required (durable-rules 2.0.28 does not build on 3.13)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

serve: $(STAMP)
	$(BIN)/imatinib-cds serve

lint: $(STAMP)
	$(BIN)/ruff check cds tests bench
	$(BIN)/ruff format --check cds tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck unit
	$(BIN)/imatinib-cds rules check rules/
	$(BIN)/imatinib-cds rules test rules/

bench: $(STAMP)
	$(BIN)/python bench/engine.py

# every fhir_examples/ request's cards in a 400 px EHR-like panel (Debian's chromium): PNGs and a table
cards-review: $(STAMP)
	$(BIN)/python bench/cards.py --out build/cards-review

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
