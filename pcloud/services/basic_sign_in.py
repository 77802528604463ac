"""Who an HTTP Basic user name and password speak for (the WebDAV endpoint).

Two kinds of password are accepted:

- an app password (pcloud.services.app_passwords): found by the SHA-256 of what was
  sent, with its device session, which must be live (revoking it stops it at once);
- the account password, as Nextcloud allows, through the same sign-in throttle as
  /login (429 with Retry-After while locked) and the same audit of failures.

A WebDAV client signs every request, and a file manager opening a folder sends dozens:
scrypt on each would cost seconds. So an account password that was verified is
remembered (its SHA-256 with the user name, never the password) with the hash it was
verified against, for CACHE_SECONDS; each request still reads the account, so a
password change, a disabled account or a deleted one takes effect at once.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import timedelta
from threading import Lock
from typing import Any

from peewee import JOIN

from pcloud.db import PreparedQuery
from pcloud.errors import TooManyRequests, Unauthorized
from pcloud.models import AppPassword, DeviceSession, Folder, User, database_proxy, micros, utc_now
from pcloud.services import audit, throttle, users
from pcloud.services.app_passwords import secret_sha256

INVALID_CREDENTIALS = "Invalid user name or password"
CACHE_SECONDS = 600
LAST_SEEN_STEP = timedelta(seconds=60)
MAX_FIELD_BYTES = 4096


@dataclass(frozen=True)
class BasicUser:
    """Who a request signed with HTTP Basic speaks for."""

    user_id: int
    username: str
    root_folder_id: int | None
    quota_bytes: int | None
    session_id: str | None  # the app password's device session; None: the account password


@dataclass(frozen=True)
class _Verified:
    user_id: int
    password_hash: str
    until: float


class PasswordCache:
    """Account passwords verified lately, by SHA-256 of (user name, password); and how
    new passwords are hashed (PASSWORD_HASH), which a check for no account costs."""

    def __init__(self, password_method: str, max_entries: int = 4096) -> None:
        self.password_method = password_method
        self._entries: dict[bytes, _Verified] = {}
        self._max_entries = max_entries
        self._lock = Lock()

    @staticmethod
    def key(login: str, password: str) -> bytes:
        text = f"{login}\x00{password}".encode("utf-8", "surrogatepass")
        return hashlib.sha256(text).digest()

    def get(self, key: bytes) -> _Verified | None:
        found = self._entries.get(key)
        if found is None or found.until < time.monotonic():
            return None
        return found

    def put(self, key: bytes, user_id: int, password_hash: str) -> None:
        with self._lock:
            if len(self._entries) >= self._max_entries:
                self._entries.clear()  # rare; as good as LRU bookkeeping here
            self._entries[key] = _Verified(user_id, password_hash, time.monotonic() + CACHE_SECONDS)


# Every Basic request asks: built once (see PreparedQuery).
_APP_PASSWORD = PreparedQuery(
    lambda digest: (
        AppPassword.select(
            AppPassword.secret_sha256,
            DeviceSession.id,
            DeviceSession.public_id,
            DeviceSession.revoked_at,
            DeviceSession.expires_at,
            DeviceSession.last_seen_at,
            User.id,
            User.username,
            User.email,
            User.disabled_at,
            User.quota_bytes,
            Folder.id,
        )
        .join(DeviceSession)
        .join(User)
        .join(Folder, JOIN.LEFT_OUTER, on=(Folder.root_of == User.id))
        .where(AppPassword.secret_sha256 == digest)
    ),
    "\x01digest",
)


def _app_password_row(digest: str) -> tuple[Any, ...] | None:
    row: tuple[Any, ...] | None = _APP_PASSWORD.execute(digest).fetchone()
    return row


def _names_user(login: str, username: str, email: str) -> bool:
    return login == username or login.strip().lower() == email


def sign_in(
    login: str, password: str, cache: PasswordCache, ip_address: str | None = None
) -> BasicUser:
    """Who these Basic credentials speak for. Raises Unauthorized, or TooManyRequests
    while the account (or this address) is throttled."""
    if (
        not login
        or len(login.encode("utf-8", "surrogatepass")) > MAX_FIELD_BYTES
        or len(password.encode("utf-8", "surrogatepass")) > MAX_FIELD_BYTES
        or "\x00" in login
    ):
        raise Unauthorized(INVALID_CREDENTIALS)
    digest = secret_sha256(password)
    row = _app_password_row(digest)
    if row is not None and hmac.compare_digest(row[0], digest):
        (_, session_pk, public_id, revoked_at, expires_at, last_seen, user_id, username, email,
         disabled_at, quota_bytes, root_id) = row  # fmt: skip
        if (
            _names_user(login, username, email)
            and revoked_at is None
            and expires_at > micros(utc_now())
            and disabled_at is None
        ):
            _seen(session_pk, last_seen, ip_address)
            return BasicUser(user_id, username, root_id, quota_bytes, public_id)
    return _with_account_password(login, password, cache, ip_address)


def signed_in_already(login: str, password: str, cache: PasswordCache) -> BasicUser | None:
    """Who these credentials speak for when that is cheap to know (an app password, or
    an account password in the cache): no scrypt, no write, no throttle. None when
    unknown or wrong; sign_in() decides then. (For checks before a body arrives.)"""
    digest = secret_sha256(password)
    row = _app_password_row(digest)
    if row is not None:
        (_, _pk, public_id, revoked_at, expires_at, _seen_at, user_id, username, email,
         disabled_at, quota_bytes, root_id) = row  # fmt: skip
        if (
            _names_user(login, username, email)
            and revoked_at is None
            and expires_at > micros(utc_now())
            and disabled_at is None
        ):
            return BasicUser(user_id, username, root_id, quota_bytes, public_id)
        return None
    verified = cache.get(cache.key(login, password))
    if verified is None:
        return None
    user = users.get_user(verified.user_id)
    if (
        user is None
        or user.disabled_at is not None
        or user.password_hash is None
        or not hmac.compare_digest(user.password_hash, verified.password_hash)
    ):
        return None
    return _basic_user(user)


def account_password_verdict(login: str, password: str, cache: PasswordCache) -> bool:
    """Whether this is the account's password, and the account may sign in now (not
    disabled, not throttled); remembered in the cache when it is. Records nothing (no
    throttle failure, no audit): a check ahead of sign_in(), which the request still
    makes and which counts what fails. For a PUT's body, which is stored only once it is
    known to be wanted. Runs scrypt: never in the server's event loop."""
    if (
        not login
        or "\x00" in login
        or len(login.encode("utf-8", "surrogatepass")) > MAX_FIELD_BYTES
    ):
        return False
    user = users.find_by_login(login)
    try:
        throttle.check(throttle.keys_for(throttle.account_key(user, login), None))
    except TooManyRequests:
        return False
    if (
        not users.password_matches(user, password, cache.password_method)
        or user is None
        or user.disabled_at is not None
    ):
        return False
    cache.put(cache.key(login, password), user.id, user.password_hash or "")
    return True


def _seen(session_pk: int, last_seen: int, ip_address: str | None) -> None:
    now = utc_now()
    if micros(now) - last_seen > LAST_SEEN_STEP.total_seconds() * 1_000_000:
        with database_proxy.atomic():
            DeviceSession.update(last_seen_at=now, ip_address=ip_address).where(
                DeviceSession.id == session_pk
            ).execute()


def _with_account_password(
    login: str, password: str, cache: PasswordCache, ip_address: str | None
) -> BasicUser:
    user = users.find_by_login(login)
    key = cache.key(login, password)
    verified = cache.get(key)
    if (
        verified is not None
        and user is not None
        and user.id == verified.user_id
        and user.password_hash is not None
        and hmac.compare_digest(user.password_hash, verified.password_hash)
        and user.disabled_at is None
    ):
        return _basic_user(user)
    keys = throttle.keys_for(throttle.account_key(user, login), ip_address)
    try:
        throttle.check(keys)
    except TooManyRequests:
        audit.notify(audit.SIGN_IN_THROTTLED)
        raise
    if not users.password_matches(user, password, cache.password_method) or user is None:
        with database_proxy.atomic():
            throttle.record_failure(keys)
            audit.record(
                audit.SIGN_IN_FAILED,
                user_id=user.id if user else None,
                username=user.username if user else login[:150],
                ip_address=ip_address,
                method="basic",
                reason="wrong password" if user else "no such account",
            )
        raise Unauthorized(INVALID_CREDENTIALS)
    if user.disabled_at is not None:
        raise Unauthorized("This account is disabled: ask the server's admin")
    throttle.clear_account(keys)
    cache.put(key, user.id, user.password_hash or "")
    return _basic_user(user)


def _basic_user(user: User) -> BasicUser:
    root_id = Folder.select(Folder.id).where(Folder.root_of == user.id).scalar()
    return BasicUser(user.id, user.username, root_id, user.quota_bytes, None)
