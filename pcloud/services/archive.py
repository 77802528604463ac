"""A folder as one ZIP, streamed as it is made: no temporary file, memory flat whatever
its size (zipstream-ng writes each entry's header, then its bytes as they are read from
the store, then the central directory). Stored, not compressed: photos and videos do not
shrink, and a stored ZIP's length is known before the first byte (Content-Length, so
browsers show progress). Used by share links and by the signed-in web app alike."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from zipstream import ZIP_STORED, ZipStream  # type: ignore[import-untyped]

from pcloud.models import Folder, StoredFile
from pcloud.services import tree
from pcloud.storage import BlobStore

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Archive:
    name: str  # the download's name, `<folder>.zip`
    stream: ZipStream  # iterate it for the bytes
    size: int
    files: int


def folder_archive(blobs: BlobStore, folder: Folder) -> Archive:
    """The folder and everything below it (not in the trash) as a ZIP, paths relative to
    the folder. The caller has checked that the folder may be read."""
    archive = ZipStream(compress_type=ZIP_STORED, sized=True)
    count = 0
    for path, stored in _files_below(folder):
        archive.add(_chunks(blobs, stored.blob_key), path, size=stored.size)
        count += 1
    return Archive(f"{folder.name or 'files'}.zip", archive, len(archive), count)


def _files_below(folder: Folder) -> Iterator[tuple[str, StoredFile]]:
    """(path inside the archive, file) of every live file at or below the folder."""
    folder_ids = tree.descendants(folder.id)
    rows = {f.id: f for f in Folder.select().where(Folder.id.in_(folder_ids))}
    paths: dict[int, str | None] = {folder.id: ""}

    def path_of(folder_id: int) -> str | None:
        if folder_id in paths:
            return paths[folder_id]
        row = rows.get(folder_id)
        if row is None or row.trashed_at is not None or row.parent_id is None:
            return None
        parent = path_of(row.parent_id)
        paths[folder_id] = None if parent is None else f"{parent}{row.name}/"
        return paths[folder_id]

    for start in range(0, len(folder_ids), 500):
        files = (
            StoredFile.select()
            .where(StoredFile.folder.in_(folder_ids[start : start + 500]))
            .order_by(StoredFile.folder, StoredFile.name)
        )
        for stored in files:
            prefix = path_of(stored.folder_id)
            if prefix is not None:
                yield prefix + stored.name, stored


def _chunks(blobs: BlobStore, key: str) -> Iterator[bytes]:
    """The blob's bytes, opened only when the archive reaches it."""
    with blobs.open(key) as source:
        while chunk := source.read(CHUNK):
            yield chunk
