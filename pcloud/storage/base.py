"""The blob store contract.

A blob is an immutable run of bytes under a key the store generates. The database says
which user's file points at which key; the store knows nothing of users or names, and
no client-supplied text ever becomes part of a key or a path.

A resumable write is a blob in the making that outlives requests and restarts (a tus
upload): named by an id the caller generated, appended to piece by piece by one writer
at a time, and finished into a blob when complete.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from pcloud.errors import PayloadTooLarge
from pcloud.sizes import format_size


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
            raise PayloadTooLarge(
                f"File is larger than this server's limit of {format_size(self.max_size)}"
            )
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


class _Limited:
    """At most `remaining` bytes of a stream."""

    def __init__(self, stream: BinaryIO, remaining: int) -> None:
        self._stream = stream
        self._remaining = remaining

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self._remaining:
            size = self._remaining
        data = self._stream.read(size)
        self._remaining -= len(data)
        return data

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> _Limited:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class ResumableBusy(Exception):
    """Another writer (thread or process) holds this resumable write right now."""


RESUMABLE_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


class ResumableWrite(ABC):
    """One writer's exclusive hold on a resumable write, until `close()`.

    The hold is exclusive across threads, processes and (where the store is shared)
    machines, so two writers' bytes never mix.
    `size` is what the store holds, which may run ahead of what the caller has accepted
    (a writer that died mid-append): `truncate()` to the accepted offset first.
    """

    @property
    @abstractmethod
    def size(self) -> int:
        """Bytes stored so far."""

    @abstractmethod
    def append(self, offset: int, chunks: Iterable[bytes]) -> int:
        """Discard anything stored beyond `offset`, then write the chunks from there.

        Returns the new size. Raises ValueError if fewer than `offset` bytes are stored.
        On an exception from `chunks`, what was written stays: truncate to undo it.
        """

    @abstractmethod
    def truncate(self, size: int) -> None:
        """Discard the bytes stored beyond `size`.

        A store that sends bytes on in blocks (S3's parts) can cut anywhere back to
        where this hold began or was last persisted, and at its block boundaries; asked
        to cut inside a block sent before that, it cuts back to the block's start, and
        `size` tells how much is left."""

    def persist(self) -> None:  # noqa: B027 (a store whose appends are in place needs none)
        """Make what was appended so far durable and visible to the next writer, on any
        machine: called before the caller records the bytes as accepted. close() does
        it too, for what is left after a truncate()."""

    @abstractmethod
    def read(self) -> BinaryIO:
        """The bytes stored so far, from the start (to hash them again). Raises
        io.UnsupportedOperation where the store cannot read them back before finish()
        (S3 parts): the caller carries the hash from piece to piece instead."""

    @abstractmethod
    def finish(self, sha256: str) -> StoredBlob:
        """Make the stored bytes a new blob (whose SHA-256 the caller computed).

        The resumable write stays until `BlobStore.delete_resumable()`, so that a caller
        whose database commit fails can delete the blob and try again.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the hold. Safe to call more than once."""

    def __enter__(self) -> ResumableWrite:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class BlobStore(ABC):
    """Where the bytes of files live."""

    # The store answers in the time of a local disk access (never waiting on the
    # network), so requests that touch it may be served in the server's event loop.
    local = False
    # How many bytes an unfinished write holds before scan_partials() lists it.
    partial_from = 1

    @abstractmethod
    def writer(self, max_size: int | None = None, key: str | None = None) -> BlobWriter:
        """Start a new blob. Writing more than `max_size` bytes raises PayloadTooLarge.

        `key`: commit under this key instead of a new one (a key some store generated:
        copying a blob from one store to another keeps its database rows true). The
        caller makes sure the store does not hold that key yet (exists()).
        """

    def put(
        self, chunks: Iterable[bytes], max_size: int | None = None, key: str | None = None
    ) -> StoredBlob:
        """Store an iterable of byte chunks as a new blob (under `key`, see writer())."""
        writer = self.writer(max_size, key)
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

    def open_range(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """The bytes from `start` up to, not including, `end` (None: to the last), as a
        stream to read in order; a backend passes the range on to where the bytes are.
        Raises FileNotFoundError for an unknown key."""
        stream = self.open(key)
        stream.seek(start)
        if end is None:
            return stream
        return _Limited(stream, end - start)  # type: ignore[return-value]

    def download_url(self, key: str, name: str, mimetype: str, expires_in: int) -> str | None:
        """A URL a client may fetch the blob from directly, for `expires_in` seconds, as
        a download called `name`; None when the backend has no such thing."""
        return None

    def exists(self, key: str) -> bool:
        """Whether the store holds a blob under this key (a backend may answer faster)."""
        try:
            self.open(key).close()
        except FileNotFoundError:
            return False
        return True

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

    @abstractmethod
    def create_resumable(self, upload_id: str) -> None:
        """Start an empty resumable write. `upload_id` matches RESUMABLE_ID (ValueError
        otherwise) and must be new (FileExistsError otherwise)."""

    @abstractmethod
    def open_resumable(self, upload_id: str) -> ResumableWrite:
        """Take the exclusive hold on a resumable write, without waiting.

        Raises ResumableBusy when another writer holds it, FileNotFoundError when there is
        none of that id.
        """

    @abstractmethod
    def delete_resumable(self, upload_id: str) -> bool:
        """Remove a resumable write; False when there was none. Never raises for a missing
        id (a writer holding it keeps writing into nothing)."""

    @abstractmethod
    def scan_resumables(self) -> Iterator[BlobEntry]:
        """Every resumable write (key: its upload id), for gc."""
