"""A user's tree by path (`/Photos/2024/beach.jpg`), for clients that name things by
path rather than by id (WebDAV). The same folders and files as the API's, read the same
way: only what hangs from the user's root is found, so nothing in the trash is.
"""

from __future__ import annotations

from typing import NamedTuple

from pcloud.db import PreparedQuery
from pcloud.models import Folder, StoredFile, database_proxy, micros
from pcloud.services import names

MAX_SEGMENTS = 256


class FolderRow(NamedTuple):
    id: int
    name: str
    parent_id: int | None
    version: int
    created_micros: int
    modified_micros: int


class FileRow(NamedTuple):
    id: int
    name: str
    folder_id: int
    size: int
    sha256: str
    blob_key: str
    created_micros: int
    modified_micros: int


_FOLDER_COLUMNS = (
    Folder.id,
    Folder.name,
    Folder.parent,
    Folder.version,
    Folder.created_at,
    Folder.modified_at,
)
_FILE_COLUMNS = (
    StoredFile.id,
    StoredFile.name,
    StoredFile.folder,
    StoredFile.size,
    StoredFile.sha256,
    StoredFile.blob_key,
    StoredFile.created_at,
    StoredFile.modified_at,
)


def segments(path: str) -> list[str] | None:
    """The names along a path, NFC, or None for one that cannot name anything
    (`..`, `.`, NUL, too deep)."""
    parts = [part for part in path.split("/") if part]
    if len(parts) > MAX_SEGMENTS or any(part in (".", "..") or "\x00" in part for part in parts):
        return None
    return [names.normalize(part) for part in parts]


# Every WebDAV request walks a path: these are built once (see PreparedQuery).
_ROOT = PreparedQuery(
    lambda owner_id: Folder.select(*_FOLDER_COLUMNS).where(Folder.root_of == owner_id), -9101
)
_CHILD_FOLDER = PreparedQuery(
    lambda owner_id, parent_id, name: Folder.select(*_FOLDER_COLUMNS).where(
        (Folder.owner == owner_id) & (Folder.parent == parent_id) & (Folder.name == name)
    ),
    -9102,
    -9103,
    "\x01folder name",
)
_CHILD_FILE = PreparedQuery(
    lambda owner_id, folder_id, name: StoredFile.select(*_FILE_COLUMNS).where(
        (StoredFile.owner == owner_id)
        & (StoredFile.folder == folder_id)
        & (StoredFile.name == name)
    ),
    -9104,
    -9105,
    "\x01file name",
)


def root_folder(owner_id: int) -> FolderRow | None:
    row = _ROOT.execute(owner_id).fetchone()
    return FolderRow(*row) if row else None


def child_folder(owner_id: int, parent_id: int, name: str) -> FolderRow | None:
    row = _CHILD_FOLDER.execute(owner_id, parent_id, name).fetchone()
    return FolderRow(*row) if row else None


def child_file(owner_id: int, folder_id: int, name: str) -> FileRow | None:
    row = _CHILD_FILE.execute(owner_id, folder_id, name).fetchone()
    return FileRow(*row) if row else None


def resolve(
    owner_id: int, parts: list[str], folders: dict[str, FolderRow | None] | None = None
) -> FolderRow | FileRow | None:
    """The folder or file at that path in the user's tree (None: nothing there).
    `folders`, if given, remembers the folders found by path ("a/b"), for the next call
    of the same request (WebDAV asks for a resource and then for its parent)."""
    known = folders if folders is not None else {}
    if "" not in known:
        known[""] = root_folder(owner_id)
    folder = known[""]
    for index, part in enumerate(parts):
        if folder is None:
            return None
        if index == len(parts) - 1:
            found_file = child_file(owner_id, folder.id, part)
            if found_file is not None:
                return found_file
        prefix = "/".join(parts[: index + 1])
        if prefix not in known:
            known[prefix] = child_folder(owner_id, folder.id, part)
        folder = known[prefix]
    return folder


def children(folder_id: int) -> tuple[list[FolderRow], list[FileRow]]:
    """What the folder holds, straight from the cursor (a folder may hold 10,000 files)."""
    folders = database_proxy.execute(
        Folder.select(*_FOLDER_COLUMNS).where(Folder.parent == folder_id)
    ).fetchall()
    files = database_proxy.execute(
        StoredFile.select(*_FILE_COLUMNS).where(StoredFile.folder == folder_id)
    ).fetchall()
    return [FolderRow(*row) for row in folders], [FileRow(*row) for row in files]


def file_row(stored: StoredFile) -> FileRow:
    return FileRow(
        stored.id,
        stored.name,
        stored.folder_id,
        stored.size,
        stored.sha256,
        stored.blob_key,
        micros(stored.created_at),
        micros(stored.modified_at),
    )
