"""An export archive (every user and photo beside a manifest) and its restore: the lossless
round trip (`userphoto export DIR`, then `userphoto import DIR` into a fresh store, no re-crop).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from . import imaging
from .bulk import read_regular
from .config import Settings
from .errors import UserPhotoError
from .model import (
    Account,
    CropBox,
    CropDecision,
    CropReason,
    Photo,
    Picture,
    User,
    Visibility,
    normalize_address,
)
from .photos import Photos
from .store import Store

MANIFEST = "userphoto-export.json"
MANIFEST_FORMAT = "userphoto-export/1"
MANIFEST_LIMIT = 1 << 30  # ample for a million users; a bound, so /dev/zero cannot be read


@dataclass
class Exported:
    written: int = 0
    users: int = 0  # users in the manifest (with or without a photo)
    skipped: list[str] = field(default_factory=list)  # addresses unusable as file names


def _file_name(address: str) -> str | None:
    name = normalize_address(address)
    if "/" in name or "\\" in name or name.startswith(".") or "\0" in name:
        return None
    return f"{name}.jpg"


def user_record(user: User) -> dict[str, Any]:
    """A user's settings as the manifest keeps them (timestamps are the store's own)."""
    return {
        "id": user.id,
        "address": user.address,
        "display_name": user.display_name,
        "aliases": sorted(user.aliases),
        "account": user.account.value,
        "picture": user.picture.value,
        "picture_url": user.picture_url,
        "visibility": user.visibility.value,
        "removal_record": user.removal_record.isoformat() if user.removal_record else None,
        "directory_gone": user.directory_gone,
        "source": user.source,
        "attributes": dict(sorted(user.attributes.items())),
    }


def _photo_record(photo: Photo, file: str) -> dict[str, Any]:
    # No hash of the written file: a restore re-encodes it, and a second export of the
    # restored store must write the same manifest. `source_hash` is the original upload's.
    return {
        "file": file,
        "crop": str(photo.crop),
        "crop_reason": photo.crop_decision.reason.value,
        "crop_confidence": photo.crop_decision.confidence,
        "crop_note": photo.crop_decision.note,
        "source_hash": photo.source_hash,
        "source_format": photo.source_format,
        "source_width": photo.source_width,
        "source_height": photo.source_height,
        "sizes": list(photo.sizes),
    }


def _write(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(target)  # never a half-written file under the real name


def export(store: Store, directory: Path, size: int | None = None) -> Exported:
    """Write every saved photo as DIR/<address>.jpg (at `size`, default the largest), and a
    manifest (DIR/userphoto-export.json) of every user's settings and photo facts.

    `import DIR` of the result restores a store to the same users, settings and renditions;
    without the manifest, importing with the default `{mail}` pattern still matches the files.
    """
    directory.mkdir(parents=True, exist_ok=True)
    result = Exported()
    records = []
    for user in store.iter_users():
        record = user_record(user)
        records.append(record)
        result.users += 1
        photo = store.get_photo(user.id)
        if photo is None:
            continue
        name = _file_name(user.address)
        if name is None:
            result.skipped.append(user.address)
            continue
        data = store.get_rendition(photo.id, Photos.fit(photo, size))
        if data is None:
            continue
        _write(directory / name, data)
        record["photo"] = _photo_record(photo, name)
        result.written += 1
    manifest = {"format": MANIFEST_FORMAT, "users": records}
    text = json.dumps(manifest, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    _write(directory / MANIFEST, text.encode())
    return result


def is_export(path: Path) -> bool:
    """A folder holding a manifest (a link or FIFO by that name is refused by `restore`)."""
    return path.is_dir() and (path / MANIFEST).exists()


@dataclass
class Restored:
    users_added: int = 0
    users_updated: int = 0
    photos: int = 0
    unchanged: int = 0
    problems: list[str] = field(default_factory=list)


def restore(path: Path, photos: Photos, settings: Settings, *, actor: str = "admin") -> Restored:
    """Restore an `export` folder: users and their settings, then each photo as exported.

    Photos are not cropped again: each exported square is rendered whole, and the stored
    record keeps the original crop box, decision and source facts from the manifest, so a
    second export writes the same manifest. Users already present are updated to the
    manifest's settings; a photo whose source hash is already the saved one is left alone.
    """
    try:
        text = read_regular(str(path / MANIFEST), MANIFEST_LIMIT + 1, inside=str(path))
        if len(text) > MANIFEST_LIMIT:
            raise ValueError(f"larger than {MANIFEST_LIMIT // 2**20} MiB")
        manifest = json.loads(text.decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path / MANIFEST} is not a readable export manifest: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path / MANIFEST} is not a {MANIFEST_FORMAT} manifest.")
    store, result = photos.store, Restored()
    for record in manifest.get("users", []):
        try:
            user = _restore_user(store, record, result, actor)
            if record.get("photo"):
                _restore_photo(path, photos, settings, user, record["photo"], result, actor)
            if record.get("removal_record") and user.removal_record is None:
                # Saving a photo clears the record; put it back as it was exported.
                user = store.find_user(user.id) or user
                user.removal_record = datetime.fromisoformat(record["removal_record"])
                store.update_user(user, actor=actor, via="import")
        except (KeyError, TypeError, ValueError, OSError, UserPhotoError) as exc:
            result.problems.append(f"{record.get('address', '?')}: {exc}")
    return result


def _restore_user(store: Store, record: dict[str, Any], result: Restored, actor: str) -> User:
    removal = record.get("removal_record")
    wanted = User(
        id=record["id"],
        address=record["address"],
        display_name=record["display_name"],
        aliases=list(record.get("aliases", [])),
        account=Account(record["account"]),
        picture=Picture(record["picture"]),
        picture_url=record.get("picture_url"),
        visibility=Visibility(record["visibility"]),
        removal_record=datetime.fromisoformat(removal) if removal else None,
        directory_gone=bool(record.get("directory_gone", False)),
        source=record.get("source", "local"),
        attributes=dict(record.get("attributes", {})),
    )
    current = store.find_user(wanted.id)
    if current is None:
        result.users_added += 1
        return store.add_user(wanted, actor=actor, via="import")
    wanted.created = current.created
    if user_record(current) != user_record(wanted):
        result.users_updated += 1
        return store.update_user(wanted, actor=actor, via="import")
    return current


def _restore_photo(
    path: Path,
    photos: Photos,
    settings: Settings,
    user: User,
    record: dict[str, Any],
    result: Restored,
    actor: str,
) -> None:
    saved = photos.store.get_photo(user.id)
    if saved is not None and saved.source_hash == record["source_hash"]:
        result.unchanged += 1
        return
    name = PurePosixPath(record["file"]).name  # never a path out of the export folder
    # Only a regular file inside the folder, never past the upload limit: a link to
    # /dev/zero or a FIFO in its place is refused, not read until memory runs out.
    limit = settings.limits.max_bytes
    data = read_regular(str(path / name), limit + 1, inside=str(path))
    if len(data) > limit:
        raise ValueError(f"{name} is larger than the {limit}-byte upload limit; not read")
    info = imaging.inspect(data, settings.limits)
    # The exported square, whole (an explicit crop: no face detection).
    rendered = photos.render(user, data, crop=imaging.centre_crop(info.width, info.height))
    # The record is the original upload's: its crop box, how it was chosen, its source.
    rendered = replace(
        rendered,
        source=imaging.SourceInfo(
            record["source_format"],
            int(record["source_width"]),
            int(record["source_height"]),
            record["source_hash"],
        ),
        crop=CropBox.parse(record["crop"]),
        decision=CropDecision(
            CropReason(record["crop_reason"]),
            float(record["crop_confidence"]),
            str(record.get("crop_note", "")),
        ),
    )
    photos.put(user, rendered, actor=actor, via="import")
    result.photos += 1
