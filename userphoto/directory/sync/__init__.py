"""Directory sync: directory entries -> users and directory thumbnails in the store.

Where things are:
- `engine`: `SyncEngine`, one full or delta run (reads pages, applies them, moves the cursor);
- `reconcile`: the pure rules (entry + stored user -> add/adopt/update/unchanged/conflict;
  photo change detection; the deletion guard's arithmetic);
- `watch`: `sync --watch`, syncrepl (`..live`) or polling woken by AD change notifications;
- `cursors`: where the next delta starts; `dirsync`: AD's DirSync control;
- `pages`: the full read in a reader process, prefetched; `photos`: photo re-encoding workers.

Rules that hold for every mode:
- Change detection by content: a photo whose raw bytes hash the same as last time is not
  touched; a user whose fields are unchanged is not written (so an idle `--watch` writes
  nothing, and serving caches stay warm).
- The directory photo only ever lands in the directory-thumbnail slot, never over an HD photo.
- Garbage in the directory (not an image, over 100 KB, base64 text) is recorded per user and
  the last good thumbnail is kept.
- Users missing from a complete full read are marked gone, never deleted, unless that would
  mark more than `delete_guard` of them: then the sync refuses and says why.
- A run that fails part-way keeps what it committed, leaves the delta cursor where it was and
  marks nobody gone; the next run picks up from there (unchanged entries cost a hash compare).
"""

from __future__ import annotations

from .engine import ACTOR, SyncEngine
from .pages import READ_AHEAD
from .photos import CHUNK, WORKERS, PhotoWorkers, photo_workers, worker_pids

__all__ = [
    "ACTOR",
    "CHUNK",
    "READ_AHEAD",
    "WORKERS",
    "PhotoWorkers",
    "SyncEngine",
    "photo_workers",
    "worker_pids",
]
