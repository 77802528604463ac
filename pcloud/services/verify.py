"""Re-hashing stored blobs to find bit rot: bytes that no longer match their SHA-256."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from pcloud.db import rows
from pcloud.models import Blob, StoredFile, User
from pcloud.storage import BlobStore

READ_SIZE = 1024 * 1024
Progress = Callable[[int], None]  # bytes just read


@dataclass(frozen=True)
class DamagedBlob:
    store_key: str
    expected_sha256: str
    actual_sha256: str | None  # None: the bytes are missing (or were not read)
    files: list[str] = field(default_factory=list)  # "user: name" of the files using it
    found_size: int | None = None  # check_sizes(): the size the store holds, if wrong


@dataclass(frozen=True)
class VerifyPlan:
    blobs: list[tuple[str, str, int]]  # (store key, sha256, size)

    @property
    def total_bytes(self) -> int:
        return sum(size for _key, _sha256, size in self.blobs)


def plan() -> VerifyPlan:
    """Every blob the database knows, to be read back."""
    planned = rows(Blob.select(Blob.store_key, Blob.sha256, Blob.size).order_by(Blob.id))
    return VerifyPlan(list(planned))


def verify(
    blobs: BlobStore, todo: VerifyPlan, progress: Progress | None = None
) -> list[DamagedBlob]:
    """Hash every planned blob again; the ones whose bytes differ from their SHA-256 or
    are missing. Changes nothing."""
    damaged = []
    for key, expected, _size in todo.blobs:
        actual = _hash(blobs, key, progress)
        if actual != expected:
            damaged.append(DamagedBlob(key, expected, actual, _files_using(expected)))
    return damaged


SizeProgress = Callable[[int, int], None]  # (blobs listed, blobs expected)


def check_sizes(blobs: BlobStore, progress: SizeProgress | None = None) -> list[DamagedBlob]:
    """The metadata pass: every blob the database knows must be in the store with its
    recorded size. One listing of the store, no byte read (minutes for millions of blobs
    on S3, where reading them all back would take hours). Changes nothing."""
    expected = {
        key: (sha256, size)
        for key, sha256, size in rows(Blob.select(Blob.store_key, Blob.sha256, Blob.size))
    }
    total = len(expected)
    damaged = []
    for done, entry in enumerate(blobs.scan(), start=1):
        wanted = expected.pop(entry.key, None)
        if wanted is not None and wanted[1] != entry.size:
            sha256 = wanted[0]
            damaged.append(DamagedBlob(entry.key, sha256, None, _files_using(sha256), entry.size))
        if progress is not None:
            progress(done, max(total, done))
    for key, (sha256, _size) in expected.items():
        damaged.append(DamagedBlob(key, sha256, None, _files_using(sha256)))
    return damaged


def _hash(blobs: BlobStore, key: str, progress: Progress | None) -> str | None:
    digest = hashlib.sha256()
    try:
        with blobs.open(key) as stored:
            while data := stored.read(READ_SIZE):
                digest.update(data)
                if progress is not None:
                    progress(len(data))
    except FileNotFoundError:
        return None
    return digest.hexdigest()


def _files_using(sha256: str) -> list[str]:
    using = (
        StoredFile.select(User.username, StoredFile.name)
        .join(User)
        .where(StoredFile.sha256 == sha256)
        .order_by(User.username, StoredFile.name)
    )
    return [f"{username}: {name}" for username, name in rows(using)]
