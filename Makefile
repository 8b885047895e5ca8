# The two commands of the README:
#   make run    the service on the embedded SQLite store, seeded with the demo organization
#   make test   the whole test suite (installs what it needs first)
VENV ?= .venv
BIN := $(VENV)/bin
export USERPHOTO_HOME ?= $(CURDIR)/.userphoto-demo

.PHONY: setup run test lint bench

setup:
	@scripts/setup.sh

run: setup
	$(BIN)/userphoto init
	$(BIN)/userphoto demo
	$(BIN)/userphoto serve

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check userphoto tests bench
	$(BIN)/ruff format --check userphoto tests bench

bench: setup
	$(BIN)/python bench/ingest.py
