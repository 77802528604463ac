"""Copying every blob from one store to another (local folder <-> S3), under the same keys,
so that the database stays true for both and the admin can switch STORAGE_URL after.

Resumable: a blob the target holds already is skipped (a blob appears in either store
only whole, at commit), so a run that was interrupted is simply run again. Verified: each
blob is hashed as it is copied and committed only when its SHA-256 is the one recorded;
one that differs (or is missing from the source) is reported and not copied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import peewee

from pcloud.db import rows
from pcloud.models import Blob
from pcloud.storage import BlobStore

COPY_CHUNK = 1024 * 1024
PAGE = 1000
Progress = Callable[[int], None]  # bytes just copied (or skipped)


@dataclass
class MigrationReport:
    copied: int = 0
    copied_bytes: int = 0
    skipped: int = 0  # already in the target
    missing: list[str] = field(default_factory=list)  # keys the source does not hold
    damaged: list[str] = field(default_factory=list)  # keys whose bytes differ from the row

    @property
    def complete(self) -> bool:
        return not (self.missing or self.damaged)


def total_bytes() -> tuple[int, int]:
    """How many blobs the database knows, and their bytes (for a progress bar)."""
    count: int = Blob.select().count()
    size = Blob.select(peewee.fn.SUM(Blob.size)).scalar() or 0
    return count, int(size)


def _blob_rows() -> Iterator[tuple[int, str, str, int]]:
    """(id, key, sha256, size) of every blob, a page at a time (memory stays flat)."""
    last_id = 0
    while True:
        page = list(
            rows(
                Blob.select(Blob.id, Blob.store_key, Blob.sha256, Blob.size)
                .where(Blob.id > last_id)
                .order_by(Blob.id)
                .limit(PAGE)
            )
        )
        if not page:
            return
        yield from page
        last_id = page[-1][0]


def migrate(
    source: BlobStore, target: BlobStore, progress: Progress | None = None
) -> MigrationReport:
    """Copy every blob the database knows from `source` to `target`; see the module."""
    report = MigrationReport()
    for _id, key, sha256, size in _blob_rows():
        if target.exists(key):
            report.skipped += 1
        else:
            _copy(source, target, key, sha256, report)
        if progress is not None:
            progress(size)
    return report


def _copy(
    source: BlobStore, target: BlobStore, key: str, sha256: str, report: MigrationReport
) -> None:
    writer = target.writer(key=key)
    try:
        try:
            stream = source.open(key)
        except FileNotFoundError:
            report.missing.append(key)
            return
        with stream:
            while chunk := stream.read(COPY_CHUNK):
                writer.write(chunk)
        if writer.sha256 != sha256:
            report.damaged.append(key)
            return
        stored = writer.commit()
        report.copied += 1
        report.copied_bytes += stored.size
    finally:
        writer.abort()
