# The two commands of the README:
#   make run    the service on the embedded SQLite store, seeded with the demo organization
#   make test   the whole test suite (installs what it needs first)
# and for development: make test-fast (no outside servers), make lint (what CI checks first).
VENV ?= .venv
BIN := $(VENV)/bin
export USERPHOTO_HOME ?= $(CURDIR)/.userphoto-demo

.PHONY: setup run test test-fast lint bench

setup:
	@scripts/setup.sh

run: setup
	$(BIN)/userphoto init
	$(BIN)/userphoto demo
	$(BIN)/userphoto serve

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The tests that need no directory server, PostgreSQL, Chromium, OpenID provider or nginx
# (the `external` marker is set from their fixtures in tests/conftest.py), and not slow.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not external and not slow" $(PYTEST_ARGS)

# Style, the layer contracts ([tool.importlinter] in pyproject.toml) and types ([tool.mypy]).
lint: setup
	$(BIN)/ruff check userphoto tests bench
	$(BIN)/ruff format --check userphoto tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy userphoto

bench: setup
	$(BIN)/python bench/ingest.py
