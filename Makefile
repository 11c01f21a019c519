# The two commands of the README: `make run` (install + start on SQLite) and `make test` (everything CI runs).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench-quick install install-dev

# `make run` installs hookline alone (fast first start); `make test` adds the test and benchmark extras.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(BIN)/.installed-dev: $(BIN)/.installed pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@

install: $(BIN)/.installed

install-dev: $(BIN)/.installed-dev

run: $(BIN)/.installed
	$(BIN)/hookline serve

# The second mypy checks hookline_receiver on its own: its oldest Python, no pydantic plugin.
lint: $(BIN)/.installed-dev
	$(BIN)/ruff check src tests bench receiver examples scripts
	$(BIN)/ruff format --check src tests bench receiver examples scripts
	$(BIN)/mypy src
	$(BIN)/mypy --config-file receiver/pyproject.toml src/hookline_receiver

# A smoke run of the benchmark harness (small sizes, figures printed, never asserted).
bench-quick: $(BIN)/.installed-dev
	$(BIN)/python -m bench --quick

test: lint bench-quick
	$(BIN)/pytest -n 3 --dist loadfile
