"""Test support: servers, directories, browsers and images the tests share."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(what: str) -> NoReturn:
    """A system part the tests need is absent: skip on a developer machine, FAIL under CI.

    CI (CI=true) must not go green on a machine that lacks what the tests need;
    `scripts/setup.sh` installs all of it.
    """
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail(f"{what}; CI=true needs every system part: run scripts/setup.sh", pytrace=False)
    pytest.skip(what)
