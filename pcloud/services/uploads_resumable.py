"""Resumable uploads (tus 1.0): the rules, whatever the HTTP around them.

An upload is a TusUpload row (owner, length, offset, requested name, expiry) and a
resumable write in the blob store holding at least its first `offset` bytes. The row's
offset is the truth: bytes beyond it (a writer that died mid-piece, a piece that failed
its checksum) are discarded by the next append. One append runs at a time per upload:
the store's exclusive hold (an flock, across threads and worker processes) keeps bytes
from interleaving, and the offset is compare-and-set in the database besides.

When the offset reaches the length, the bytes become a file through files.add_file, like
any upload, in the same transaction that records the final offset. The row stays (with
the stored name) until it expires, so a client that lost the last answer learns from
HEAD that the upload is complete instead of sending it again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import IO, Any

from pcloud.config import Settings
from pcloud.errors import (
    BadRequest,
    ChecksumMismatch,
    Conflict,
    Gone,
    Locked,
    NotFound,
    PayloadTooLarge,
)
from pcloud.models import TusUpload, User, database_proxy, utc_now
from pcloud.services import files, names, quota, tree
from pcloud.storage import BlobStore, ResumableBusy, ResumableWrite
from pcloud.storage.base import RESUMABLE_ID

CHECKSUM_ALGORITHMS = {
    "md5": hashlib.md5,
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}
READ_SIZE = 1024 * 1024
MAX_METADATA_CHARS = 16 * 1024
UPLOAD_NOT_FOUND = "Upload not found"
METADATA_PAIR = re.compile(r"([^\s,]+)(?: ([A-Za-z0-9+/=]*))?")


@dataclass(frozen=True)
class UploadState:
    """What HEAD and PATCH answers tell a client about an upload."""

    id: str
    offset: int
    length: int | None  # None: deferred
    metadata: str
    expires_at: datetime
    stored_name: str | None  # the file's name once the upload is complete


@dataclass(frozen=True)
class Checksum:
    """An Upload-Checksum header: the algorithm's name and the digest it promises."""

    algorithm: str
    digest: bytes


def _state(upload: TusUpload) -> UploadState:
    return UploadState(
        upload.id,
        upload.offset,
        upload.length,
        upload.metadata,
        upload.expires_at,
        upload.stored_name,
    )


class UploadHashes:
    """The SHA-256 state of uploads whose latest piece this worker process received.

    A file's SHA-256 is its ETag, so the bytes of a resumable upload are hashed as they
    arrive. Consecutive pieces usually reach the same process (a client keeps its
    connection, and a connection stays with one worker), which continues the hash it
    kept. When the state is lost (a restart, or a piece went to another worker) the
    upload is hashed again once, from the store, when it completes: re-hashing the
    prefix at every hop between workers would cost O(n^2) for a client that opens a new
    connection for each piece.
    """

    def __init__(self, capacity: int = 256) -> None:
        self._capacity = capacity
        self._states: OrderedDict[str, tuple[int, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, upload_id: str, offset: int) -> Any | None:
        """The hash of the upload's first `offset` bytes, if this process has it."""
        with self._lock:
            kept = self._states.pop(upload_id, None)
        if kept is None or kept[0] != offset:
            return None
        return kept[1]

    def copy(self, upload_id: str, offset: int) -> Any | None:
        """A copy of the hash of the upload's first `offset` bytes, if this process has
        it (the original stays, for whoever takes it)."""
        with self._lock:
            kept = self._states.get(upload_id)
        if kept is None or kept[0] != offset:
            return None
        return kept[1].copy()

    def keep(self, upload_id: str, offset: int, sha256: Any) -> None:
        with self._lock:
            self._states[upload_id] = (offset, sha256)
            self._states.move_to_end(upload_id)
            while len(self._states) > self._capacity:
                self._states.popitem(last=False)

    def forget(self, upload_id: str) -> None:
        with self._lock:
            self._states.pop(upload_id, None)


class PlacedPiece:
    """The bytes of one PATCH, written into the upload's resumable write as they arrive
    from the connection (see pcloud.api.bodies), before anyone has checked the request,
    and hashed on the way (the upload's SHA-256 and the piece's Upload-Checksum), so that
    the answer waits for nothing but the database.

    The piece goes where the client says it does (Upload-Offset), and only if the store
    holds exactly that many bytes and no one else holds the write: its exclusive hold is
    taken when the headers arrive and kept until append() takes it over. Whatever
    append() does not take is undone on close(): the store is as it was before.
    """

    def __init__(
        self,
        write: ResumableWrite,
        offset: int,
        sha256: Any | None,
        checksum_algorithm: str | None,
    ) -> None:
        self._write: ResumableWrite | None = write
        self.offset = offset
        self.length = 0
        self.error: OSError | None = None
        # The upload's SHA-256 so far, continued (None: this process does not have it).
        self.sha256 = sha256
        self.checksum_algorithm = checksum_algorithm
        self.verifier = CHECKSUM_ALGORITHMS[checksum_algorithm]() if checksum_algorithm else None

    @classmethod
    def place(
        cls,
        blobs: BlobStore,
        hashes: UploadHashes,
        upload_id: str,
        offset: int,
        checksum_header: str | None = None,
    ) -> PlacedPiece | None:
        """A piece to receive at `offset`, or None when it cannot go there now (no such
        upload, another writer, a different size, a checksum header that does not
        parse): the request then goes the usual way, and append() gives the client the
        answer that fits."""
        if not RESUMABLE_ID.fullmatch(upload_id):
            return None
        algorithm = None
        if checksum_header:
            try:
                algorithm = parse_checksum(checksum_header).algorithm
            except BadRequest:
                return None
        try:
            write = blobs.open_resumable(upload_id)
        except (ResumableBusy, OSError):
            return None
        try:
            if write.size == offset:
                # Read under the hold: the last append kept its hash before letting go.
                sha256 = hashes.copy(upload_id, offset) or (
                    hashlib.sha256() if offset == 0 else None
                )
                return cls(write, offset, sha256, algorithm)
        except OSError:
            pass
        write.close()
        return None

    def receive(self, data: bytes) -> None:
        if self._write is None or self.error is not None:
            return
        try:
            self.length = self._write.append(self.offset + self.length, (data,)) - self.offset
        except OSError as error:  # a full disk, say: append() reports it
            self.error = error
            return
        if self.sha256 is not None:
            self.sha256.update(data)
        if self.verifier is not None:
            self.verifier.update(data)

    def take(self) -> ResumableWrite:
        """The hold on the write, now the caller's (to close), bytes and all."""
        write, self._write = self._write, None
        if write is None:
            raise ValueError("this piece was taken or closed already")
        return write

    def close(self) -> None:
        write, self._write = self._write, None
        if write is None:
            return
        try:
            write.truncate(self.offset)
        finally:
            write.close()


# --- Upload-Metadata ---------------------------------------------------------------------


def parse_metadata(header: str) -> dict[str, str]:
    """'filename ZG9nLmpwZw==,is_confidential' -> {'filename': 'dog.jpg', 'is_confidential': ''}."""
    if len(header) > MAX_METADATA_CHARS:
        raise BadRequest(f"Upload-Metadata is longer than {MAX_METADATA_CHARS} characters")
    values: dict[str, str] = {}
    for pair in header.split(","):
        pair = pair.strip()
        if not pair:
            continue
        match = METADATA_PAIR.fullmatch(pair)
        if match is None:
            raise BadRequest(f"Upload-Metadata: {pair[:40]!r} is not 'key base64-value'")
        key, encoded = match.group(1), match.group(2) or ""
        if key in values:
            raise BadRequest(f"Upload-Metadata: key {key!r} appears twice")
        try:
            values[key] = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise BadRequest(
                f"Upload-Metadata: the value of {key!r} is not base64 of UTF-8 text"
            ) from None
    return values


def file_details(metadata: dict[str, str]) -> tuple[str, datetime | None, int | None]:
    """The file name (validated as POST /upload validates it), modification time, and
    the id of the folder it goes to (None: the root)."""
    filename = metadata.get("filename", metadata.get("name"))
    if not filename:
        raise BadRequest("Upload-Metadata needs the file name: key 'filename' (or 'name')")
    name = names.from_upload(filename)
    # Folders are named by id (`folder_id`); `folder` is for clients that send a path.
    if metadata.get("folder", "") not in ("", "/"):
        raise BadRequest("Upload-Metadata: send a folder's id as 'folder_id', not a path")
    folder_text = metadata.get("folder_id", "")
    if folder_text and (not folder_text.isdigit() or not folder_text.isascii()):
        raise BadRequest("Upload-Metadata: 'folder_id' must be a folder's id")
    moment = metadata.get("modified_at", metadata.get("lastModified"))
    folder_id = int(folder_text) if folder_text and len(folder_text) < 19 else None
    if folder_text and folder_id is None:
        raise NotFound(tree.FOLDER_NOT_FOUND)
    return name, parse_moment(moment) if moment else None, folder_id


def parse_moment(text: str) -> datetime:
    """ISO 8601 ('2024-05-01T12:00:00Z'; UTC when no offset is given), or epoch
    milliseconds as browsers' File.lastModified (and so Uppy) send it."""
    text = text.strip()
    try:
        if re.fullmatch(r"-?\d+", text):
            return datetime.fromtimestamp(int(text) / 1000, timezone.utc)
        moment = datetime.fromisoformat(re.sub(r"[Zz]$", "+00:00", text))
    except (ValueError, OverflowError, OSError):
        raise BadRequest(
            f"Upload-Metadata: modification time {text[:40]!r} is neither ISO 8601 "
            "nor epoch milliseconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def parse_checksum(header: str) -> Checksum:
    """'sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=' -> Checksum. Raises BadRequest."""
    algorithm, _, encoded = header.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        supported = ", ".join(CHECKSUM_ALGORITHMS)
        raise BadRequest(f"Upload-Checksum: unsupported algorithm {algorithm!r}; use {supported}")
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise BadRequest("Upload-Checksum: the digest is not base64") from None
    return Checksum(algorithm, digest)


# --- the upload's life --------------------------------------------------------------------


def create_upload(
    blobs: BlobStore,
    settings: Settings,
    owner_id: int,
    length: int | None,
    metadata_header: str,
) -> UploadState:
    """A new, empty upload. `length` None: the client will say it later (deferred)."""
    if length is not None and length > settings.max_upload_size:
        raise PayloadTooLarge(
            f"Upload-Length {length} is larger than this server's limit of "
            f"{settings.max_upload_size} bytes"
        )
    name, modified_at, folder_id = file_details(parse_metadata(metadata_header))
    if folder_id is not None:
        tree.live_folder(owner_id, folder_id)  # 404 for anyone else's
    quota.check(owner_id, length)  # 507 before a byte is stored; add_file checks again
    upload_id = secrets.token_urlsafe(24)
    # The bytes' home first: a crash before the row commits leaves an empty file with no
    # row, which gc removes; never a row whose bytes have nowhere to go.
    blobs.create_resumable(upload_id)
    try:
        with database_proxy.atomic():
            upload = TusUpload.create(
                id=upload_id,
                owner=owner_id,
                length=length,
                name=name,
                modified_at=modified_at,
                folder_id=folder_id,
                metadata=metadata_header,
                expires_at=utc_now() + timedelta(seconds=settings.tus_expiration),
            )
    except BaseException:
        blobs.delete_resumable(upload_id)
        raise
    return _state(upload)


def _find(owner_id: int, upload_id: str, now: datetime | None = None) -> TusUpload:
    """The user's upload of that id. NotFound for anyone else's; Gone once expired."""
    if not RESUMABLE_ID.fullmatch(upload_id):
        raise NotFound(UPLOAD_NOT_FOUND)
    upload = TusUpload.get_or_none((TusUpload.id == upload_id) & (TusUpload.owner == owner_id))
    if upload is None:
        raise NotFound(UPLOAD_NOT_FOUND)
    if upload.expires_at <= (now or utc_now()):
        raise Gone("This upload has expired; start a new one")
    return upload


def get_upload(owner_id: int, upload_id: str) -> UploadState:
    """HEAD: where the upload stands. Raises NotFound or Gone."""
    return _state(_find(owner_id, upload_id))


def append(
    blobs: BlobStore,
    hashes: UploadHashes,
    settings: Settings,
    owner_id: int,
    upload_id: str,
    offset: int,
    body: IO[bytes] | PlacedPiece,
    declared_length: int | None = None,
    checksum: Checksum | None = None,
) -> UploadState:
    """PATCH: add the body's bytes at `offset`; make the file when the upload is complete.

    `body` is a stream, or a PlacedPiece whose bytes are at `offset` already (they are
    read back to hash and check them). Raises Conflict for a wrong offset, Locked while
    another request writes this upload, ChecksumMismatch (the piece is discarded),
    PayloadTooLarge beyond the length.
    """
    placed = body if isinstance(body, PlacedPiece) else None
    upload = _find(owner_id, upload_id)
    if upload.offset != offset:
        raise Conflict(f"Upload-Offset is {upload.offset}, not {offset}", offset=upload.offset)
    if upload.stored_name is not None:  # complete already: nothing more may come
        if placed.length if placed is not None else body.read(1):
            raise PayloadTooLarge("This upload is complete; it takes no more bytes")
        return _state(upload)
    if placed is not None:
        if placed.error is not None:
            raise placed.error
        write = placed.take()
    else:
        try:
            write = blobs.open_resumable(upload_id)
        except ResumableBusy:
            raise Locked("Another request is writing this upload; try again shortly") from None
        except FileNotFoundError:
            raise NotFound(UPLOAD_NOT_FOUND) from None
    with write:
        if placed is None:  # (a placed piece held the write before the checks above)
            # Read again under the hold: a request that held it before us may have moved on.
            upload = _find(owner_id, upload_id)
            if upload.offset != offset:
                raise Conflict(
                    f"Upload-Offset is {upload.offset}, not {offset}", offset=upload.offset
                )
            if write.size < offset:  # bytes lost under the row's feet (a power cut): own up
                _set_offset(upload_id, offset, write.size)
                hashes.forget(upload_id)
                raise Conflict("Part of this upload was lost; ask for its offset again")
        blob = sha256 = before = None
        try:
            length = _new_length(upload, declared_length, settings)
            room = (length if length is not None else settings.max_upload_size) - offset
            algorithm = checksum.algorithm if checksum else None
            if placed is not None:
                if placed.length > room:
                    raise PayloadTooLarge(
                        f"The bytes go {placed.length - room} beyond the upload's length"
                    )
                # Hashed as they arrived; this process's kept hash stays where it was.
                sha256, verifier = placed.sha256, placed.verifier
                if placed.checksum_algorithm != algorithm:  # (they read the same header)
                    raise ValueError("the piece was checked with another algorithm")
                new_offset = offset + placed.length
            else:
                # None: this process lost the hash; the whole upload is hashed when it
                # completes.
                sha256 = hashes.take(upload_id, offset) or (
                    hashlib.sha256() if offset == 0 else None
                )
                before = sha256.copy() if sha256 is not None else None
                verifier = CHECKSUM_ALGORITHMS[algorithm]() if algorithm else None
                new_offset = write.append(offset, _pieces(body, room, (sha256, verifier)))
            if verifier is not None and verifier.digest() != checksum.digest:
                raise ChecksumMismatch("Upload-Checksum does not match the bytes; send them again")
            complete = length is not None and new_offset == length
            if complete and sha256 is None:
                sha256 = _hash_prefix(write, new_offset)
            with database_proxy.atomic():
                if not _set_offset(upload_id, offset, new_offset, length, settings):
                    raise Conflict("Another request moved this upload on; ask for its offset")
                if complete:
                    blob = write.finish(sha256.hexdigest())
                    stored = files.add_file(
                        blobs,
                        owner_id,
                        upload.name,
                        blob,
                        modified_at=upload.modified_at,
                        folder_id=_folder_still_there(owner_id, upload.folder_id),
                    )
                    TusUpload.update(stored_name=stored.name).where(
                        TusUpload.id == upload_id
                    ).execute()
        except BaseException:
            if blob is not None:
                blobs.delete(blob.key)
            write.truncate(offset)
            if before is not None:
                hashes.keep(upload_id, offset, before)
            raise
        if complete:
            hashes.forget(upload_id)
            blobs.delete_resumable(upload_id)
        elif sha256 is not None:
            hashes.keep(upload_id, new_offset, sha256)
    return _state(TusUpload.get_by_id(upload_id))


def keep_broken_piece(
    hashes: UploadHashes,
    settings: Settings,
    owner_id: int,
    upload_id: str,
    placed: PlacedPiece,
) -> int | None:
    """A piece whose connection broke off before all of it arrived: keep the bytes that
    did, as tus asks of a server ("store as much of the received data as possible"),
    so that a phone whose network drops re-sends only what never reached the server.

    Kept only where append() would have taken them: the owner's live upload, at its
    offset, within its length (short of it: only a whole request completes a file),
    and no Upload-Checksum (a part of a piece cannot be checked against the whole's).
    Returns the new offset, or None when nothing was kept; the caller then closes the
    piece, which undoes its bytes. Raises NotFound or Gone for an upload not (or no
    longer) there.
    """
    if placed.error is not None or placed.length == 0 or placed.checksum_algorithm:
        return None
    upload = _find(owner_id, upload_id)
    new_offset = placed.offset + placed.length
    limit = upload.length if upload.length is not None else settings.max_upload_size + 1
    if upload.stored_name is not None or upload.offset != placed.offset or new_offset >= limit:
        return None
    write = placed.take()
    with write:
        try:
            with database_proxy.atomic():
                if not _set_offset(upload_id, placed.offset, new_offset, upload.length, settings):
                    raise Conflict("Another request moved this upload on")
        except BaseException:
            write.truncate(placed.offset)
            raise
        if placed.sha256 is not None:  # kept before the hold goes, as append() does
            hashes.keep(upload_id, new_offset, placed.sha256)
    return new_offset


def _folder_still_there(owner_id: int, folder_id: int | None) -> int | None:
    """The upload's folder, or None (the root) if it went to the trash meanwhile: a
    finished upload is never lost."""
    if folder_id is None:
        return None
    try:
        return tree.live_folder(owner_id, folder_id).id
    except NotFound:
        return None


def _new_length(upload: TusUpload, declared: int | None, settings: Settings) -> int | None:
    if declared is None or declared == upload.length:
        return upload.length
    if upload.length is not None:
        raise BadRequest(f"Upload-Length is {upload.length} already; it cannot change")
    if declared > settings.max_upload_size:
        raise PayloadTooLarge(
            f"Upload-Length {declared} is larger than this server's limit of "
            f"{settings.max_upload_size} bytes"
        )
    if declared < upload.offset:
        raise BadRequest(f"Upload-Length {declared} is less than the {upload.offset} bytes sent")
    quota.check(upload.owner_id, declared)
    return declared


def _set_offset(
    upload_id: str,
    expected: int,
    offset: int,
    length: int | None = None,
    settings: Settings | None = None,
) -> bool:
    """Compare-and-set the offset (and length, and a renewed expiry); False if it moved."""
    changes: dict[Any, Any] = {TusUpload.offset: offset}
    if settings is not None:
        changes[TusUpload.length] = length
        changes[TusUpload.expires_at] = utc_now() + timedelta(seconds=settings.tus_expiration)
    updated = (
        TusUpload.update(changes)
        .where(
            (TusUpload.id == upload_id)
            & (TusUpload.offset == expected)
            & TusUpload.stored_name.is_null()
        )
        .execute()
    )
    return updated == 1


def _hash_prefix(write, offset: int):
    """The SHA-256 state of the first `offset` bytes, read back from the store."""
    sha256 = hashlib.sha256()
    remaining = offset
    with write.read() as stored:
        while remaining:
            data = stored.read(min(READ_SIZE, remaining))
            if not data:
                raise ValueError(f"resumable write ended {remaining} bytes short of {offset}")
            sha256.update(data)
            remaining -= len(data)
    return sha256


def _pieces(body: IO[bytes], room: int, hashers: tuple) -> Iterator[bytes]:
    """The body's bytes, each piece fed to the hashers; PayloadTooLarge past `room`."""
    received = 0
    while data := body.read(READ_SIZE):
        received += len(data)
        if received > room:
            raise PayloadTooLarge(f"The bytes go {received - room} beyond the upload's length")
        for hasher in hashers:
            if hasher is not None:
                hasher.update(data)
        yield data


def terminate(blobs: BlobStore, hashes: UploadHashes, owner_id: int, upload_id: str) -> None:
    """DELETE: forget the upload and its bytes (a finished upload's file stays)."""
    upload = _find(owner_id, upload_id)
    try:
        write = blobs.open_resumable(upload_id)
    except ResumableBusy:
        raise Locked("Another request is writing this upload; try again shortly") from None
    except FileNotFoundError:
        write = None  # complete (its bytes are a file now), or never had any
    try:
        with database_proxy.atomic():
            TusUpload.delete().where(TusUpload.id == upload.id).execute()
        blobs.delete_resumable(upload_id)
        hashes.forget(upload_id)
    finally:
        if write is not None:
            write.close()


# --- for gc and account deletion -----------------------------------------------------------


@dataclass(frozen=True)
class ExpiredUpload:
    upload_id: str
    username: str
    name: str


def expired_uploads(now: datetime | None = None) -> list[ExpiredUpload]:
    """Uploads past their expiry, complete or not, oldest first."""
    query = (
        TusUpload.select(TusUpload.id, User.username, TusUpload.name)
        .join(User)
        .where(TusUpload.expires_at <= (now or utc_now()))
        .order_by(TusUpload.expires_at)
        .tuples()
    )
    return [ExpiredUpload(*row) for row in query]


def upload_ids() -> set[str]:
    """Every upload's id, expired or not."""
    return {upload_id for (upload_id,) in TusUpload.select(TusUpload.id).tuples()}


def delete_uploads(blobs: BlobStore, upload_ids: list[str]) -> None:
    """Remove these uploads' rows, then their bytes."""
    if upload_ids:
        with database_proxy.atomic():
            TusUpload.delete().where(TusUpload.id.in_(upload_ids)).execute()
    # After the commit: a crash here leaves files with no row, which gc removes later.
    for upload_id in upload_ids:
        blobs.delete_resumable(upload_id)
