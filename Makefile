# Two commands matter: `make up` (the main job) and `make test` (the whole suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CHP    := $(VENV)/node_modules/.bin/configurable-http-proxy

.PHONY: up test bench lint typecheck venv chp clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,parity]'
	touch $(STAMP)

venv: $(STAMP)

## configurable-http-proxy 5.3.0 (JupyterHub's proxy; needs Node >= 20) in the venv's prefix.
$(CHP): | $(STAMP)
	npm install --prefix $(VENV) --no-audit --no-fund --loglevel=error configurable-http-proxy@5.3.0

chp: $(CHP)

## Run the main job: the whole enclave (demo data, hub, proxy, review queue, workers) under
## ./.enclave/; needs root (it says what is missing otherwise). Ctrl-C stops everything.
up: $(STAMP) $(CHP)
	$(BIN)/enclave up

## Lint, type-check and run every test (in parallel).
test: $(STAMP) $(CHP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -n auto --dist loadgroup

## Benchmarks beside their anchors; writes benchmarks/RESULTS.md, RESULTS-protection.md,
## RESULTS-linkage.md, RESULTS-queue.md (needs PostgreSQL on 127.0.0.1:5432), RESULTS-hub.md
## (needs root: accounts, cgroups, bubblewrap), RESULTS-datalab.md, RESULTS-ledger.md,
## RESULTS-ledger-50k.md and RESULTS-microdata.md.
bench: $(STAMP) $(CHP)
	$(BIN)/python benchmarks/bench_checker.py --write benchmarks/RESULTS.md
	$(BIN)/python benchmarks/bench_protection.py --write benchmarks/RESULTS-protection.md
	$(BIN)/python benchmarks/bench_linkage.py --spark --write benchmarks/RESULTS-linkage.md
	$(BIN)/python benchmarks/bench_queue.py --write benchmarks/RESULTS-queue.md
	$(BIN)/python benchmarks/bench_hub.py --write benchmarks/RESULTS-hub.md
	$(BIN)/python benchmarks/bench_datalab.py --write benchmarks/RESULTS-datalab.md
	$(BIN)/python benchmarks/bench_ledger.py --write benchmarks/RESULTS-ledger.md
	$(BIN)/python benchmarks/bench_ledger.py --population 50000 --runs 1 --write benchmarks/RESULTS-ledger-50k.md
	$(BIN)/python benchmarks/bench_microdata.py --write benchmarks/RESULTS-microdata.md

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
