# teleconsult: install, run, test. `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PYTHON := $(VENV)/bin/python
PY_STAMP := $(VENV)/.teleconsult-installed
NODE_STAMP := node_modules/.teleconsult-installed
NODE_LOCK := $(wildcard package-lock.json)

.PHONY: help install run test test-js test-host test-webrtc lint format clean

help:
	@echo "make install      venv in $(VENV) with teleconsult[test] (editable) and node_modules"
	@echo "make run          serve, with a demo visit whose join links it prints (TELECONSULT_* env)"
	@echo "make test         the whole suite: lint, JS unit tests, host phase, WebRTC phase in a lo-only netns"
	@echo "make test-js      only the web client's unit tests (node --test tests/js/)"
	@echo "make test-host    only the host phase   (PYTEST_ARGS=... to pass pytest options)"
	@echo "make test-webrtc  only the WebRTC phase (PYTEST_ARGS=... to pass pytest options)"
	@echo "make lint         ruff check, ruff format --check, mypy, and tsc on the web client's JSDoc types"

install: $(PY_STAMP) $(NODE_STAMP)

# The stamp lives inside the venv, so deleting .venv/ also forces a reinstall.
$(PY_STAMP): pyproject.toml
	@test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet -e '.[test]'
	@touch $@

$(NODE_STAMP): package.json $(NODE_LOCK)
	@if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; \
	 else npm install --no-audit --no-fund; fi
	@touch $@

# Settings come from TELECONSULT_* (host, port, data dir, …); the links are printed once listening.
run: install
	@exec $(VENV)/bin/teleconsult serve --demo

test: install
	scripts/test.sh all

test-js: install
	scripts/test.sh js

test-host: install
	scripts/test.sh host

test-webrtc: install
	scripts/test.sh webrtc

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	node_modules/.bin/tsc -p tsconfig.json
	node_modules/.bin/tsc -p tests/js/tsconfig.json

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf test-artifacts .pytest_cache .ruff_cache
