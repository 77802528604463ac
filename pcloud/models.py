"""Peewee models: tables, columns and indexes. Behaviour lives in pcloud.services."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from peewee import (
    AutoField,
    BigAutoField,
    BigIntegerField,
    BlobField,
    CharField,
    DatabaseProxy,
    FloatField,
    ForeignKeyField,
    IntegerField,
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


def name_sort_key(name: str) -> bytes:
    """Where a name sorts in a listing, as bytes every engine compares alike (memcmp):
    case-insensitively (its casefold), then by the name itself, both in UTF-8, whose byte
    order is code-point order, the order Python sorts (casefold(), name) tuples in. A
    text column would sort by the database's collation, which PostgreSQL takes from the
    locale. At most 3 x 255 + 1 + 255 bytes: within any index's limit."""
    return (
        name.casefold().encode("utf-8", "surrogatepass")
        + b"\0"
        + name.encode("utf-8", "surrogatepass")
    )


class BaseModel(Model):
    # What peewee adds by itself, written out so that type checkers know it too.
    id = AutoField()

    class Meta:
        database = database_proxy
        legacy_table_names = False


class User(BaseModel):
    username = CharField(max_length=150, unique=True)
    email = CharField(max_length=254, unique=True)  # stored lower-cased
    password_hash = CharField(max_length=255, null=True)  # None: Google-only account
    google_sub = CharField(max_length=255, null=True, unique=True)
    created_at = UtcDateTimeField(default=utc_now)
    disabled_at = UtcDateTimeField(null=True)  # set: no sign-in, no token works
    quota_bytes = BigIntegerField(null=True)  # None: unlimited


class Folder(BaseModel):
    """A folder in a user's tree. Every user has one root: parent None, `root_of` set.

    A trashed folder has parent None and `trashed_at` set; what it held stays inside it.
    """

    owner = ForeignKeyField(User, backref="folders", on_delete="CASCADE")
    owner_id: int  # (each foreign key's value, as peewee gives it: for type checkers)
    parent = ForeignKeyField("self", backref="children", null=True, on_delete="CASCADE")
    parent_id: int | None
    name = CharField(max_length=255)  # NFC; "" for the root
    root_of = ForeignKeyField(User, backref="+", null=True, unique=True, on_delete="CASCADE")
    root_of_id: int | None
    version = BigIntegerField(default=1)  # goes up whenever anything below changes: the ETag
    created_at = UtcDateTimeField(default=utc_now)
    modified_at = UtcDateTimeField(default=utc_now)
    trashed_at = UtcDateTimeField(null=True, index=True)
    trashed_from = BigIntegerField(null=True)  # the parent it had; not a key: may be gone

    class Meta:
        indexes = ((("owner", "parent", "name"), True),)


class Blob(BaseModel):
    """Bytes in the store, once per content, with how many files point at them."""

    sha256 = CharField(max_length=64, unique=True)
    store_key = CharField(max_length=64, unique=True)
    size = BigIntegerField()
    ref_count = IntegerField(default=0)
    created_at = UtcDateTimeField(default=utc_now)


class StoredFile(BaseModel):
    """A name in a user's file list, pointing at the blob that holds its bytes.

    Every index is written on every upload, so there are no more than the queries need:
    a folder belongs to one owner, so (folder, name) is unique as (owner, folder, name)
    would be, and serves the folder's own lookups too; the owner's are served by
    (owner, sha256, id)."""

    owner = ForeignKeyField(User, backref="files", on_delete="CASCADE", index=False)
    owner_id: int  # (each foreign key's value, as peewee gives it: for type checkers)
    # None only while trashed (see trashed_at), or for a row written before folders
    # existed, which the folders data migration moved into the root.
    folder = ForeignKeyField(Folder, backref="files", null=True, on_delete="CASCADE", index=False)
    folder_id: int
    name = CharField(max_length=255)  # NFC, as the person wrote it
    # The Blob's store_key; shared by copies. Not indexed: only healing lost bytes (rare)
    # looks files up by it, and an index on random keys costs every upload a page.
    blob_key = CharField(max_length=64)
    size = BigIntegerField()
    sha256 = CharField(max_length=64)
    created_at = UtcDateTimeField(default=utc_now)
    modified_at = UtcDateTimeField(default=utc_now)
    trashed_at = UtcDateTimeField(null=True)  # indexed below, where set
    trashed_from = BigIntegerField(null=True)  # the folder it was in; not a key: may be gone
    # name_sort_key(name), set by every insert, update and save that sets the name (below;
    # insert_many, which none of pcloud uses, and a db.PreparedQuery, whose name is a
    # placeholder, must give it), so that a folder's page of
    # files is read in order from an index, however many the folder holds. NULL only
    # before the data migration that fills it.
    sort_key = BlobField(null=True)

    class Meta:
        indexes = (
            (("folder", "name"), True),
            # With id: a content's oldest copies (upload-check) are the index's first
            # entries. SQLite's indexes end in the rowid anyway; PostgreSQL's did not,
            # and read every copy to sort them (100 copies each: 3x the time).
            (("owner", "sha256", "id"), False),
            (("folder", "sort_key", "id"), False),
        )

    @classmethod
    def insert(cls, __data: Any = None, **insert: Any) -> Any:
        return super().insert(_with_sort_key(__data, insert))

    @classmethod
    def update(cls, __data: Any = None, **update: Any) -> Any:
        return super().update(_with_sort_key(__data, update))


def _with_sort_key(data: dict[Any, Any] | None, more: dict[str, Any]) -> dict[Any, Any]:
    """An insert's or update's values, with the sort key of the name they set."""
    values = {**(data or {}), **more}
    name = values.get("name", values.get(StoredFile.name))
    if isinstance(name, str) and "sort_key" not in values and StoredFile.sort_key not in values:
        values["sort_key"] = name_sort_key(name)
    return values


# Only trashed files are looked up by trashed_at (the trash, its purge): an upload, whose
# trashed_at is NULL, then writes no entry here.
StoredFile.add_index(
    StoredFile.index(StoredFile.trashed_at, name="stored_file_trashed").where(
        StoredFile.trashed_at.is_null(False)
    )
)


class FileVersion(BaseModel):
    """An earlier content of a file, kept when new content replaced it. It counts one
    reference to its Blob (found by sha256, so healing lost bytes needs no update here)
    and its size counts in the owner's quota. It goes with its file: into the trash and
    back, and for good when the file is purged (pcloud.services.versions)."""

    id = BigAutoField()
    file = ForeignKeyField(StoredFile, backref="versions", on_delete="CASCADE")
    owner = ForeignKeyField(User, backref="+", on_delete="CASCADE", index=False)  # see Meta
    size = BigIntegerField()
    sha256 = CharField(max_length=64)
    modified_at = UtcDateTimeField()  # the content's own modification time
    replaced_at = UtcDateTimeField(default=utc_now)  # when it stopped being current
    replaced_by = BigIntegerField(null=True)  # the user id; not a key: outlives the user
    replaced_session = CharField(max_length=32, null=True)  # DeviceSession.public_id

    class Meta:
        indexes = ((("owner", "replaced_at"), False),)


class DeletedContent(BaseModel):
    """Content a user deleted for good: upload-check tells their phone not to send it again."""

    owner = ForeignKeyField(User, backref="+", on_delete="CASCADE")
    owner_id: int
    sha256 = CharField(max_length=64)
    deleted_at = UtcDateTimeField(default=utc_now)

    class Meta:
        indexes = ((("owner", "sha256"), True),)


class Change(BaseModel):
    """One change in a user's tree; the id is the change feed's cursor."""

    id = BigAutoField()
    owner = ForeignKeyField(User, backref="+", on_delete="CASCADE", index=False)  # see Meta
    owner_id: int
    kind = CharField(max_length=16)  # created, modified, moved, renamed, deleted, restored
    item_type = CharField(max_length=8)  # file or folder
    item_id = BigIntegerField()
    parent_id = BigIntegerField(null=True)  # the folder it is in now (None: trash or gone)
    name = CharField(max_length=255)
    at = UtcDateTimeField(default=utc_now, index=True)

    class Meta:
        indexes = ((("owner", "id"), False),)


class FeedHorizon(BaseModel):
    """The newest change of a user that gc has purged: older cursors get 410."""

    owner = ForeignKeyField(User, backref="+", unique=True, on_delete="CASCADE")
    owner_id: int
    purged_through = BigIntegerField(default=0)


class DeviceSession(BaseModel):
    """One sign-in of one device. Its tokens work only while it is not revoked."""

    public_id = CharField(max_length=32, unique=True)  # the `sid` claim; shown to the user
    user = ForeignKeyField(User, backref="sessions", on_delete="CASCADE")
    user_id: int
    method = CharField(max_length=16)  # "password", "google", or "legacy" (before sessions)
    device_name = CharField(max_length=100, null=True)
    user_agent = CharField(max_length=255, null=True)
    ip_address = CharField(max_length=64, null=True)
    created_at = UtcDateTimeField(default=utc_now)
    last_seen_at = UtcDateTimeField(default=utc_now)
    expires_at = UtcDateTimeField()  # moves forward with every refresh
    revoked_at = UtcDateTimeField(null=True)
    revoked_reason = CharField(max_length=64, null=True)


class RefreshToken(BaseModel):
    """A refresh token that was issued; revoking it ends that sign-in."""

    token_id = CharField(max_length=64, unique=True)  # the token's `jti` claim
    user = ForeignKeyField(User, backref="refresh_tokens", on_delete="CASCADE")
    user_id: int
    session = ForeignKeyField(
        DeviceSession, backref="refresh_tokens", null=True, on_delete="CASCADE"
    )
    created_at = UtcDateTimeField(default=utc_now)
    expires_at = UtcDateTimeField()
    revoked_at = UtcDateTimeField(null=True)
    rotated_at = UtcDateTimeField(null=True)  # replaced by a newer token of its session


class SignInThrottle(BaseModel):
    """Failed sign-ins counted for one account, one client IP, or one pair of them."""

    scope = CharField(max_length=16)  # "account", "ip" or "account-ip"
    key = CharField(max_length=400)
    failures = IntegerField(default=0)
    last_failure_at = UtcDateTimeField(default=utc_now)
    locked_until = UtcDateTimeField(null=True)

    class Meta:
        indexes = ((("scope", "key"), True),)


class AuditEvent(BaseModel):
    """Something that happened to an account, kept after the account itself is gone."""

    at = UtcDateTimeField(default=utc_now, index=True)
    action = CharField(max_length=64)
    user_id = BigIntegerField(null=True, index=True)  # not a foreign key: outlives the user
    username = CharField(max_length=150, null=True)
    actor = CharField(max_length=16)  # "user", "admin" (the CLI) or "system"
    ip_address = CharField(max_length=64, null=True)
    detail = TextField(null=True)


class TusUpload(BaseModel):
    """A resumable (tus) upload: its bytes so far are the store's resumable write of this id."""

    id = CharField(max_length=64, primary_key=True)  # random and URL-safe: the upload URL
    owner = ForeignKeyField(User, backref="tus_uploads", on_delete="CASCADE")
    owner_id: int
    length = BigIntegerField(null=True)  # None: deferred (Upload-Defer-Length) until told
    offset = BigIntegerField(default=0)  # bytes received and kept; the truth for HEAD
    name = CharField(max_length=255)  # the requested file name, validated at creation
    modified_at = UtcDateTimeField(null=True)  # from the metadata, if the client sent it
    folder_id = BigIntegerField(null=True)  # where the file goes (None: the root)
    metadata = TextField(default="")  # the Upload-Metadata header as sent, for HEAD
    created_at = UtcDateTimeField(default=utc_now)
    expires_at = UtcDateTimeField(index=True)
    stored_name = CharField(max_length=255, null=True)  # set when the file has been made
    # The SHA-256 of the first `offset` bytes, as a state any process can continue
    # (services.uploads.hashes.ResumableSha256); None when it was lost.
    sha256_state = BlobField(null=True)


class S3Resumable(BaseModel):
    """A resumable write on S3 (pcloud.storage.s3_resumable): the multipart upload its
    bytes go into, the parts sent so far, and the tail too short to be a part yet."""

    id = CharField(max_length=64, primary_key=True)  # the upload's id
    blob_key = CharField(max_length=32)  # the blob the multipart upload completes into
    multipart_id = CharField(max_length=1024, null=True)  # None until the first part
    parts = TextField(default="[]")  # JSON: [[number, etag, size], ...], in order
    size = BigIntegerField(default=0)  # the parts' bytes and the tail's
    tail = BlobField(default=b"")  # the bytes after the parts: less than one part
    updated_at = UtcDateTimeField(default=utc_now)


class AppPassword(BaseModel):
    """The secret of one device's HTTP Basic sign-in (WebDAV): its device session is what
    lists and revokes it. Only the SHA-256 of the (random, 125-bit) secret is kept."""

    session = ForeignKeyField(DeviceSession, backref="+", unique=True, on_delete="CASCADE")
    secret_sha256 = CharField(max_length=64, unique=True)
    created_at = UtcDateTimeField(default=utc_now)


class DavLock(BaseModel):
    """A WebDAV lock (RFC 4918), here so that every `pcloud serve` process sees it.

    `root` is the locked resource's key, `/<owner id>/<quoted path>` (pcloud.dav.provider),
    so one user's locks never touch another's tree."""

    token = CharField(max_length=100, unique=True)
    owner_id = BigIntegerField(index=True)  # not a key: the lock goes when it expires
    root = TextField()
    depth = CharField(max_length=10)
    scope = CharField(max_length=10)
    kind = CharField(max_length=10)  # the lock type; "write" is the only one there is
    principal = CharField(max_length=255)
    lock_owner = TextField(default="")  # the client's <owner> XML, returned as sent
    timeout = FloatField()
    expire = FloatField()  # seconds since the epoch


class DavProperty(BaseModel):
    """A dead property a WebDAV client set with PROPPATCH, kept for it."""

    owner_id = BigIntegerField()
    path = TextField()  # the resource's key, as DavLock.root
    name = CharField(max_length=512)  # "{namespace}local-name"
    value = TextField()  # the property element, as XML

    class Meta:
        indexes = ((("owner_id",), False),)


class MediaInfo(BaseModel):
    """What a content is as a picture or a video, once per blob (by SHA-256), whoever owns
    it: made by the thumbnailer (pcloud.services.media) on first need or in the
    background after an upload; forgotten by gc when no file uses the content any more."""

    sha256 = CharField(max_length=64, unique=True)
    status = CharField(max_length=16)  # pending, image, video, none (not media), bad
    claimed_at = UtcDateTimeField(default=utc_now)  # when a worker took it (for pending)
    width = IntegerField(null=True)  # as shown (EXIF orientation applied)
    height = IntegerField(null=True)
    duration = FloatField(null=True)  # seconds, for videos
    # Capture time in UTC microseconds: EXIF DateTimeOriginal (with OffsetTimeOriginal
    # when the camera wrote one; else its local time taken as UTC) or a video's
    # creation_time.
    taken_at = UtcDateTimeField(null=True, index=True)
    taken_offset = IntegerField(null=True)  # minutes east of UTC, when known
    error = CharField(max_length=255, null=True)  # why it is bad (for status "bad")


class Thumbnail(BaseModel):
    """A small picture of a content, stored as a blob of its own (so it lives wherever
    the store keeps bytes). Content never changes, so neither does its thumbnail."""

    sha256 = CharField(max_length=64)
    size = IntegerField()  # pixels on the long side
    format = CharField(max_length=8)  # webp or jpeg
    store_key = CharField(max_length=64, unique=True)
    bytes = IntegerField()
    created_at = UtcDateTimeField(default=utc_now)

    class Meta:
        indexes = ((("sha256", "size", "format"), True),)


class Share(BaseModel):
    """A public link to one file or one folder (`/s/<token>`). Only the token's SHA-256
    is kept: the database alone never yields a working link."""

    owner = ForeignKeyField(User, backref="shares", on_delete="CASCADE")
    owner_id: int
    token_hash = CharField(max_length=64, unique=True)
    file_id = BigIntegerField(null=True)  # exactly one of file_id and folder_id is set
    folder_id = BigIntegerField(null=True)
    mode = CharField(max_length=16)  # "view" (see and download) or "upload" (a file drop)
    password_hash = CharField(max_length=255, null=True)
    expires_at = UtcDateTimeField(null=True)
    max_downloads = IntegerField(null=True)
    downloads = IntegerField(default=0)
    uploads = IntegerField(default=0)
    created_at = UtcDateTimeField(default=utc_now)
    revoked_at = UtcDateTimeField(null=True)


class ShareUpload(BaseModel):
    """A resumable upload started through a file-drop link: only that link may go on
    with it (the upload itself is the owner's TusUpload)."""

    upload_id = CharField(max_length=64, unique=True)
    share = ForeignKeyField(Share, backref="+", on_delete="CASCADE")
    share_id: int


ALL_MODELS = (
    User,
    Folder,
    Blob,
    StoredFile,
    FileVersion,
    DeletedContent,
    Change,
    FeedHorizon,
    DeviceSession,
    RefreshToken,
    SignInThrottle,
    AuditEvent,
    TusUpload,
    S3Resumable,
    AppPassword,
    DavLock,
    DavProperty,
    MediaInfo,
    Thumbnail,
    Share,
    ShareUpload,
)
