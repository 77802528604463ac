"""A user's files: the names they see, each pointing at a blob in the store.

The database is the truth for what a user has; listing never walks the disk.
"""

from __future__ import annotations

from datetime import datetime

import peewee

from pcloud.db import PreparedQuery
from pcloud.errors import BadRequest, Conflict, NotFound
from pcloud.models import Folder, StoredFile, database_proxy, micros, name_sort_key, utc_now
from pcloud.moments import iso_utc
from pcloud.services import audit, changes, content, entries, names, quota, tree, versions
from pcloud.storage import BlobStore, StoredBlob

FILE_NOT_FOUND = "File not found"
CHUNK = 500  # ids or hashes per IN list


def list_files(owner_id: int) -> list[tuple[str, int, str]]:
    """(name, size, modified_at as ISO 8601 UTC text) of every file in the user's root
    folder (the contract's flat list), sorted by name case-insensitively."""
    query = (
        StoredFile.select(StoredFile.name, StoredFile.size, StoredFile.modified_at)
        .join(Folder, on=(StoredFile.folder == Folder.id))
        .where(Folder.root_of == owner_id)
    )
    # Straight from the cursor: peewee's per-row conversion would cost more than the
    # query itself when a user has tens of thousands of files.
    rows = database_proxy.execute(query).fetchall()
    rows.sort(key=lambda row: (row[0].casefold(), row[0]))
    iso_of_second: dict[int, str] = {}
    listing = []
    for name, size, modified_micros in rows:
        second = modified_micros // 1_000_000
        iso = iso_of_second.get(second)
        if iso is None:
            iso = iso_of_second[second] = iso_utc(second)
        listing.append((name, size, iso))
    return listing


# The owner twice, as the file's and as the root's: the file must be the user's, and the
# name is looked up in the (folder, name) index.
_FILE_BY_NAME = PreparedQuery(
    lambda owner_id, name, root_owner_id: StoredFile.select().where(
        (StoredFile.owner == owner_id)
        & (StoredFile.folder == Folder.select(Folder.id).where(Folder.root_of == root_owner_id))
        & (StoredFile.name == name)
    ),
    -7301,
    "\x01name",
    -7306,
)


def get_file(owner_id: int, name: object) -> StoredFile:
    """The file of that name in the user's root folder. Raises NotFound."""
    if not isinstance(name, str) or "\x00" in name:  # no stored name holds NUL
        raise NotFound(FILE_NOT_FOUND)
    stored: StoredFile | None = _FILE_BY_NAME.first(owner_id, names.normalize(name), owner_id)
    if stored is None:
        raise NotFound(FILE_NOT_FOUND)
    return stored


_INSERT_FILE = PreparedQuery(
    lambda owner_id, folder_id, name, sort_key, blob_key, size, sha256, created, modified: (
        StoredFile.insert(
            owner=owner_id,
            folder=folder_id,
            name=name,
            # A placeholder, as it is: the key of the placeholder name would be a constant.
            sort_key=peewee.Value(sort_key, converter=False),
            blob_key=blob_key,
            size=size,
            sha256=sha256,
            created_at=created,
            modified_at=modified,
        )
    ),
    -7301,
    -7305,
    "\x01name",
    -7306,
    "\x01key",
    -7302,
    "\x01sha256",
    -7303,
    -7304,
)


def insert_row(
    owner_id: int, folder_id: int, name: str, like: StoredFile, created: int, modified: int
) -> int:
    """Insert a file row with the content of `like` (times in microseconds); its id.
    The caller counts the reference to the content."""
    return _INSERT_FILE.insert(
        owner_id,
        folder_id,
        name,
        name_sort_key(name),
        like.blob_key,
        like.size,
        like.sha256,
        created,
        modified,
    )


def add_file(
    blobs: BlobStore,
    owner_id: int,
    requested_name: str,
    blob: StoredBlob,
    modified_at: datetime | None = None,
    folder_id: int | None = None,
    on_conflict: str = tree.RENAME,
    if_match: str | None = None,
    root_id: int | None = None,
    quota_bytes: int | None | object = quota.ASK,
    session_id: str | None = None,
) -> StoredFile:
    """Record a finished blob as a file in the folder (default: the root), under the
    requested name or, when taken, the first free numbered one (photo_1.jpg, ...);
    with on_conflict "fail" a taken name is Conflict (409) instead, and with "replace"
    the file of that name gets the new content (same id; a folder's name is still 409),
    only if its ETag is `if_match` when that is given (else PreconditionFailed).

    When the content is stored already the new bytes are deleted and the file shares the
    stored ones. If no row can be committed the blob is deleted, so a failed upload
    leaves nothing. Raises InsufficientStorage past the user's quota, NotFound for a
    folder that is not the user's (or is in the trash). `root_id` and `quota_bytes`: the
    user's root folder and quota, when the caller read them already (tree.lock, quota.ASK).

    Content that "replace" replaces is kept as a version (pcloud.services.versions),
    `session_id` naming the device session that sent the new content; the oldest
    versions are pruned when the upload would otherwise pass the quota.
    """
    modified_at = modified_at or utc_now()
    try:
        with database_proxy.atomic():
            root_id = tree.lock(owner_id, root_id)
            if folder_id is None or folder_id == root_id:
                folder_id = root_id
            else:
                tree.live_folder(owner_id, folder_id)
            existing = None
            if on_conflict == tree.REPLACE:
                existing = StoredFile.get_or_none(
                    (StoredFile.owner == owner_id)
                    & (StoredFile.folder == folder_id)
                    & (StoredFile.name == requested_name)
                )
            if existing is not None:
                entries.require_etag(if_match, existing.sha256)
                stored, spare_keys = _replace_content(
                    blobs, existing, blob, modified_at, quota_bytes, session_id
                )
                tree.bump([folder_id], root_id)
            else:
                policy = tree.FAIL if on_conflict == tree.REPLACE else on_conflict
                stored, spare_keys = _insert_file(
                    blobs,
                    owner_id,
                    folder_id,
                    requested_name,
                    blob,
                    modified_at,
                    policy,
                    quota_bytes,
                )
                tree.bump([folder_id], root_id)
    except peewee.IntegrityError:
        blobs.delete(blob.key)
        raise Conflict("Too many changes to this folder at once; try again") from None
    except BaseException:
        blobs.delete(blob.key)
        raise
    # After the commit: bytes of content that was stored already, or that no file uses
    # any more. A crash before this leaves orphans, which `pcloud files gc` removes.
    delete_bytes(blobs, spare_keys)
    return stored


def _insert_file(
    blobs: BlobStore,
    owner_id: int,
    folder_id: int,
    requested_name: str,
    blob: StoredBlob,
    modified_at: datetime,
    on_conflict: str,
    quota_bytes: int | None | object = quota.ASK,
) -> tuple[StoredFile, list[str]]:
    now = utc_now()
    if quota_bytes is quota.ASK:
        quota_bytes = quota.quota_of(owner_id)
    quota.check(owner_id, blob.size, quota_bytes)
    pruned, _fits = versions.make_room(owner_id, blob.size, quota_bytes)  # type: ignore[arg-type]
    name = tree.place_name(owner_id, folder_id, requested_name, on_conflict)
    key, spare = content.take(blob, blobs)
    file_id = _INSERT_FILE.insert(
        owner_id,
        folder_id,
        name,
        name_sort_key(name),
        key,
        blob.size,
        blob.sha256,
        micros(now),
        micros(modified_at),
    )
    changes.record(owner_id, changes.CREATED, changes.FILE, file_id, folder_id, name)
    stored = StoredFile(
        id=file_id,
        owner=owner_id,
        folder=folder_id,
        name=name,
        blob_key=key,
        size=blob.size,
        sha256=blob.sha256,
        created_at=now,
        modified_at=modified_at,
    )
    return stored, [*pruned, *([spare] if spare else [])]


def _replace_content(
    blobs: BlobStore,
    stored: StoredFile,
    blob: StoredBlob,
    modified_at: datetime,
    quota_bytes: int | None | object = quota.ASK,
    session_id: str | None = None,
) -> tuple[StoredFile, list[str]]:
    """Give an existing file new content, keeping the old as a version (unless it is the
    same, or even pruning every version leaves no room for it); returns the file and the
    keys whose bytes are spare."""
    if quota_bytes is quota.ASK:
        quota_bytes = quota.quota_of(stored.owner_id)
    quota.check(stored.owner_id, blob.size - stored.size, quota_bytes)
    freed, fits = versions.make_room(stored.owner_id, blob.size, quota_bytes)  # type: ignore[arg-type]
    key, spare = content.take(blob, blobs)
    if fits and blob.sha256 != stored.sha256:
        versions.keep(stored, stored.owner_id, session_id)
    else:  # no room for it, or the same content again: no version to keep
        freed.extend(content.release([stored.sha256]))
    StoredFile.update(
        blob_key=key, size=blob.size, sha256=blob.sha256, modified_at=modified_at
    ).where(StoredFile.id == stored.id).execute()
    changes.record(
        stored.owner_id, changes.MODIFIED, changes.FILE, stored.id, stored.folder_id, stored.name
    )
    stored.blob_key, stored.size, stored.sha256 = key, blob.size, blob.sha256
    stored.modified_at = modified_at
    return stored, [*freed, *([spare] if spare else [])]


def rename_file(owner_id: int, old_name: object, new_name: object) -> tuple[str, str]:
    """Rename a file of the user's root folder; returns (old, new) as stored. A taken
    name (a file's or a folder's) is 409."""
    if not isinstance(old_name, str) or not old_name:
        raise BadRequest("'old_filename' must be a non-empty string")
    new_name = names.validate(new_name, "new_filename")
    with database_proxy.atomic():
        tree.lock(owner_id)
        stored = get_file(owner_id, old_name)
        if stored.name == new_name:
            return stored.name, new_name
        if tree.taken_names(owner_id, stored.folder_id, [new_name]):
            raise Conflict(f"A file named '{new_name}' already exists")
        try:
            with database_proxy.atomic():
                StoredFile.update(name=new_name).where(StoredFile.id == stored.id).execute()
        except peewee.IntegrityError:
            raise Conflict(f"A file named '{new_name}' already exists") from None
        changes.record(
            owner_id, changes.RENAMED, changes.FILE, stored.id, stored.folder_id, new_name
        )
        tree.bump([stored.folder_id])
    return stored.name, new_name


def delete_file(
    blobs: BlobStore, owner_id: int, name: object, ip_address: str | None = None
) -> str:
    """Delete a file of the user's root folder for good (the contract's DELETE); its
    bytes go when no other file uses them. Returns the stored name."""
    with database_proxy.atomic():
        tree.lock(owner_id)
        stored = get_file(owner_id, name)
        freed = purge_files(owner_id, [(stored.id, stored.sha256)])
        changes.record(owner_id, changes.DELETED, changes.FILE, stored.id, None, stored.name)
        tree.bump([stored.folder_id])
        audit.record(
            audit.FILE_DELETED,
            user_id=owner_id,
            ip_address=ip_address,
            name=stored.name,
            size=stored.size,
        )
    # After the commit: if this fails the blob is an orphan that `pcloud files gc` removes.
    delete_bytes(blobs, freed)
    return stored.name


def purge_files(owner_id: int, files: list[tuple[int, str]]) -> list[str]:
    """Delete these (id, sha256) file rows and their versions for good, in the caller's
    transaction: their content is remembered as deleted, and the store keys no file or
    version uses any more are returned, for the caller to delete after its commit."""
    ids = [file_id for file_id, _sha256 in files]
    version_contents = versions.forget_of_files(ids)
    for start in range(0, len(ids), CHUNK):
        StoredFile.delete().where(StoredFile.id.in_(ids[start : start + CHUNK])).execute()
    content.remember_deleted(owner_id, [sha256 for _id, sha256 in files])
    return content.release([*(sha256 for _id, sha256 in files), *version_contents])


def delete_bytes(blobs: BlobStore, keys: list[str]) -> None:
    for key in keys:
        blobs.delete(key)
