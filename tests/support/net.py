"""Loopback helpers shared by the test servers."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on right now (bound and released on 127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
