"""Upload-check: which of a batch of contents (SHA-256 values) the user already has, has
in the trash, deleted for good earlier, or does not have. Only the user's own files are
ever consulted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pcloud.db import rows
from pcloud.errors import BadRequest
from pcloud.models import DeletedContent, Folder, StoredFile

MAX_HASHES = 10_000
CHUNK = 1000  # values per IN list: far below every engine's limit on parameters
SHA256 = re.compile(r"[0-9a-f]{64}")
PRESENT, TRASHED, DELETED, ABSENT = "present", "trashed", "deleted", "absent"


@dataclass
class ContentStatus:
    sha256: str
    status: str = ABSENT
    paths: list[str] = field(default_factory=list)  # where it is (present) or was (trashed)
    deleted_at: datetime | None = None


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
    """The status of each hash, in the order asked."""
    unique = list(dict.fromkeys(hashes))
    statuses = {sha256: ContentStatus(sha256) for sha256 in unique}
    found: list[tuple[Any, ...]] = []
    deleted: list[tuple[Any, ...]] = []
    for start in range(0, len(unique), CHUNK):
        chunk = unique[start : start + CHUNK]
        found.extend(
            rows(
                StoredFile.select(
                    StoredFile.sha256, StoredFile.folder, StoredFile.name, StoredFile.trashed_from
                ).where((StoredFile.owner == owner_id) & StoredFile.sha256.in_(chunk))
            )
        )
        deleted.extend(
            rows(
                DeletedContent.select(DeletedContent.sha256, DeletedContent.deleted_at).where(
                    (DeletedContent.owner == owner_id) & DeletedContent.sha256.in_(chunk)
                )
            )
        )
    if found:
        _place(found, statuses, _folder_map(owner_id))
    for sha256, deleted_at in deleted:
        status = statuses[sha256]
        if status.status == ABSENT:
            status.status = DELETED
            status.deleted_at = deleted_at
    return [statuses[sha256] for sha256 in hashes]


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
    for sha256, folder_id, name, trashed_from in found:
        live, path = _path(folder_id if folder_id is not None else trashed_from, folder_map)
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
    for status in statuses.values():
        status.paths.sort()


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
