"""A user's tree by path (`/Photos/2024/beach.jpg`), for clients that name things by
path rather than by id (WebDAV). The same folders and files as the API's, read the same
way: only what hangs from the user's root is found, so nothing in the trash is.
"""

from __future__ import annotations

from typing import NamedTuple

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


def root_folder(owner_id: int) -> FolderRow | None:
    query = Folder.select(*_FOLDER_COLUMNS).where(Folder.root_of == owner_id)
    row = database_proxy.execute(query).fetchone()
    return FolderRow(*row) if row else None


def child_folder(owner_id: int, parent_id: int, name: str) -> FolderRow | None:
    query = Folder.select(*_FOLDER_COLUMNS).where(
        (Folder.owner == owner_id) & (Folder.parent == parent_id) & (Folder.name == name)
    )
    row = database_proxy.execute(query).fetchone()
    return FolderRow(*row) if row else None


def child_file(owner_id: int, folder_id: int, name: str) -> FileRow | None:
    query = StoredFile.select(*_FILE_COLUMNS).where(
        (StoredFile.owner == owner_id)
        & (StoredFile.folder == folder_id)
        & (StoredFile.name == name)
    )
    row = database_proxy.execute(query).fetchone()
    return FileRow(*row) if row else None


def resolve(owner_id: int, parts: list[str]) -> FolderRow | FileRow | None:
    """The folder or file at that path in the user's tree (None: nothing there)."""
    folder = root_folder(owner_id)
    if folder is None:
        return None
    for index, part in enumerate(parts):
        found: FolderRow | FileRow | None = None
        if index == len(parts) - 1:
            found = child_file(owner_id, folder.id, part)
        if found is None:
            found = child_folder(owner_id, folder.id, part)
        if found is None:
            return None
        if isinstance(found, FileRow):
            return found
        folder = found
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
