# Two commands matter: `make up` (the main job) and `make test` (the whole suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up test bench lint typecheck venv clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,parity]'
	touch $(STAMP)

venv: $(STAMP)

## Run the main job: for now a demonstration of the output checker on generated microdata.
up: $(STAMP)
	$(BIN)/enclave demo

## Lint, type-check and run every test (in parallel).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -n auto

## Benchmarks beside their anchors; writes benchmarks/RESULTS.md, RESULTS-protection.md and
## RESULTS-linkage.md.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_checker.py --write benchmarks/RESULTS.md
	$(BIN)/python benchmarks/bench_protection.py --write benchmarks/RESULTS-protection.md
	$(BIN)/python benchmarks/bench_linkage.py --spark --write benchmarks/RESULTS-linkage.md

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
