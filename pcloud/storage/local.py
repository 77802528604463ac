"""Blobs as files in a local folder.

Layout under the upload folder:
    blobs/ab/<key>   finished blobs; <key> is a UUID4 in hex, `ab` its first two digits
    partial/*.part   writes in progress (renamed into blobs/ when complete)
Both live on one filesystem, so finishing a blob is an atomic rename.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from pcloud.storage.base import BlobEntry, BlobStore, BlobWriter, StoredBlob

KEY_PATTERN = re.compile(r"[0-9a-f]{32}")
PARTIAL_PATTERN = re.compile(r"[A-Za-z0-9_]+\.part")


class LocalBlobWriter(BlobWriter):
    def __init__(self, store: LocalBlobStore, max_size: int | None) -> None:
        super().__init__(max_size)
        self._store = store
        descriptor, path = tempfile.mkstemp(dir=store.partial_dir, suffix=".part")
        self._partial_path = Path(path)
        # Unbuffered: the multipart parser hands over large chunks already, and a buffer
        # per upload would be allocated and freed for every small file.
        self._file = os.fdopen(descriptor, "wb", buffering=0)
        self._committed = False

    def _write(self, data: bytes) -> None:
        self._file.write(data)

    def commit(self) -> StoredBlob:
        key = uuid.uuid4().hex
        target = self._store.blob_path(key)
        self._file.close()
        try:
            os.rename(self._partial_path, target)
        except FileNotFoundError:  # the first blob of its shard folder
            target.parent.mkdir(exist_ok=True)
            os.rename(self._partial_path, target)
        self._committed = True
        self.closed = True
        return StoredBlob(key=key, size=self.size, sha256=self.sha256)

    def abort(self) -> None:
        if self._committed:
            return
        self.closed = True
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._partial_path.unlink()


class LocalBlobStore(BlobStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blob_dir = self.root / "blobs"
        self.partial_dir = self.root / "partial"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.partial_dir.mkdir(parents=True, exist_ok=True)

    def blob_path(self, key: str) -> Path:
        if not KEY_PATTERN.fullmatch(key):
            raise ValueError(f"not a blob key: {key!r}")
        return self.blob_dir / key[:2] / key

    def writer(self, max_size: int | None = None) -> BlobWriter:
        return LocalBlobWriter(self, max_size)

    def open(self, key: str) -> BinaryIO:
        return open(self.blob_path(key), "rb")

    def local_path(self, key: str) -> Path:
        return self.blob_path(key)

    def delete(self, key: str) -> bool:
        try:
            self.blob_path(key).unlink()
            return True
        except FileNotFoundError:
            return False

    def scan(self) -> Iterator[BlobEntry]:
        for shard in _scandir(self.blob_dir):
            if shard.is_dir(follow_symlinks=False):
                for entry in _scandir(Path(shard.path)):
                    # Only where blob_path() puts it: anything else is not ours to claim.
                    if (
                        KEY_PATTERN.fullmatch(entry.name)
                        and entry.name[:2] == shard.name
                        and entry.is_file(follow_symlinks=False)
                    ):
                        yield _entry(entry.name, entry)

    def scan_partials(self) -> Iterator[BlobEntry]:
        for entry in _scandir(self.partial_dir):
            if PARTIAL_PATTERN.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                yield _entry(entry.name, entry)

    def delete_partial(self, key: str) -> bool:
        if not PARTIAL_PATTERN.fullmatch(key):
            raise ValueError(f"not a partial upload: {key!r}")
        try:
            (self.partial_dir / key).unlink()
            return True
        except FileNotFoundError:
            return False


def _scandir(path: Path) -> Iterator[os.DirEntry]:
    try:
        with os.scandir(path) as entries:
            yield from entries
    except FileNotFoundError:
        return


def _entry(key: str, entry: os.DirEntry) -> BlobEntry:
    stat = entry.stat(follow_symlinks=False)
    modified = datetime.fromtimestamp(stat.st_mtime, timezone.utc)
    return BlobEntry(key=key, size=stat.st_size, modified_at=modified)
