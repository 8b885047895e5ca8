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
pytest_plugins: list[str] = [
    "tests.support.slapd",
    "tests.support.samba",
    "tests.support.server",
    "tests.support.browser",
    "tests.support.postgres",
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
