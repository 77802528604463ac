"""A user's files: the names they see, each pointing at a blob in the store.

The database is the truth for what a user has; listing never walks the disk.
"""

from __future__ import annotations

from datetime import datetime, timezone

import peewee

from pcloud.db import PreparedQuery
from pcloud.errors import BadRequest, Conflict, NotFound
from pcloud.models import StoredFile, database_proxy, micros, utc_now
from pcloud.services import audit, names
from pcloud.storage import BlobStore, StoredBlob

FILE_NOT_FOUND = "File not found"
MAX_NAME_ATTEMPTS = 50
NAME_CANDIDATES = 32


def list_files(owner_id: int) -> list[tuple[str, int, str]]:
    """(name, size, modified_at as ISO 8601 UTC text) of every file of the user,
    sorted by name case-insensitively."""
    query = StoredFile.select(StoredFile.name, StoredFile.size, StoredFile.modified_at).where(
        StoredFile.owner == owner_id
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


def iso_utc(epoch_seconds: int) -> str:
    """1795564123 -> '2026-11-24T23:48:43Z', the contract's timestamp format."""
    return datetime.fromtimestamp(epoch_seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_FILE_BY_NAME = PreparedQuery(
    lambda owner_id, name: StoredFile.select().where(
        (StoredFile.owner == owner_id) & (StoredFile.name == name)
    ),
    -7301,
    "\x01name",
)


def get_file(owner_id: int, name: object) -> StoredFile:
    """The user's file of that name. Raises NotFound."""
    if not isinstance(name, str) or "\x00" in name:  # no stored name holds NUL
        raise NotFound(FILE_NOT_FOUND)
    stored = _FILE_BY_NAME.first(owner_id, names.normalize(name))
    if stored is None:
        raise NotFound(FILE_NOT_FOUND)
    return stored


_INSERT_FILE = PreparedQuery(
    lambda owner_id, name, blob_key, size, sha256, created, modified: StoredFile.insert(
        owner=owner_id,
        name=name,
        blob_key=blob_key,
        size=size,
        sha256=sha256,
        created_at=created,
        modified_at=modified,
    ),
    -7301,
    "\x01name",
    "\x01key",
    -7302,
    "\x01sha256",
    -7303,
    -7304,
)


def add_file(
    blobs: BlobStore,
    owner_id: int,
    requested_name: str,
    blob: StoredBlob,
    modified_at: datetime | None = None,
) -> StoredFile:
    """Record a finished blob as a file under the first free name (photo_1.jpg, ...).

    If no row can be committed the blob is deleted, so a failed upload leaves nothing.
    """
    now = utc_now()
    modified_at = modified_at or now
    name = requested_name
    try:
        # Most names are free: try the name as given first, and look for a numbered one
        # only when the unique index says it is taken (by an earlier or a concurrent upload).
        for _ in range(MAX_NAME_ATTEMPTS):
            try:
                with database_proxy.atomic():
                    file_id = _INSERT_FILE.insert(
                        owner_id,
                        name,
                        blob.key,
                        blob.size,
                        blob.sha256,
                        micros(now),
                        micros(modified_at),
                    )
                return StoredFile(
                    id=file_id,
                    owner=owner_id,
                    name=name,
                    blob_key=blob.key,
                    size=blob.size,
                    sha256=blob.sha256,
                    created_at=now,
                    modified_at=modified_at,
                )
            except peewee.IntegrityError:
                name = first_free_name(owner_id, requested_name)
        raise Conflict("Too many uploads of this name at once; try again")
    except BaseException:
        blobs.delete(blob.key)
        raise


def first_free_name(owner_id: int, requested_name: str) -> str:
    """requested_name if the user has no file of that name, else the first free numbered one."""
    first = 0
    while True:
        # Exact candidates, looked up through the (owner, name) index: a prefix match
        # cannot use the index on every engine, and would read every similar name.
        candidates = [
            names.numbered(requested_name, number) if number else requested_name
            for number in range(first, first + NAME_CANDIDATES)
        ]
        taken = {
            name
            for (name,) in StoredFile.select(StoredFile.name)
            .where((StoredFile.owner == owner_id) & StoredFile.name.in_(candidates))
            .tuples()
        }
        for candidate in candidates:
            if candidate not in taken:
                return candidate
        first += NAME_CANDIDATES


def rename_file(owner_id: int, old_name: object, new_name: object) -> tuple[str, str]:
    """Rename one of the user's files; returns (old, new) as stored. A taken name is 409."""
    if not isinstance(old_name, str) or not old_name:
        raise BadRequest("'old_filename' must be a non-empty string")
    new_name = names.validate(new_name, "new_filename")
    with database_proxy.atomic():
        stored = get_file(owner_id, old_name)
        if stored.name == new_name:
            return stored.name, new_name
        if (
            StoredFile.select()
            .where((StoredFile.owner == owner_id) & (StoredFile.name == new_name))
            .exists()
        ):
            raise Conflict(f"A file named '{new_name}' already exists")
        try:
            with database_proxy.atomic():
                StoredFile.update(name=new_name).where(StoredFile.id == stored.id).execute()
        except peewee.IntegrityError:
            raise Conflict(f"A file named '{new_name}' already exists") from None
    return stored.name, new_name


def delete_file(
    blobs: BlobStore, owner_id: int, name: object, ip_address: str | None = None
) -> str:
    """Delete one of the user's files and its bytes; returns the stored name."""
    with database_proxy.atomic():
        stored = get_file(owner_id, name)
        StoredFile.delete().where(StoredFile.id == stored.id).execute()
        audit.record(
            audit.FILE_DELETED,
            user_id=owner_id,
            ip_address=ip_address,
            name=stored.name,
            size=stored.size,
        )
    # After the commit: if this fails the blob is an orphan that `pcloud files gc` removes.
    blobs.delete(stored.blob_key)
    return stored.name
