# Every target installs what it needs: a fresh machine runs `make plan` or `make test` and nothing else.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEPLOYCTL := $(BIN)/deployctl
PYTEST_WORKERS ?= auto

.PHONY: help install plan validate list schema docs lint test test-fast bench clean

help:  ## show the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)  ## create .venv and install deployctl with its dev tools

plan: $(STAMP)  ## validate every deployment and show what it would deploy (no AWS account needed)
	$(DEPLOYCTL) validate
	$(DEPLOYCTL) list

validate: $(STAMP)  ## validate deployments/ only
	$(DEPLOYCTL) validate

list: $(STAMP)  ## the table of deployments
	$(DEPLOYCTL) list

schema: $(STAMP)  ## regenerate deployments/schema.json and the README field reference from the spec
	$(DEPLOYCTL) schema --out deployments/schema.json
	$(DEPLOYCTL) docs --readme README.md

lint: $(STAMP)  ## ruff, hadolint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	files=$$(git ls-files --cached --others --exclude-standard -- 'Dockerfile*' '*/Dockerfile*'); \
	  if [ -n "$$files" ]; then $(BIN)/hadolint $$files; fi

test: lint  ## lint, then every test (pytest-xdist, one AWS emulator per worker)
	$(BIN)/pytest -n $(PYTEST_WORKERS) -q

test-fast: $(STAMP)  ## the tests without the slow end-to-end ones
	$(BIN)/pytest -n $(PYTEST_WORKERS) -q -m 'not slow'

bench: $(STAMP)  ## benchmarks, printed as a table
	$(BIN)/python -m bench

clean:  ## remove the virtualenv and build outputs
	rm -rf $(VENV) build .pytest_cache .ruff_cache
