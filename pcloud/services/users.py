"""Accounts: registration, password sign-in, and the admin's user management."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import peewee
from werkzeug.security import check_password_hash, generate_password_hash

from pcloud.config import Settings
from pcloud.db import PreparedQuery
from pcloud.errors import BadRequest, Conflict, NotFound, Unauthorized
from pcloud.models import RefreshToken, StoredFile, TusUpload, User, database_proxy, utc_now
from pcloud.storage import BlobStore

MAX_USERNAME_LENGTH = 150
MAX_EMAIL_LENGTH = 254
MAX_PASSWORD_BYTES = 4096  # refused above, never truncated
USERNAME_FORBIDDEN = re.compile(r"[\x00-\x20\x7f-\x9f@/\\]")
EMAIL_SHAPE = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+")
INVALID_CREDENTIALS = "Invalid credentials"
# Checked against when no account matches, so a miss costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("pcloud-dummy-password", method="scrypt")


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


def validate_password(password: object) -> str:
    if not isinstance(password, str) or password == "":
        raise BadRequest("'password' must be a non-empty string")
    if len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES:
        raise BadRequest(f"'password' is longer than {MAX_PASSWORD_BYTES} bytes")
    return password


def hash_password(settings: Settings, password: str) -> str:
    return generate_password_hash(password, method=settings.password_hash)


def create_user(
    settings: Settings,
    username: object,
    email: object,
    password: object | None,
    google_sub: str | None = None,
) -> User:
    """Create an account. Raises BadRequest for bad fields, Conflict for a taken name or email."""
    username = validate_username(username)
    email = normalize_email(email)
    password_hash = None
    if password is not None or google_sub is None:
        password_hash = hash_password(settings, validate_password(password))
    _refuse_taken(username, email)
    try:
        with database_proxy.atomic():
            return User.create(
                username=username, email=email, password_hash=password_hash, google_sub=google_sub
            )
    except peewee.IntegrityError:
        _refuse_taken(username, email)  # lost a race: say which one
        raise Conflict("Username or email already exists") from None


def _refuse_taken(username: str, email: str) -> None:
    if User.select().where(User.username == username).exists():
        raise Conflict("Username already exists")
    if User.select().where(User.email == email).exists():
        raise Conflict("Email already registered")


def authenticate(login_identifier: object, password: object) -> User:
    """The user whose username or email and password these are. Raises Unauthorized."""
    if not isinstance(login_identifier, str) or not isinstance(password, str):
        raise BadRequest("'login_identifier' and 'password' must be strings")
    if len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES:
        raise Unauthorized(INVALID_CREDENTIALS)
    user = (
        User.select()
        .where(
            (User.username == login_identifier) | (User.email == login_identifier.strip().lower())
        )
        .first()
    )
    if user is None or user.password_hash is None:
        check_password_hash(_DUMMY_HASH, password)
        raise Unauthorized(INVALID_CREDENTIALS)
    if not check_password_hash(user.password_hash, password):
        raise Unauthorized(INVALID_CREDENTIALS)
    return user


def get_user(user_id: int) -> User | None:
    return User.get_or_none(User.id == user_id)


def find_user(username_or_email: str) -> User:
    """The user named so (username, or email). Raises NotFound."""
    user = (
        User.select()
        .where(
            (User.username == username_or_email) | (User.email == username_or_email.strip().lower())
        )
        .first()
    )
    if user is None:
        raise NotFound(f"No user {username_or_email!r}")
    return user


def set_password(settings: Settings, username: str, password: object) -> User:
    """Set a new password; every refresh token of the user stops working."""
    user = find_user(username)
    password_hash = hash_password(settings, validate_password(password))
    with database_proxy.atomic():
        User.update(password_hash=password_hash).where(User.id == user.id).execute()
        (
            RefreshToken.update(revoked_at=utc_now())
            .where((RefreshToken.user == user.id) & RefreshToken.revoked_at.is_null())
            .execute()
        )
    return user


def delete_user(blobs: BlobStore, username: str) -> tuple[User, int]:
    """Delete an account with its files; returns the user and how many files went."""
    user = find_user(username)
    with database_proxy.atomic():
        blob_keys = [
            key
            for (key,) in StoredFile.select(StoredFile.blob_key)
            .where(StoredFile.owner == user.id)
            .tuples()
        ]
        upload_ids = [
            upload_id
            for (upload_id,) in TusUpload.select(TusUpload.id)
            .where(TusUpload.owner == user.id)
            .tuples()
        ]
        StoredFile.delete().where(StoredFile.owner == user.id).execute()
        TusUpload.delete().where(TusUpload.owner == user.id).execute()
        RefreshToken.delete().where(RefreshToken.user == user.id).execute()
        User.delete().where(User.id == user.id).execute()
    # After the commit: a crash here leaves orphan blobs and resumable writes, which
    # `pcloud files gc` removes.
    for key in blob_keys:
        blobs.delete(key)
    for upload_id in upload_ids:
        blobs.delete_resumable(upload_id)
    return user, len(blob_keys)


@dataclass(frozen=True)
class UserUsage:
    id: int
    username: str
    email: str
    google_linked: bool
    file_count: int
    bytes_used: int
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
            int(user.file_count),
            int(user.bytes_used),
            user.created_at,
        )
        for user in query
    ]


_USER_EXISTS = PreparedQuery(lambda user_id: User.select(User.id).where(User.id == user_id), -7301)


def exists(user_id: int) -> bool:
    """Whether the account still exists (checked on every authenticated request)."""
    return _USER_EXISTS.execute(user_id).fetchone() is not None
