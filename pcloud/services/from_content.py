"""Files made from content the user already has (in a file or in the trash), without an
upload: what a phone does after upload-check says `present` or `trashed`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from pcloud.errors import BadRequest, InsufficientStorage, NotFound, PcloudError
from pcloud.models import StoredFile, database_proxy, micros, utc_now
from pcloud.moments import parse_moment
from pcloud.services import changes, files, moves, names, quota, tree, upload_check
from pcloud.services.entries import Entry

MAX_BATCH = 1000
NO_SUCH_CONTENT = "You have no file with this content; upload it"


@dataclass(frozen=True)
class ContentRequest:
    sha256: str
    name: str
    folder_id: int | None  # None: the root
    modified_at: datetime | None


def parse_request(item: object) -> ContentRequest:
    """`{"sha256", "name", "folder_id"?, "modified_at"?}` checked. Raises BadRequest."""
    if not isinstance(item, dict):
        raise BadRequest("Each file must be an object with 'sha256' and 'name'")
    (sha256,) = upload_check.parse_hashes([item.get("sha256")])
    name = names.validate(item.get("name"), "name")
    folder_id = item.get("folder_id")
    if folder_id is not None and (folder_id := tree.as_id(folder_id)) is None:
        raise BadRequest("'folder_id' must be a folder id (a whole number)")
    return ContentRequest(sha256, name, folder_id, _moment(item.get("modified_at")))


def _moment(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON's 1700000000000.0 is 1700000000000
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadRequest("'modified_at' must be ISO 8601 text or epoch milliseconds")
    try:
        return parse_moment(str(value))
    except ValueError:
        raise BadRequest("'modified_at' must be ISO 8601 text or epoch milliseconds") from None


def create_one(owner_id: int, wanted: ContentRequest, on_conflict: str) -> Entry:
    """One new file from owned content. NotFound when the user has no such content (or
    no such folder); Conflict for a taken name unless on_conflict is "rename"."""
    [result] = create_many(owner_id, [wanted], on_conflict)
    if isinstance(result, PcloudError):
        raise result
    return result


def create_many(
    owner_id: int, wanted: list[ContentRequest], on_conflict: str
) -> list[Entry | PcloudError]:
    """Up to MAX_BATCH new files in one transaction; for each, its entry or why it was
    refused (the others are made all the same).

    Set-wise where it counts (a phone may link a thousand photos at once): one lookup of
    the owned content and of the taken names per folder, precompiled inserts, and one
    reference count update per content.
    """
    if len(wanted) > MAX_BATCH:
        raise BadRequest(f"At most {MAX_BATCH} files per request")
    with database_proxy.atomic():
        root_id = tree.lock(owner_id)
        batch = _Batch(owner_id, root_id, wanted, on_conflict)
        results = [batch.create(request) for request in wanted]
        batch.finish()
    return results


class _Batch:
    """The state of one create_many: what is owned, which names are taken, what to count."""

    def __init__(
        self, owner_id: int, root_id: int, wanted: list[ContentRequest], on_conflict: str
    ) -> None:
        self.owner_id, self.root_id, self.on_conflict = owner_id, root_id, on_conflict
        self.owned = _owned_content(owner_id, [request.sha256 for request in wanted])
        self.room = quota.room(owner_id)  # None: no quota
        self.taken: dict[int, set[str]] = {}  # folder id -> names taken (live folders only)
        self.references: Counter[str] = Counter()
        self.touched: set[int] = set()  # folders that got a file
        self.now = utc_now()
        by_folder: dict[int, list[str]] = {}
        for request in wanted:
            folder_id = self.folder_of(request)
            by_folder.setdefault(folder_id, []).append(request.name)
        for folder_id, requested in by_folder.items():
            if tree.is_live_of(owner_id, folder_id):
                self.taken[folder_id] = tree.taken_names_many(owner_id, folder_id, requested)

    def folder_of(self, request: ContentRequest) -> int:
        return self.root_id if request.folder_id is None else request.folder_id

    def create(self, request: ContentRequest) -> Entry | PcloudError:
        try:
            return self._create(request)
        except PcloudError as refused:  # raised before this file wrote anything
            return refused

    def _create(self, request: ContentRequest) -> Entry:
        like = self.owned.get(request.sha256)
        if like is None:
            raise NotFound(NO_SUCH_CONTENT, sha256=request.sha256)
        folder_id = self.folder_of(request)
        taken = self.taken.get(folder_id)
        if taken is None:
            raise NotFound(tree.FOLDER_NOT_FOUND, folder_id=folder_id)
        if self.room is not None and like.size > self.room:
            raise InsufficientStorage("This file would pass your quota", sha256=request.sha256)
        name = request.name
        if name in taken:
            name = tree.place_name(self.owner_id, folder_id, name, self.on_conflict)
        modified = micros(request.modified_at or self.now)
        file_id = files.insert_row(self.owner_id, folder_id, name, like, micros(self.now), modified)
        changes.record(self.owner_id, changes.CREATED, changes.FILE, file_id, folder_id, name)
        taken.add(name)
        self.references[like.sha256] += 1
        if self.room is not None:
            self.room -= like.size
        self.touched.add(folder_id)
        return Entry(
            "file", file_id, name, folder_id, like.size, modified, like.sha256, like.sha256
        )

    def finish(self) -> None:
        for sha256, count in self.references.items():
            like = self.owned[sha256]
            moves.share(sha256, like.blob_key, like.size, count)
        tree.bump(self.touched)


def _owned_content(owner_id: int, hashes: list[str]) -> dict[str, StoredFile]:
    """One file of the user per content asked for, looked up in chunks."""
    unique = list(dict.fromkeys(hashes))
    owned: dict[str, StoredFile] = {}
    for start in range(0, len(unique), upload_check.CHUNK):
        chunk = unique[start : start + upload_check.CHUNK]
        for stored in StoredFile.select().where(
            (StoredFile.owner == owner_id) & StoredFile.sha256.in_(chunk)
        ):
            owned.setdefault(stored.sha256, stored)
    return owned
