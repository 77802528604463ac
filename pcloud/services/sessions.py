"""Device sessions: one per sign-in, so that one lost phone can be signed out alone.

A session holds the device's refresh tokens, and every access token names its session.
Revoking a session (or disabling its user) stops its tokens at once: each authenticated
request checks its session with one indexed query (`check_access`), so no token outlives
its revocation, not even a one-hour access token.

Refresh-token rotation is opt-in: a client that asks for it gets a new refresh token with
each refresh, and the old one is spent. Presenting a spent token again means two parties
hold the session's tokens (one of them a thief), so the whole session is revoked.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from peewee import JOIN

from pcloud.config import Settings
from pcloud.db import PreparedQuery
from pcloud.errors import BadRequest, NotFound, Unauthorized
from pcloud.models import (
    DeviceSession,
    Folder,
    RefreshToken,
    User,
    database_proxy,
    micros,
    utc_now,
)
from pcloud.services import audit, tokens
from pcloud.services.tokens import AccessClaims, TokenPair

MAX_DEVICE_NAME = 100
MAX_USER_AGENT = 255
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# last_seen_at is written at most this often per session, not on every request.
LAST_SEEN_STEP = timedelta(seconds=60)

SESSION_NOT_FOUND = "Session not found"
REVOKED = "Session has been revoked: sign in again"
DISABLED = "Account is disabled"
USER_GONE = "User no longer exists"


@dataclass(frozen=True)
class Client:
    """What the server knows of the device making a request."""

    ip_address: str | None = None
    user_agent: str | None = None
    device_name: str | None = None


ADMIN = Client()  # the `pcloud` command on the server


def validate_device_name(device_name: object) -> str | None:
    if device_name is None or device_name == "":
        return None
    if not isinstance(device_name, str):
        raise BadRequest("'device_name' must be a string")
    device_name = device_name.strip()
    if len(device_name) > MAX_DEVICE_NAME or CONTROL_CHARACTERS.search(device_name):
        raise BadRequest(
            f"'device_name' must be at most {MAX_DEVICE_NAME} characters, without control "
            "characters"
        )
    return device_name or None


def _clip(text: str | None, length: int) -> str | None:
    if not text:
        return None
    return CONTROL_CHARACTERS.sub("", text)[:length] or None


def start(settings: Settings, user: User, method: str, client: Client) -> TokenPair:
    """Sign a device in: a new session, its first refresh token and an access token."""
    now = utc_now()
    expires_at = now + timedelta(seconds=settings.refresh_token_lifetime)
    with database_proxy.atomic():
        session = DeviceSession.create(
            public_id=secrets.token_urlsafe(12),
            user=user.id,
            method=method,
            device_name=client.device_name,
            user_agent=_clip(client.user_agent, MAX_USER_AGENT),
            ip_address=client.ip_address,
            created_at=now,
            last_seen_at=now,
            expires_at=expires_at,
        )
        refresh_token = _new_refresh_token(settings, user.id, session, now, expires_at)
        audit.record(
            audit.SIGN_IN,
            user=user,
            ip_address=client.ip_address,
            method=method,
            session=session.public_id,
            device=client.device_name,
        )
    access_token = tokens.issue_access_token(settings, user.id, session.public_id, now)
    return TokenPair(access_token, refresh_token)


def _new_refresh_token(
    settings: Settings, user_id: int, session: DeviceSession, now: datetime, expires_at: datetime
) -> str:
    token_id = secrets.token_hex(16)
    RefreshToken.create(
        token_id=token_id, user=user_id, session=session.id, created_at=now, expires_at=expires_at
    )
    return tokens.issue_refresh_token(
        settings, user_id, session.public_id, token_id, now, expires_at
    )


_SESSION_STATE = PreparedQuery(
    lambda public_id: (
        DeviceSession.select(
            DeviceSession.id,
            DeviceSession.user,
            DeviceSession.revoked_at,
            DeviceSession.last_seen_at,
            User.disabled_at,
            User.quota_bytes,
            Folder.id,
        )
        .join(User)
        .join(Folder, JOIN.LEFT_OUTER, on=(Folder.root_of == User.id))
        .where(DeviceSession.public_id == public_id)
    ),
    "\x01sid",
)


@dataclass(frozen=True)
class SignedIn:
    """Who a request speaks for, as its session check found them (see check_access)."""

    user_id: int
    session_id: str  # the session's public id, the token's `sid`
    root_folder_id: int | None  # None until the user's root folder is made
    quota_bytes: int | None  # None: no quota


def check_access(claims: AccessClaims, ip_address: str | None = None) -> SignedIn:
    """Let an access token in only while its session is live and its user enabled.

    One indexed query per request, which also brings what most requests need next (the
    user's root folder and quota), so that they need not ask again. Raises Unauthorized.
    """
    row = _SESSION_STATE.execute(claims.session_id).fetchone()
    if row is None:
        raise Unauthorized(USER_GONE)  # sessions go only with their user
    session_id, user_id, revoked_at, last_seen_at, disabled_at, quota_bytes, root_id = row
    if user_id != claims.user_id:
        raise Unauthorized("Invalid token")
    if revoked_at is not None:
        raise Unauthorized(REVOKED)
    if disabled_at is not None:
        raise Unauthorized(DISABLED)
    now = utc_now()
    if micros(now) - last_seen_at > LAST_SEEN_STEP.total_seconds() * 1_000_000:
        seen: dict[Any, Any] = {DeviceSession.last_seen_at: now}
        if ip_address:  # (unknown when a broken-off request is checked after its end)
            seen[DeviceSession.ip_address] = ip_address
        with database_proxy.atomic():
            DeviceSession.update(seen).where(DeviceSession.id == session_id).execute()
    return SignedIn(user_id, claims.session_id, root_id, quota_bytes)


def refresh(
    settings: Settings, refresh_token: object, client: Client, rotate: bool = False
) -> TokenPair | str:
    """A new access token for a live refresh token (and, with `rotate`, a new refresh
    token that replaces it). Raises Unauthorized; a spent token revokes its session."""
    claims = tokens.decode(settings, refresh_token, tokens.REFRESH)
    now = utc_now()
    record = _live_refresh_record(claims, now, client)
    session = _session_of(record)
    user_id = session.user_id
    with database_proxy.atomic():
        if rotate:
            spent = (
                RefreshToken.update(rotated_at=now)
                .where((RefreshToken.id == record.id) & RefreshToken.rotated_at.is_null())
                .execute()
            )
            if spent:
                expires_at = now + timedelta(seconds=settings.refresh_token_lifetime)
                new_refresh_token = _new_refresh_token(settings, user_id, session, now, expires_at)
                DeviceSession.update(
                    expires_at=expires_at, last_seen_at=now, ip_address=client.ip_address
                ).where(DeviceSession.id == session.id).execute()
        else:
            DeviceSession.update(last_seen_at=now, ip_address=client.ip_address).where(
                DeviceSession.id == session.id
            ).execute()
    if rotate and not spent:  # a concurrent refresh spent it first: a second holder
        _revoke_for_reuse(session, client)
    access_token = tokens.issue_access_token(settings, user_id, session.public_id, now)
    if rotate:
        return TokenPair(access_token, new_refresh_token)
    return access_token


def sign_out(settings: Settings, refresh_token: object, client: Client) -> None:
    """End the session a refresh token belongs to. Raises Unauthorized."""
    claims = tokens.decode(settings, refresh_token, tokens.REFRESH)
    record = _live_refresh_record(claims, utc_now(), client)
    session = _session_of(record)
    with database_proxy.atomic():
        _revoke(session, "signed out")
        audit.record(
            audit.SIGN_OUT,
            user_id=session.user_id,
            username=session.user.username,
            ip_address=client.ip_address,
            session=session.public_id,
        )


def _session_of(record: RefreshToken) -> DeviceSession:
    """The session of a refresh token (every token made since sessions exist has one)."""
    session = record.session
    if session is None:
        raise Unauthorized("Invalid token: unknown refresh token")
    return session


def _live_refresh_record(claims: dict[str, Any], now: datetime, client: Client) -> RefreshToken:
    """The record of a refresh token that may still be used (read outside a transaction,
    so that revoking a session for a spent token commits before the refusal)."""
    record: RefreshToken | None = (
        RefreshToken.select(RefreshToken, DeviceSession, User)
        .join(DeviceSession)
        .join(User)
        .where(RefreshToken.token_id == str(claims.get("jti")))
        .first()
    )
    if record is None or str(record.user_id) != claims["sub"]:
        raise Unauthorized("Invalid token: unknown refresh token")
    session = _session_of(record)
    if claims.get("sid", session.public_id) != session.public_id:
        raise Unauthorized("Invalid token: unknown refresh token")
    if session.revoked_at is not None or record.revoked_at is not None:
        raise Unauthorized(REVOKED)
    if session.user.disabled_at is not None:
        raise Unauthorized(DISABLED)
    if record.rotated_at is not None:
        _revoke_for_reuse(session, client)
    if record.expires_at <= now:
        raise Unauthorized("Token has expired")
    return record


def _revoke_for_reuse(session: DeviceSession, client: Client) -> None:
    """A spent refresh token came back: end the session for good, then refuse."""
    with database_proxy.atomic():
        _revoke(session, "refresh token reused")
        audit.record(
            audit.REFRESH_TOKEN_REUSED,
            user_id=session.user_id,
            username=session.user.username,
            actor=audit.SYSTEM_ACTOR,
            ip_address=client.ip_address,
            session=session.public_id,
        )
    raise Unauthorized(
        "Invalid token: this refresh token was already used, so the session was ended "
        "to protect the account: sign in again"
    )


def _revoke(session: DeviceSession, reason: str) -> None:
    DeviceSession.update(revoked_at=utc_now(), revoked_reason=reason).where(
        (DeviceSession.id == session.id) & DeviceSession.revoked_at.is_null()
    ).execute()


@dataclass(frozen=True)
class SessionInfo:
    id: str
    method: str
    device_name: str | None
    user_agent: str | None
    ip_address: str | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    revoked_reason: str | None
    current: bool

    @property
    def live(self) -> bool:
        return self.revoked_at is None and self.expires_at > utc_now()


def list_sessions(
    user_id: int, current_session_id: str | None = None, include_ended: bool = False
) -> list[SessionInfo]:
    """The user's sessions, most recently used first (only live ones unless asked)."""
    query = DeviceSession.select().where(DeviceSession.user == user_id)
    if not include_ended:
        query = query.where(
            DeviceSession.revoked_at.is_null() & (DeviceSession.expires_at > utc_now())
        )
    return [
        SessionInfo(
            session.public_id,
            session.method,
            session.device_name,
            session.user_agent,
            session.ip_address,
            session.created_at,
            session.last_seen_at,
            session.expires_at,
            session.revoked_at,
            session.revoked_reason,
            session.public_id == current_session_id,
        )
        for session in query.order_by(DeviceSession.last_seen_at.desc(), DeviceSession.id.desc())
    ]


def revoke(
    user: User,
    session_id: object,
    client: Client,
    actor: str = audit.USER_ACTOR,
) -> None:
    """Revoke one live session of the user's. Raises NotFound (also for anyone else's)."""
    if not isinstance(session_id, str) or not session_id or "\x00" in session_id:
        raise NotFound(SESSION_NOT_FOUND)
    with database_proxy.atomic():
        session = DeviceSession.get_or_none(
            (DeviceSession.public_id == session_id)
            & (DeviceSession.user == user.id)
            & DeviceSession.revoked_at.is_null()
        )
        if session is None:
            raise NotFound(SESSION_NOT_FOUND)
        _revoke(session, f"revoked by {actor}")
        audit.record(
            audit.SESSION_REVOKED,
            user=user,
            actor=actor,
            ip_address=client.ip_address,
            session=session.public_id,
        )


def revoke_all(
    user: User,
    client: Client,
    keep_session_id: str | None = None,
    actor: str = audit.USER_ACTOR,
    reason: str | None = None,
) -> int:
    """Revoke every live session of the user's but `keep_session_id`; returns how many."""
    with database_proxy.atomic():
        count = _revoke_all(user.id, keep_session_id, reason or f"revoked by {actor}")
        audit.record(
            audit.SESSIONS_REVOKED,
            user=user,
            actor=actor,
            ip_address=client.ip_address,
            count=count,
            kept=keep_session_id,
        )
    return count


def _revoke_all(user_id: int, keep_session_id: str | None, reason: str) -> int:
    query = DeviceSession.update(revoked_at=utc_now(), revoked_reason=reason).where(
        (DeviceSession.user == user_id) & DeviceSession.revoked_at.is_null()
    )
    if keep_session_id is not None:
        query = query.where(DeviceSession.public_id != keep_session_id)
    return int(query.execute())


def purge_ended(before: datetime) -> int:
    """Forget sessions that ended (revoked or expired) before a moment, with their refresh
    tokens; the audit log keeps their story. Returns how many went."""
    ended = DeviceSession.select(DeviceSession.id).where(
        (DeviceSession.revoked_at < before) | (DeviceSession.expires_at < before)
    )
    with database_proxy.atomic():
        RefreshToken.delete().where(RefreshToken.session.in_(ended)).execute()
        return int(
            DeviceSession.delete()
            .where((DeviceSession.revoked_at < before) | (DeviceSession.expires_at < before))
            .execute()
        )
