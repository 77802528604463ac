"""What a client is told about one file or folder: the entries of listings and answers."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, NamedTuple

from pcloud.errors import PreconditionFailed
from pcloud.models import Folder, StoredFile, micros
from pcloud.services import names


class Entry(NamedTuple):  # a tuple: made ten thousand times a listing, cheaply
    type: str  # "file" or "folder"
    id: int
    name: str
    parent_id: int | None  # the folder it is in (None: it is the root, or in the trash)
    size: int | None  # None for folders
    modified_micros: int  # microseconds since the epoch: cheap to sort and to format
    sha256: str | None  # None for folders
    etag: str  # a file's SHA-256; a folder's changes whenever anything below it does

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "id": self.id,
            "name": self.name,
            "parent_id": self.parent_id,
            "size": self.size,
            "modified_at": iso_of_micros(self.modified_micros),
            "sha256": self.sha256,
            "etag": self.etag,
            "file_type": names.file_type(self.name) if self.type == "file" else None,
        }


def iso_millis(moment: datetime) -> str:
    """'2024-05-01T12:00:00.123Z': ISO 8601 UTC to the millisecond, as phones keep times."""
    return iso_of_micros(micros(moment))


def iso_of_micros(moment: int) -> str:
    """iso_millis() of microseconds since the epoch, as UtcDateTimeField stores them."""
    seconds, rest = divmod(moment, 1_000_000)
    return f"{_iso_second(seconds)}.{rest // 1000:03d}Z"


@lru_cache(maxsize=4096)  # photos taken in one burst share their second
def _iso_second(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


FILE_COLUMNS = (
    StoredFile.id,
    StoredFile.name,
    StoredFile.folder,
    StoredFile.size,
    StoredFile.modified_at,
    StoredFile.sha256,
)


class FILE_ROW(NamedTuple):  # noqa: N801 (names the columns of a raw row, for sort keys)
    id: int
    name: str
    parent_id: int
    size: int
    modified_micros: int
    sha256: str


def file_row_json(row: tuple[Any, ...]) -> dict[str, Any]:
    """Entry.to_json() of a file, straight from a raw row of FILE_COLUMNS: a listing of
    thousands of files makes no model instances on the way."""
    file_id, name, folder_id, size, modified, sha256 = row
    return {
        "type": "file",
        "id": file_id,
        "name": name,
        "parent_id": folder_id,
        "size": size,
        "modified_at": iso_of_micros(modified),
        "sha256": sha256,
        "etag": sha256,
        "file_type": names.file_type(name),
    }


def folder_etag(folder_id: int, version: int) -> str:
    return f"d{folder_id}v{version}"


def require_etag(expected: str | None, actual: str) -> None:
    """PreconditionFailed (412) unless `expected` (a client's If-Match) is None or `actual`:
    the client's change was based on a state that has changed since."""
    if expected is not None and expected != actual:
        raise PreconditionFailed(
            "It changed since you last read it (If-Match does not match its ETag): "
            "read it again, then retry",
            etag=actual,
        )


def of_file(stored: StoredFile) -> Entry:
    return Entry(
        "file",
        stored.id,
        stored.name,
        stored.folder_id,
        stored.size,
        micros(stored.modified_at),
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
        micros(folder.modified_at),
        None,
        folder_etag(folder.id, folder.version),
    )
