"""Renaming, moving and copying files and folders within a user's tree.

Each is one transaction under the tree's lock. A copy of a file costs no bytes: it is
one more reference to the same blob.
"""

from __future__ import annotations

from collections import Counter, deque
from datetime import datetime

from pcloud.errors import BadRequest, Forbidden
from pcloud.models import Blob, Folder, StoredFile, database_proxy, utc_now
from pcloud.services import changes, content, entries, folders, names, quota, tree
from pcloud.services.entries import Entry

CHUNK = 500
# Refused as WebDAV refuses it (403): the request is understood, the root is fixed.
ROOT_STAYS = "The root folder cannot be renamed, moved, copied or deleted"


def move_file(
    owner_id: int,
    file_id: int,
    new_name: object = None,
    folder_id: int | None = None,
    on_conflict: str = tree.FAIL,
    if_match: str | None = None,
) -> Entry:
    """Rename the file and/or move it to another folder of the user (PreconditionFailed
    if `if_match` is not its ETag)."""
    name = None if new_name is None else names.validate(new_name, "name")
    with database_proxy.atomic():
        tree.lock(owner_id)
        stored = folders.file_of(owner_id, file_id)
        entries.require_etag(if_match, stored.sha256)
        target = stored.folder_id if folder_id is None else tree.live_folder(owner_id, folder_id).id
        name = stored.name if name is None else name
        if (target, name) == (stored.folder_id, stored.name):
            return entries.of_file(stored)
        name = tree.place_name(owner_id, target, name, on_conflict)
        StoredFile.update(folder=target, name=name).where(StoredFile.id == stored.id).execute()
        kind = changes.MOVED if target != stored.folder_id else changes.RENAMED
        changes.record(owner_id, kind, changes.FILE, stored.id, target, name)
        tree.bump([stored.folder_id, target])
        stored.folder, stored.name = target, name  # type: ignore[assignment]  # (an id will do)
    return entries.of_file(stored)


def move_folder(
    owner_id: int,
    folder_id: int,
    new_name: object = None,
    parent_id: int | None = None,
    on_conflict: str = tree.FAIL,
    if_match: str | None = None,
) -> Entry:
    """Rename the folder and/or move it (with all it holds) under another folder.
    Moving it into itself or a folder below it is BadRequest (400); PreconditionFailed
    if `if_match` is not its ETag (anything below it changed)."""
    name = None if new_name is None else names.validate(new_name, "name")
    with database_proxy.atomic():
        tree.lock(owner_id)
        folder = movable_folder(owner_id, folder_id)
        entries.require_etag(if_match, entries.folder_etag(folder.id, folder.version))
        target = parent_of(folder)
        if parent_id is not None:
            target = tree.live_folder(owner_id, parent_id).id
            if folder.id in {row[0] for row in tree.ancestors(target)}:
                raise BadRequest("A folder cannot be moved into itself or a folder inside it")
        name = folder.name if name is None else name
        if (target, name) == (folder.parent_id, folder.name):
            return entries.of_folder(folder)
        name = tree.place_name(owner_id, target, name, on_conflict)
        Folder.update(parent=target, name=name).where(Folder.id == folder.id).execute()
        kind = changes.MOVED if target != folder.parent_id else changes.RENAMED
        changes.record(owner_id, kind, changes.FOLDER, folder.id, target, name)
        tree.bump([folder.parent_id, target])
        folder = Folder.get_by_id(folder.id)
    return entries.of_folder(folder)


def movable_folder(owner_id: int, folder_id: int) -> Folder:
    folder = tree.live_folder(owner_id, folder_id)
    if folder.parent_id is None:
        raise Forbidden(ROOT_STAYS)
    return folder


def parent_of(folder: Folder) -> int:
    """The parent of a folder other than the root (see movable_folder)."""
    if folder.parent_id is None:
        raise Forbidden(ROOT_STAYS)
    return folder.parent_id


def copy_file(
    owner_id: int,
    file_id: int,
    folder_id: int | None = None,
    new_name: object = None,
    on_conflict: str = tree.FAIL,
) -> Entry:
    """A new file with the same content (no bytes copied) in the folder (default: the
    same one), under the same name unless another is given."""
    name = None if new_name is None else names.validate(new_name, "name")
    with database_proxy.atomic():
        tree.lock(owner_id)
        stored = folders.file_of(owner_id, file_id)
        target = stored.folder_id if folder_id is None else tree.live_folder(owner_id, folder_id).id
        quota.check(owner_id, stored.size, what="This copy")
        name = tree.place_name(owner_id, target, stored.name if name is None else name, on_conflict)
        copy = new_file(owner_id, target, name, stored, stored.modified_at)
        changes.record(owner_id, changes.CREATED, changes.FILE, copy.id, target, name)
        tree.bump([target])
    return entries.of_file(copy)


def new_file(
    owner_id: int, folder_id: int, name: str, like: StoredFile, modified_at: datetime
) -> StoredFile:
    share(like.sha256, like.blob_key, like.size)
    return StoredFile.create(
        owner=owner_id,
        folder=folder_id,
        name=name,
        blob_key=like.blob_key,
        size=like.size,
        sha256=like.sha256,
        created_at=utc_now(),
        modified_at=modified_at,
    )


def share(sha256: str, blob_key: str, size: int, count: int = 1) -> None:
    """Count `count` more files of stored content (a row older than Blob gets its Blob)."""
    if not content.add_references(sha256, count):
        Blob.insert(sha256=sha256, store_key=blob_key, size=size, ref_count=count + 1).execute()


def copy_folder(
    owner_id: int,
    folder_id: int,
    parent_id: int | None = None,
    new_name: object = None,
    on_conflict: str = tree.FAIL,
) -> Entry:
    """A copy of the folder and everything in it (no bytes copied) under the parent
    (default: the same one). Copying a folder into itself is BadRequest."""
    name = None if new_name is None else names.validate(new_name, "name")
    with database_proxy.atomic():
        tree.lock(owner_id)
        folder = movable_folder(owner_id, folder_id)
        target = (
            parent_of(folder) if parent_id is None else tree.live_folder(owner_id, parent_id).id
        )
        subtree = tree.descendants(folder.id)
        if target in subtree:
            raise BadRequest("A folder cannot be copied into itself or a folder inside it")
        files = files_in(subtree)
        quota.check(owner_id, sum(f.size for f in files), what="This copy")
        name = tree.place_name(owner_id, target, folder.name if name is None else name, on_conflict)
        top = _copy_tree(owner_id, folder, target, name, files)
        tree.bump([target])
    return entries.of_folder(top)


def files_in(folder_ids: list[int]) -> list[StoredFile]:
    found: list[StoredFile] = []
    for start in range(0, len(folder_ids), CHUNK):
        chunk = folder_ids[start : start + CHUNK]
        found.extend(StoredFile.select().where(StoredFile.folder.in_(chunk)))
    return found


def _copy_tree(
    owner_id: int, folder: Folder, target: int, name: str, files: list[StoredFile]
) -> Folder:
    now = utc_now()
    by_folder: dict[int, list[StoredFile]] = {}
    for stored in files:
        by_folder.setdefault(stored.folder_id, []).append(stored)
    top = Folder.create(owner=owner_id, parent=target, name=name, modified_at=now)
    changes.record(owner_id, changes.CREATED, changes.FOLDER, top.id, target, name)
    queue = deque([(folder.id, top.id)])
    while queue:
        old_id, new_id = queue.popleft()
        for stored in by_folder.get(old_id, []):
            copy = StoredFile.create(
                owner=owner_id,
                folder=new_id,
                name=stored.name,
                blob_key=stored.blob_key,
                size=stored.size,
                sha256=stored.sha256,
                created_at=now,
                modified_at=stored.modified_at,
            )
            changes.record(owner_id, changes.CREATED, changes.FILE, copy.id, new_id, copy.name)
        for child in Folder.select().where(Folder.parent == old_id):
            made = Folder.create(owner=owner_id, parent=new_id, name=child.name, modified_at=now)
            changes.record(owner_id, changes.CREATED, changes.FOLDER, made.id, new_id, made.name)
            queue.append((child.id, made.id))
    for sha256, count in Counter(f.sha256 for f in files).items():
        like = next(f for f in files if f.sha256 == sha256)
        share(sha256, like.blob_key, like.size, count)
    return top
