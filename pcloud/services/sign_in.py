"""Signing a device in, with a password or a Google ID token.

Each way ends in a new device session (pcloud.services.sessions). Password sign-ins are
throttled (pcloud.services.throttle) before the password is even checked, and every
sign-in, failure and refusal is written to the audit log.
"""

from __future__ import annotations

from pcloud.config import Settings
from pcloud.errors import BadRequest, Forbidden, TooManyRequests, Unauthorized
from pcloud.models import User, database_proxy
from pcloud.services import audit, google, sessions, throttle, users
from pcloud.services.google_certificates import GoogleCertificates
from pcloud.services.sessions import Client
from pcloud.services.tokens import TokenPair

INVALID_CREDENTIALS = "Invalid credentials"
ACCOUNT_DISABLED = "This account is disabled: ask the server's admin"


def with_password(
    settings: Settings, login_identifier: object, password: object, client: Client
) -> TokenPair:
    """Sign in with a username or email and a password.

    Raises TooManyRequests while throttled, Unauthorized for wrong credentials (the same
    answer whether or not the account exists), Forbidden for a disabled account.
    """
    if not isinstance(login_identifier, str) or not isinstance(password, str):
        raise BadRequest("'login_identifier' and 'password' must be strings")
    user = users.find_by_login(login_identifier)
    keys = throttle.keys_for(throttle.account_key(user, login_identifier), client.ip_address)
    try:
        throttle.check(keys)
    except TooManyRequests:
        audit.notify(audit.SIGN_IN_THROTTLED)
        raise
    if not users.password_matches(user, password, settings.password_hash):
        with database_proxy.atomic():
            throttle.record_failure(keys)
            audit.record(
                audit.SIGN_IN_FAILED,
                user_id=user.id if user else None,
                username=user.username if user else login_identifier[:150],
                ip_address=client.ip_address,
                method="password",
                reason="wrong password" if user else "no such account",
            )
        raise Unauthorized(INVALID_CREDENTIALS)
    throttle.clear_account(keys)
    assert user is not None  # (checked with the password above)
    return _start(settings, user, "password", client)


def with_google(
    settings: Settings, certificates: GoogleCertificates, google_token: object, client: Client
) -> TokenPair:
    """Sign in (creating the account on first use) with a Google ID token."""
    try:
        user = google.sign_in(settings, certificates, google_token)
    except Unauthorized as refusal:
        with database_proxy.atomic():
            audit.record(
                audit.SIGN_IN_FAILED,
                ip_address=client.ip_address,
                method="google",
                reason=refusal.message,
            )
        raise
    return _start(settings, user, "google", client)


def _start(settings: Settings, user: User, method: str, client: Client) -> TokenPair:
    if user.disabled_at is not None:
        with database_proxy.atomic():
            audit.record(
                audit.SIGN_IN_FAILED,
                user=user,
                ip_address=client.ip_address,
                method=method,
                reason="account disabled",
            )
        raise Forbidden(ACCOUNT_DISABLED)
    return sessions.start(settings, user, method, client)
