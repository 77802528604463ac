"""A folder and everything below it as one ZIP archive, made as it is sent.

The archive is built by zipstream-ng without compression (photos and videos do not
shrink, and storing costs no CPU), so its size is known before the first byte and each
file's bytes are read from the store in pieces only when the archive reaches them:
memory stays flat however large the folder, and nothing is written to disk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from zipstream import ZIP_STORED, ZipStream

from pcloud.models import Folder, StoredFile, database_proxy
from pcloud.services import folders, tree
from pcloud.storage.base import BlobStore

PIECE = 1024 * 1024  # read from the store this much at a time


@dataclass(frozen=True)
class FolderArchive:
    """What a download of a folder as ZIP needs: its file name, its exact length, and
    the bytes (an iterator that reads the store lazily)."""

    name: str
    length: int
    chunks: Iterator[bytes]


def folder_archive(blobs: BlobStore, owner_id: int, folder_id: int | None) -> FolderArchive:
    """The user's folder (None: the root) as a ZIP whose member paths are the folders'
    and files' names below it. NotFound for a folder not theirs or in the trash."""
    folder = folders.get(owner_id, folder_id)
    paths = _folder_paths(folder)
    archive = ZipStream(compress_type=ZIP_STORED, sized=True)
    with_files: set[int] = set()
    query = (
        StoredFile.select(StoredFile.folder, StoredFile.name, StoredFile.blob_key, StoredFile.size)
        .where(StoredFile.folder.in_(list(paths)))
        .order_by(StoredFile.folder, StoredFile.name)
    )
    for folder_ref, name, blob_key, size in database_proxy.execute(query).fetchall():
        with_files.add(folder_ref)
        archive.add(_read(blobs, blob_key), paths[folder_ref] + name, size=size)
    for folder_ref, path in paths.items():
        if path and folder_ref not in with_files:
            archive.add(None, path)  # an empty folder stays in the archive
    return FolderArchive(f"{folder.name or 'pcloud'}.zip", len(archive), iter(archive))


def _folder_paths(top: Folder) -> dict[int, str]:
    """Each folder at or below `top`, by id, with its path inside the archive ("" for
    `top`, "holiday/beach/" below it). Trashed folders have no parent: never included."""
    ids = tree.descendants(top.id)
    rows: dict[int, tuple[int | None, str]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        query = Folder.select(Folder.id, Folder.parent, Folder.name).where(Folder.id.in_(chunk))
        for folder_id, parent_id, name in database_proxy.execute(query).fetchall():
            rows[folder_id] = (parent_id, name)
    paths: dict[int, str] = {top.id: ""}

    def path_of(folder_id: int) -> str:
        chain = []
        while folder_id not in paths:
            parent_id, name = rows[folder_id]
            chain.append((folder_id, name))
            folder_id = parent_id  # type: ignore[assignment]  # below top: never None
        path = paths[folder_id]
        for each_id, name in reversed(chain):
            path = paths[each_id] = f"{path}{name}/"
        return path

    for folder_id in rows:
        path_of(folder_id)
    return paths


def _read(blobs: BlobStore, blob_key: str) -> Iterator[bytes]:
    """A blob's bytes in pieces, opened only when the archive reaches them."""
    with blobs.open(blob_key) as stream:
        while piece := stream.read(PIECE):
            yield piece
