"""The deployment files: systemd units verified by systemd itself; the version shown.

`systemd-analyze verify` checks the units as systemd would load them (it also checks that
ExecStart's program exists, so the test points it at this checkout's `userphoto`); the
offline `security` review scores their hardening. systemd 252 reports unknown keys and bad
values on stderr but still exits 0, so any output fails the test too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

import userphoto
from userphoto.config import BY_SECTION

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deploy"
UNITS = ("userphoto.service", "userphoto-sync.service")
OIDC_DROP_IN = Path("userphoto.service.d") / "oidc.conf"  # only with [oidc]
INSTALLED = "/opt/userphoto/bin/userphoto"
USERPHOTO = Path(sys.executable).parent / "userphoto"


def analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        message = "systemd-analyze is missing (Debian package systemd, in scripts/setup.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return tool


def local_copies(
    tmp_path: Path, change: tuple[str, str] | None = None, *, drop_in: bool = False
) -> list[Path]:
    """The units as installed in a folder (systemd-analyze loads drop-ins beside a unit)."""
    paths = []
    for name in UNITS:
        text = (DEPLOY / name).read_text().replace(INSTALLED, str(USERPHOTO))
        if change is not None:
            text = text.replace(*change)
        path = tmp_path / name
        path.write_text(text)
        paths.append(path)
    if drop_in:
        (tmp_path / OIDC_DROP_IN).parent.mkdir(exist_ok=True)
        text = (DEPLOY / OIDC_DROP_IN).read_text()
        (tmp_path / OIDC_DROP_IN).write_text(text if change is None else text.replace(*change))
    return paths


def verify(tool: str, units: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool, "verify", *map(str, units)], capture_output=True, text=True, timeout=60
    )


def test_units_are_hardened_as_documented() -> None:
    for name in UNITS:
        text = (DEPLOY / name).read_text()
        for line in ("DynamicUser=yes", "ProtectSystem=strict", "StateDirectory=userphoto"):
            assert line in text.splitlines(), f"{name}: {line}"
        assert INSTALLED in text
    assert "serve" in (DEPLOY / UNITS[0]).read_text()
    assert "sync --watch" in (DEPLOY / UNITS[1]).read_text()


def test_oidc_secret_is_loaded_only_by_the_drop_in() -> None:
    """systemd refuses to start a unit whose credential file is missing: the unit alone must
    start without OIDC, and the drop-in adds the secret where OIDC is used."""
    unit = (DEPLOY / UNITS[0]).read_text()
    assert "oidc-client-secret:" not in unit
    drop_in = (DEPLOY / OIDC_DROP_IN).read_text()
    assert "LoadCredential=oidc-client-secret:/etc/userphoto/oidc-client-secret" in drop_in
    assert "[Service]" in drop_in.splitlines()


def test_documentation_names_nothing_an_installed_wheel_lacks() -> None:
    """The wheel installs the package alone (no docs/): a `file:` Documentation= would point at
    nothing on a server."""
    for name in (*UNITS, OIDC_DROP_IN):
        for line in (DEPLOY / name).read_text().splitlines():
            assert not (line.startswith("Documentation=") and "file:" in line), (name, line)


@pytest.mark.parametrize("drop_in", [False, True], ids=["without-oidc", "with-oidc-drop-in"])
def test_systemd_analyze_verify_passes(tmp_path: Path, drop_in: bool) -> None:
    tool = analyze()
    result = verify(tool, local_copies(tmp_path, drop_in=drop_in))
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stderr


def test_systemd_analyze_verify_reads_the_drop_in(tmp_path: Path) -> None:
    tool = analyze()
    units = local_copies(tmp_path, ("LoadCredential=", "LoadCredentail="), drop_in=True)
    (tmp_path / UNITS[1]).unlink()  # its own LoadCredential= is not the one under test
    result = verify(tool, units[:1])
    assert f"{OIDC_DROP_IN}:" in result.stderr and "LoadCredentail" in result.stderr


def test_systemd_analyze_verify_would_catch_a_typo(tmp_path: Path) -> None:
    tool = analyze()
    result = verify(tool, local_copies(tmp_path, ("ProtectSystem=strict", "ProtectSytem=strict")))
    assert "ProtectSytem" in result.stderr


def test_hardening_score(tmp_path: Path) -> None:
    tool = analyze()
    for unit in local_copies(tmp_path):
        # Exposure 0.0 (locked down) .. 10.0 (unprotected), threshold in tenths: at most 2.0.
        result = subprocess.run(
            [tool, "security", "--offline=true", "--threshold=20", str(unit)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout[-800:]
        assert "Overall exposure level" in result.stdout


def test_the_guide_names_files_that_exist_and_settings_that_parse() -> None:
    guide = (ROOT / "docs" / "deployment.md").read_text()
    named = set(re.findall(r"docs/deploy/[\w./-]*\w", guide))
    assert {f"docs/deploy/{name}" for name in (*UNITS, OIDC_DROP_IN)} <= named
    for path in named:
        assert (ROOT / path).exists(), path
    blocks = re.findall(r"^```toml\n(.*?)^```", guide, re.M | re.S)
    assert len(blocks) >= 4
    for block in blocks:
        for section in tomllib.loads(block):
            assert section in BY_SECTION, section


def test_version_matches_the_package() -> None:
    declared = userphoto.__version__  # pyproject.toml takes it from there (dynamic)
    assert version("userphoto") == declared
    shown = subprocess.run(
        [str(USERPHOTO), "--version"], capture_output=True, text=True, timeout=60
    ).stdout
    assert shown.strip() == f"userphoto, version {declared}"


def test_changelog_names_the_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    assert f"## [{version('userphoto')}]" in changelog
