"""Shared fixtures. Feature areas keep their own fixtures in tests/support/ and list them here."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from userphoto.app import App
from userphoto.config import Settings

# Fixture modules of each feature area (servers, directories, browsers).
# Listed before the modules that import them, so each is loaded once, by pytest.
pytest_plugins: list[str] = [
    "tests.support.postgres",
    "tests.support.slapd",
    "tests.support.samba",
    "tests.support.server",
    "tests.support.browser",
]

BIN = Path(sys.executable).parent


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data folder, also exported as USERPHOTO_HOME for subprocesses."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("USERPHOTO_HOME", str(path))
    return path


@pytest.fixture
def app(home: Path) -> Iterator[App]:
    """An initialized data folder (as `userphoto init` leaves it), opened."""
    application = App(Settings.load(home))
    application.settings.write_default()
    _ = application.store  # creates the store, so CLI commands find a data folder
    yield application
    application.close()


RunCli = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def run_cli(home: Path) -> RunCli:
    """Run the real `userphoto` entry point in a subprocess; returns the CompletedProcess."""

    def run(
        *args: str, input: bytes | None = None, check: bool = True, env: dict | None = None
    ) -> subprocess.CompletedProcess:
        env = {**os.environ, "USERPHOTO_HOME": str(home), **(env or {})}
        env.pop("USERPHOTO_DEBUG", None)
        proc = subprocess.run(
            [str(BIN / "userphoto"), *args], input=input, capture_output=True, env=env, timeout=120
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"userphoto {' '.join(args)} exited {proc.returncode}:\n"
                f"{proc.stdout.decode()}\n{proc.stderr.decode()}"
            )
        return proc

    return run


# `make test-fast`: everything that needs no server outside the test process tree (the directory
# servers, PostgreSQL, Chromium, the OpenID provider, nginx) and is not marked slow. Marked here
# from the fixtures a test uses, so a new test lands in the right tier without a decorator.
EXTERNAL_FIXTURES = frozenset(
    {
        "slapd", "slapd_installed", "samba", "samba_golden",  # real directory servers
        "new_pg_database", "pg_url", "replicated",  # PostgreSQL
        "browser", "page", "web", "chromium",  # Chromium
        "site",  # test_oidc: the npm OpenID provider
        "front",  # test_deploy_nginx: nginx
    }
)  # fmt: skip
# A module that imports a directory server's runner starts one itself, in some of its tests.
SERVER_RUNNERS = ("Slapd", "Samba")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and "postgresql" in callspec.params.values()
        runs_one = any(hasattr(item.module, name) for name in SERVER_RUNNERS)
        if names & EXTERNAL_FIXTURES or on_postgres or runs_one:
            item.add_marker(pytest.mark.external)
