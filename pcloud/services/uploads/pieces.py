"""A tus PATCH's bytes, received into the upload where they belong as they arrive, and
what is kept of them when the connection breaks off before the whole piece is in.

A PlacedPiece is a BodyReceiver's store side: it writes into the upload's resumable
write under the store's exclusive hold and hashes on the way, before anyone has
checked the request; resumable.append() later takes it over (or close() undoes it).
A ReceivedPiece is the receiver the server is handed (see the package's contract): a
PlacedPiece plus what it takes to judge, without the view, whether a broken piece's
bytes may stay.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pcloud.config import Settings
from pcloud.errors import Conflict, PcloudError, StorageUnavailable, is_out_of_space
from pcloud.models import database_proxy
from pcloud.services.uploads import records
from pcloud.services.uploads.hashes import (
    Hasher,
    UploadHashes,
    new_sha256,
    saved_state,
    verifier_for,
)
from pcloud.storage import BlobStore, ResumableBusy, ResumableWrite
from pcloud.storage.base import RESUMABLE_ID

log = logging.getLogger("pcloud.uploads")


class PlacedPiece:
    """The bytes of one PATCH, written into the upload's resumable write as they arrive
    from the connection, before anyone has checked the request, and hashed on the way
    (the upload's SHA-256 and the piece's Upload-Checksum), so that the answer waits for
    nothing but the database.

    The piece goes where the client says it does (Upload-Offset), and only if the store
    holds exactly that many bytes and no one else holds the write: its exclusive hold is
    taken when the headers arrive and kept until append() takes it over. Whatever
    append() does not take is undone on close(): the store is as it was before.
    """

    def __init__(
        self,
        write: ResumableWrite,
        offset: int,
        sha256: Hasher | None,
        checksum_algorithm: str | None,
    ) -> None:
        self._write: ResumableWrite | None = write
        self.offset = offset
        self.length = 0
        # A write that failed (a full disk, say, or an object store not answering).
        self.error: OSError | StorageUnavailable | None = None
        # The upload's SHA-256 so far, continued (None: this process does not have it).
        self.sha256 = sha256
        self.checksum_algorithm = checksum_algorithm
        self.verifier = verifier_for(checksum_algorithm)

    @classmethod
    def place(
        cls,
        blobs: BlobStore,
        hashes: UploadHashes,
        upload_id: str,
        offset: int,
        checksum_algorithm: str | None = None,
    ) -> PlacedPiece | None:
        """A piece to receive at `offset`, or None when it cannot go there now (no such
        upload, another writer, a different size): the request then goes the usual
        way, and append() gives the client the answer that fits. `checksum_algorithm`
        is one of CHECKSUM_ALGORITHMS, or None."""
        if not RESUMABLE_ID.fullmatch(upload_id):
            return None
        try:
            write = blobs.open_resumable(upload_id)
        except (ResumableBusy, OSError, PcloudError):  # (PcloudError: the store is down)
            return None
        try:
            if write.size == offset:
                # Read under the hold: the last append kept its hash before letting go
                # (here, or with the row when another process or node took the piece).
                sha256 = hashes.start(upload_id, offset)
                if sha256 is None:
                    saved = records.saved_sha256(upload_id, offset)
                    sha256 = None if saved is None else new_sha256(saved)
                return cls(write, offset, sha256, checksum_algorithm)
        except OSError:
            pass
        write.close()
        return None

    def receive(self, data: bytes) -> None:
        """Write the next bytes after those received. Never raises: a failed write is
        kept in `error` (append() raises it) and the bytes after it are dropped."""
        if self._write is None or self.error is not None:
            return
        try:
            self.length = self._write.append(self.offset + self.length, (data,)) - self.offset
        except (OSError, StorageUnavailable) as error:
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
        """Undo what was not taken: the write is cut back to `offset` and let go."""
        write, self._write = self._write, None
        if write is None:
            return
        try:
            write.truncate(self.offset)
        finally:
            write.close()


class ReceivedPiece:
    """The BodyReceiver of a tus PATCH: its bytes go into a PlacedPiece as they arrive.

    `owner_if_kept` tells, from the request's headers alone, whom the request would have
    been let in as (a user id), None when its bytes are not to be kept in any case, or
    raises PcloudError (not let in): the API layer knows the headers, this side the
    rule. `release` gives back what judging took (the thread's database connection).
    """

    def __init__(
        self,
        placed: PlacedPiece,
        upload_id: str,
        hashes: UploadHashes,
        settings: Settings,
        owner_if_kept: Callable[[], int | None],
        release: Callable[[], None],
    ) -> None:
        self.placed = placed
        self._upload_id = upload_id
        self._hashes = hashes
        self._settings = settings
        self._owner_if_kept = owner_if_kept
        self._release = release

    def receive(self, data: bytes) -> None:
        self.placed.receive(data)

    def close(self) -> None:
        self.placed.close()

    def broken(self) -> None:
        """The connection broke off (or stalled past the timeout) before the whole piece
        arrived: keep the bytes that did, when the request would have been let in and
        the bytes fit (keep_broken_piece); the client's HEAD then reports them. Never
        raises; whatever is not kept is undone."""
        try:
            owner_id = self._owner_if_kept()
            if owner_id is not None:
                kept = keep_broken_piece(
                    self._hashes, self._settings, owner_id, self._upload_id, self.placed
                )
                if kept is not None:
                    log.info("Kept %d bytes of a broken-off piece", self.placed.length)
        except PcloudError:
            pass  # not let in, or no longer there: nothing to keep
        except Exception as error:
            if is_out_of_space(error):
                log.warning("Could not keep a broken-off piece: %s", error)
            else:
                log.exception("Could not keep the bytes of a broken-off piece")
        finally:
            self.placed.close()  # undoes what was not kept
            self._release()


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
    no Upload-Checksum (a part of a piece cannot be checked against the whole's), and
    every byte written. Returns the new offset, or None when nothing was kept; the
    caller then closes the piece, which undoes its bytes. Raises NotFound or Gone for
    an upload not (or no longer) there.
    """
    if placed.error is not None or placed.length == 0 or placed.checksum_algorithm:
        return None
    upload = records.find(owner_id, upload_id)
    new_offset = placed.offset + placed.length
    limit = upload.length if upload.length is not None else settings.max_upload_size + 1
    if upload.stored_name is not None or upload.offset != placed.offset or new_offset >= limit:
        return None
    write = placed.take()
    with write:
        try:
            write.persist()
            with database_proxy.atomic():
                if not records.set_offset(
                    upload_id,
                    placed.offset,
                    new_offset,
                    upload.length,
                    settings,
                    saved_state(placed.sha256),
                ):
                    raise Conflict("Another request moved this upload on")
        except BaseException:
            write.truncate(placed.offset)
            raise
        if placed.sha256 is not None:  # kept before the hold goes, as append() does
            hashes.keep(upload_id, new_offset, placed.sha256)
    return new_offset
