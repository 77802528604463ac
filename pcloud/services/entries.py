"""What a client is told about one file or folder: the entries of listings and answers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from pcloud.models import Folder, StoredFile
from pcloud.services import names


@dataclass(frozen=True)
class Entry:
    type: str  # "file" or "folder"
    id: int
    name: str
    parent_id: int | None  # the folder it is in (None: the root, or in the trash)
    size: int | None  # None for folders
    modified_at: datetime
    sha256: str | None  # None for folders
    etag: str  # a file's SHA-256; a folder's changes whenever anything below it does

    def to_json(self) -> dict:
        return {
            "type": self.type,
            "id": self.id,
            "name": self.name,
            "parent_id": self.parent_id,
            "size": self.size,
            "modified_at": iso_millis(self.modified_at),
            "sha256": self.sha256,
            "etag": self.etag,
            "file_type": names.file_type(self.name) if self.type == "file" else None,
        }


def iso_millis(moment: datetime) -> str:
    """'2024-05-01T12:00:00.123Z': ISO 8601 UTC to the millisecond, as phones keep times."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def folder_etag(folder_id: int, version: int) -> str:
    return f"d{folder_id}v{version}"


def of_file(stored: StoredFile) -> Entry:
    return Entry(
        "file",
        stored.id,
        stored.name,
        stored.folder_id,
        stored.size,
        stored.modified_at,
        stored.sha256,
        stored.sha256,
    )


def of_folder(folder: Folder) -> Entry:
    return Entry(
        "folder",
        folder.id,
        folder.name,
        folder.parent_id,
        None,
        folder.modified_at,
        None,
        folder_etag(folder.id, folder.version),
    )
