"""Resumable uploads (tus 1.0): their life from creation to file, whatever the HTTP
around them (pcloud.api.tus reads and writes the headers).

An upload is a TusUpload row (owner, length, offset, requested name, expiry; see
records) and a resumable write in the blob store holding at least its first `offset`
bytes. The row's offset is the truth: bytes beyond it (a writer that died mid-piece, a
piece that failed its checksum) are discarded by the next append. One append runs at a
time per upload: the store's exclusive hold (an flock, across threads and worker
processes) keeps bytes from interleaving, and the offset is compare-and-set in the
database besides.

When the offset reaches the length, the bytes become a file through files.add_file, like
any upload, in the same transaction that records the final offset. The row stays (with
the stored name) until it expires, so a client that lost the last answer learns from
HEAD that the upload is complete instead of sending it again.
"""

from __future__ import annotations

import dataclasses
import io
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from pcloud.config import Settings
from pcloud.db import rows
from pcloud.errors import (
    BadRequest,
    ChecksumMismatch,
    Conflict,
    Locked,
    NotFound,
    PayloadTooLarge,
)
from pcloud.models import TusUpload, User, database_proxy, utc_now
from pcloud.services import files, names, quota, tree
from pcloud.services.uploads import records
from pcloud.services.uploads.hashes import (
    Checksum,
    Hasher,
    UploadHashes,
    new_sha256,
    saved_state,
    verifier_for,
)
from pcloud.services.uploads.pieces import PlacedPiece
from pcloud.services.uploads.records import UPLOAD_NOT_FOUND, UploadState
from pcloud.sizes import format_size
from pcloud.storage import BlobStore, ResumableBusy, ResumableWrite, StoredBlob

READ_SIZE = 1024 * 1024


class Readable(Protocol):
    """A request body read as a stream (wsgi.input, say)."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class NewUpload:
    """What a client says of the upload it starts (tus: Upload-Length, Upload-Metadata)."""

    length: int | None  # None: the client says it later (deferred)
    filename: str  # as sent; checked as POST /upload checks it
    modified_at: datetime | None
    folder_id: int | None  # None: the root
    metadata: str = ""  # the Upload-Metadata header as sent, which HEAD gives back


# --- the upload's life --------------------------------------------------------------------


def create_upload(
    blobs: BlobStore, settings: Settings, owner_id: int, new: NewUpload
) -> UploadState:
    """A new, empty upload. Raises PayloadTooLarge past the upload limit, BadRequest for
    a name that is not a file name, NotFound for a folder not the owner's (or in the
    trash), InsufficientStorage past the owner's quota."""
    check_length(settings, new.length)
    name = names.from_upload(new.filename)
    if new.folder_id is not None:
        tree.live_folder(owner_id, new.folder_id)  # 404 for anyone else's
    quota.check(owner_id, new.length)  # 507 before a byte is stored; add_file checks again
    upload_id = secrets.token_urlsafe(24)
    # The bytes' home first: a crash before the row commits leaves an empty file with no
    # row, which gc removes; never a row whose bytes have nowhere to go.
    blobs.create_resumable(upload_id)
    try:
        with database_proxy.atomic():
            upload = TusUpload.create(
                id=upload_id,
                owner=owner_id,
                length=new.length,
                name=name,
                modified_at=new.modified_at,
                folder_id=new.folder_id,
                metadata=new.metadata,
                expires_at=utc_now() + timedelta(seconds=settings.tus_expiration),
            )
    except BaseException:
        blobs.delete_resumable(upload_id)
        raise
    return UploadState.of(upload)


def check_length(settings: Settings, length: int | None) -> None:
    """PayloadTooLarge for an upload longer than this server takes (MAX_UPLOAD_SIZE)."""
    if length is not None and length > settings.max_upload_size:
        raise PayloadTooLarge(
            f"Upload-Length {length} is larger than this server's limit of "
            f"{format_size(settings.max_upload_size)} ({settings.max_upload_size} bytes)"
        )


def get_upload(owner_id: int, upload_id: str) -> UploadState:
    """HEAD: where the upload stands. Raises NotFound or Gone."""
    return UploadState.of(records.find(owner_id, upload_id))


def append(
    blobs: BlobStore,
    hashes: UploadHashes,
    settings: Settings,
    owner_id: int,
    upload_id: str,
    offset: int,
    body: Readable | PlacedPiece,
    declared_length: int | None = None,
    checksum: Checksum | None = None,
) -> UploadState:
    """PATCH: add the body's bytes at `offset`; make the file when the upload is complete.

    `body` is a stream, or a PlacedPiece whose bytes are in the store at `offset`
    already (hashed as they arrived). Raises Conflict for a wrong offset, Locked while
    another request writes this upload, ChecksumMismatch (the piece is discarded),
    PayloadTooLarge beyond the length, and the OSError a failed write raised. On any
    failure the upload is as it was before.
    """
    upload = records.find_at(owner_id, upload_id, offset)
    if upload.stored_name is not None:  # complete already: nothing more may come
        if body.length if isinstance(body, PlacedPiece) else body.read(1):
            raise PayloadTooLarge("This upload is complete; it takes no more bytes")
        return UploadState.of(upload)
    if isinstance(body, PlacedPiece):
        if body.error is not None:
            raise body.error
        write = body.take()  # (it held the write before the checks above)
    else:
        write = _open_write(blobs, upload_id)
    with write:
        if not isinstance(body, PlacedPiece):
            upload = _find_under_hold(hashes, owner_id, upload_id, offset, write)
        piece: _PieceHashes | None = None
        try:
            length = _new_length(upload, declared_length, settings)
            room = (length if length is not None else settings.max_upload_size) - offset
            if isinstance(body, PlacedPiece):
                piece = _placed_hashes(body, room, checksum)
                new_offset = offset + body.length
            else:
                piece = _stream_hashes(hashes, upload, checksum)
                new_offset = write.append(offset, _pieces(body, room, piece))
            piece.verify(checksum)
            complete = length is not None and new_offset == length
            if complete and piece.sha256 is None:
                piece.sha256 = _hash_prefix(write, new_offset)
            write.persist()  # the bytes are where any node finds them before they count
            _record(blobs, settings, owner_id, upload, write, new_offset, length, piece, complete)
        except BaseException:
            write.truncate(offset)
            if piece is not None and piece.kept_before is not None:
                hashes.keep(upload_id, offset, piece.kept_before)
            raise
        if complete:
            hashes.forget(upload_id)
            blobs.delete_resumable(upload_id)
        elif piece.sha256 is not None:
            hashes.keep(upload_id, new_offset, piece.sha256)
    return UploadState.of(TusUpload.get_by_id(upload_id))


@dataclass
class _PieceHashes:
    """The hashes one piece's bytes go through on their way into the store."""

    sha256: Hasher | None  # the upload's SHA-256, continued (None: lost; see UploadHashes)
    verifier: Hasher | None  # the piece's Upload-Checksum, if it has one
    kept_before: Hasher | None = None  # this process's hash before the piece: kept again
    # should the piece be undone

    def update(self, data: bytes) -> None:
        if self.sha256 is not None:
            self.sha256.update(data)
        if self.verifier is not None:
            self.verifier.update(data)

    def verify(self, checksum: Checksum | None) -> None:
        """ChecksumMismatch unless the piece's bytes hash to the client's checksum."""
        if checksum is not None and (
            self.verifier is None or self.verifier.digest() != checksum.digest
        ):
            raise ChecksumMismatch("Upload-Checksum does not match the bytes; send them again")


def _open_write(blobs: BlobStore, upload_id: str) -> ResumableWrite:
    """The upload's resumable write, held. Locked while someone else holds it."""
    try:
        return blobs.open_resumable(upload_id)
    except ResumableBusy:
        raise Locked("Another request is writing this upload; try again shortly") from None
    except FileNotFoundError:
        raise NotFound(UPLOAD_NOT_FOUND) from None


def _find_under_hold(
    hashes: UploadHashes, owner_id: int, upload_id: str, offset: int, write: ResumableWrite
) -> TusUpload:
    """The upload read again under the hold (a request that held it before us may have
    moved it on). Conflict when its offset moved, or when the store lost bytes under the
    row's feet (a power cut): the row owns up to what the store still has."""
    upload = records.find_at(owner_id, upload_id, offset)
    if write.size > offset:  # a writer stored more, then died before recording it
        write.truncate(offset)  # (a store may have to cut further back: see truncate())
    if write.size < offset:
        records.set_offset(upload_id, offset, write.size)
        hashes.forget(upload_id)
        raise Conflict("Part of this upload was lost; ask for its offset again")
    return upload


def _placed_hashes(placed: PlacedPiece, room: int, checksum: Checksum | None) -> _PieceHashes:
    """The hashes of a piece hashed as it arrived. PayloadTooLarge past `room`."""
    if placed.length > room:
        raise PayloadTooLarge(_beyond(placed.length - room))
    if placed.checksum_algorithm != (checksum.algorithm if checksum else None):
        raise ValueError("the piece was checked with another algorithm")  # (same header)
    # This process's kept hash (if any) stays where it was: the piece hashed a copy.
    return _PieceHashes(placed.sha256, placed.verifier)


def _stream_hashes(
    hashes: UploadHashes, upload: TusUpload, checksum: Checksum | None
) -> _PieceHashes:
    """The hashes for a piece about to be read from a stream: this process's kept hash
    is taken over (and a copy kept aside, to restore should the piece be undone), or
    the one saved with the row continued."""
    saved = None if upload.sha256_state is None else bytes(upload.sha256_state)
    sha256 = hashes.start(upload.id, upload.offset, take=True, saved=saved)
    before = sha256.copy() if sha256 is not None else None
    return _PieceHashes(sha256, verifier_for(checksum.algorithm if checksum else None), before)


def _record(
    blobs: BlobStore,
    settings: Settings,
    owner_id: int,
    upload: TusUpload,
    write: ResumableWrite,
    new_offset: int,
    length: int | None,
    piece: _PieceHashes,
    complete: bool,
) -> None:
    """In one transaction: move the offset on (Conflict if another request did), and
    when the upload is complete, make its file. On failure no file or blob is left."""
    blob = None
    try:
        with database_proxy.atomic():
            if not records.set_offset(
                upload.id, upload.offset, new_offset, length, settings, saved_state(piece.sha256)
            ):
                raise Conflict("Another request moved this upload on; ask for its offset")
            if complete:
                if piece.sha256 is not None:
                    blob = write.finish(piece.sha256.hexdigest())
                else:  # lost, and the store cannot read its bytes back before finish
                    blob = _finish_unhashed(blobs, write)
                stored = files.add_file(
                    blobs,
                    owner_id,
                    upload.name,
                    blob,
                    modified_at=upload.modified_at,
                    folder_id=_folder_still_there(owner_id, upload.folder_id),
                )
                TusUpload.update(stored_name=stored.name).where(TusUpload.id == upload.id).execute()
    except BaseException:
        if blob is not None:
            blobs.delete(blob.key)
        raise


def _folder_still_there(owner_id: int, folder_id: int | None) -> int | None:
    """The upload's folder, or None (the root) if it went to the trash meanwhile: a
    finished upload is never lost."""
    if folder_id is None:
        return None
    try:
        return int(tree.live_folder(owner_id, folder_id).id)
    except NotFound:
        return None


def _new_length(upload: TusUpload, declared: int | None, settings: Settings) -> int | None:
    """The upload's length once this piece's Upload-Length (if any) is taken in."""
    if declared is None or declared == upload.length:
        length: int | None = upload.length
        return length
    if upload.length is not None:
        raise BadRequest(f"Upload-Length is {upload.length} already; it cannot change")
    check_length(settings, declared)
    if declared < upload.offset:
        raise BadRequest(f"Upload-Length {declared} is less than the {upload.offset} bytes sent")
    quota.check(upload.owner_id, declared)
    return declared


def _hash_prefix(write: ResumableWrite, offset: int) -> Hasher | None:
    """The SHA-256 state of the first `offset` bytes, read back from the store (None
    where it cannot read them back before finish: see _finish_unhashed)."""
    sha256 = new_sha256()
    remaining = offset
    try:
        stored = write.read()
    except io.UnsupportedOperation:
        return None
    with stored:
        while remaining:
            data = stored.read(min(READ_SIZE, remaining))
            if not data:
                raise ValueError(f"resumable write ended {remaining} bytes short of {offset}")
            sha256.update(data)
            remaining -= len(data)
    return sha256


def _finish_unhashed(blobs: BlobStore, write: ResumableWrite) -> StoredBlob:
    """Finish a write whose hash was lost, then hash the blob it became."""
    blob = write.finish("")
    sha256 = new_sha256()
    with blobs.open(blob.key) as stored:
        while data := stored.read(READ_SIZE):
            sha256.update(data)
    return dataclasses.replace(blob, sha256=sha256.hexdigest())


def _pieces(body: Readable, room: int, piece: _PieceHashes) -> Iterator[bytes]:
    """The body's bytes, each fed to the piece's hashes; PayloadTooLarge past `room`."""
    received = 0
    while data := body.read(READ_SIZE):
        received += len(data)
        if received > room:
            raise PayloadTooLarge(_beyond(received - room))
        piece.update(data)
        yield data


def _beyond(excess: int) -> str:
    return f"The bytes go {format_size(excess)} beyond the upload's length"


def terminate(blobs: BlobStore, hashes: UploadHashes, owner_id: int, upload_id: str) -> None:
    """DELETE: forget the upload and its bytes (a finished upload's file stays)."""
    upload = records.find(owner_id, upload_id)
    write: ResumableWrite | None
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
    )
    return [ExpiredUpload(*row) for row in rows(query)]


def upload_ids() -> set[str]:
    """Every upload's id, expired or not."""
    return {upload_id for (upload_id,) in rows(TusUpload.select(TusUpload.id))}


def delete_uploads(blobs: BlobStore, upload_ids: list[str]) -> None:
    """Remove these uploads' rows, then their bytes."""
    if upload_ids:
        with database_proxy.atomic():
            TusUpload.delete().where(TusUpload.id.in_(upload_ids)).execute()
    # After the commit: a crash here leaves files with no row, which gc removes later.
    for upload_id in upload_ids:
        blobs.delete_resumable(upload_id)
