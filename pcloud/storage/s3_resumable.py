"""Resumable writes (tus uploads) on S3: the bytes in the bucket, the state in the database.

A resumable write is an S3 multipart upload to the blob's final key, kept open from one
piece to the next, and a row (models.S3Resumable) with the parts sent so far and the
tail: the bytes after the last part, fewer than a part. S3 takes parts of at least 5 MiB
(but the last) and cannot join small objects on its side, so a tail is kept in the row
until more bytes make it a part: every byte goes to S3 once, whatever the size of the
pieces. Any node reads the row and takes the next piece; finish() sends the tail as the
last part and completes the upload into the blob.

One writer at a time, across nodes: a PostgreSQL advisory lock (pg_try_advisory_lock on
a key from the upload's id), held on a connection of its own for as long as the hold
lasts, so that it goes with the connection should the process die. With SQLite there is
one machine: an open-file-description lock (F_OFD_SETLK) on one byte, at the same key,
of a file beside the database, which goes with the process too.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import struct
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

import peewee

from pcloud.errors import StorageUnavailable
from pcloud.models import S3Resumable, database_proxy, utc_now
from pcloud.storage.base import (
    RESUMABLE_ID,
    BlobEntry,
    ResumableBusy,
    ResumableWrite,
    StoredBlob,
)

if TYPE_CHECKING:
    from pcloud.storage.s3 import S3BlobStore

Part = tuple[int, str, int]  # number, ETag, size


def lock_key(upload_id: str) -> int:
    """A signed 64-bit number for the upload (PostgreSQL's advisory lock key)."""
    digest = hashlib.sha256(b"pcloud-resumable:" + upload_id.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Hold:
    """An exclusive hold on one upload id; release() lets go (safe twice)."""

    def __init__(self, release: Any) -> None:
        self._release = release

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


class DatabaseHolds:
    """Takes holds through the database pcloud uses (see the module's docstring)."""

    def __init__(self) -> None:
        self._idle: list[Any] = []  # PostgreSQL connections for locks, not in use
        self._mutex = threading.Lock()

    def take(self, upload_id: str) -> Hold:
        """The hold on `upload_id`, without waiting: ResumableBusy when someone has it."""
        database = database_proxy.obj
        if isinstance(database, peewee.PostgresqlDatabase):
            return self._advisory(database, lock_key(upload_id))
        return self._file_lock(str(database.database), lock_key(upload_id))

    def _advisory(self, database: peewee.PostgresqlDatabase, key: int) -> Hold:
        connection = self._connection(database)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", (key,))
                (taken,) = cursor.fetchone()
        except Exception:
            connection.close()
            raise
        if not taken:
            self._give_back(connection)
            raise ResumableBusy(str(key))

        def release() -> None:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", (key,))
            except Exception:
                connection.close()  # the lock goes with the connection
                return
            self._give_back(connection)

        return Hold(release)

    def _connection(self, database: peewee.PostgresqlDatabase) -> Any:
        with self._mutex:
            while self._idle:
                connection = self._idle.pop()
                if not connection.closed:
                    return connection
        import psycopg2  # type: ignore[import-untyped]

        connection = psycopg2.connect(database=database.database, **database.connect_params)
        connection.autocommit = True
        return connection

    def _give_back(self, connection: Any) -> None:
        with self._mutex:
            self._idle.append(connection)

    @staticmethod
    def _file_lock(database_path: str, key: int) -> Hold:
        if database_path in ("", ":memory:"):
            database_path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "pcloud-memory.db")
        descriptor = os.open(f"{database_path}-resumable.lock", os.O_RDWR | os.O_CREAT, 0o600)
        start = key & (2**62 - 1)
        try:
            fcntl.fcntl(descriptor, fcntl.F_OFD_SETLK, _flock(fcntl.F_WRLCK, start))
        except OSError:
            os.close(descriptor)
            raise ResumableBusy(str(key)) from None
        return Hold(lambda: os.close(descriptor))  # closing it lets go

    def close(self) -> None:
        with self._mutex:
            idle, self._idle = self._idle, []
        for connection in idle:
            with contextlib.suppress(Exception):
                connection.close()


def _flock(kind: int, start: int) -> bytes:
    """A struct flock for one byte at `start` (l_pid 0, as OFD locks require)."""
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, start, 1, 0)


@dataclass(frozen=True)
class _Checkpoint:
    """Where the write stood at a moment it could go back to: its parts and tail."""

    parts: tuple[Part, ...]
    tail: bytes

    @property
    def parts_size(self) -> int:
        return sum(part[2] for part in self.parts)


class S3ResumableWrite(ResumableWrite):
    """One writer's hold on an S3 resumable write (see the module's docstring).

    Parts go out in the store's threads as the tail fills them, at most PARTS_IN_FLIGHT
    at a time; the row is written on persist() and close(). The hold remembers where it
    began and where it last persisted, so that a piece can be undone back to either,
    even after parts of it (and of the tail before it) were sent."""

    def __init__(self, store: S3BlobStore, row: S3Resumable, hold: Hold) -> None:
        self._store = store
        self._id = str(row.id)
        self._hold: Hold | None = hold
        self._blob_key = str(row.blob_key)
        self._multipart_id: str | None = row.multipart_id
        self._parts: list[Part] = [tuple(part) for part in json.loads(row.parts)]
        self._sending: list[tuple[int, int, Future[str]]] = []  # number, size, ETag to come
        self._tail = bytearray(bytes(row.tail))
        self._finished = False
        self._dirty = False
        self._checkpoints = [self._checkpoint()]

    @property
    def size(self) -> int:
        sending = sum(size for _, size, _ in self._sending)
        return sum(part[2] for part in self._parts) + sending + len(self._tail)

    def append(self, offset: int, chunks: Iterable[bytes]) -> int:
        from pcloud.storage.s3 import PART_SIZE

        size = self.size
        if size < offset:
            raise ValueError(f"cannot append at {offset}: only {size} bytes are stored")
        if size > offset:
            self.truncate(offset)
        for chunk in chunks:
            self._tail += chunk
            self._dirty = True
            while len(self._tail) >= PART_SIZE:
                part = bytes(self._tail[:PART_SIZE])
                del self._tail[:PART_SIZE]
                self._send(part)
        return self.size

    def _send(self, part: bytes) -> None:
        from pcloud.storage.s3 import PARTS_IN_FLIGHT, _store_errors, store_error

        store = self._store
        try:
            if self._multipart_id is None:
                started = store.client.create_multipart_upload(
                    Bucket=store.bucket, Key=store.object_key(self._blob_key)
                )
                self._multipart_id = str(started["UploadId"])
                # Recorded at once: an upload no row names is gc's to abort.
                S3Resumable.update(multipart_id=self._multipart_id).where(
                    S3Resumable.id == self._id
                ).execute()
            while len(self._sending) >= PARTS_IN_FLIGHT:
                self._settle_oldest(strict=True)
        except _store_errors() as error:
            store_error(error, "start a part of an upload")
        number = len(self._parts) + len(self._sending) + 1
        future = store.senders.submit(self._upload_part, self._multipart_id, number, part)
        self._sending.append((number, len(part), future))
        # Checkpoints holding a part of this number are history now.
        self._checkpoints = [cp for cp in self._checkpoints if len(cp.parts) < number]

    def _upload_part(self, multipart_id: str, number: int, part: bytes) -> str:
        store = self._store
        answer = store.client.upload_part(
            Bucket=store.bucket,
            Key=store.object_key(self._blob_key),
            UploadId=multipart_id,
            PartNumber=number,
            Body=part,
        )
        return str(answer["ETag"])

    def _settle_oldest(self, strict: bool) -> None:
        """Wait for the oldest part on its way. One that failed takes every byte after
        it with it (the write is cut back to its start); `strict`: then raise."""
        from pcloud.storage.s3 import RETRY_AFTER, UNAVAILABLE

        number, size, future = self._sending.pop(0)
        try:
            self._parts.append((number, future.result(), size))
            return
        except Exception:
            for _, _, later in self._sending:
                with contextlib.suppress(Exception):
                    later.result()
            self._sending = []
            self._tail = bytearray()
            self._dirty = True
        if strict:
            raise StorageUnavailable(UNAVAILABLE, retry_after=RETRY_AFTER)

    def _settle(self, strict: bool) -> None:
        while self._sending:
            self._settle_oldest(strict)

    def truncate(self, size: int) -> None:
        self._settle(strict=False)
        self._dirty = True
        if self._finished:  # its parts are a blob now, which the caller deleted or keeps
            self._restart()
            return
        parts_size = sum(part[2] for part in self._parts)
        if parts_size <= size <= parts_size + len(self._tail):
            del self._tail[size - parts_size :]
            return
        if size > parts_size + len(self._tail) and not self._checkpoints:
            return  # lost already (a part that failed): nothing to cut
        for checkpoint in reversed(self._checkpoints):
            if checkpoint.parts_size <= size <= checkpoint.parts_size + len(checkpoint.tail):
                self._parts = list(checkpoint.parts)
                self._tail = bytearray(checkpoint.tail[: size - checkpoint.parts_size])
                self._checkpoints = [
                    cp for cp in self._checkpoints if len(cp.parts) <= len(self._parts)
                ]
                return
        kept, kept_size = [], 0  # back to the start of the part that holds `size`
        for part in self._parts:
            if kept_size + part[2] > size:
                break
            kept.append(part)
            kept_size += part[2]
        self._parts, self._tail = kept, bytearray()
        self._checkpoints = [cp for cp in self._checkpoints if len(cp.parts) <= len(kept)]

    def _restart(self) -> None:
        """After finish(): an empty write with a blob key of its own (close() records it)."""
        self._blob_key = os.urandom(16).hex()
        self._multipart_id = None
        self._parts, self._tail, self._finished = [], bytearray(), False
        self._checkpoints = []
        S3Resumable.update(blob_key=self._blob_key, multipart_id=None).where(
            S3Resumable.id == self._id
        ).execute()

    def persist(self) -> None:
        self._settle(strict=True)
        if not self._dirty:
            return
        S3Resumable.update(
            parts=json.dumps(self._parts),
            size=self.size,
            tail=bytes(self._tail),
            updated_at=utc_now(),
        ).where(S3Resumable.id == self._id).execute()
        self._dirty = False
        self._checkpoints = [*self._checkpoints[:1], self._checkpoint()]

    def _checkpoint(self) -> _Checkpoint:
        return _Checkpoint(tuple(self._parts), bytes(self._tail))

    def read(self) -> BinaryIO:
        if self._parts or self._sending:
            raise io.UnsupportedOperation("S3 cannot read parts back before they are a blob")
        return io.BytesIO(bytes(self._tail))

    def finish(self, sha256: str) -> StoredBlob:
        from pcloud.storage.s3 import _store_errors, store_error

        self._settle(strict=True)
        store, key = self._store, self._store.object_key(self._blob_key)
        size = self.size
        try:
            if not self._parts:
                store.client.put_object(Bucket=store.bucket, Key=key, Body=bytes(self._tail))
                if self._multipart_id is not None:
                    store.client.abort_multipart_upload(
                        Bucket=store.bucket, Key=key, UploadId=self._multipart_id
                    )
            else:
                parts = list(self._parts)
                if self._tail:
                    number = len(parts) + 1
                    etag = self._upload_part(self._multipart_id or "", number, bytes(self._tail))
                    parts.append((number, etag, len(self._tail)))
                store.client.complete_multipart_upload(
                    Bucket=store.bucket,
                    Key=key,
                    UploadId=self._multipart_id,
                    MultipartUpload={
                        "Parts": [{"PartNumber": number, "ETag": etag} for number, etag, _ in parts]
                    },
                )
        except _store_errors() as error:
            store_error(error, "finish an upload")
        self._finished = True
        return StoredBlob(key=self._blob_key, size=size, sha256=sha256)

    def close(self) -> None:
        if self._hold is None:
            return
        try:
            if self._dirty and not self._finished:
                self.persist()
        finally:
            self._hold.release()
            self._hold = None


class S3Resumables:
    """The S3 store's resumable writes: rows, holds and the multipart uploads they name."""

    def __init__(self, store: S3BlobStore) -> None:
        self._store = store
        self.holds = DatabaseHolds()

    def create(self, upload_id: str) -> None:
        _check_id(upload_id)
        try:
            with database_proxy.atomic():
                S3Resumable.create(id=upload_id, blob_key=os.urandom(16).hex())
        except peewee.IntegrityError:
            raise FileExistsError(upload_id) from None

    def open(self, upload_id: str) -> ResumableWrite:
        _check_id(upload_id)
        hold = self.holds.take(upload_id)
        try:
            row = S3Resumable.get_or_none(S3Resumable.id == upload_id)
            if row is None:
                raise FileNotFoundError(upload_id)
            return S3ResumableWrite(self._store, row, hold)
        except BaseException:
            hold.release()
            raise

    def delete(self, upload_id: str) -> bool:
        """The row, and the multipart upload it names (a finished one is a blob now,
        which stays: S3 answers NoSuchUpload)."""
        from pcloud.storage.s3 import _store_errors, store_error

        _check_id(upload_id)
        row = S3Resumable.get_or_none(S3Resumable.id == upload_id)
        if row is None:
            return False
        if row.multipart_id is not None:
            store = self._store
            try:
                store.client.abort_multipart_upload(
                    Bucket=store.bucket,
                    Key=store.object_key(row.blob_key),
                    UploadId=row.multipart_id,
                )
            except _store_errors() as error:
                with contextlib.suppress(FileNotFoundError):
                    store_error(error, "abort a resumable upload")
        deleted = S3Resumable.delete().where(S3Resumable.id == upload_id).execute()
        return bool(deleted)

    def scan(self) -> Iterator[BlobEntry]:
        query = S3Resumable.select(S3Resumable.id, S3Resumable.size, S3Resumable.updated_at)
        for upload_id, size, updated_at in query.tuples().iterator():
            yield BlobEntry(key=upload_id, size=size, modified_at=updated_at)

    def multipart_uploads(self) -> set[tuple[str, str]]:
        """(blob key, multipart id) of every resumable write's upload: not partials."""
        query = S3Resumable.select(S3Resumable.blob_key, S3Resumable.multipart_id).where(
            S3Resumable.multipart_id.is_null(False)
        )
        return {(str(row.blob_key), str(row.multipart_id)) for row in query}

    def close(self) -> None:
        self.holds.close()


def _check_id(upload_id: str) -> None:
    if not isinstance(upload_id, str) or not RESUMABLE_ID.fullmatch(upload_id):
        raise ValueError(f"not a resumable upload id: {upload_id!r}")
