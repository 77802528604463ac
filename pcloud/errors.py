"""Domain errors shared by the API and the CLI.

Each kind carries the HTTP status the API answers with; the API turns every one into
`{"error": message, **extra}` and the CLI prints the message as one red line.
"""

from __future__ import annotations

import errno
from typing import Any


class PcloudError(Exception):
    """Base of every error pcloud reports to a person or a client."""

    status = 500
    reason: str | None = None  # the status line's text, for codes werkzeug does not know
    exit_code = 1

    def __init__(self, text: str, /, **extra: Any) -> None:
        # Positional-only: an extra JSON field may itself be called "message".
        super().__init__(text)
        self.message = text
        self.extra = extra
        self.headers: dict[str, str] = {}  # added to the API's answer

    def to_json(self) -> dict[str, Any]:
        return {"error": self.message, **self.extra}


class BadRequest(PcloudError):
    status = 400


class Unauthorized(PcloudError):
    status = 401


class Forbidden(PcloudError):
    status = 403


class NotFound(PcloudError):
    status = 404


class Conflict(PcloudError):
    status = 409


class Gone(PcloudError):
    status = 410


class PreconditionFailed(PcloudError):
    status = 412


class PayloadTooLarge(PcloudError):
    status = 413


class TooManyRequests(PcloudError):
    """Refused for now; `retry_after` says in how many seconds to try again."""

    status = 429

    def __init__(self, text: str, /, retry_after: int, **extra: Any) -> None:
        super().__init__(text, retry_after=retry_after, **extra)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


class UnsupportedMediaType(PcloudError):
    status = 415


class UnprocessableEntity(PcloudError):
    """The request was understood, but its content cannot be used (a broken picture)."""

    status = 422


class Locked(PcloudError):
    """Someone else is writing the resource right now; try again shortly."""

    status = 423


class ChecksumMismatch(PcloudError):
    """A tus chunk's Upload-Checksum did not match its bytes (tus' own status code)."""

    status = 460
    reason = "Checksum Mismatch"


class InsufficientStorage(PcloudError):
    """The upload would take the user past their quota."""

    status = 507
    reason = "Insufficient Storage"


class StorageFull(InsufficientStorage):
    """The server's disk (or its database's) is full: nothing of the request was kept.
    Retryable: the server recovers by itself once room is made."""

    RETRY_AFTER = 60  # seconds: an admin's `files gc` or a bigger disk takes a while

    def __init__(self, text: str, /, cause: BaseException | None = None, **extra: Any) -> None:
        super().__init__(text, retry_after=self.RETRY_AFTER, **extra)
        self.headers = {"Retry-After": str(self.RETRY_AFTER)}
        self.cause = cause  # what the disk or the database said, for the log


class ServiceUnavailable(PcloudError):
    status = 503


class StorageUnavailable(ServiceUnavailable):
    """The blob store (object storage) did not answer in time, or answered with an error
    of its own: nothing was stored or read; `retry_after` says when to try again."""

    def __init__(self, text: str, /, retry_after: int = 10, **extra: Any) -> None:
        super().__init__(text, retry_after=retry_after, **extra)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


class ConfigError(PcloudError):
    """A setting is wrong; the message names it and where its value came from."""

    exit_code = 3


class DatabaseUnavailable(PcloudError):
    """The database cannot be opened or reached."""

    status = 503
    exit_code = 3


class WorkersFailing(PcloudError):
    """`pcloud serve` gave up: its worker processes kept dying."""

    exit_code = 4


STORAGE_FULL = (
    "The server is out of storage space, so this was not saved: try again later "
    "(the server's admin has been told)"
)
_OUT_OF_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_OUT_OF_SPACE_PGCODE = "53100"  # PostgreSQL's disk_full
_OUT_OF_SPACE_SQLITE = "database or disk is full"
_DATABASE_MODULES = {"sqlite3", "peewee"}


def out_of_space(error: BaseException) -> StorageFull | None:
    """A StorageFull for an error that means the disk (or the database's disk) is full,
    else None: an OSError ENOSPC or EDQUOT; SQLite's "database or disk is full";
    PostgreSQL's disk_full. The error's causes count too (SQLite's full disk often
    surfaces as "cannot rollback - no transaction is active", raised while handling it)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, StorageFull):
            return current
        if (
            (isinstance(current, OSError) and current.errno in _OUT_OF_SPACE_ERRNOS)
            or getattr(current, "pgcode", None) == _OUT_OF_SPACE_PGCODE
            or (
                type(current).__module__ in _DATABASE_MODULES
                and _OUT_OF_SPACE_SQLITE in str(current)
            )
        ):
            return StorageFull(STORAGE_FULL, cause=current)
        current = current.__cause__ or current.__context__
    return None


def is_out_of_space(error: BaseException) -> bool:
    """Whether `error` means a full disk (see out_of_space)."""
    return out_of_space(error) is not None
