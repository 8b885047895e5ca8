"""Real PostgreSQL for the store tests: each test gets its own database, dropped afterwards.

The server is the machine's PostgreSQL (`.ci/run` starts it); `USERPHOTO_TEST_PG` names
another one. Under CI a missing server fails the tests; elsewhere they are skipped.

A test runs on both stores in one way: a fixture parametrized over `STORES`. Store-level tests
take `store_url` (or `store_env`, `store_app`, built on it); every test using it runs once per
store. Tests against the seeded HTTP server (`served`, tests.support.server) are marked
`@on_each_store` to get that server on each store.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.net import free_port
from userphoto.app import App
from userphoto.config import Settings

SERVER = os.environ.get("USERPHOTO_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
STORES = ("sqlite", "postgresql")  # the parameters of every test that runs on both stores


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


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """A fresh empty database (its URL) for as long as the block runs: for fixtures of a
    wider scope than one test, which cannot use `new_pg_database`."""
    name = f"userphoto_test_{uuid.uuid4().hex[:12]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{SERVER}/{name}"
    finally:
        drop_database(name)


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


@pytest.fixture(params=STORES)
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

    # A simple-protocol COMMIT, as psycopg sends one (Query message: 'Q', length, text).
    COMMIT = b"Q\x00\x00\x00\x0bCOMMIT\x00"

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5432)):
        self.target = target
        # `lose_commit_replies` > 0: the next COMMIT reaches the database and commits, but
        # its connection is cut before the reply comes back (an acknowledgement lost).
        self.lose_commit_replies = 0
        self.lost = 0
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
            muted = threading.Event()  # set: this connection's replies are dropped
            for a, b, out in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(a, b, out, muted), daemon=True).start()

    def _pump(
        self, source: socket.socket, sink: socket.socket, out: bool, muted: threading.Event
    ) -> None:
        try:
            while data := source.recv(65536):
                if out and self.COMMIT in data and self._take_loss():
                    muted.set()
                    sink.sendall(data)
                    time.sleep(0.5)  # the database commits; its reply goes nowhere
                    return
                if not out and muted.is_set():
                    continue
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.close()

    def _take_loss(self) -> bool:
        with self._lock:
            if self.lose_commit_replies <= 0:
                return False
            self.lose_commit_replies -= 1
            self.lost += 1
            return True


PG_BIN = Path("/usr/lib/postgresql/15/bin")


class PrivateCluster:
    """A PostgreSQL primary of the test's own (initdb, another port) with a hot-standby
    streaming replica made by `pg_basebackup -R`: replication without touching the shared
    server's configuration. Runs as the `postgres` system user, as Debian's clusters do."""

    def __init__(self, root: Path):
        self.root = root
        self.primary_port = free_port()
        self.replica_port = free_port()
        self.primary_dir = root / "primary"
        self.replica_dir = root / "replica"

    def _run(self, *args: str) -> None:
        cmd = ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {proc.stderr or proc.stdout}")

    def _start(self, data: Path, port: int) -> None:
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-w",
            "-o", f"-p {port} -k {self.root} -c listen_addresses=127.0.0.1", "start",
        )  # fmt: skip

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            str(PG_BIN / "initdb"), "-D", str(self.primary_dir), "-U", "postgres",
            "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        with (self.primary_dir / "pg_hba.conf").open("a") as hba:
            hba.write("host replication postgres 127.0.0.1/32 trust\n")
        self._start(self.primary_dir, self.primary_port)
        self._run(
            str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary_port),
            "-U", "postgres", "-D", str(self.replica_dir), "-R", "-X", "stream",
        )  # fmt: skip
        self._start(self.replica_dir, self.replica_port)

    def url(self, port: int, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/{dbname}"

    def stop(self) -> None:
        for data in (self.replica_dir, self.primary_dir):
            if (data / "postmaster.pid").exists():
                with contextlib.suppress(RuntimeError):
                    self._run(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def replicated() -> Iterator[PrivateCluster]:
    """A private primary and its streaming replica (both stopped and removed afterwards)."""
    if not (PG_BIN / "pg_basebackup").exists():
        message = f"PostgreSQL server binaries missing in {PG_BIN} (Debian postgresql-15)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    cluster = PrivateCluster(Path(tempfile.mkdtemp(prefix="userphoto-pg-")))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
