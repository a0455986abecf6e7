# hotline12345 — the two commands: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
CONFIG ?= config.yaml
PLATFORMS ?= kunming,province,dali
BIN := $(VENV)/bin

.PHONY: run test lint call deps asterisk venv pages clean

## run: Redis + the province and two prefectures (an Asterisk and a controller each) on the
## embedded defaults, linked on loopback; PLATFORMS=all runs all 17 (Ctrl-C stops all)
run: deps asterisk venv pages
	$(BIN)/hotline12345 stack --config $(CONFIG) --platforms $(PLATFORMS)

## test: install what the tests need, lint, and run every test (real Asterisk, Redis, SIPp) in
## TEST_WORKERS parallel pytest-xdist workers, each test module whole on one worker and the fault
## modules one after another (tests/conftest.py); the tests mostly wait on real timers.
## TEST_WORKERS=0 runs them all in this one process, as plain `pytest` does
TEST_WORKERS ?= 3
test: deps asterisk venv pages lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

## lint: ruff, ruff format --check, mypy --strict, the import layers (lint-imports, pyproject.toml)
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## call: place a test call to 12345 on the running stack (SIPp caller)
call: venv
	$(BIN)/hotline12345 call --config $(CONFIG)

deps:
	scripts/install-system-deps.sh

asterisk: deps
	scripts/provision-asterisk.sh >/dev/null

venv: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

## pages: the pages' npm libraries (package-lock.json, exact versions) bundled for the browser
pages: node_modules/.hotline/jssip.min.js

node_modules/.hotline/jssip.min.js: package.json package-lock.json | deps
	npm ci --no-audit --no-fund --loglevel=error
	npm run --silent build

clean:
	rm -rf $(VENV) node_modules var .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
