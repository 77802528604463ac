"""The blob store contract.

A blob is an immutable run of bytes under a key the store generates. The database says
which user's file points at which key; the store knows nothing of users or names, and
no client-supplied text ever becomes part of a key or a path.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from pcloud.errors import PayloadTooLarge


@dataclass(frozen=True)
class StoredBlob:
    """A blob that is complete and in place."""

    key: str
    size: int
    sha256: str


@dataclass(frozen=True)
class BlobEntry:
    """One blob found by a scan of the store."""

    key: str
    size: int
    modified_at: datetime


class BlobWriter(ABC):
    """Receives the bytes of one new blob, hashing and counting them as they arrive.

    Nothing is visible under a key until `commit()` returns; `abort()` (or any failure)
    leaves nothing behind. Writers are file-like enough (`write`, `seek`, `tell`) to be a
    stream factory's result for werkzeug's multipart parser.
    """

    def __init__(self, max_size: int | None = None) -> None:
        self.max_size = max_size
        self.size = 0
        self._hash = hashlib.sha256()
        self.closed = False

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.max_size is not None and self.size > self.max_size:
            self.abort()
            raise PayloadTooLarge(f"File is larger than the limit of {self.max_size} bytes")
        self._hash.update(data)
        self._write(data)
        return len(data)

    def write_all(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def seek(self, offset: int, whence: int = 0) -> int:
        """Werkzeug rewinds a finished part; the bytes are already counted and hashed."""
        return 0

    def tell(self) -> int:
        return self.size

    @abstractmethod
    def _write(self, data: bytes) -> None: ...

    @abstractmethod
    def commit(self) -> StoredBlob:
        """Make the blob durable under a new key and return what was stored."""

    @abstractmethod
    def abort(self) -> None:
        """Discard everything written. Safe to call more than once, and after commit()."""


class BlobStore(ABC):
    """Where the bytes of files live."""

    @abstractmethod
    def writer(self, max_size: int | None = None) -> BlobWriter:
        """Start a new blob. Writing more than `max_size` bytes raises PayloadTooLarge."""

    def put(self, chunks: Iterable[bytes], max_size: int | None = None) -> StoredBlob:
        """Store an iterable of byte chunks as a new blob."""
        writer = self.writer(max_size)
        try:
            writer.write_all(chunks)
            return writer.commit()
        finally:
            writer.abort()

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """Open a blob for reading. Raises FileNotFoundError for an unknown key."""

    def local_path(self, key: str) -> Path | None:
        """The blob's path on this machine, when the backend has one (for send_file)."""
        return None

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Remove a blob; returns False when there was none. Never raises for a missing key."""

    def close(self) -> None:  # noqa: B027 (a backend holding nothing open needs none)
        """Release what the store holds open (connections, descriptors)."""

    @abstractmethod
    def scan(self) -> Iterator[BlobEntry]:
        """Every blob in the store, in no particular order."""

    @abstractmethod
    def scan_partials(self) -> Iterator[BlobEntry]:
        """Unfinished writes that outlived their writer (key: a name only the store
        understands), for gc. A backend whose unfinished writes vanish by themselves
        (anonymous files) may list none."""

    @abstractmethod
    def delete_partial(self, key: str) -> bool:
        """Remove one unfinished write found by scan_partials()."""
