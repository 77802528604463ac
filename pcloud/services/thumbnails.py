"""Thumbnails and photo details of stored content, made once per content.

A content's details (capture time, size in pixels, duration) are a MediaInfo row and
its thumbnails are blobs in the store named by Thumbnail rows, all keyed by the
content's SHA-256: one set per content whoever owns it, and never stale, since content
never changes. They are made on first request, or ahead of it by `scan_new_content`
(run in the background by `pcloud serve` after uploads, at low priority); gc forgets
them when the content goes (`forget_unused`).

Decoding happens in decoder processes (pcloud.media.pool), never in the server: a
broken or hostile file answers 415 or 422 within the pool's time limit.
"""

from __future__ import annotations

import fcntl
import logging
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import filetype
import peewee

from pcloud.db import PreparedSQL, rows
from pcloud.errors import (
    BadRequest,
    PcloudError,
    ServiceUnavailable,
    UnprocessableEntity,
    UnsupportedMediaType,
)
from pcloud.media.pool import DecodeFailed, DecoderPool, PoolBusy
from pcloud.models import Blob, MediaInfo, Thumbnail, database_proxy, utc_now
from pcloud.services.tree import chain_sql
from pcloud.storage import BlobStore

log = logging.getLogger("pcloud.media")

SIZES = (256, 1024)  # pixels on the long side
FORMATS = ("webp", "jpeg")
MIME_TYPES = {"webp": "image/webp", "jpeg": "image/jpeg"}
BACKGROUND_SIZE, BACKGROUND_FORMAT = 256, "webp"  # what the background makes ahead
PENDING, IMAGE, VIDEO, NOT_MEDIA, BAD = "pending", "image", "video", "none", "bad"
# Content whose first bytes name no picture or video format: the background pass sends
# it to no decoder (a request for its thumbnail still tries one, for formats without a
# signature). Most uploads of a busy server are such content; decoding each cost a
# decoder round trip and a write.
UNSNIFFED = "skipped"
LOCK_RETRY_SECONDS = 5.0  # how often a worker without the background's lock asks again
SNIFF_BYTES = 262  # what filetype needs to tell every format it knows
# A claim older than this belongs to a worker that died: another may take the content.
CLAIM_EXPIRES = timedelta(minutes=10)
NOT_MEDIA_TEXT = "This file is not a picture or a video that pcloud can show"


@dataclass(frozen=True)
class ThumbnailRef:
    store_key: str
    sha256: str
    size: int
    format: str

    @property
    def etag(self) -> str:
        return f"{self.sha256[:32]}-{self.size}{self.format[0]}"

    @property
    def mime_type(self) -> str:
        return MIME_TYPES[self.format]


def parse_size(text: str | None) -> int:
    if text is None:
        return SIZES[0]
    if not text.isdigit() or int(text) not in SIZES:
        raise BadRequest(f"'size' must be one of {', '.join(map(str, SIZES))}")
    return int(text)


def choose_format(accepts_webp: bool) -> str:
    return "webp" if accepts_webp else "jpeg"


class Thumbnailer:
    """The decoder pools of one server process: one for requests, one (at the lowest
    priority, a single process) for the background."""

    def __init__(self, workers: int) -> None:
        self.requests = DecoderPool(max(1, workers))
        self.background = DecoderPool(1, niceness=19)
        self.background_enabled = workers > 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.requests.close()
        self.background.close()

    def start_background(self, blobs: BlobStore, release: Any, lock_path: Path) -> None:
        """Make details and thumbnails of new content in a thread, while the process
        serves (see scan_new_content). `release()` gives the thread's database
        connection back after each round. One worker process of a machine does it at a
        time, the one holding an flock() on `lock_path`: every worker scanning every
        new upload cost each upload twice the looking (nodes share the work through the
        database's claims)."""
        if not self.background_enabled or self._thread is not None:
            return

        def work() -> None:
            with _one_per_machine(lock_path, self._stop) as chosen:
                if chosen:
                    scan()

        def scan() -> None:
            after_id = 0
            while not self._stop.is_set():
                decoded, before = 0, after_id
                try:
                    decoded, after_id = scan_new_content(blobs, self.background, after_id)
                except Exception:
                    log.exception("Making thumbnails in the background failed")
                finally:
                    release()
                # Pictures and videos: the next batch at once (decoding paces it). Only
                # other content: a batch a second, so that a flood of small uploads (a
                # folder of documents syncing) pays for little looking at meanwhile;
                # the rest waits for a quieter moment.
                self._stop.wait(0.05 if decoded else 1.0 if after_id != before else 3.0)

        self._thread = threading.Thread(target=work, name="pcloud-thumbnails", daemon=True)
        self._thread.start()


@contextmanager
def _one_per_machine(lock_path: Path, stop: threading.Event) -> Iterator[bool]:
    """Wait (until `stop`) for the flock on `lock_path`, held until the block ends;
    True when it was got. A worker that dies lets the next one take it over."""
    try:
        lock_file = open(lock_path, "a+b")  # noqa: SIM115 (held for the thread's life)
    except OSError:
        log.exception("No lock file for the background thumbnails at %s", lock_path)
        yield False
        return
    with lock_file:
        while not stop.is_set():
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                stop.wait(LOCK_RETRY_SECONDS)
                continue
            yield True
            return
        yield False


def thumbnail(
    blobs: BlobStore,
    pool: DecoderPool,
    sha256: str,
    blob_key: str,
    size: int,
    image_format: str,
) -> ThumbnailRef:
    """The thumbnail of a content, made now if it has none. Raises UnsupportedMediaType
    (415) for content that is no picture or video, UnprocessableEntity (422) for one that
    cannot be decoded, ServiceUnavailable (503) when every decoder stays busy."""
    found = _stored_thumbnail(sha256, size, image_format)
    if found is not None:
        return found
    info = MediaInfo.get_or_none(MediaInfo.sha256 == sha256)
    if info is not None:
        _refuse_unless_media(info.status, info.error)
    try:
        with _local_copy(blobs, blob_key) as path:
            decoded = pool.decode(path, size, image_format)
    except PoolBusy:
        raise ServiceUnavailable("Every thumbnail maker is busy: try again shortly") from None
    except DecodeFailed as error:
        details = {"status": BAD, "error": f"The file cannot be decoded ({error})"}
        _record_details(sha256, details)
        raise UnprocessableEntity(details["error"]) from None
    except FileNotFoundError:
        raise UnprocessableEntity("The file's bytes are missing") from None
    _record_details(sha256, decoded.details)
    _refuse_unless_media(decoded.details.get("status"), decoded.details.get("error"))
    if not decoded.thumbnail:
        raise UnprocessableEntity("No thumbnail could be made of this file")
    return _store_thumbnail(blobs, sha256, size, image_format, decoded.thumbnail)


@dataclass(frozen=True)
class FileThumbnail:
    """A file as a thumbnail request needs it: whose it is, whether it is live, and its
    content's thumbnail of the size and format asked for, if made."""

    owner_id: int
    live: bool  # neither the file nor a folder above it is in the trash
    sha256: str
    blob_key: str
    made: ThumbnailRef | None  # the thumbnail, if made already


# The one statement a thumbnail already made costs: the file, its content's thumbnail of
# one size and format (if made), and whether a folder above it is in the trash.
_FILE_THUMBNAIL = PreparedSQL(
    lambda param: (
        chain_sql(f"(SELECT folder_id FROM stored_file WHERE id = {param})")
        + " SELECT s.owner_id, s.folder_id, s.sha256, s.blob_key, t.store_key,"
        " EXISTS (SELECT 1 FROM chain WHERE trashed_at IS NOT NULL)"
        " FROM stored_file s LEFT JOIN thumbnail t"
        f" ON t.sha256 = s.sha256 AND t.size = {param} AND t.format = {param}"
        f" WHERE s.id = {param}"
    )
)


def file_thumbnail(file_id: int, size: int, image_format: str) -> FileThumbnail | None:
    """The file of that id, whoever owns it (None: no such file), and its thumbnail of
    that size and format if made: the caller checks whose it is."""
    row = _FILE_THUMBNAIL.execute(file_id, size, image_format, file_id).fetchone()
    if row is None:
        return None
    owner_id, folder_id, sha256, blob_key, key, trashed_above = row
    made = None if key is None else ThumbnailRef(key, sha256, size, image_format)
    live = folder_id is not None and not trashed_above
    return FileThumbnail(owner_id, live, sha256, blob_key, made)


def _refuse_unless_media(status: str | None, error: str | None) -> None:
    if status == NOT_MEDIA:
        raise UnsupportedMediaType(NOT_MEDIA_TEXT)
    if status == BAD:
        raise UnprocessableEntity(error or "The file cannot be decoded")


def _stored_thumbnail(sha256: str, size: int, image_format: str) -> ThumbnailRef | None:
    key = (
        Thumbnail.select(Thumbnail.store_key)
        .where(
            (Thumbnail.sha256 == sha256)
            & (Thumbnail.size == size)
            & (Thumbnail.format == image_format)
        )
        .scalar()
    )
    return None if key is None else ThumbnailRef(key, sha256, size, image_format)


def _store_thumbnail(
    blobs: BlobStore, sha256: str, size: int, image_format: str, data: bytes
) -> ThumbnailRef:
    """Keep the thumbnail's bytes as a blob and name them; when another worker was
    quicker, its thumbnail is the one, and ours goes."""
    stored = blobs.put([data])
    try:
        with database_proxy.atomic():
            Thumbnail.create(
                sha256=sha256,
                size=size,
                format=image_format,
                store_key=stored.key,
                bytes=stored.size,
            )
    except peewee.IntegrityError:
        blobs.delete(stored.key)
        found = _stored_thumbnail(sha256, size, image_format)
        if found is None:
            raise
        return found
    return ThumbnailRef(stored.key, sha256, size, image_format)


DETAIL_FIELDS = ("width", "height", "duration", "taken_at", "taken_offset", "error")


def _record_details(sha256: str, details: dict[str, Any]) -> None:
    status = details.get("status")
    if status not in (IMAGE, VIDEO, NOT_MEDIA, BAD):
        status, details = BAD, {"error": "The decoder answered nonsense"}
    values: dict[str, Any] = {field: details.get(field) for field in DETAIL_FIELDS}
    for field in ("width", "height", "taken_at", "taken_offset"):
        if not isinstance(values[field], int) or isinstance(values[field], bool):
            values[field] = None
    if not isinstance(values["duration"], (int, float)):
        values["duration"] = None
    if values["error"] is not None:
        values["error"] = str(values["error"])[:250]
    values.update(status=status, claimed_at=utc_now())
    with database_proxy.atomic():
        (
            MediaInfo.insert(sha256=sha256, **values)
            .on_conflict(
                conflict_target=[MediaInfo.sha256],
                update={getattr(MediaInfo, field): value for field, value in values.items()},
            )
            .execute()
        )


@contextmanager
def _local_copy(blobs: BlobStore, key: str) -> Iterator[str]:
    """A path on this machine holding the blob's bytes: its own, or a temporary copy for
    a backend without local files (S3)."""
    path = blobs.local_path(key)
    if path is not None:
        if not path.exists():
            raise FileNotFoundError(key)
        yield str(path)
        return
    with tempfile.NamedTemporaryFile(prefix="pcloud-thumb-") as copy:
        with blobs.open(key) as source:
            shutil.copyfileobj(source, copy, 1024 * 1024)
        copy.flush()
        yield copy.name


def scan_new_content(
    blobs: BlobStore, pool: DecoderPool, after_id: int = 0, batch: int = 200
) -> tuple[int, int]:
    """Make the details and the background thumbnail of content that has none yet, a
    few at a time, in the order it was stored, from after the Blob id `after_id`;
    returns (how many were sent to a decoder, the id to go on after). A caller that keeps the id
    reads only new content from then on, not the whole table each time. Each content
    is claimed first (its MediaInfo row, inserted as pending), so that the workers of
    every process and node share the work without doing any twice."""
    stale = utc_now() - CLAIM_EXPIRES
    candidates = list(
        rows(
            Blob.select(Blob.id, Blob.sha256, Blob.store_key, Blob.size)
            .join(MediaInfo, peewee.JOIN.LEFT_OUTER, on=(MediaInfo.sha256 == Blob.sha256))
            .where(
                (Blob.id > after_id)
                & (
                    MediaInfo.id.is_null()
                    | ((MediaInfo.status == PENDING) & (MediaInfo.claimed_at < stale))
                )
            )
            .order_by(Blob.id)
            .limit(batch)
        )
    )
    handled = 0
    unlikely: list[str] = []
    for blob_id, sha256, key, size in candidates:
        after_id = blob_id
        if not size or not _may_be_media(blobs, key):
            unlikely.append(sha256)
            continue
        if not _claim(sha256):
            continue
        handled += 1
        try:
            thumbnail(blobs, pool, sha256, key, BACKGROUND_SIZE, BACKGROUND_FORMAT)
        except (UnsupportedMediaType, UnprocessableEntity):
            pass  # recorded: its requests are answered at once from now on
        except ServiceUnavailable:
            _unclaim(sha256)
    if unlikely:
        now = utc_now()
        with database_proxy.atomic():
            MediaInfo.insert_many(
                [{"sha256": sha256, "status": UNSNIFFED, "claimed_at": now} for sha256 in unlikely]
            ).on_conflict_ignore().execute()
    return handled, after_id


def _may_be_media(blobs: BlobStore, key: str) -> bool:
    """Whether the content's first bytes are a picture's or a video's (by filetype's
    signatures: JPEG, PNG, HEIC, WebP, MP4, QuickTime and the rest)."""
    try:
        # Only the first bytes, and all of what is asked read: on S3, one small ranged GET
        # whose connection goes back to the pool (a whole GET cut short was dropped).
        with blobs.open_range(key, 0, SNIFF_BYTES) as stored:
            head = stored.read(SNIFF_BYTES)
    except (FileNotFoundError, PcloudError):
        return True  # let the decoder's path say what is wrong
    kind = filetype.guess(head)
    return kind is not None and kind.mime.split("/")[0] in ("image", "video")


def _claim(sha256: str) -> bool:
    now = utc_now()
    with database_proxy.atomic():
        inserted = (
            MediaInfo.insert(sha256=sha256, status=PENDING, claimed_at=now)
            .on_conflict_ignore()
            .execute()
        )
        if inserted and MediaInfo.get(MediaInfo.sha256 == sha256).claimed_at == now:
            return True
        # A stale claim: take it over, unless another worker just did.
        return bool(
            MediaInfo.update(claimed_at=now)
            .where(
                (MediaInfo.sha256 == sha256)
                & (MediaInfo.status == PENDING)
                & (MediaInfo.claimed_at < now - CLAIM_EXPIRES)
            )
            .execute()
        )


def _unclaim(sha256: str) -> None:
    with database_proxy.atomic():
        MediaInfo.delete().where(
            (MediaInfo.sha256 == sha256) & (MediaInfo.status == PENDING)
        ).execute()


def forget_unused(blobs: BlobStore) -> tuple[int, int]:
    """Delete the thumbnails and details of content no Blob row names any more (for gc);
    returns (thumbnails, details) forgotten."""
    unused = Thumbnail.select(Thumbnail.id, Thumbnail.store_key).where(
        Thumbnail.sha256.not_in(Blob.select(Blob.sha256))
    )
    found = list(rows(unused))
    for start in range(0, len(found), 500):
        part = found[start : start + 500]
        with database_proxy.atomic():
            Thumbnail.delete().where(Thumbnail.id.in_([row_id for row_id, _ in part])).execute()
        for _row_id, key in part:
            blobs.delete(key)
    with database_proxy.atomic():
        details = (
            MediaInfo.delete().where(MediaInfo.sha256.not_in(Blob.select(Blob.sha256))).execute()
        )
    return len(found), details


def count_unused() -> int:
    """How many thumbnails belong to content no Blob row names (what gc will forget)."""
    return Thumbnail.select().where(Thumbnail.sha256.not_in(Blob.select(Blob.sha256))).count()


def thumbnail_keys() -> set[str]:
    """Every store key a thumbnail uses (gc must not take them for orphans)."""
    return {key for (key,) in rows(Thumbnail.select(Thumbnail.store_key))}
