"""Access and refresh tokens.

Both are JWTs signed with SECRET_KEY (HS256, and only HS256 is accepted). A `typ` claim
keeps them apart: a refresh token is never accepted as an access token, nor the reverse.
Access tokens are checked by signature and expiry (and remembered once checked, see
AccessTokenCache); refresh tokens are also recorded, so that one can be revoked.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import jwt

from pcloud.config import Settings
from pcloud.errors import Unauthorized
from pcloud.models import RefreshToken, User, database_proxy, utc_now

ALGORITHM = "HS256"
ACCESS = "access"
REFRESH = "refresh"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str


def _encode(settings: Settings, claims: dict) -> str:
    return jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM)


def _decode(settings: Settings, token: object, expected_type: str) -> dict:
    if not isinstance(token, str) or not token:
        raise Unauthorized("Invalid token")
    try:
        claims = jwt.decode(
            token,
            settings.secret_key,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "iat", "sub", "typ"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("Token has expired") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("Invalid token") from None
    if claims.get("typ") != expected_type:
        raise Unauthorized(
            f"Invalid token: not an {expected_type} token"
            if expected_type == ACCESS
            else f"Invalid token: not a {expected_type} token"
        )
    return claims


def issue_access_token(settings: Settings, user_id: int, now: datetime | None = None) -> str:
    now = now or utc_now()
    return _encode(
        settings,
        {
            "sub": str(user_id),
            "typ": ACCESS,
            "iat": now,
            "exp": now + timedelta(seconds=settings.access_token_lifetime),
        },
    )


def issue_pair(settings: Settings, user: User) -> TokenPair:
    """Sign a user in: a new recorded refresh token and an access token."""
    now = utc_now()
    expires_at = now + timedelta(seconds=settings.refresh_token_lifetime)
    token_id = secrets.token_hex(16)
    with database_proxy.atomic():
        RefreshToken.create(token_id=token_id, user=user.id, created_at=now, expires_at=expires_at)
    refresh_token = _encode(
        settings,
        {
            "sub": str(user.id),
            "typ": REFRESH,
            "jti": token_id,
            "iat": now,
            "exp": expires_at,
        },
    )
    return TokenPair(issue_access_token(settings, user.id, now), refresh_token)


class AccessTokenCache:
    """Remembers which access tokens were already verified, until each one expires.

    Checking a signature and parsing claims costs more than the rest of a small request;
    a phone sends the same token for an hour. A cached token is still refused once it
    expires, and the account is still looked up on every request.
    """

    def __init__(self, settings: Settings, max_entries: int = 4096) -> None:
        self._settings = settings
        self._max_entries = max_entries
        self._user_and_expiry: dict[str, tuple[int, float]] = {}

    def user_id(self, token: object) -> int:
        """The user an access token speaks for. Raises Unauthorized."""
        if isinstance(token, str):
            cached = self._user_and_expiry.get(token)
            if cached is not None and cached[1] > time.time():
                return cached[0]
        claims = _decode(self._settings, token, ACCESS)
        try:
            user_id = int(claims["sub"])
        except (TypeError, ValueError):
            raise Unauthorized("Invalid token") from None
        if len(self._user_and_expiry) >= self._max_entries:
            self._user_and_expiry.clear()  # rare; simpler and as fast as LRU bookkeeping
        self._user_and_expiry[token] = (user_id, float(claims["exp"]))  # type: ignore[index]
        return user_id


def _live_refresh_record(settings: Settings, refresh_token: object) -> RefreshToken:
    claims = _decode(settings, refresh_token, REFRESH)
    record = RefreshToken.select().where(RefreshToken.token_id == str(claims.get("jti"))).first()
    if record is None or str(record.user_id) != claims["sub"]:
        raise Unauthorized("Invalid token: unknown refresh token")
    if record.revoked_at is not None:
        raise Unauthorized("Invalid token: this refresh token was revoked")
    if record.expires_at <= utc_now():
        raise Unauthorized("Token has expired")
    return record


def refresh_access_token(settings: Settings, refresh_token: object) -> str:
    """A new access token for a live refresh token. Raises Unauthorized."""
    record = _live_refresh_record(settings, refresh_token)
    if not User.select().where(User.id == record.user_id).exists():
        raise Unauthorized("User no longer exists")
    return issue_access_token(settings, record.user_id)


def revoke_refresh_token(settings: Settings, refresh_token: object) -> None:
    """Sign out one device: its refresh token stops working. Raises Unauthorized."""
    record = _live_refresh_record(settings, refresh_token)
    with database_proxy.atomic():
        (
            RefreshToken.update(revoked_at=datetime.now(timezone.utc))
            .where(RefreshToken.id == record.id)
            .execute()
        )
