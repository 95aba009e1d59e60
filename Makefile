# The project's commands. Everything the project needs is installed from pyproject.toml into
# .venv, so `make test` works from a fresh clone with only python3 on the PATH.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp
# The user-facing extras, plus the dev tools as dependency groups (pip >= 25.1).
EXTRAS := hypothesis,cli
GROUPS := --group dev

.PHONY: test lint typecheck pytest docs-build docs bench demo soak clean

# (Re)install whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]' $(GROUPS)
	touch $@

test: lint typecheck pytest docs-build

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict

# On every core (pytest-xdist): the suite is CPU-bound and its tests are independent.
pytest: $(STAMP)
	$(BIN)/pytest -n auto

docs-build: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The shopping-cart story on a simulated 5-node cluster (deterministic, about a second).
demo: $(STAMP)
	$(BIN)/dynamo-core demo

# 10,000 seeded simulations with every fault on, on every core, then 2,000 with joins and
# leaves (--churn); exits 1 on any violation.
# `make test` runs 200 seeds (tests/test_simulation.py); this is the long soak.
soak: $(STAMP)
	$(BIN)/dynamo-core simulate --seeds 10000 --ops 500 --jobs $$(nproc 2>/dev/null || echo 2)
	$(BIN)/dynamo-core simulate --churn --seeds 2000 --ops 500 --jobs $$(nproc 2>/dev/null || echo 2)

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# merkletools is installed without its dependencies: its pysha3 does not build on Python >= 3.11
# and only sha256 is used.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]' $(GROUPS) --group bench
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps 'merkletools==1.0.3'
	touch $@

# BASELINE=path.json prints every case beside a saved run (.bench/results.json of an earlier
# `make bench`, copied aside); BENCH_ARGS passes anything else (--only node --quick).
bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks $(if $(BASELINE),--baseline $(BASELINE)) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) site build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis .bench *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
