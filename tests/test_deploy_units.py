"""The systemd units in docs/deploy pass `systemd-analyze verify` (with the install path pointed
at this checkout's entry point, which is the only line that differs between machines)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BIN

DEPLOY = Path(__file__).parent.parent / "docs" / "deploy"
INSTALLED = "/opt/userphoto/.venv/bin/userphoto"


@pytest.mark.parametrize("unit", sorted(p.name for p in DEPLOY.glob("*.service")))
def test_unit_passes_systemd_analyze_verify(unit: str, tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing (Debian package systemd)")
        pytest.skip("systemd-analyze is missing")
    text = (DEPLOY / unit).read_text()
    assert INSTALLED in text
    name = unit.replace("@.", "@8081.")  # a template is verified as one of its instances
    (tmp_path / name).write_text(text.replace(INSTALLED, str(BIN / "userphoto")))
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / name)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "userphoto" not in proc.stderr  # no warning about our unit either


def test_the_layout_doc_names_the_units() -> None:
    doc = (DEPLOY / "multi-node.md").read_text()
    for unit in DEPLOY.glob("*.service"):
        assert f"docs/deploy/{unit.name}" in doc
