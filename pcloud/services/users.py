"""Accounts: registration, password sign-in, and the admin's user management."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime

import peewee

from pcloud.config import Settings, email_matches
from pcloud.db import rows
from pcloud.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from pcloud.models import (
    Change,
    DeletedContent,
    DeviceSession,
    FeedHorizon,
    Folder,
    RefreshToken,
    StoredFile,
    TusUpload,
    User,
    database_proxy,
    utc_now,
)
from pcloud.services import audit, content, sessions, throttle, tree, versions
from pcloud.services.passwords import check_password_hash, generate_password_hash
from pcloud.services.sessions import Client
from pcloud.storage import BlobStore

MAX_USERNAME_LENGTH = 150
MAX_EMAIL_LENGTH = 254
MAX_PASSWORD_BYTES = 4096  # refused above, never truncated
USERNAME_FORBIDDEN = re.compile(r"[\x00-\x20\x7f-\x9f@/\\]")
EMAIL_SHAPE = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+")
REGISTRATION_CLOSED = "Registration is closed on this server: ask its admin for an account"
EMAIL_NOT_ALLOWED = "This server does not take registrations from this email address"


@functools.cache
def dummy_password_hash(method: str) -> str:
    """Checked against when no account matches, so a miss costs as long as a wrong
    password: hashed the way new passwords are (PASSWORD_HASH), since a cheaper or
    dearer one would tell by its time which names have accounts. Made on first need (a
    served worker makes it at start): scrypt costs a tenth of a second, which every CLI
    command would otherwise pay at import."""
    return generate_password_hash("pcloud-dummy-password", method=method)


def validate_username(username: object) -> str:
    if not isinstance(username, str) or not username.strip():
        raise BadRequest("'username' must be a non-empty string")
    if len(username) > MAX_USERNAME_LENGTH:
        raise BadRequest(f"'username' is longer than {MAX_USERNAME_LENGTH} characters")
    if USERNAME_FORBIDDEN.search(username):
        raise BadRequest("'username' may not contain spaces, '@', '/', '\\' or control characters")
    return username


def normalize_email(email: object) -> str:
    if not isinstance(email, str) or not email.strip():
        raise BadRequest("'email' must be a non-empty string")
    email = email.strip().lower()
    if len(email) > MAX_EMAIL_LENGTH or not EMAIL_SHAPE.fullmatch(email):
        raise BadRequest("'email' is not an email address")
    return email


def validate_password(
    settings: Settings,
    password: object,
    username: str,
    email: str,
    field_name: str = "password",
) -> str:
    """The password, if it meets the policy: at least PASSWORD_MIN_LENGTH characters, at
    most MAX_PASSWORD_BYTES, and neither the account's username nor its email. Raises
    BadRequest naming the field."""
    if not isinstance(password, str) or password == "":
        raise BadRequest(f"'{field_name}' must be a non-empty string")
    if len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES:
        raise BadRequest(f"'{field_name}' is longer than {MAX_PASSWORD_BYTES} bytes")
    if len(password) < settings.password_min_length:
        raise BadRequest(
            f"'{field_name}' is too short: use at least {settings.password_min_length} characters"
        )
    if password.strip().lower() in (username.lower(), email.lower()):
        raise BadRequest(f"'{field_name}' may not be the username or the email address")
    return password


def check_registration(settings: Settings, email: str) -> None:
    """Whether someone may make an account for themselves (POST /register, a first Google
    sign-in) with this email: REGISTRATION and REGISTRATION_EMAILS. Raises Forbidden.
    The admin's `pcloud users create` is not asked."""
    if not settings.registration_open:
        raise Forbidden(REGISTRATION_CLOSED)
    if settings.registration_emails and not email_matches(email, settings.registration_emails):
        raise Forbidden(EMAIL_NOT_ALLOWED)


def register(
    settings: Settings, username: object, email: object, password: object, client: Client
) -> User:
    """Someone makes an account for themselves: the registration policy, then create_user."""
    username = validate_username(username)
    email = normalize_email(email)
    check_registration(settings, email)
    return create_user(settings, username, email, password, client=client)


def hash_password(settings: Settings, password: str) -> str:
    return generate_password_hash(password, method=settings.password_hash)


def create_user(
    settings: Settings,
    username: object,
    email: object,
    password: object | None,
    google_sub: str | None = None,
    client: Client | None = None,
    actor: str = audit.USER_ACTOR,
) -> User:
    """Create an account. Raises BadRequest for bad fields, Conflict for a taken name or email."""
    username = validate_username(username)
    email = normalize_email(email)
    password_hash = None
    if password is not None or google_sub is None:
        password_hash = hash_password(
            settings, validate_password(settings, password, username, email)
        )
    _refuse_taken(username, email)
    try:
        with database_proxy.atomic():
            user = User.create(
                username=username, email=email, password_hash=password_hash, google_sub=google_sub
            )
            tree.make_root(user.id)
            audit.record(
                audit.USER_CREATED,
                user=user,
                actor=actor,
                ip_address=client.ip_address if client else None,
                google=google_sub is not None,
            )
            return user
    except peewee.IntegrityError:
        _refuse_taken(username, email)  # lost a race: say which one
        raise Conflict("Username or email already exists") from None


def _refuse_taken(username: str, email: str) -> None:
    if User.select().where(User.username == username).exists():
        raise Conflict("Username already exists")
    if User.select().where(User.email == email).exists():
        raise Conflict("Email already registered")


def find_by_login(login_identifier: str) -> User | None:
    """The account whose username, or email, this is."""
    found: User | None = (
        User.select()
        .where(
            (User.username == login_identifier) | (User.email == login_identifier.strip().lower())
        )
        .first()
    )
    return found


def password_matches(user: User | None, password: str, method: str) -> bool:
    """Whether this is the user's password. Costs the same when there is no such user,
    or no password, as for an account whose hash is of `method` (the settings'
    PASSWORD_HASH), so that the time taken tells nothing."""
    if len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES:
        return False
    if user is None or user.password_hash is None:
        check_password_hash(dummy_password_hash(method), password)
        return False
    return check_password_hash(user.password_hash, password)


def get_user(user_id: int) -> User | None:
    return User.get_or_none(User.id == user_id)


def find_user(username_or_email: str) -> User:
    """The user named so (username, or email). Raises NotFound."""
    user = find_by_login(username_or_email)
    if user is None:
        raise NotFound(f"No user {username_or_email!r}")
    return user


def set_password(settings: Settings, username: str, password: object) -> User:
    """The admin sets a new password: every session of the user ends."""
    user = find_user(username)
    password_hash = hash_password(
        settings, validate_password(settings, password, user.username, user.email)
    )
    with database_proxy.atomic():
        User.update(password_hash=password_hash).where(User.id == user.id).execute()
        sessions.revoke_all(
            user, sessions.ADMIN, actor=audit.ADMIN_ACTOR, reason="password changed by admin"
        )
        audit.record(audit.PASSWORD_CHANGED, user=user, actor=audit.ADMIN_ACTOR)
    return user


def change_own_password(
    settings: Settings,
    user_id: int,
    current_session_id: str,
    old_password: object,
    new_password: object,
    client: Client,
) -> int:
    """A signed-in user changes their password, proving they know the old one. Every
    other session ends; this one goes on. Returns how many sessions ended.

    Wrong old passwords count as failed sign-ins (a stolen access token must not become
    a way to guess the password)."""
    if not isinstance(old_password, str):
        raise BadRequest("'old_password' must be a string")
    user = get_user(user_id)
    if user is None:
        raise Unauthorized("User no longer exists")
    if user.password_hash is None:
        raise BadRequest("This account signs in with Google and has no password to change")
    new_password = validate_password(
        settings, new_password, user.username, user.email, field_name="new_password"
    )
    keys = throttle.keys_for(throttle.account_key(user, user.username), client.ip_address)
    throttle.check(keys)
    if not password_matches(user, old_password, settings.password_hash):
        with database_proxy.atomic():
            throttle.record_failure(keys)
            audit.record(audit.PASSWORD_CHANGE_FAILED, user=user, ip_address=client.ip_address)
        raise Unauthorized("The old password is wrong")
    password_hash = hash_password(settings, new_password)
    with database_proxy.atomic():
        User.update(password_hash=password_hash).where(User.id == user.id).execute()
        ended = sessions.revoke_all(
            user, client, keep_session_id=current_session_id, reason="password changed"
        )
        audit.record(audit.PASSWORD_CHANGED, user=user, ip_address=client.ip_address)
    throttle.clear_account(keys)
    return ended


def set_disabled(username: str, disabled: bool) -> tuple[User, bool]:
    """Disable an account (no sign-in, every token refused at once) or enable it again;
    returns the user and whether anything changed.

    Disabling also ends every session, so enabling the account brings none of them back.
    An account already so is left alone, and nothing is written to the audit log."""
    user = find_user(username)
    if (user.disabled_at is not None) == disabled:
        return user, False
    with database_proxy.atomic():
        User.update(disabled_at=utc_now() if disabled else None).where(User.id == user.id).execute()
        if disabled:
            sessions.revoke_all(
                user, sessions.ADMIN, actor=audit.ADMIN_ACTOR, reason="account disabled"
            )
        audit.record(
            audit.USER_DISABLED if disabled else audit.USER_ENABLED,
            user=user,
            actor=audit.ADMIN_ACTOR,
        )
    return User.get_by_id(user.id), True


def delete_user(blobs: BlobStore, username: str) -> tuple[User, int]:
    """Delete an account with its files; returns the user and how many files went."""
    user = find_user(username)
    with database_proxy.atomic():
        contents = [
            sha256
            for (sha256,) in rows(
                StoredFile.select(StoredFile.sha256).where(StoredFile.owner == user.id)
            )
        ]
        upload_ids = [
            upload_id
            for (upload_id,) in rows(
                TusUpload.select(TusUpload.id).where(TusUpload.owner == user.id)
            )
        ]
        file_ids = StoredFile.select(StoredFile.id).where(StoredFile.owner == user.id)
        contents.extend(versions.forget_of_files(file_id for (file_id,) in rows(file_ids)))
        StoredFile.delete().where(StoredFile.owner == user.id).execute()
        blob_keys = content.release(contents)
        Folder.update(parent=None).where(Folder.owner == user.id).execute()
        for owned in (Folder, Change, DeletedContent, FeedHorizon, TusUpload):
            owned.delete().where(owned.owner == user.id).execute()
        for model in (RefreshToken, DeviceSession):
            model.delete().where(model.user == user.id).execute()
        User.delete().where(User.id == user.id).execute()
        audit.record(audit.USER_DELETED, user=user, actor=audit.ADMIN_ACTOR, files=len(contents))
    # After the commit: a crash here leaves orphan blobs and resumable writes, which
    # `pcloud files gc` removes.
    for key in blob_keys:
        blobs.delete(key)
    for upload_id in upload_ids:
        blobs.delete_resumable(upload_id)
    return user, len(contents)


@dataclass(frozen=True)
class UserUsage:
    id: int
    username: str
    email: str
    google_linked: bool
    disabled: bool
    file_count: int
    bytes_used: int
    quota_bytes: int | None
    created_at: datetime


def list_users() -> list[UserUsage]:
    """Every user with how many files they keep and how many bytes those take."""
    file_count = peewee.fn.COUNT(StoredFile.id)
    bytes_used = peewee.fn.COALESCE(peewee.fn.SUM(StoredFile.size), 0)
    query = (
        User.select(User, file_count.alias("file_count"), bytes_used.alias("bytes_used"))
        .join(StoredFile, peewee.JOIN.LEFT_OUTER, on=(StoredFile.owner == User.id))
        .group_by(User)
        .order_by(User.id)
    )
    return [
        UserUsage(
            user.id,
            user.username,
            user.email,
            user.google_sub is not None,
            user.disabled_at is not None,
            int(user.file_count),  # type: ignore[attr-defined]  # (selected aggregates)
            int(user.bytes_used),  # type: ignore[attr-defined]
            user.quota_bytes,
            user.created_at,
        )
        for user in query
    ]
