"""Real PostgreSQL for the store tests: each test gets its own database, dropped afterwards.

The server is the machine's PostgreSQL (`.ci/run` starts it); `USERPHOTO_TEST_PG` names
another one. Under CI a missing server fails the tests; elsewhere they are skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from userphoto.app import App
from userphoto.config import Settings

SERVER = os.environ.get("USERPHOTO_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


def _admin() -> psycopg.Connection:
    try:
        return psycopg.connect(f"{SERVER}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is not reachable at {SERVER} ({exc}); .ci/run starts it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def drop_database(name: str) -> None:
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


NewDatabase = Callable[[], str]


@pytest.fixture
def new_pg_database() -> Iterator[NewDatabase]:
    """Create fresh empty databases on demand (URLs); all of them are dropped at the end."""
    made: list[str] = []

    def create() -> str:
        name = f"userphoto_test_{uuid.uuid4().hex[:12]}"
        with _admin() as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return f"{SERVER}/{name}"

    yield create
    for name in made:
        drop_database(name)


@pytest.fixture
def pg_url(new_pg_database: NewDatabase) -> str:
    """One fresh PostgreSQL database for this test."""
    return new_pg_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, home: Path) -> str:
    """The contract suite's store: each test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{home / 'userphoto.db'}"
    return request.getfixturevalue("new_pg_database")()


@pytest.fixture
def store_app(store_url: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    """An App on the parametrized store (also for CLI subprocesses, via the environment)."""
    monkeypatch.setenv("USERPHOTO_STORE_URL", store_url)
    application = App(Settings.load(home))
    yield application
    application.close()
