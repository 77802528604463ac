"""The audit log: who signed in, failed to, was signed out, changed a password, deleted
what, and what the admin did. Rows outlive the accounts they speak of.

`record` is called inside the transaction of the change it reports, so the log and the
change are committed together or not at all. Listeners (the metrics, say) hear of each
event after it is recorded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pcloud.models import AuditEvent, User, utc_now

# Actions, by name; the audit table and `pcloud audit` show these words.
SIGN_IN = "sign-in"
SIGN_IN_FAILED = "sign-in-failed"
SIGN_IN_THROTTLED = "sign-in-throttled"
SIGN_OUT = "sign-out"
SESSION_REVOKED = "session-revoked"
SESSIONS_REVOKED = "sessions-revoked"
REFRESH_TOKEN_REUSED = "refresh-token-reused"
PASSWORD_CHANGED = "password-changed"
PASSWORD_CHANGE_FAILED = "password-change-failed"
USER_CREATED = "user-created"
USER_DELETED = "user-deleted"
USER_DISABLED = "user-disabled"
USER_ENABLED = "user-enabled"
FILE_DELETED = "file-deleted"
FILES_GC = "files-gc"
TRASH_PURGED = "trash-purged"

USER_ACTOR = "user"
ADMIN_ACTOR = "admin"  # the `pcloud` command on the server
SYSTEM_ACTOR = "system"

Listener = Callable[[str], None]
_listeners: list[Listener] = []


def add_listener(listener: Listener) -> None:
    """Call `listener(action)` after every event recorded in this process."""
    if listener not in _listeners:
        _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def record(
    action: str,
    *,
    user: User | None = None,
    user_id: int | None = None,
    username: str | None = None,
    actor: str = USER_ACTOR,
    ip_address: str | None = None,
    **detail: object,
) -> None:
    """Add one event to the log (in the caller's transaction, if there is one)."""
    if user is not None:
        user_id, username = user.id, user.username
    elif user_id is not None and username is None:
        username = User.select(User.username).where(User.id == user_id).scalar()
    AuditEvent.create(
        at=utc_now(),
        action=action,
        user_id=user_id,
        username=username,
        actor=actor,
        ip_address=ip_address,
        detail=json.dumps(detail, ensure_ascii=False, sort_keys=True) if detail else None,
    )
    notify(action)


def notify(action: str) -> None:
    """Tell the listeners of an event that is not worth a row (a throttled attempt)."""
    for listener in _listeners:
        listener(action)


@dataclass(frozen=True)
class Event:
    at: datetime
    action: str
    user_id: int | None
    username: str | None
    actor: str
    ip_address: str | None
    detail: dict[str, Any]


def list_events(
    user_id: int | None = None, since: datetime | None = None, limit: int = 1000
) -> list[Event]:
    """The newest events first, optionally of one user and after a moment."""
    query = AuditEvent.select().order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if user_id is not None:
        query = query.where(AuditEvent.user_id == user_id)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    return [
        Event(
            row.at,
            row.action,
            row.user_id,
            row.username,
            row.actor,
            row.ip_address,
            json.loads(row.detail) if row.detail else {},
        )
        for row in query.limit(limit)
    ]
