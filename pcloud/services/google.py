"""Signing in with a Google ID token.

The token's signature is checked against Google's published certificates
(pcloud.services.google_certificates keeps them).
"""

from __future__ import annotations

import re
from typing import Any

import peewee

from pcloud.config import Settings
from pcloud.db import rows
from pcloud.errors import BadRequest, Conflict, Forbidden, Unauthorized
from pcloud.models import User, database_proxy
from pcloud.services import tree, users
from pcloud.services.google_certificates import GoogleCertificates

# google.auth is imported where a token is checked: with requests it costs a tenth of a
# second, which every CLI command would pay at start.

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
CLOCK_SKEW_SECONDS = 10
NOT_ENABLED = (
    "Google sign-in is not enabled on this server (its admin has not set GOOGLE_CLIENT_ID)"
)


def verify_id_token(
    settings: Settings, certificates: GoogleCertificates, token: str
) -> dict[str, Any]:
    """The claims of a valid Google ID token for our client. Raises Unauthorized."""
    import google.auth.exceptions
    from google.auth import jwt as google_jwt

    try:
        header = google_jwt.decode_header(token)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError):
        raise Unauthorized("Invalid Google token: malformed") from None
    certs = certificates.for_key(header.get("kid"))
    try:
        claims: dict[str, Any] = google_jwt.decode(  # type: ignore[no-untyped-call]
            token,
            certs=certs,
            audience=settings.google_client_id,
            clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
        )
    except (ValueError, TypeError, google.auth.exceptions.GoogleAuthError) as error:
        reason = "expired" if "expired" in str(error).lower() else "not valid for this server"
        raise Unauthorized(f"Invalid Google token: {reason}") from None
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise Unauthorized("Invalid Google token: wrong issuer")
    if not claims.get("sub"):
        raise Unauthorized("Invalid Google token: no subject")
    return claims


def username_base(email: str) -> str:
    """'John.Doe_99@gmail.com' -> 'johndoe99', the contract's rule for new accounts."""
    local = email.split("@", 1)[0].lower().replace(".", "").replace("_", "")
    local = re.sub(r"[\x00-\x20\x7f-\x9f@/\\]", "", local)
    return local[:140] or "user"


def sign_in(settings: Settings, certificates: GoogleCertificates, token: object) -> User:
    """The user a Google ID token belongs to, creating the account on first sign-in (if
    registration allows). The request is checked first (400), then whether Google sign-in
    is on at all (403)."""
    if token in (None, ""):
        raise BadRequest("Missing field: google_token")
    if not isinstance(token, str):
        raise BadRequest("'google_token' must be a string")
    if not settings.google_enabled:
        raise Forbidden(NOT_ENABLED)
    claims = verify_id_token(settings, certificates, token)
    google_sub = str(claims["sub"])
    user = User.get_or_none(User.google_sub == google_sub)
    if user is not None:
        return user
    email = claims.get("email")
    if not isinstance(email, str) or claims.get("email_verified") not in (True, "true"):
        raise Unauthorized("Invalid Google token: the account has no verified email")
    email = email.strip().lower()
    existing = User.get_or_none(User.email == email)
    if existing is not None:
        if existing.google_sub is None and existing.password_hash is None:
            with database_proxy.atomic():
                existing.google_sub = google_sub
                existing.save()
            return existing
        raise Conflict(
            "account_exists_with_password",
            message="An account with this email already exists. Sign in with your "
            "password; Google sign-in is not linked to it.",
        )
    users.check_registration(settings, email)
    return _create_google_user(email, google_sub)


def _create_google_user(email: str, google_sub: str) -> User:
    base = username_base(email)
    taken = {
        name for (name,) in rows(User.select(User.username).where(User.username.startswith(base)))
    }
    for _attempt in range(100):
        number = 0
        candidate = base
        while candidate in taken:
            number += 1
            candidate = f"{base}{number}"
        try:
            with database_proxy.atomic():
                user = User.create(username=candidate, email=email, google_sub=google_sub)
                tree.make_root(user.id)
                return user
        except peewee.IntegrityError:
            existing = User.get_or_none(User.google_sub == google_sub)
            if existing is not None:  # the same person signed in twice at once
                return existing
            taken.add(candidate)
    raise Conflict("Could not find a free username; try again")
