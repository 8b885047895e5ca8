"""What a service needs of the wiring: the store and the settings, nothing else.

`App` (the composition root, `app.py`) provides both, and so may any small object a test or
a library caller builds: services type their argument with `Context`, never with `App`, so
they cannot reach the optional parts App wires (the directory, the web sign-in).
"""

from __future__ import annotations

from typing import Protocol

from .config import Settings
from .store import Store


class Context(Protocol):
    @property
    def store(self) -> Store: ...

    @property
    def settings(self) -> Settings: ...
