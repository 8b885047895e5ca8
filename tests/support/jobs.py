"""Jobs the worker-pool tests run in workers: importable by name, and cheap to import."""

from __future__ import annotations

import os
import sys
import time

from userphoto.imaging import ImageError, ImageErrorKind


def spin() -> None:
    while True:
        pass


def allocate(n: int) -> int:
    return len(bytearray(n))


def crash() -> None:
    os.abort()  # what a native decoder's segfault looks like from outside: a signal


def pid() -> int:
    return os.getpid()


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def timed_nap(seconds: float) -> tuple[float, float, int]:
    """When the nap began and ended (wall clock, shared by processes), and where it ran."""
    began = time.time()
    time.sleep(seconds)
    return began, time.time(), os.getpid()


def refuse() -> None:
    raise ImageError(ImageErrorKind.CORRUPT, "bad bytes")


def cv2_ready() -> bool:
    """cv2 is imported, with its data files, before the first job (no lazy import race)."""
    return "cv2" in sys.modules and hasattr(sys.modules["cv2"], "data")


def die_quietly() -> None:
    os.kill(os.getpid(), 9)  # what the OOM killer or an operator does: not the file's doing
