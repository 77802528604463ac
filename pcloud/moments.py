"""Moments in time as clients send them and as the contract writes them."""

from __future__ import annotations

import re
from datetime import datetime, timezone

_EPOCH_MILLISECONDS = re.compile(r"-?\d+")
_ZULU = re.compile(r"[Zz]$")


def parse_moment(text: str) -> datetime:
    """ISO 8601 ('2024-05-01T12:00:00Z'; UTC when no offset is given), or epoch
    milliseconds as browsers' File.lastModified (and so Uppy) send it, as an aware UTC
    datetime. Raises ValueError for anything else (the caller words the client's error)."""
    text = text.strip()
    try:
        if _EPOCH_MILLISECONDS.fullmatch(text):
            return datetime.fromtimestamp(int(text) / 1000, timezone.utc)
        moment = datetime.fromisoformat(_ZULU.sub("+00:00", text))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        # in UTC, year 1 at +01:00 is before year 1: OverflowError (found by schemathesis)
        return moment.astimezone(timezone.utc)
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"{text[:40]!r} is neither ISO 8601 nor epoch milliseconds") from None


def iso_utc(epoch_seconds: int) -> str:
    """1795564123 -> '2026-11-24T23:48:43Z', the contract's timestamp format."""
    return datetime.fromtimestamp(epoch_seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
