"""A resumable upload's row (TusUpload): finding it for its owner, and moving its offset.

The row's offset is the truth of how far an upload has come: bytes beyond it in the
store are not the upload's. It moves only by compare-and-set (set_offset), so that two
requests that both read the same offset cannot both move it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pcloud.config import Settings
from pcloud.errors import Conflict, Gone, NotFound
from pcloud.models import TusUpload, utc_now
from pcloud.storage.base import RESUMABLE_ID

UPLOAD_NOT_FOUND = "Upload not found"


@dataclass(frozen=True)
class UploadState:
    """What HEAD and PATCH answers tell a client about an upload."""

    id: str
    offset: int
    length: int | None  # None: deferred
    metadata: str
    expires_at: datetime
    stored_name: str | None  # the file's name once the upload is complete

    @classmethod
    def of(cls, upload: TusUpload) -> UploadState:
        return cls(
            upload.id,
            upload.offset,
            upload.length,
            upload.metadata,
            upload.expires_at,
            upload.stored_name,
        )


def find(owner_id: int, upload_id: str, now: datetime | None = None) -> TusUpload:
    """The user's upload of that id. NotFound for anyone else's; Gone once expired."""
    if not RESUMABLE_ID.fullmatch(upload_id):
        raise NotFound(UPLOAD_NOT_FOUND)
    upload = TusUpload.get_or_none((TusUpload.id == upload_id) & (TusUpload.owner == owner_id))
    if upload is None:
        raise NotFound(UPLOAD_NOT_FOUND)
    if upload.expires_at <= (now or utc_now()):
        raise Gone("This upload has expired; start a new one")
    return upload


def find_at(owner_id: int, upload_id: str, offset: int) -> TusUpload:
    """find(), and Conflict (carrying the true offset) unless it stands at `offset`."""
    upload = find(owner_id, upload_id)
    if upload.offset != offset:
        raise Conflict(f"Upload-Offset is {upload.offset}, not {offset}", offset=upload.offset)
    return upload


def set_offset(
    upload_id: str,
    expected: int,
    offset: int,
    length: int | None = None,
    settings: Settings | None = None,
    sha256_state: bytes | None = None,
) -> bool:
    """Compare-and-set the offset of an upload not complete yet, with the saved state of
    the SHA-256 of the bytes up to it (None: lost); with `settings`, also its length and
    a renewed expiry. False if the offset was not `expected` any more."""
    changes: dict[Any, Any] = {TusUpload.offset: offset, TusUpload.sha256_state: sha256_state}
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
    return bool(updated == 1)


def saved_sha256(upload_id: str, offset: int) -> bytes | None:
    """The saved SHA-256 state of the upload's first `offset` bytes, if its row has it."""
    row = (
        TusUpload.select(TusUpload.sha256_state)
        .where((TusUpload.id == upload_id) & (TusUpload.offset == offset))
        .first()
    )
    return None if row is None or row.sha256_state is None else bytes(row.sha256_state)
