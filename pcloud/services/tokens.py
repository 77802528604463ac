"""Access and refresh tokens: signing and checking the JWTs themselves.

Both are JWTs signed with SECRET_KEY (HS256, and only HS256 is accepted). A `typ` claim
keeps them apart: a refresh token is never accepted as an access token, nor the reverse.
Both name the device session they belong to (`sid`); pcloud.services.sessions decides
whether that session still lets them in. Refresh tokens also carry a `jti` that is
recorded in the database, so that each one can be revoked or rotated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pcloud.config import Settings
from pcloud.errors import Unauthorized

ALGORITHM = "HS256"
ACCESS = "access"
REFRESH = "refresh"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    session_id: str


def _encode(settings: Settings, claims: dict[str, Any]) -> str:
    import jwt  # here: PyJWT and cryptography are 40 ms of every CLI command's start

    return jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM)


def decode(settings: Settings, token: object, expected_type: str) -> dict[str, Any]:
    """The claims of a genuine, unexpired token of that type. Raises Unauthorized."""
    import jwt

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
    if expected_type == ACCESS and not isinstance(claims.get("sid"), str):
        # Issued before device sessions existed. Refresh tokens of then still work (the
        # upgrade gave each its session) and give the client a new access token.
        raise Unauthorized("Invalid token: refresh it or sign in again")
    return claims


def issue_access_token(settings: Settings, user_id: int, session_id: str, now: datetime) -> str:
    return _encode(
        settings,
        {
            "sub": str(user_id),
            "sid": session_id,
            "typ": ACCESS,
            "iat": now,
            "exp": now + timedelta(seconds=settings.access_token_lifetime),
        },
    )


def issue_refresh_token(
    settings: Settings,
    user_id: int,
    session_id: str,
    token_id: str,
    now: datetime,
    expires_at: datetime,
) -> str:
    return _encode(
        settings,
        {
            "sub": str(user_id),
            "sid": session_id,
            "typ": REFRESH,
            "jti": token_id,
            "iat": now,
            "exp": expires_at,
        },
    )


class AccessTokenCache:
    """Remembers which access tokens were already verified, until each one expires.

    Checking a signature and parsing claims costs more than the rest of a small request;
    a phone sends the same token for an hour. A cached token is still refused once it
    expires, and its session is still checked on every request.
    """

    def __init__(self, settings: Settings, max_entries: int = 4096) -> None:
        self._settings = settings
        self._max_entries = max_entries
        self._claims_and_expiry: dict[str, tuple[AccessClaims, float]] = {}

    def claims(self, token: object) -> AccessClaims:
        """Who an access token speaks for, and in which session. Raises Unauthorized."""
        if isinstance(token, str):
            cached = self._claims_and_expiry.get(token)
            if cached is not None and cached[1] > time.time():
                return cached[0]
        claims = decode(self._settings, token, ACCESS)
        try:
            access = AccessClaims(int(claims["sub"]), claims["sid"])
        except (TypeError, ValueError):
            raise Unauthorized("Invalid token") from None
        if len(self._claims_and_expiry) >= self._max_entries:
            self._claims_and_expiry.clear()  # rare; simpler and as fast as LRU bookkeeping
        self._claims_and_expiry[token] = (access, float(claims["exp"]))  # type: ignore[index]
        return access
