"""The columns the stores read users, saved photos and directory slots by, named once.

Both stores select these (`rows.py` turns them into values; `serving_sql` joins them into
one row; `base.TABLES` copies them), so a column added to a table is added here.
"""

from __future__ import annotations

USER_COLUMNS = (
    "id",
    "address",
    "display_name",
    "account",
    "picture",
    "picture_url",
    "visibility",
    "removal_record",
    "directory_gone",
    "source",
    "attributes",
    "created",
    "updated",
)
PHOTO_COLUMNS = (
    "id",
    "user_id",
    "version",
    "state",
    "crop",
    "source_hash",
    "source_format",
    "source_width",
    "source_height",
    "sizes",
    "created",
    "actor",
    "via",
    "crop_reason",
    "crop_confidence",
    "crop_note",
)
THUMBNAIL_COLUMNS = (
    "user_id",
    "jpeg",
    "raw_hash",
    "raw_size",
    "width",
    "height",
    "problem",
    "seen",
    "written_by_us",
)
