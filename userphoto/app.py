"""Wiring: settings, the store and the photo lifecycle, built once per process.

Adapters (CLI, server, sync) get everything from an `App`; optional parts (face-aware
cropping, directory write-back) plug in here and nowhere else.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from .config import Settings
from .photos import Photos
from .store import Store, open_store


class App:
    def __init__(self, settings: Settings):
        self.settings = settings

    @classmethod
    def load(cls, home: Path | str | None = None) -> App:
        return cls(Settings.load(home))

    @cached_property
    def store(self) -> Store:
        self.settings.home.mkdir(parents=True, exist_ok=True)
        return open_store(self.settings.store_url)

    @cached_property
    def photos(self) -> Photos:
        from .facecrop import suggest  # face-aware default crop for uploads without a box

        return Photos(self.store, self.settings, suggest_crop=suggest)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
