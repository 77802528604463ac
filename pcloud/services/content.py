"""Content-addressed blobs: each content's bytes once in the store, with a count of the
files that point at them, and each user's memory of content they deleted for good.

Called inside the caller's transaction. Bytes are never deleted here: the functions
return the store keys whose bytes the caller deletes after its commit (a crash in
between leaves orphans, which `pcloud files gc` removes).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable

import peewee

from pcloud.db import PreparedQuery
from pcloud.models import Blob, DeletedContent, StoredFile, database_proxy, micros, utc_now
from pcloud.storage import BlobStore, StoredBlob

_ADD_REFERENCES = PreparedQuery(
    lambda count, sha256: Blob.update(ref_count=Blob.ref_count + count).where(
        Blob.sha256 == sha256
    ),
    -8301,
    "\x01sha256",
)
_STORE_KEY = PreparedQuery(
    lambda sha256: Blob.select(Blob.store_key).where(Blob.sha256 == sha256), "\x01sha256"
)
# New content gets its row, stored content one more reference: one statement either way,
# answering with the key the content is stored under (the new one only if it was new).
_COUNT_OR_ADD = PreparedQuery(
    lambda sha256, store_key, size, created: (
        Blob.insert(sha256=sha256, store_key=store_key, size=size, ref_count=1, created_at=created)
        .on_conflict(conflict_target=[Blob.sha256], update={Blob.ref_count: Blob.ref_count + 1})
        .returning(Blob.store_key)
    ),
    "\x01sha256",
    "\x01key",
    -8302,
    -8303,
)
# SQLite answers INSERT ... RETURNING from 3.35 on (2021); older ones take two statements.
_UPSERT_RETURNS = sqlite3.sqlite_version_info >= (3, 35, 0)


def take(blob: StoredBlob, blobs: BlobStore | None = None) -> tuple[str, str | None]:
    """Count one more file of the blob's content: (store key the file points at, key of
    bytes now spare). When the content was stored already, the new bytes are spare;
    unless (asked of `blobs`) the stored bytes have gone missing: then the new bytes take
    their place, for every file of that content."""
    key = _count_or_add(blob)
    if key == blob.key:
        return key, None
    if blobs is not None and not blobs.exists(key):
        _heal(blob.sha256, key, blob.key)
        return blob.key, None
    return key, blob.key


def _count_or_add(blob: StoredBlob) -> str:
    """The key the blob's content is stored under, after counting one more file of it."""
    if _UPSERT_RETURNS or not isinstance(database_proxy.obj, peewee.SqliteDatabase):
        row = _COUNT_OR_ADD.execute(blob.sha256, blob.key, blob.size, micros(utc_now()))
        return str(row.fetchone()[0])
    for _ in range(3):
        if add_references(blob.sha256):
            return str(_STORE_KEY.execute(blob.sha256).fetchone()[0])
        try:
            with database_proxy.atomic():
                Blob.insert(
                    sha256=blob.sha256, store_key=blob.key, size=blob.size, ref_count=1
                ).execute()
            return blob.key
        except peewee.IntegrityError:
            continue  # someone stored the same content a moment ago: count on theirs
    raise RuntimeError(f"could not record blob {blob.sha256}")


def _heal(sha256: str, lost_key: str, new_key: str) -> None:
    """Point the content, and every file of it, at new bytes: the stored ones are lost."""
    Blob.update(store_key=new_key).where(Blob.sha256 == sha256).execute()
    StoredFile.update(blob_key=new_key).where(StoredFile.blob_key == lost_key).execute()


def add_references(sha256: str, count: int = 1) -> bool:
    """Count `count` more files of stored content; False when no such content is stored."""
    return bool(_ADD_REFERENCES.execute(count, sha256).rowcount == 1)


def release(sha256s: Iterable[str]) -> list[str]:
    """Count one file fewer per entry; returns the store keys of content no file uses."""
    counts = Counter(sha256s)
    freed = []
    for sha256, count in counts.items():
        Blob.update(ref_count=Blob.ref_count - count).where(Blob.sha256 == sha256).execute()
        row = Blob.get_or_none((Blob.sha256 == sha256) & (Blob.ref_count <= 0))
        if row is not None:
            Blob.delete().where(Blob.id == row.id).execute()
            freed.append(row.store_key)
    return freed


def remember_deleted(owner_id: int, sha256s: Iterable[str]) -> None:
    """Note that the user deleted this content for good (upload-check reports it)."""
    now = utc_now()
    for sha256 in set(sha256s):
        (
            DeletedContent.insert(owner=owner_id, sha256=sha256, deleted_at=now)
            .on_conflict(
                conflict_target=[DeletedContent.owner, DeletedContent.sha256],
                update={DeletedContent.deleted_at: now},
            )
            .execute()
        )


def forget_deleted(owner_id: int) -> int:
    """Clear the user's memory of deleted content; returns how many entries went."""
    with database_proxy.atomic():
        return int(DeletedContent.delete().where(DeletedContent.owner == owner_id).execute())
