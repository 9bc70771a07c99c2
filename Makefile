# Merchant Monitor: every entry point a developer or CI needs.
# `make demo` and `make test` work from a clean clone with only Python 3.11+, pip and make.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help install demo test lint format unit integration schemas bench chaos audit clean stack-up stack-down

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python >= 3.11 is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create the virtual environment if missing and install the project

demo: install ## run the whole pipeline on simulated merchants and print what it found
	$(BIN)/merchant-monitor demo

lint: install ## ruff (lint and format check) and mypy strict on schemas/ and detectors/
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy schemas detectors

format: install ## apply ruff formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

schemas: install ## regenerate the JSON Schema files under deploy/schemas/
	$(BIN)/merchant-monitor schemas export --out deploy/schemas

test: lint ## lint, then the whole test suite (unit, doctests and integration)
	$(BIN)/pytest $(PYTEST_ARGS) tests schemas detectors

unit: install ## unit tests and doctests only
	$(BIN)/pytest $(PYTEST_ARGS) -m "not integration" tests schemas detectors

integration: install ## integration tests only (they start the broker and warehouse themselves)
	$(BIN)/pytest $(PYTEST_ARGS) -m integration tests

bench: install ## benchmarks (about 25 min on 2 cores): bench.json and docs/benchmarks.md
	$(BIN)/python -m bench

chaos: install ## replay 200k events while SIGKILLing the worker 5 times, then verify (about 4 min)
	$(BIN)/merchant-monitor chaos

audit: install ## check installed dependencies for known vulnerabilities
	$(BIN)/python -m pip install --quiet 'pip-audit>=2.7,<3'
	# --strict: a package that cannot be checked (no access to the vulnerability service) fails
	# the audit instead of passing it silently.
	$(BIN)/pip-audit --skip-editable --strict

clean: ## remove the virtual environment and local state
	rm -rf $(VENV) .merchant-monitor .pytest_cache .mypy_cache .ruff_cache

stack-up: ## start Kafka, ClickHouse, Grafana, workers and simulator with docker compose
	docker compose up -d --build

stack-down: ## stop the docker compose stack and remove its volumes
	docker compose down -v
