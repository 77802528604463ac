"""Garbage collection: bytes no Blob row names (orphans), Blob rows whose bytes are gone
(and the files using them), dead partial uploads, and resumable (tus) uploads that
expired or lost their row."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import peewee

from pcloud.db import rows
from pcloud.models import Blob, FileVersion, StoredFile, User, database_proxy, utc_now
from pcloud.services import audit, changes, content, sessions, throttle, thumbnails, tree, versions
from pcloud.services.uploads import resumable
from pcloud.services.uploads.resumable import ExpiredUpload
from pcloud.storage import BlobEntry, BlobStore

# A blob is renamed into place a moment before its row commits, and a partial upload is
# written to while it runs: anything touched more recently than this is left alone.
DEFAULT_GRACE = timedelta(hours=1)

# (done, total): total is what the database expects, or more once the scan finds more.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BrokenFile:
    file_id: int
    username: str
    name: str
    blob_key: str


@dataclass
class GarbageReport:
    orphan_blobs: list[BlobEntry] = field(default_factory=list)
    broken_files: list[BrokenFile] = field(default_factory=list)
    broken_blobs: list[str] = field(default_factory=list)  # Blob rows whose bytes are gone
    stale_partials: list[BlobEntry] = field(default_factory=list)
    expired_uploads: list[ExpiredUpload] = field(default_factory=list)
    orphan_resumables: list[BlobEntry] = field(default_factory=list)  # bytes with no row
    resumable_sizes: dict[str, int] = field(default_factory=dict)  # upload id -> bytes held
    unused_thumbnails: int = 0  # thumbnails of content no file uses any more
    blobs_scanned: int = 0

    @property
    def empty(self) -> bool:
        return not (
            self.orphan_blobs
            or self.broken_files
            or self.broken_blobs
            or self.stale_partials
            or self.expired_uploads
            or self.orphan_resumables
            or self.unused_thumbnails
        )

    @property
    def reclaimable_bytes(self) -> int:
        expired = sum(self.resumable_sizes.get(u.upload_id, 0) for u in self.expired_uploads)
        files = self.orphan_blobs + self.stale_partials + self.orphan_resumables
        return expired + sum(entry.size for entry in files)


def find_garbage(
    blobs: BlobStore,
    grace: timedelta = DEFAULT_GRACE,
    progress: Progress | None = None,
    now: datetime | None = None,
    stage: Callable[[str], None] | None = None,
) -> GarbageReport:
    """Compare the database with the store. Changes nothing.

    `stage` is told the name of each scan as it starts; `progress` (done, total) how far
    the check of the blobs found is."""
    cutoff = (now or utc_now()) - grace
    if stage is not None:
        stage("Reading the database")
    # The database is read before the store: a file committed during the scan then shows
    # up as a young blob (spared by the grace period), never as a row with no blob.
    # A key is in use when a Blob row names it (or, for rows older than Blob, a file).
    # Only keys are held, one per content, never a row per file: a million files of a
    # few thousand contents cost a few thousand keys here.
    referenced = {key for (key,) in rows(Blob.select(Blob.store_key))}
    blob_keys = frozenset(referenced)
    referenced.update(_keys_of_files_without_blob_rows())
    # Thumbnails are blobs too; those of content that is gone go in collect_garbage.
    thumbnail_keys = thumbnails.thumbnail_keys()
    report = GarbageReport()
    present: set[str] = set()
    expected = len(referenced)
    if stage is not None:
        stage("Scanning blobs")
    for done, entry in enumerate(blobs.scan(), start=1):
        present.add(entry.key)
        if (
            entry.key not in referenced
            and entry.key not in thumbnail_keys
            and entry.modified_at < cutoff
        ):
            report.orphan_blobs.append(entry)
        if progress is not None:
            progress(done, max(expected, done))
    report.blobs_scanned = len(present)
    missing = sorted(referenced - present)
    report.broken_blobs = [key for key in missing if key in blob_keys]
    report.broken_files = list(_files_using(missing))
    report.unused_thumbnails = thumbnails.count_unused()
    if stage is not None:
        stage("Scanning partial uploads")
    report.stale_partials = [entry for entry in blobs.scan_partials() if entry.modified_at < cutoff]
    if stage is not None:
        stage("Scanning resumable uploads")
    # Rows before files again: an upload created during the scan is young, so spared.
    report.expired_uploads = resumable.expired_uploads(now)
    known_uploads = resumable.upload_ids()
    for entry in blobs.scan_resumables():
        report.resumable_sizes[entry.key] = entry.size
        if entry.key not in known_uploads and entry.modified_at < cutoff:
            report.orphan_resumables.append(entry)
    return report


def _keys_of_files_without_blob_rows() -> set[str]:
    """Keys files name that no Blob row does (rows older than Blob; normally none)."""
    query = (
        StoredFile.select(StoredFile.blob_key)
        .join(Blob, peewee.JOIN.LEFT_OUTER, on=(StoredFile.blob_key == Blob.store_key))
        .where(Blob.id.is_null())
        .distinct()
    )
    return {key for (key,) in rows(query)}


def _files_using(keys: list[str]) -> Iterator[BrokenFile]:
    """The files whose bytes are under these (missing) keys, a batch of keys at a time."""
    for start in range(0, len(keys), 500):
        query = (
            StoredFile.select(StoredFile.id, User.username, StoredFile.name, StoredFile.blob_key)
            .join(User)
            .where(StoredFile.blob_key.in_(keys[start : start + 500]))
            .order_by(StoredFile.id)
        )
        for file_id, username, name, key in rows(query):
            yield BrokenFile(file_id, username, name, key)


def collect_garbage(blobs: BlobStore, report: GarbageReport) -> None:
    """Remove what find_garbage() reported: orphan blobs, broken rows, stale partials."""
    for entry in report.orphan_blobs:
        blobs.delete(entry.key)
    for entry in report.stale_partials:
        blobs.delete_partial(entry.key)
    resumable.delete_uploads(blobs, [u.upload_id for u in report.expired_uploads])
    for entry in report.orphan_resumables:
        blobs.delete_resumable(entry.key)
    thumbnails.forget_unused(blobs)
    broken_ids = [broken.file_id for broken in report.broken_files]
    with database_proxy.atomic():
        freed = _forget_broken_files(broken_ids)
        if report.broken_blobs:
            lost = Blob.select(Blob.sha256).where(Blob.store_key.in_(report.broken_blobs))
            FileVersion.delete().where(FileVersion.sha256.in_(lost)).execute()
            Blob.delete().where(Blob.store_key.in_(report.broken_blobs)).execute()
        audit.record(
            audit.FILES_GC,
            actor=audit.ADMIN_ACTOR,
            orphan_blobs=len(report.orphan_blobs),
            partial_uploads=len(report.stale_partials),
            broken_files=len(broken_ids),
            thumbnails=report.unused_thumbnails,
            bytes=report.reclaimable_bytes,
        )
    for key in freed:
        blobs.delete(key)


def _forget_broken_files(file_ids: list[int]) -> list[str]:
    """Delete the rows of files whose bytes are gone, telling each owner's change feed;
    returns the store keys their versions alone used, for deleting after the commit."""
    freed: list[str] = []
    for start in range(0, len(file_ids), 500):
        broken = list(
            rows(
                StoredFile.select(
                    StoredFile.id, StoredFile.owner, StoredFile.folder, StoredFile.name
                ).where(StoredFile.id.in_(file_ids[start : start + 500]))
            )
        )
        for owner_id in sorted({owner_id for _id, owner_id, _folder, _name in broken}):
            tree.lock(owner_id)
        # Their versions' contents are other blobs, still counted: release them.
        freed.extend(content.release(versions.forget_of_files(row[0] for row in broken)))
        StoredFile.delete().where(StoredFile.id.in_([row[0] for row in broken])).execute()
        for file_id, owner_id, _folder_id, name in broken:
            changes.record(owner_id, changes.DELETED, changes.FILE, file_id, None, name)
        tree.bump(folder_id for _id, _owner, folder_id, _name in broken)
    return freed


# Ended sessions stay listed (`pcloud users sessions --all`) this long before gc forgets them.
ENDED_SESSIONS_KEPT = timedelta(days=30)


def purge_account_records(now: datetime | None = None) -> tuple[int, int]:
    """Forget long-ended sessions and stale sign-in failure counts; (sessions, counters)."""
    now = now or utc_now()
    return (
        sessions.purge_ended(now - ENDED_SESSIONS_KEPT),
        throttle.purge_stale(now),
    )
