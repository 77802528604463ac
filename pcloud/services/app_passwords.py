"""App passwords: per-device secrets for clients that can only send a user name and a
password (HTTP Basic: WebDAV file managers, rclone, davfs2, backup tools).

Each app password is a device session (method "app-password"), so it is listed with the
other sessions and revoked the same way, taking effect on the next request. The secret
is shown once, when it is made; only its SHA-256 is kept. A fast hash is enough for a
random 125-bit secret (nobody can try 2^125 guesses against a stolen hash), and it lets
every request find its app password with one indexed lookup, without the seconds of
scrypt an account password costs (those are cached instead, pcloud.services.basic_sign_in).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from pcloud.errors import BadRequest
from pcloud.models import AppPassword, DeviceSession, User, database_proxy, utc_now
from pcloud.services import audit, sessions
from pcloud.services.sessions import Client

METHOD = "app-password"
# Letters and digits that cannot be mistaken for each other when typed from a screen.
ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
GROUPS, GROUP_LENGTH = 5, 5  # 25 characters of 32 kinds: 125 bits
LIFETIME = timedelta(days=365 * 100)  # until revoked
APP_PASSWORD_CREATED = "app-password-created"


@dataclass(frozen=True)
class NewAppPassword:
    session_id: str  # the device session's public id (DELETE /sessions/<id> revokes it)
    device_name: str
    password: str  # shown this once, never again


def secret_sha256(password: str) -> str:
    return hashlib.sha256(password.encode("utf-8", "surrogatepass")).hexdigest()


def _new_secret() -> str:
    groups = ("".join(secrets.choice(ALPHABET) for _ in range(GROUP_LENGTH)) for _ in range(GROUPS))
    return "-".join(groups)


def create(
    user: User, device_name: object, client: Client, actor: str = audit.USER_ACTOR
) -> NewAppPassword:
    """A new app password for the user's device `device_name` (required), as a new
    device session. Raises BadRequest for a missing or malformed name."""
    name = sessions.validate_device_name(device_name)
    if name is None:
        raise BadRequest("'device_name' is required: name the device this password is for")
    secret = _new_secret()
    now = utc_now()
    with database_proxy.atomic():
        session = DeviceSession.create(
            public_id=secrets.token_urlsafe(12),
            user=user.id,
            method=METHOD,
            device_name=name,
            user_agent=None,
            ip_address=client.ip_address,
            created_at=now,
            last_seen_at=now,
            expires_at=now + LIFETIME,
        )
        AppPassword.create(session=session.id, secret_sha256=secret_sha256(secret), created_at=now)
        audit.record(
            APP_PASSWORD_CREATED,
            user=user,
            actor=actor,
            ip_address=client.ip_address,
            session=session.public_id,
            device=name,
        )
    return NewAppPassword(session.public_id, name, secret)
