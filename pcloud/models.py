"""Peewee models: tables, columns and indexes. Behaviour lives in pcloud.services."""

from __future__ import annotations

from datetime import datetime, timezone

from peewee import (
    BigIntegerField,
    CharField,
    DatabaseProxy,
    ForeignKeyField,
    Model,
    TextField,
)

# Bound to the real database by pcloud.db.open_database().
database_proxy = DatabaseProxy()


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def micros(moment: datetime) -> int:
    """An aware datetime as whole microseconds since the epoch, as UtcDateTimeField stores it."""
    delta = moment - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


class UtcDateTimeField(BigIntegerField):
    """An aware UTC datetime, stored as whole microseconds since the epoch.

    An integer sorts and compares the same on every engine, and converts far faster than
    SQLite's text datetimes, which matters when a listing returns thousands of rows.
    """

    def db_value(self, value: datetime | int | None) -> int | None:
        if value is None or isinstance(value, int):  # an int is microseconds already
            return value
        if value.tzinfo is None:
            raise ValueError("UtcDateTimeField needs an aware datetime")
        return micros(value)

    def python_value(self, value: int | None) -> datetime | None:
        if value is None:
            return None
        return datetime.fromtimestamp(value / 1_000_000, timezone.utc)


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class BaseModel(Model):
    class Meta:
        database = database_proxy
        legacy_table_names = False


class User(BaseModel):
    username = CharField(max_length=150, unique=True)
    email = CharField(max_length=254, unique=True)  # stored lower-cased
    password_hash = CharField(max_length=255, null=True)  # None: Google-only account
    google_sub = CharField(max_length=255, null=True, unique=True)
    created_at = UtcDateTimeField(default=utc_now)


class StoredFile(BaseModel):
    """A name in a user's file list, pointing at the blob that holds its bytes."""

    owner = ForeignKeyField(User, backref="files", on_delete="CASCADE")
    name = CharField(max_length=255)  # NFC, as the person wrote it
    blob_key = CharField(max_length=64, unique=True)
    size = BigIntegerField()
    sha256 = CharField(max_length=64)
    created_at = UtcDateTimeField(default=utc_now)
    modified_at = UtcDateTimeField(default=utc_now)

    class Meta:
        indexes = ((("owner", "name"), True),)


class RefreshToken(BaseModel):
    """A refresh token that was issued; revoking it ends that sign-in."""

    token_id = CharField(max_length=64, unique=True)  # the token's `jti` claim
    user = ForeignKeyField(User, backref="refresh_tokens", on_delete="CASCADE")
    created_at = UtcDateTimeField(default=utc_now)
    expires_at = UtcDateTimeField()
    revoked_at = UtcDateTimeField(null=True)


class TusUpload(BaseModel):
    """A resumable (tus) upload: its bytes so far are the store's resumable write of this id."""

    id = CharField(max_length=64, primary_key=True)  # random and URL-safe: the upload URL
    owner = ForeignKeyField(User, backref="tus_uploads", on_delete="CASCADE")
    length = BigIntegerField(null=True)  # None: deferred (Upload-Defer-Length) until told
    offset = BigIntegerField(default=0)  # bytes received and kept; the truth for HEAD
    name = CharField(max_length=255)  # the requested file name, validated at creation
    modified_at = UtcDateTimeField(null=True)  # from the metadata, if the client sent it
    metadata = TextField(default="")  # the Upload-Metadata header as sent, for HEAD
    created_at = UtcDateTimeField(default=utc_now)
    expires_at = UtcDateTimeField(index=True)
    stored_name = CharField(max_length=255, null=True)  # set when the file has been made


ALL_MODELS = (User, StoredFile, RefreshToken, TusUpload)
