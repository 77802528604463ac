"""What a client is told about one file or folder: the entries of listings and answers."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, NamedTuple

import peewee

from pcloud.db import rows
from pcloud.errors import PreconditionFailed
from pcloud.models import Folder, MediaInfo, StoredFile, micros
from pcloud.services import names

Media = tuple[Any, ...]  # a row of MEDIA_COLUMNS (taken_at, offset, width, height, duration)


class Entry(NamedTuple):  # a tuple: made ten thousand times a listing, cheaply
    type: str  # "file" or "folder"
    id: int
    name: str
    parent_id: int | None  # the folder it is in (None: it is the root, or in the trash)
    size: int | None  # None for folders
    modified_micros: int  # microseconds since the epoch: cheap to sort and to format
    sha256: str | None  # None for folders
    etag: str  # a file's SHA-256; a folder's changes whenever anything below it does
    media: Media | None = None  # a file's MEDIA_COLUMNS, when its content has been looked at

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
            **media_json(self.media),
        }


# A file's photo details, from its content's MediaInfo row (pcloud.services.thumbnails):
# null until pcloud has looked at the content (on a thumbnail request, or in the
# background shortly after the upload), and for content that is no picture or video.
MEDIA_COLUMNS = (
    MediaInfo.taken_at,
    MediaInfo.taken_offset,
    MediaInfo.width,
    MediaInfo.height,
    MediaInfo.duration,
)
NO_MEDIA = {"taken_at": None, "width": None, "height": None, "duration": None}


def media_json(media: Media | None) -> dict[str, Any]:
    """{"taken_at", "width", "height", "duration"} of a row of MEDIA_COLUMNS."""
    if media is None:
        return NO_MEDIA
    taken, offset, width, height, duration = media
    return {
        "taken_at": None if taken is None else taken_at_text(taken, offset),
        "width": width,
        "height": height,
        "duration": duration,
    }


def taken_at_text(moment: int | datetime, offset: int | None) -> str:
    """A capture time as the camera's clock showed it, with its offset from UTC:
    '2024-05-01T14:00:00+02:00'; without a known offset, the camera's local time with no
    zone ('2024-05-01T14:00:00')."""
    if isinstance(moment, datetime):  # through a model query rather than a raw cursor
        moment = micros(moment)
    seconds = moment // 1_000_000
    if offset is None:
        return _iso_second(seconds)
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset), 60)
    return f"{_iso_second(seconds + offset * 60)}{sign}{hours:02d}:{minutes:02d}"


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
    *MEDIA_COLUMNS,
)


def with_media(query: Any) -> Any:
    """A query of FILE_COLUMNS from StoredFile, joined to its content's MediaInfo."""
    return query.join(MediaInfo, peewee.JOIN.LEFT_OUTER, on=(MediaInfo.sha256 == StoredFile.sha256))


class FILE_ROW(NamedTuple):  # noqa: N801 (names the columns of a raw row, for sort keys)
    id: int
    name: str
    parent_id: int
    size: int
    modified_micros: int
    sha256: str
    taken_micros: int | None
    taken_offset: int | None
    width: int | None
    height: int | None
    duration: float | None


def file_row_json(row: tuple[Any, ...]) -> dict[str, Any]:
    """Entry.to_json() of a file, straight from a raw row of FILE_COLUMNS: a listing of
    thousands of files makes no model instances on the way."""
    file_id, name, folder_id, size, modified, sha256, taken, offset, width, height, duration = row
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
        "taken_at": None if taken is None else taken_at_text(taken, offset),
        "width": width,
        "height": height,
        "duration": duration,
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


def of_file(stored: StoredFile, media: Media | None = None) -> Entry:
    """The entry of a file; its photo details only when given (`media_of` reads them)."""
    return Entry(
        "file",
        stored.id,
        stored.name,
        stored.folder_id,
        stored.size,
        micros(stored.modified_at),
        stored.sha256,
        stored.sha256,
        media,
    )


def media_of(sha256: str) -> Media | None:
    """The MEDIA_COLUMNS of a content, if pcloud has looked at it."""
    query = MediaInfo.select(*MEDIA_COLUMNS).where(MediaInfo.sha256 == sha256)
    return next(rows(query), None)


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
