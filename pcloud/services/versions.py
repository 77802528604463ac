"""File versions: the earlier contents of a file, kept when new content replaces it.

A version is a FileVersion row holding one reference to its content's Blob: keeping the
replaced content moves the file's reference to the version (no count changes), and
deleting or pruning a version releases it. Versions count in the owner's quota; they are
the first thing to go when an upload needs room (oldest first), and `pcloud files gc`
thins them the way Nextcloud does (see `retention_doomed`).

Versions live and die with their file: a trashed file's versions stay on it (so they come
back with it) and a purged file's versions are purged too (`forget_of_files`). In the
change feed (when the client asks for them) a version is item type "version", its parent
the file's id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee

from pcloud.config import Settings
from pcloud.db import rows
from pcloud.errors import NotFound
from pcloud.models import Blob, FileVersion, StoredFile, User, database_proxy, utc_now
from pcloud.services import changes, content, tree
from pcloud.storage import BlobStore

VERSION = changes.VERSION  # the change feed's item type
VERSION_NOT_FOUND = "Version not found"
CHUNK = 500
DAY = timedelta(days=1)
WEEK = timedelta(days=7)
EVERY_VERSION_FOR = DAY  # the retention rule: all versions younger than this,
ONE_A_DAY_FOR = timedelta(days=30)  # then one a day up to this age, then one a week


def keep(stored: StoredFile, replaced_by: int | None = None, session_id: str | None = None) -> int:
    """Keep the file's current content as a version (in the caller's transaction, before
    the file's row gets its new content); returns the version's id. The file's
    reference to the content becomes the version's, so no count changes."""
    version_id = FileVersion.insert(
        file=stored.id,
        owner=stored.owner_id,
        size=stored.size,
        sha256=stored.sha256,
        modified_at=stored.modified_at,
        replaced_at=utc_now(),
        replaced_by=replaced_by,
        replaced_session=session_id,
    ).execute()
    changes.record(stored.owner_id, changes.CREATED, VERSION, version_id, stored.id, stored.name)
    return int(version_id)


def list_versions(owner_id: int, file_id: int) -> list[FileVersion]:
    """The versions of the user's live file, newest first. NotFound for a file that is not
    the user's or is in the trash."""
    stored = _live_file(owner_id, file_id)
    return list(
        FileVersion.select()
        .where(FileVersion.file == stored.id)
        .order_by(FileVersion.replaced_at.desc(), FileVersion.id.desc())
    )


def get_version(owner_id: int, file_id: int, version_id: int) -> tuple[StoredFile, FileVersion]:
    """The user's live file and one of its versions. NotFound otherwise."""
    stored = _live_file(owner_id, file_id)
    version = FileVersion.get_or_none(
        (FileVersion.id == version_id) & (FileVersion.file == stored.id)
    )
    if version is None:
        raise NotFound(VERSION_NOT_FOUND)
    return stored, version


def _live_file(owner_id: int, file_id: int) -> StoredFile:
    # Imported here: files (which keeps versions) is imported by folders.
    from pcloud.services import folders

    return folders.file_of(owner_id, file_id)


def as_file(stored: StoredFile, version: FileVersion) -> StoredFile:
    """The file as it was in this version (unsaved): its name, the version's content and
    time, for the download code that serves any file."""
    key = Blob.select(Blob.store_key).where(Blob.sha256 == version.sha256).scalar()
    if key is None:  # the content's Blob row went with lost bytes (gc)
        raise NotFound(VERSION_NOT_FOUND)
    return StoredFile(
        id=stored.id,
        owner=stored.owner_id,
        folder=stored.folder_id,
        name=stored.name,
        blob_key=key,
        size=version.size,
        sha256=version.sha256,
        created_at=stored.created_at,
        modified_at=version.modified_at,
    )


def restore(
    owner_id: int,
    file_id: int,
    version_id: int,
    replaced_by: int | None = None,
    session_id: str | None = None,
) -> StoredFile:
    """Make a version the file's content again: the current content becomes a version in
    turn and the restored one leaves the list. Both references move, so the quota usage
    and the blob counts stay as they were."""
    with database_proxy.atomic():
        tree.lock(owner_id)
        stored, version = get_version(owner_id, file_id, version_id)
        keep(stored, replaced_by, session_id)
        FileVersion.delete().where(FileVersion.id == version.id).execute()
        changes.record(owner_id, changes.DELETED, VERSION, version.id, stored.id, stored.name)
        key = Blob.select(Blob.store_key).where(Blob.sha256 == version.sha256).scalar()
        if key is None:  # the content's Blob row went with lost bytes (gc)
            raise NotFound(VERSION_NOT_FOUND)
        modified_at = utc_now()
        StoredFile.update(
            blob_key=key, size=version.size, sha256=version.sha256, modified_at=modified_at
        ).where(StoredFile.id == stored.id).execute()
        changes.record(
            owner_id, changes.MODIFIED, changes.FILE, stored.id, stored.folder_id, stored.name
        )
        tree.bump([stored.folder_id])
        stored.blob_key, stored.size, stored.sha256 = key, version.size, version.sha256
        stored.modified_at = modified_at
    return stored


def delete_version(owner_id: int, file_id: int, version_id: int) -> list[str]:
    """Delete one version for good; returns the store keys whose bytes the caller deletes
    after this commits (content no file or version uses any more)."""
    with database_proxy.atomic():
        tree.lock(owner_id)
        stored, version = get_version(owner_id, file_id, version_id)
        return _forget(owner_id, [(version.id, version.sha256, stored.id, stored.name)])


def _forget(owner_id: int, doomed: list[tuple[int, str, int, str]]) -> list[str]:
    """Delete these (version id, sha256, file id, file name) versions of one user, in the
    caller's transaction (after tree.lock), telling the change feed; the freed keys."""
    ids = [version_id for version_id, _sha, _file, _name in doomed]
    for start in range(0, len(ids), CHUNK):
        FileVersion.delete().where(FileVersion.id.in_(ids[start : start + CHUNK])).execute()
    for version_id, _sha, file_id, name in doomed:
        changes.record(owner_id, changes.DELETED, VERSION, version_id, file_id, name)
    return content.release(sha256 for _id, sha256, _file, _name in doomed)


def forget_of_files(file_ids: Iterable[int]) -> list[str]:
    """Delete every version of these files (being purged, in the caller's transaction);
    returns their contents' sha256s, one per version, for the caller to release."""
    ids = list(file_ids)
    sha256s: list[str] = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        sha256s.extend(
            sha256
            for (sha256,) in rows(
                FileVersion.select(FileVersion.sha256).where(FileVersion.file.in_(chunk))
            )
        )
        FileVersion.delete().where(FileVersion.file.in_(chunk)).execute()
    return sha256s


def bytes_of(owner_id: int) -> int:
    """Bytes the user's versions take (each version counts, as each file does)."""
    total = (
        FileVersion.select(peewee.fn.SUM(FileVersion.size))
        .where(FileVersion.owner == owner_id)
        .scalar()
    )
    return int(total or 0)


def make_room(owner_id: int, growth: int, quota_bytes: int | None) -> tuple[list[str], bool]:
    """Before the user's usage (files and versions) grows by `growth` bytes: prune their
    oldest versions until it fits `quota_bytes`. Returns the freed store keys (the caller
    deletes their bytes after its commit) and whether it fits now. In the caller's
    transaction, after tree.lock."""
    if quota_bytes is None:
        return [], True
    files_bytes = (
        StoredFile.select(peewee.fn.SUM(StoredFile.size))
        .where(StoredFile.owner == owner_id)
        .scalar()
    )
    excess = int(files_bytes or 0) + bytes_of(owner_id) + growth - quota_bytes
    if excess <= 0:
        return [], True
    doomed: list[tuple[int, str, int, str]] = []
    freed_bytes = 0
    oldest_first = rows(
        FileVersion.select(
            FileVersion.id, FileVersion.sha256, FileVersion.size, StoredFile.id, StoredFile.name
        )
        .join(StoredFile)
        .where(FileVersion.owner == owner_id)
        .order_by(FileVersion.replaced_at, FileVersion.id)
    )
    for version_id, sha256, size, file_id, name in oldest_first:
        if freed_bytes >= excess:
            break
        doomed.append((version_id, sha256, file_id, name))
        freed_bytes += size
    keys = _forget(owner_id, doomed) if doomed else []
    return keys, freed_bytes >= excess


@dataclass(frozen=True)
class Retention:
    """How long versions are kept: `max_age` (None: no limit) and the share of a user's
    quota they may take (`quota_share`, 0..1; users without a quota are not capped)."""

    max_age: timedelta | None
    quota_share: float


def retention_doomed(
    replaced_ats: list[tuple[int, datetime]], now: datetime, max_age: timedelta | None
) -> list[int]:
    """Of one file's versions, (id, replaced_at), the ids the retention rule drops: every
    version younger than a day stays; between a day and 30 days old, the newest of each
    day; after that the newest of each week; none older than `max_age`."""
    doomed: list[int] = []
    seen_buckets: set[tuple[str, int]] = set()
    for version_id, replaced_at in sorted(replaced_ats, key=lambda row: row[1], reverse=True):
        age = now - replaced_at
        if max_age is not None and age > max_age:
            doomed.append(version_id)
            continue
        if age < EVERY_VERSION_FOR:
            continue
        bucket = ("day", age // DAY) if age < ONE_A_DAY_FOR else ("week", age // WEEK)
        if bucket in seen_buckets:
            doomed.append(version_id)
        else:
            seen_buckets.add(bucket)
    return doomed


def prune(retention: Retention, now: datetime | None = None) -> tuple[int, list[str]]:
    """Apply the retention rule to every user's versions, then the quota share (oldest
    first): (versions deleted, store keys freed for the caller to delete). For gc."""
    now = now or utc_now()
    owners = [owner for (owner,) in rows(FileVersion.select(FileVersion.owner).distinct())]
    deleted, keys = 0, []
    for owner_id in owners:
        with database_proxy.atomic():
            tree.lock(owner_id)
            found = list(
                rows(
                    FileVersion.select(
                        FileVersion.id,
                        FileVersion.sha256,
                        FileVersion.size,
                        FileVersion.replaced_at,
                        StoredFile.id,
                        StoredFile.name,
                    )
                    .join(StoredFile)
                    .where(FileVersion.owner == owner_id)
                    .order_by(FileVersion.replaced_at, FileVersion.id)
                )
            )
            by_file: dict[int, list[tuple[int, datetime]]] = {}
            for version_id, _sha, _size, replaced_at, file_id, _name in found:
                by_file.setdefault(file_id, []).append((version_id, replaced_at))
            doomed_ids = {
                version_id
                for versions in by_file.values()
                for version_id in retention_doomed(versions, now, retention.max_age)
            }
            quota_bytes = User.select(User.quota_bytes).where(User.id == owner_id).scalar()
            if quota_bytes is not None:
                files_bytes = (
                    StoredFile.select(peewee.fn.SUM(StoredFile.size))
                    .where(StoredFile.owner == owner_id)
                    .scalar()
                )
                allowed = min(
                    int(quota_bytes * retention.quota_share),
                    max(0, quota_bytes - int(files_bytes or 0)),
                )
                kept = sum(row[2] for row in found if row[0] not in doomed_ids)
                for version_id, _sha, size, _at, _file, _name in found:  # oldest first
                    if kept <= allowed:
                        break
                    if version_id not in doomed_ids:
                        doomed_ids.add(version_id)
                        kept -= size
            doomed = [
                (version_id, sha256, file_id, name)
                for version_id, sha256, _size, _at, file_id, name in found
                if version_id in doomed_ids
            ]
            if doomed:
                keys.extend(_forget(owner_id, doomed))
                deleted += len(doomed)
    return deleted, keys


def prune_by_settings(blobs: BlobStore, settings: Settings, now: datetime | None = None) -> int:
    """prune() by VERSIONS_MAX_AGE and VERSIONS_QUOTA_SHARE, deleting the freed bytes after
    each commit; how many versions went (`pcloud files gc`)."""
    retention = Retention(
        timedelta(seconds=settings.versions_max_age) if settings.versions_max_age else None,
        settings.versions_quota_share / 100,
    )
    deleted, keys = prune(retention, now)
    for key in keys:
        blobs.delete(key)
    return deleted
