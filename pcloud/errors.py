"""Domain errors shared by the API and the CLI.

Each kind carries the HTTP status the API answers with; the API turns every one into
`{"error": message, **extra}` and the CLI prints the message as one red line.
"""

from __future__ import annotations

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


class ServiceUnavailable(PcloudError):
    status = 503


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
