"""Real PostgreSQL for the store tests: each test gets its own database, dropped afterwards.

The server is the machine's PostgreSQL (`.ci/run` starts it); `USERPHOTO_TEST_PG` names
another one. Under CI a missing server fails the tests; elsewhere they are skipped.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
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
def store_env(store_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point this process and the CLI subprocesses it starts at the parametrized store."""
    monkeypatch.setenv("USERPHOTO_STORE_URL", store_url)
    return store_url


@pytest.fixture
def store_app(store_env: str, home: Path) -> Iterator[App]:
    """An App on the parametrized store (also for CLI subprocesses, via the environment)."""
    application = App(Settings.load(home))
    yield application
    application.close()


class PgProxy:
    """A loopback TCP proxy in front of PostgreSQL that can go down and come back on the same
    port: the database going away for a while, without stopping the shared server."""

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5432)):
        self.target = target
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.port = 0
        self.up()

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and cut every open one."""
        if self._listener is not None:
            with contextlib.suppress(OSError):  # wakes the blocked accept() (close alone won't)
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.close()
