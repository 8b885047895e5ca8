# The two commands of the README:
#   make run    the service on the embedded SQLite store, seeded with the demo organization
#               (installs only what serving needs; `make run PORT=8081` for another port)
#   make test   the whole test suite (installs what it needs first: test extras, test servers)
# and for development: make test-fast (no outside servers), make lint (what CI checks first).
VENV ?= .venv
BIN := $(VENV)/bin
export USERPHOTO_HOME ?= $(CURDIR)/.userphoto-demo

.PHONY: setup setup-run run test test-fast lint bench

# scripts/setup.sh by purpose: `run` is the service alone, `test` everything the tests use.
setup:
	@scripts/setup.sh test

setup-run:
	@scripts/setup.sh run

# PORT=N: the same as [server] port = N (the demo's printed URL says it too).
ifdef PORT
run: export USERPHOTO_SERVER_PORT := $(PORT)
endif
run: setup-run
	$(BIN)/userphoto init
	$(BIN)/userphoto demo
	$(BIN)/userphoto serve

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Under a minute: the pure core, imaging and face crop, findings, config and the SQLite store,
# without any test that needs a directory server, PostgreSQL, Chromium, the OpenID provider or
# nginx (the `external` marker, set from a test's fixtures in tests/conftest.py). All tests
# without such a server: pytest -m "not external".
FAST_TESTS ?= tests/core/test_resolve.py tests/core/test_findings.py tests/test_config.py \
	tests/store/test_changefeed.py tests/directory/test_directory_store.py \
	tests/directory/test_directory_photo.py tests/directory/test_directory_reconcile.py \
	tests/core/test_imaging.py tests/core/test_facecrop.py
test-fast: setup
	$(BIN)/python -m pytest -q -m "not external and not slow" $(FAST_TESTS) $(PYTEST_ARGS)

# Style, the layer contracts ([tool.importlinter] in pyproject.toml) and types ([tool.mypy]).
lint: setup
	$(BIN)/ruff check userphoto tests bench
	$(BIN)/ruff format --check userphoto tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy userphoto

# Every benchmark in bench/, one after the other, in quick mode (a short run each: it checks
# they work, the figures of BENCHMARKS.md come from full runs: python -m bench.NAME).
# Fails when any benchmark fails. BENCH_ARGS="serve sync" runs only these.
bench: setup
	$(BIN)/python -m bench --quick $(BENCH_ARGS)
