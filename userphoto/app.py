"""Wiring: settings, the store and the photo lifecycle, built once per process.

Adapters (CLI, server, sync) get everything from an `App`; optional parts (face-aware
cropping, directory write-back) plug in here and nowhere else.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from .config import Settings
from .photos import Photos
from .store import Store, open_store

if TYPE_CHECKING:
    from .directory.config import DirectoryConfig
    from .oidc import OidcProvider
    from .workers import WorkerPool


class App:
    def __init__(self, settings: Settings):
        self.settings = settings

    @classmethod
    def load(cls, home: Path | str | None = None) -> App:
        return cls(Settings.load(home))

    @cached_property
    def store(self) -> Store:
        self.settings.make_home()
        return open_store(self.settings.store_url, self.settings.store_read_url)

    @cached_property
    def photos(self) -> Photos:
        from .directory.config import DirectoryConfig
        from .facecrop import suggest  # face-aware default crop for uploads without a box

        photos = Photos(self.store, self.settings, suggest_crop=suggest, runner=self.pool)
        # Serving needs no bind password: without one, write-backs are queued for the sync.
        directory = DirectoryConfig.from_settings(self.settings, need_password=False)
        if directory is not None and directory.writeback:
            # HD photo saved/removed -> the directory's thumbnailPhoto follows.
            from .directory.writeback import attach

            attach(photos, self.store, directory)
        return photos

    @cached_property
    def pool(self) -> WorkerPool:
        """The image worker processes (started on first need; `serve` starts them at once)."""
        from .workers import WorkerPool

        limits = self.settings.limits
        queue = self.settings.get("workers", "queue")
        return WorkerPool(
            self.settings.get("workers", "processes") or None,
            memory=limits.job_memory,
            cpu_seconds=limits.job_cpu_seconds,
            queue=None if queue < 0 else queue,
        )

    @cached_property
    def directory(self) -> DirectoryConfig | None:
        """The `[directory]` settings, or None when no directory is configured."""
        from .directory.config import DirectoryConfig

        return DirectoryConfig.from_settings(self.settings)

    @cached_property
    def oidc(self) -> OidcProvider | None:
        """The `[oidc]` identity provider (web sign-in, API access tokens), or None."""
        from .oidc import OidcConfig, OidcProvider

        config = OidcConfig.from_settings(self.settings)
        return OidcProvider(config) if config is not None else None

    def close(self) -> None:
        if "pool" in self.__dict__:
            self.pool.close()
        if "store" in self.__dict__:
            self.store.close()
