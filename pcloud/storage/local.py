"""Blobs as files in a local folder.

Layout under the upload folder:
    blobs/ab/<key>   finished blobs; <key> is a UUID4 in hex, `ab` its first two digits
    partial/         writes in progress: anonymous O_TMPFILE files, linked into blobs/
                     when complete; or, where the filesystem cannot, named *.part files,
                     renamed into blobs/ when complete
    resumable/<id>   resumable writes (tus uploads), linked into blobs/ when finished;
                     one writer at a time holds an flock() on the file
All live on one filesystem, so finishing a blob is one atomic link or rename.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from pcloud.storage.base import (
    RESUMABLE_ID,
    BlobEntry,
    BlobStore,
    BlobWriter,
    ResumableBusy,
    ResumableWrite,
    StoredBlob,
)

KEY_PATTERN = re.compile(r"[0-9a-f]{32}")
PARTIAL_PATTERN = re.compile(r"[A-Za-z0-9_]+\.part")
ANONYMOUS_FILE_FLAGS = getattr(os, "O_TMPFILE", 0) | os.O_WRONLY


class LocalBlobWriter(BlobWriter):
    """Writes into an anonymous file (O_TMPFILE) that gets its name only at commit.

    Until commit the bytes have no name at all, so a crash, a kill or a power cut leaves
    nothing behind to collect, and the file costs one less directory update than a named
    temporary file that is then renamed. Where the filesystem cannot (no O_TMPFILE, no
    /proc), it falls back to a named `partial/*.part` file, renamed into place at commit.
    """

    def __init__(self, store: LocalBlobStore, max_size: int | None, key: str | None) -> None:
        super().__init__(max_size)
        if key is not None:
            store.blob_path(key)  # a ValueError now for a key no store makes
        self._key = key
        self._store = store
        self._partial_path: str | None = None
        if store.anonymous_writes:
            self._descriptor = os.open(store.partial_dir, ANONYMOUS_FILE_FLAGS, 0o600)
        else:
            self._descriptor, self._partial_path = tempfile.mkstemp(
                dir=store.partial_dir, suffix=".part"
            )
        self._committed = False

    def _write(self, data: bytes) -> None:
        # Unbuffered: the multipart parser hands over large chunks already.
        view = memoryview(data)
        while view:
            view = view[os.write(self._descriptor, view) :]

    def commit(self) -> StoredBlob:
        key = self._key or os.urandom(16).hex()
        shard_and_key = f"{key[:2]}/{key}"
        try:
            self._store.name_blob(self._descriptor, self._partial_path, shard_and_key)
        except FileNotFoundError:  # the first blob of its shard folder
            (self._store.blob_dir / key[:2]).mkdir(exist_ok=True)
            self._store.name_blob(self._descriptor, self._partial_path, shard_and_key)
        os.close(self._descriptor)
        self._committed = True
        self.closed = True
        return StoredBlob(key=key, size=self.size, sha256=self.sha256)

    def abort(self) -> None:
        if self._committed or self.closed:
            return
        self.closed = True
        os.close(self._descriptor)
        if self._partial_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._partial_path)


class LocalResumableWrite(ResumableWrite):
    """An open resumable file under an exclusive flock().

    flock() belongs to the open file, not the process: two threads of one worker
    exclude each other as surely as two workers do, and a writer that dies lets go.
    """

    def __init__(self, store: LocalBlobStore, path: Path) -> None:
        self._store = store
        self._path = path
        self._descriptor: int | None = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(self._descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Deleted between our open and our lock: what we hold has no name any more.
            if os.fstat(self._descriptor).st_ino != os.stat(path).st_ino:
                raise FileNotFoundError(path)
        except BlockingIOError:
            self.close()
            raise ResumableBusy(path.name) from None
        except BaseException:
            self.close()
            raise

    @property
    def size(self) -> int:
        return os.fstat(self._held()).st_size

    def append(self, offset: int, chunks: Iterable[bytes]) -> int:
        descriptor = self._held()
        size = os.fstat(descriptor).st_size
        if size < offset:
            raise ValueError(f"cannot append at {offset}: only {size} bytes are stored")
        if size > offset:
            os.ftruncate(descriptor, offset)
        position = offset
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                written = os.pwrite(descriptor, view, position)
                position += written
                view = view[written:]
        return position

    def truncate(self, size: int) -> None:
        os.ftruncate(self._held(), size)

    def read(self) -> BinaryIO:
        return open(f"/proc/self/fd/{self._held()}", "rb")  # noqa: SIM115 (the caller closes)

    def finish(self, sha256: str) -> StoredBlob:
        key = os.urandom(16).hex()
        shard_and_key = f"{key[:2]}/{key}"
        link = self._store.link_into_blobs
        try:
            link(self._path, shard_and_key)
        except FileNotFoundError:  # the first blob of its shard folder
            (self._store.blob_dir / key[:2]).mkdir(exist_ok=True)
            link(self._path, shard_and_key)
        return StoredBlob(key=key, size=self.size, sha256=sha256)

    def close(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

    def _held(self) -> int:
        if self._descriptor is None:
            raise ValueError("this resumable write is closed")
        return self._descriptor


class LocalBlobStore(BlobStore):
    local = True

    def __init__(self, root: Path, anonymous_writes: bool | None = None) -> None:
        """anonymous_writes: None to use O_TMPFILE files where the filesystem allows."""
        self.root = Path(root)
        self.blob_dir = self.root / "blobs"
        self.partial_dir = self.root / "partial"
        self.resumable_dir = self.root / "resumable"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.partial_dir.mkdir(parents=True, exist_ok=True)
        self.resumable_dir.mkdir(parents=True, exist_ok=True)
        # Kept open: naming a blob relative to it spares resolving the whole path each time.
        self._blob_dir_descriptor = os.open(self.blob_dir, os.O_RDONLY | os.O_DIRECTORY)
        if anonymous_writes is None:
            anonymous_writes = self._anonymous_files_work()
        self.anonymous_writes = anonymous_writes

    def name_blob(self, descriptor: int, partial_path: str | None, shard_and_key: str) -> None:
        """Give a finished write its blob name (atomically: it appears whole or not at all)."""
        if partial_path is not None:
            os.rename(partial_path, shard_and_key, dst_dir_fd=self._blob_dir_descriptor)
        else:
            os.link(
                f"/proc/self/fd/{descriptor}",
                shard_and_key,
                dst_dir_fd=self._blob_dir_descriptor,
                follow_symlinks=True,  # with a dir fd this is linkat(AT_SYMLINK_FOLLOW)
            )

    def link_into_blobs(self, path: Path, shard_and_key: str) -> None:
        """Give a finished resumable write a blob name too (it keeps its own until deleted)."""
        os.link(path, shard_and_key, dst_dir_fd=self._blob_dir_descriptor)

    def _anonymous_files_work(self) -> bool:
        """Whether this filesystem makes O_TMPFILE files and /proc can link them."""
        probe = f"probe-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            descriptor = os.open(self.partial_dir, ANONYMOUS_FILE_FLAGS, 0o600)
        except (OSError, AttributeError):
            return False
        try:
            self.name_blob(descriptor, None, probe)
        except OSError:
            return False
        finally:
            os.close(descriptor)
        os.unlink(probe, dir_fd=self._blob_dir_descriptor)
        return True

    def blob_path(self, key: str) -> Path:
        if not KEY_PATTERN.fullmatch(key):
            raise ValueError(f"not a blob key: {key!r}")
        return self.blob_dir / key[:2] / key

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._blob_dir_descriptor)

    def writer(self, max_size: int | None = None, key: str | None = None) -> BlobWriter:
        return LocalBlobWriter(self, max_size, key)

    def open(self, key: str) -> BinaryIO:
        return open(self.blob_path(key), "rb")

    def local_path(self, key: str) -> Path:
        return self.blob_path(key)

    def exists(self, key: str) -> bool:
        return self.blob_path(key).is_file()

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

    def create_resumable(self, upload_id: str) -> None:
        path = self.resumable_dir / _resumable_name(upload_id)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))

    def open_resumable(self, upload_id: str) -> ResumableWrite:
        return LocalResumableWrite(self, self.resumable_dir / _resumable_name(upload_id))

    def delete_resumable(self, upload_id: str) -> bool:
        try:
            (self.resumable_dir / _resumable_name(upload_id)).unlink()
            return True
        except FileNotFoundError:
            return False

    def scan_resumables(self) -> Iterator[BlobEntry]:
        for entry in _scandir(self.resumable_dir):
            if RESUMABLE_ID.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                yield _entry(entry.name, entry)


def _scandir(path: Path) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(path) as entries:
            yield from entries
    except FileNotFoundError:
        return


def _entry(key: str, entry: os.DirEntry[str]) -> BlobEntry:
    stat = entry.stat(follow_symlinks=False)
    modified = datetime.fromtimestamp(stat.st_mtime, timezone.utc)
    return BlobEntry(key=key, size=stat.st_size, modified_at=modified)


def _resumable_name(upload_id: str) -> str:
    if not isinstance(upload_id, str) or not RESUMABLE_ID.fullmatch(upload_id):
        raise ValueError(f"not a resumable upload id: {upload_id!r}")
    return upload_id
