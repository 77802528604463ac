"""Garbage collection: bytes no Blob row names (orphans), Blob rows whose bytes are gone
(and the files using them), dead partial uploads, and resumable (tus) uploads that
expired or lost their row."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pcloud.db import rows
from pcloud.models import Blob, StoredFile, User, database_proxy, utc_now
from pcloud.services import audit, changes, sessions, throttle, thumbnails, tree
from pcloud.services.uploads import resumable
from pcloud.services.uploads.resumable import ExpiredUpload
from pcloud.storage import BlobEntry, BlobStore

# A blob is renamed into place a moment before its row commits, and a partial upload is
# written to while it runs: anything touched more recently than this is left alone.
DEFAULT_GRACE = timedelta(hours=1)

Progress = Callable[[int, int], None]  # (done, total)


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
) -> GarbageReport:
    """Compare the database with the store. Changes nothing."""
    cutoff = (now or utc_now()) - grace
    # The database is read before the disk: a file committed during the scan then shows
    # up as a young blob (spared by the grace period), never as a row with no blob.
    # A key is in use when a Blob row names it (or, for rows older than Blob, a file).
    blob_keys = {key for (key,) in rows(Blob.select(Blob.store_key))}
    referenced: dict[str, list[tuple[int, str, str]]] = {key: [] for key in blob_keys}
    # Thumbnails are blobs too; those of content that is gone go in collect_garbage.
    thumbnail_keys = thumbnails.thumbnail_keys()
    for key, file_id, username, name in rows(
        StoredFile.select(StoredFile.blob_key, StoredFile.id, User.username, StoredFile.name).join(
            User
        )
    ):
        referenced.setdefault(key, []).append((file_id, username, name))
    found = list(blobs.scan())
    report = GarbageReport(blobs_scanned=len(found))
    present = set()
    for done, entry in enumerate(found, start=1):
        present.add(entry.key)
        if (
            entry.key not in referenced
            and entry.key not in thumbnail_keys
            and entry.modified_at < cutoff
        ):
            report.orphan_blobs.append(entry)
        if progress is not None:
            progress(done, len(found))
    for key, users_files in referenced.items():
        if key not in present:
            report.broken_files.extend(BrokenFile(*file, key) for file in users_files)
            if key in blob_keys:
                report.broken_blobs.append(key)
    report.unused_thumbnails = thumbnails.count_unused()
    report.stale_partials = [entry for entry in blobs.scan_partials() if entry.modified_at < cutoff]
    # Rows before files again: an upload created during the scan is young, so spared.
    report.expired_uploads = resumable.expired_uploads(now)
    known_uploads = resumable.upload_ids()
    for entry in blobs.scan_resumables():
        report.resumable_sizes[entry.key] = entry.size
        if entry.key not in known_uploads and entry.modified_at < cutoff:
            report.orphan_resumables.append(entry)
    return report


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
        _forget_broken_files(broken_ids)
        if report.broken_blobs:
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


def _forget_broken_files(file_ids: list[int]) -> None:
    """Delete the rows of files whose bytes are gone, telling each owner's change feed."""
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
        StoredFile.delete().where(StoredFile.id.in_([row[0] for row in broken])).execute()
        for file_id, owner_id, _folder_id, name in broken:
            changes.record(owner_id, changes.DELETED, changes.FILE, file_id, None, name)
        tree.bump(folder_id for _id, _owner, folder_id, _name in broken)


# Ended sessions stay listed (`pcloud users sessions --all`) this long before gc forgets them.
ENDED_SESSIONS_KEPT = timedelta(days=30)


def purge_account_records(now: datetime | None = None) -> tuple[int, int]:
    """Forget long-ended sessions and stale sign-in failure counts; (sessions, counters)."""
    now = now or utc_now()
    return (
        sessions.purge_ended(now - ENDED_SESSIONS_KEPT),
        throttle.purge_stale(now),
    )
