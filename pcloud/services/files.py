"""A user's files: the names they see, each pointing at a blob in the store.

The database is the truth for what a user has; listing never walks the disk.
"""

from __future__ import annotations

from datetime import datetime

import peewee

from pcloud.errors import BadRequest, Conflict, NotFound
from pcloud.models import StoredFile, database_proxy
from pcloud.services import names
from pcloud.storage import BlobStore, StoredBlob

FILE_NOT_FOUND = "File not found"
MAX_NAME_ATTEMPTS = 50


def list_files(owner_id: int) -> list[tuple[str, int, datetime]]:
    """(name, size, modified_at) of every file of the user, by name, case-insensitively."""
    rows = (
        StoredFile.select(StoredFile.name, StoredFile.size, StoredFile.modified_at)
        .where(StoredFile.owner == owner_id)
        .tuples()
    )
    return sorted(rows, key=lambda row: (row[0].casefold(), row[0]))


def get_file(owner_id: int, name: object) -> StoredFile:
    """The user's file of that name. Raises NotFound."""
    if not isinstance(name, str) or "\x00" in name:  # no stored name holds NUL
        raise NotFound(FILE_NOT_FOUND)
    stored = StoredFile.get_or_none(
        (StoredFile.owner == owner_id) & (StoredFile.name == names.normalize(name))
    )
    if stored is None:
        raise NotFound(FILE_NOT_FOUND)
    return stored


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
    try:
        with database_proxy.atomic():
            for _ in range(MAX_NAME_ATTEMPTS):
                name = first_free_name(owner_id, requested_name)
                fields = {
                    "owner": owner_id,
                    "name": name,
                    "blob_key": blob.key,
                    "size": blob.size,
                    "sha256": blob.sha256,
                }
                if modified_at is not None:
                    fields["modified_at"] = modified_at
                try:
                    with database_proxy.atomic():  # a savepoint: a lost race keeps the rest
                        return StoredFile.create(**fields)
                except peewee.IntegrityError:
                    continue  # another upload took that name a moment ago
            raise Conflict("Too many uploads of this name at once; try again")
    except BaseException:
        blobs.delete(blob.key)
        raise


def first_free_name(owner_id: int, requested_name: str) -> str:
    """requested_name if the user has no file of that name, else the first free numbered one."""
    stem, dot, _extension = requested_name.rpartition(".")
    prefix = stem if dot and stem else requested_name
    # A case-insensitive prefix match finds a superset; the exact test is below.
    taken = {
        name
        for (name,) in StoredFile.select(StoredFile.name)
        .where((StoredFile.owner == owner_id) & StoredFile.name.startswith(prefix))
        .tuples()
    }
    if requested_name not in taken:
        return requested_name
    number = 1
    while names.numbered(requested_name, number) in taken:
        number += 1
    return names.numbered(requested_name, number)


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


def delete_file(blobs: BlobStore, owner_id: int, name: object) -> str:
    """Delete one of the user's files and its bytes; returns the stored name."""
    with database_proxy.atomic():
        stored = get_file(owner_id, name)
        StoredFile.delete().where(StoredFile.id == stored.id).execute()
    # After the commit: if this fails the blob is an orphan that `pcloud files gc` removes.
    blobs.delete(stored.blob_key)
    return stored.name
