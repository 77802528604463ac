"""The trash: deleting a file or folder moves it here (remembering where it was); it can
be restored, or purged for good (by the user, or by gc after TRASH_DAYS).

A trashed item has no folder (files) or parent (folders) and `trashed_at` set; what a
trashed folder holds stays inside it. Trash counts toward the user's quota until purged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pcloud.db import rows
from pcloud.errors import NotFound
from pcloud.models import Folder, StoredFile, database_proxy, utc_now
from pcloud.services import audit, changes, entries, files, folders, moves, tree
from pcloud.services.entries import Entry
from pcloud.storage import BlobStore

NOT_IN_TRASH = "Not in the trash"


def trash_file(owner_id: int, file_id: int, if_match: str | None = None) -> None:
    """Move the file to the trash (PreconditionFailed if `if_match` is not its ETag)."""
    with database_proxy.atomic():
        tree.lock(owner_id)
        stored = folders.file_of(owner_id, file_id)
        entries.require_etag(if_match, stored.sha256)
        StoredFile.update(folder=None, trashed_at=utc_now(), trashed_from=stored.folder_id).where(
            StoredFile.id == stored.id
        ).execute()
        changes.record(owner_id, changes.DELETED, changes.FILE, stored.id, None, stored.name)
        tree.bump([stored.folder_id])


def trash_folder(owner_id: int, folder_id: int, if_match: str | None = None) -> None:
    """Move the folder, with all it holds, to the trash (PreconditionFailed if `if_match`
    is not its ETag: something below it changed)."""
    with database_proxy.atomic():
        tree.lock(owner_id)
        folder = moves.movable_folder(owner_id, folder_id)
        entries.require_etag(if_match, entries.folder_etag(folder.id, folder.version))
        Folder.update(parent=None, trashed_at=utc_now(), trashed_from=folder.parent_id).where(
            Folder.id == folder.id
        ).execute()
        changes.record(owner_id, changes.DELETED, changes.FOLDER, folder.id, None, folder.name)
        tree.bump([folder.parent_id])


@dataclass(frozen=True)
class TrashedItem:
    entry: Entry
    trashed_at: datetime
    original_folder_id: int | None
    size: int  # a folder's: everything inside it


def list_trash(owner_id: int) -> list[TrashedItem]:
    """What the user deleted and can still restore, most recently deleted first."""
    items = [
        TrashedItem(entries.of_file(f), f.trashed_at, f.trashed_from, f.size)
        for f in StoredFile.select().where(
            (StoredFile.owner == owner_id) & StoredFile.trashed_at.is_null(False)
        )
    ]
    for folder in Folder.select().where(
        (Folder.owner == owner_id) & Folder.trashed_at.is_null(False)
    ):
        size = sum(f.size for f in moves.files_in(tree.descendants(folder.id)))
        items.append(
            TrashedItem(entries.of_folder(folder), folder.trashed_at, folder.trashed_from, size)
        )
    items.sort(key=lambda item: item.trashed_at, reverse=True)
    return items


def restore(owner_id: int, item_type: str, item_id: int) -> Entry:
    """Put a trashed item back where it was (renamed `name_1` if that name is taken now),
    or into the root when its folder is gone or trashed."""
    with database_proxy.atomic():
        root_id = tree.lock(owner_id)
        model = StoredFile if item_type == changes.FILE else Folder
        item = model.get_or_none(
            (model.id == item_id) & (model.owner == owner_id) & model.trashed_at.is_null(False)
        )
        if item is None:
            raise NotFound(NOT_IN_TRASH)
        target = item.trashed_from
        if target is None or not _live_folder_exists(owner_id, target):
            target = root_id
        name = tree.place_name(owner_id, target, item.name, tree.RENAME)
        where = model.id == item.id
        if model is StoredFile:
            model.update(folder=target, name=name, trashed_at=None, trashed_from=None).where(
                where
            ).execute()
        else:
            model.update(parent=target, name=name, trashed_at=None, trashed_from=None).where(
                where
            ).execute()
        changes.record(owner_id, changes.RESTORED, item_type, item.id, target, name)
        tree.bump([target])
        item = model.get_by_id(item.id)
    if isinstance(item, StoredFile):
        return entries.of_file(item)
    return entries.of_folder(item)


def _live_folder_exists(owner_id: int, folder_id: int) -> bool:
    try:
        tree.live_folder(owner_id, folder_id)
    except NotFound:
        return False
    return True


def empty(blobs: BlobStore, owner_id: int, ip_address: str | None = None) -> int:
    """Purge everything in the user's trash for good; returns how many items went."""
    return _purge(blobs, owner_id, None, audit.USER_ACTOR, ip_address)


def purge_older_than(blobs: BlobStore, days: int, now: datetime | None = None) -> int:
    """Purge every user's trash items deleted more than `days` ago (gc); how many went."""
    cutoff = (now or utc_now()) - timedelta(days=days)
    owners = {
        owner
        for model in (StoredFile, Folder)
        for (owner,) in rows(
            model.select(model.owner)
            .where(model.trashed_at.is_null(False) & (model.trashed_at < cutoff))
            .distinct()
        )
    }
    return sum(_purge(blobs, owner, cutoff, audit.SYSTEM_ACTOR, None) for owner in owners)


def _purge(
    blobs: BlobStore, owner_id: int, cutoff: datetime | None, actor: str, ip: str | None
) -> int:
    def trashed(model: type[StoredFile] | type[Folder]) -> Any:
        condition = (model.owner == owner_id) & model.trashed_at.is_null(False)
        return condition if cutoff is None else condition & (model.trashed_at < cutoff)

    with database_proxy.atomic():
        tree.lock(owner_id)
        top_files = list(StoredFile.select().where(trashed(StoredFile)))
        top_folders = list(Folder.select().where(trashed(Folder)))
        folder_ids = [fid for folder in top_folders for fid in tree.descendants(folder.id)]
        inside = moves.files_in(folder_ids)
        doomed = top_files + inside
        freed = files.purge_files(owner_id, [(f.id, f.sha256) for f in doomed])
        for start in range(0, len(folder_ids), files.CHUNK):
            chunk = folder_ids[start : start + files.CHUNK]
            Folder.update(parent=None).where(Folder.id.in_(chunk)).execute()
            Folder.delete().where(Folder.id.in_(chunk)).execute()
        count = len(top_files) + len(top_folders)
        if count:
            audit.record(
                audit.TRASH_PURGED,
                user_id=owner_id,
                actor=actor,
                ip_address=ip,
                items=count,
                files=len(doomed),
                bytes=sum(f.size for f in doomed),
            )
    files.delete_bytes(blobs, freed)
    return count
