"""Upload-check: which of a batch of contents (SHA-256 values) the user already has, has
in the trash, deleted for good earlier, or does not have. Only the user's own files are
ever consulted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import peewee

from pcloud.db import PreparedQuery, rows
from pcloud.errors import BadRequest
from pcloud.models import DeletedContent, Folder, StoredFile, database_proxy

MAX_HASHES = 10_000
MAX_PATHS = 10  # paths answered per content
COPY_COLUMNS = (StoredFile.sha256, StoredFile.folder, StoredFile.name, StoredFile.trashed_from)
CHUNK = 1000  # values per IN list: far below every engine's limit on parameters
SHA256 = re.compile(r"[0-9a-f]{64}")
PRESENT, TRASHED, DELETED, ABSENT = "present", "trashed", "deleted", "absent"


@dataclass
class ContentStatus:
    sha256: str
    status: str = ABSENT
    paths: list[str] = field(default_factory=list)  # where it is (present) or was (trashed)
    deleted_at: datetime | None = None
    more_paths: bool = False  # paths holds MAX_PATHS of more


def parse_hashes(values: object) -> list[str]:
    """A list of SHA-256 hex values (any case), at most MAX_HASHES; lower-cased."""
    if not isinstance(values, list):
        raise BadRequest("'sha256' must be a list of SHA-256 hex values")
    if len(values) > MAX_HASHES:
        raise BadRequest(f"At most {MAX_HASHES} hashes per request; send the rest in another")
    hashes = []
    for value in values:
        if not isinstance(value, str) or not SHA256.fullmatch(value.lower()):
            shown = repr(value)[:80]
            raise BadRequest(f"{shown} is not a SHA-256 value (64 hexadecimal characters)")
        hashes.append(value.lower())
    return hashes


def check(owner_id: int, hashes: list[str]) -> list[ContentStatus]:
    """The status of each hash, in the order asked. A content the user has many copies
    of is answered with MAX_PATHS of their paths (`more_paths` says there are more): the
    answer, and the rows read for it, stay as large however many copies a library holds."""
    unique = list(dict.fromkeys(hashes))
    statuses = {sha256: ContentStatus(sha256) for sha256 in unique}
    found: list[tuple[Any, ...]] = []
    deleted: list[tuple[Any, ...]] = []
    for start in range(0, len(unique), CHUNK):
        chunk = unique[start : start + CHUNK]
        found.extend(_first_copies(owner_id, chunk))
        deleted.extend(
            rows(
                DeletedContent.select(DeletedContent.sha256, DeletedContent.deleted_at).where(
                    (DeletedContent.owner == owner_id) & DeletedContent.sha256.in_(chunk)
                )
            )
        )
    if found:
        folder_map = _folder_map(owner_id)
        _place(found, statuses, folder_map)
        # The oldest copies read may all be in the trash with a live one beyond them:
        # read those contents' copies whole (rare: many copies, the oldest all trashed).
        unsure = [
            sha256
            for sha256, status in statuses.items()
            if status.status == TRASHED and len(status.paths) > MAX_PATHS
        ]
        for start in range(0, len(unsure), CHUNK):
            chunk = unsure[start : start + CHUNK]
            for sha256 in chunk:
                statuses[sha256] = ContentStatus(sha256)
            _place(list(rows(_copies(owner_id, chunk))), statuses, folder_map)
    for status in statuses.values():
        status.paths.sort()
        if len(status.paths) > MAX_PATHS:
            status.paths, status.more_paths = status.paths[:MAX_PATHS], True
    for sha256, deleted_at in deleted:
        status = statuses[sha256]
        if status.status == ABSENT:
            status.status = DELETED
            status.deleted_at = deleted_at
    return [statuses[sha256] for sha256 in hashes]


# One content's first copies, by index: on SQLite (in the process, no round trips) a
# query per hash costs the same however many files the library holds.
_FIRST_COPIES = PreparedQuery(
    lambda owner_id, sha256: (
        StoredFile.select(*COPY_COLUMNS)
        .where((StoredFile.owner == owner_id) & (StoredFile.sha256 == sha256))
        .order_by(StoredFile.id)
        .limit(MAX_PATHS + 1)
    ),
    -9101,
    "\x01sha256",
)


def _first_copies(owner_id: int, chunk: list[str]) -> list[tuple[Any, ...]]:
    """MAX_PATHS + 1 copies of each content, the oldest first (see check()): an index
    seek per content, which costs the same however large the library. On SQLite, in the
    process, a prepared query per hash; on PostgreSQL, where each query is a round
    trip, one query of a LATERAL subquery per hash (a window over the copies ranked
    all of them: 1.4 s at a million files)."""
    database = database_proxy.obj
    if isinstance(database, peewee.PostgresqlDatabase):
        sql = (
            f"SELECT c.sha256, c.folder_id, c.name, c.trashed_from FROM unnest(%s::text[])"
            f" AS h(sha256) CROSS JOIN LATERAL (SELECT s.sha256, s.folder_id, s.name,"
            f" s.trashed_from FROM {StoredFile._meta.table_name} s WHERE s.owner_id = %s"
            f" AND s.sha256 = h.sha256 ORDER BY s.id LIMIT %s) AS c"
        )
        return list(rows(StoredFile.raw(sql, chunk, owner_id, MAX_PATHS + 1)))
    found = []
    for sha256 in chunk:
        found.extend(_FIRST_COPIES.execute(owner_id, sha256).fetchall())
    return found


def _copies(owner_id: int, chunk: list[str]) -> Any:
    """COPY_COLUMNS of all the user's files of these contents."""
    return StoredFile.select(*COPY_COLUMNS).where(
        (StoredFile.owner == owner_id) & StoredFile.sha256.in_(chunk)
    )


def _folder_map(owner_id: int) -> dict[int, tuple[int | None, str, bool]]:
    """id -> (parent_id, name, trashed) of every folder of the user."""
    return {
        folder_id: (parent_id, name, trashed_at is not None)
        for folder_id, parent_id, name, trashed_at in rows(
            Folder.select(Folder.id, Folder.parent, Folder.name, Folder.trashed_at).where(
                Folder.owner == owner_id
            )
        )
    }


FolderMap = dict[int, tuple[int | None, str, bool]]


def _place(
    found: list[tuple[Any, ...]], statuses: dict[str, ContentStatus], folder_map: FolderMap
) -> None:
    paths_of: dict[int | None, tuple[bool, str | None]] = {}  # each folder's, worked out once
    for sha256, folder_id, name, trashed_from in found:
        place = folder_id if folder_id is not None else trashed_from
        if place not in paths_of:
            paths_of[place] = _path(place, folder_map)
        live, path = paths_of[place]
        live = live and folder_id is not None
        status = statuses[sha256]
        full = (path.rstrip("/") + "/" + name) if path is not None else name
        if live:
            if status.status != PRESENT:
                status.status, status.paths = PRESENT, []
            status.paths.append(full)
        elif status.status != PRESENT:
            status.status = TRASHED
            status.paths.append(full)


def _path(folder_id: int | None, folder_map: FolderMap) -> tuple[bool, str | None]:
    """(whether nothing on the way up is trashed, '/a/b' path of the folder)."""
    parts, live = [], True
    while folder_id is not None and folder_id in folder_map:
        parent_id, name, trashed = folder_map[folder_id]
        live = live and not trashed
        if parent_id is None:
            if trashed:
                parts.append(name)
            break
        parts.append(name)
        folder_id = parent_id
    if folder_id is None or folder_id not in folder_map:
        return False, None  # the folder is gone (a trashed file's original folder)
    return live, "/" + "/".join(reversed(parts))
