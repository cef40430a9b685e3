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

.PHONY: help install lock plan validate list render schema docs lint test test-fast bench local-aws clean

help:  ## show the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

# Every dependency comes from requirements/ci.lock, each artifact checked against its recorded sha256
# (pip's hash-checking mode: no resolver, nothing unpinned, no transitive surprise), the same on a
# laptop and in CI, where it runs before any AWS role is assumed. Wheels only: no sdist's build step
# runs, and deployctl itself builds with the lock's setuptools (no build isolation fetching one unchecked).
# --no-deps also means a lock that lacks a dependency would install without complaint: `pip check` then
# fails the install on it instead of an import failing later.
# https://pip.pypa.io/en/stable/topics/secure-installs/
PIP_LOCKED = --quiet --require-hashes --no-deps --only-binary=:all:
$(STAMP): pyproject.toml requirements/ci.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_LOCKED) -r requirements/ci.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation --no-index -e .
	$(BIN)/pip check
	touch $@

lock: $(STAMP)  ## regenerate requirements/*.lock from pyproject.toml (run after changing a pin)
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	  --custom-compile-command "make lock" pyproject.toml requirements/build.in --extra dev -o requirements/ci.lock
	$(PYTHON) -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["checkov"][0])' \
	  | $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	  --custom-compile-command "make lock" - -o requirements/checkov.lock

install: $(STAMP) $(CHECKOV_STAMP)  ## create .venv (deployctl and its dev tools) and .venv-checkov

# checkov's pin comes from pyproject.toml's `checkov` extra, so there is one place to bump it.
$(CHECKOV_STAMP): requirements/checkov.lock
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --require-hashes --no-deps --only-binary=:all: -r requirements/checkov.lock
	$(CHECKOV_VENV)/bin/pip check
	touch $@

plan: $(STAMP)  ## validate, render, lint, diff and price every deployment (no AWS account needed)
	$(DEPLOYCTL) validate
	$(DEPLOYCTL) plan

validate: $(STAMP)  ## validate deployments/ only
	$(DEPLOYCTL) validate

list: $(STAMP)  ## the table of deployments
	$(DEPLOYCTL) list

render: $(STAMP)  ## render every deployment to build/<environment>/<name>.json and lint it
	$(DEPLOYCTL) render --out build

schema: $(STAMP)  ## regenerate deployments/schema.json, environments.schema.json and the README field reference
	$(DEPLOYCTL) schema --out deployments/schema.json
	$(DEPLOYCTL) schema --environments --out deployments/environments.schema.json
	$(DEPLOYCTL) docs --readme README.md

lint: $(STAMP)  ## ruff, hadolint, actionlint and zizmor
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	files=$$(git ls-files --cached --others --exclude-standard -- 'Dockerfile*' '*/Dockerfile*'); \
	  if [ -n "$$files" ]; then $(BIN)/hadolint $$files; fi
	tools/lint-workflows.sh

test: lint $(CHECKOV_STAMP)  ## lint, then every test (pytest-xdist, one AWS emulator per worker)
	$(BIN)/pytest -n $(PYTEST_WORKERS) -q

test-fast: $(STAMP)  ## the tests without the slow end-to-end ones
	$(BIN)/pytest -n $(PYTEST_WORKERS) -q -m 'not slow'

bench: $(STAMP)  ## benchmarks, printed as tables: the gateway's overhead, plan speed on 200 deployments
	$(BIN)/python -m bench

LOCAL_AWS_PORT ?= 5000
local-aws: $(STAMP)  ## the AWS emulator on 127.0.0.1:$(LOCAL_AWS_PORT); export the AWS_ENDPOINT_URL it prints
	$(BIN)/python -m tools.local_aws --port $(LOCAL_AWS_PORT)

clean:  ## remove the virtualenv and build outputs
	rm -rf $(VENV) $(CHECKOV_VENV) build node_modules .deployctl-cache .pytest_cache .ruff_cache
