"""Folders: make one, read one, list what is in one (paged and sorted)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import peewee

from pcloud.errors import BadRequest, NotFound
from pcloud.models import Folder, MediaInfo, StoredFile, database_proxy, utc_now
from pcloud.services import changes, entries, names, tree
from pcloud.services.entries import Entry
from pcloud.services.files import FILE_NOT_FOUND

SORT_KEYS = ("name", "modified_at", "size", "taken_at")
MAX_PAGE = 10_000


def root(owner_id: int) -> Folder:
    """The user's root folder (made now if they have none)."""
    root_id = tree.root_id(owner_id)
    if root_id is None:
        with database_proxy.atomic():
            root_id = tree.lock(owner_id)
    return Folder.get_by_id(root_id)


def get(owner_id: int, folder_id: int | None) -> Folder:
    """The user's folder (None: the root). NotFound for anyone else's or a trashed one."""
    if folder_id is None:
        return root(owner_id)
    return tree.live_folder(owner_id, folder_id)


def create(owner_id: int, parent_id: int | None, name: object, on_conflict: str) -> Entry:
    """A new empty folder in the parent (None: the root). A taken name is 409 unless
    on_conflict is "rename"."""
    name = names.validate(name, "name")
    with database_proxy.atomic():
        root_id = tree.lock(owner_id)
        parent = tree.live_folder(owner_id, root_id if parent_id is None else parent_id)
        name = tree.place_name(owner_id, parent.id, name, on_conflict)
        folder = Folder.create(owner=owner_id, parent=parent.id, name=name, modified_at=utc_now())
        changes.record(owner_id, changes.CREATED, changes.FOLDER, folder.id, parent.id, name)
        tree.bump([parent.id])
    return entries.of_folder(folder)


@dataclass(frozen=True)
class Listing:
    folder: Entry
    entries: list[dict[str, Any]]  # as Entry.to_json() gives them
    total: int
    next_offset: int | None
    cursor: int  # the change feed's cursor from before the listing was read


def listing(
    owner_id: int,
    folder_id: int | None,
    offset: int = 0,
    limit: int = 1000,
    sort: str = "name",
    descending: bool = False,
) -> Listing:
    """One page of what the folder holds: folders first, then files, each sorted by
    `sort` (name case-insensitively, modified_at, size, or taken_at: files without a
    capture time after the others, folders by name)."""
    if sort not in SORT_KEYS:
        raise BadRequest(f"'sort' must be one of {', '.join(SORT_KEYS)}")
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise BadRequest(f"'limit' must be 1 to {MAX_PAGE}, 'offset' 0 or more")
    # The cursor first: a change committed while the folder is read then shows up in the
    # feed as well, which a client applies harmlessly, instead of in neither.
    cursor = changes.current_cursor(owner_id)
    folder = get(owner_id, folder_id)
    # A folder's subfolders are few: read whole and sorted here. Its files may be a
    # hundred thousand: counted, and only the page read, in order, by the database
    # (from the (folder, sort_key, id) index when sorted by name).
    subfolders = [entries.of_folder(f) for f in Folder.select().where(Folder.parent == folder)]
    subfolders.sort(key=_folder_sort_key, reverse=descending)
    files = StoredFile.folder == folder
    file_count = StoredFile.select().where(files).count()
    total = len(subfolders) + file_count
    page = [entry.to_json() for entry in subfolders[offset : offset + limit]]
    rows_wanted = limit - len(page)
    if rows_wanted and offset + len(page) < total:
        # The page's ids first, from the index alone, then only their rows: an OFFSET
        # deep into the folder skips index entries, not rows (PostgreSQL reads the row,
        # and joins its details, of every entry it skips).
        ids = _page_ids(
            files, sort, descending, max(0, offset - len(subfolders)), rows_wanted, file_count
        )
        found = {
            row[0]: row
            for row in database_proxy.execute(
                entries.with_media(StoredFile.select(*entries.FILE_COLUMNS)).where(
                    StoredFile.id.in_(ids)
                )
            )
        }
        page += [entries.file_row_json(found[file_id]) for file_id in ids if file_id in found]
    next_offset = offset + limit if offset + limit < total else None
    return Listing(entries.of_folder(folder), page, total, next_offset, cursor)


def _page_ids(
    files: Any, sort: str, descending: bool, offset: int, limit: int, file_count: int
) -> list[int]:
    """The ids of the folder's files from `offset`, in order. A page past the middle is
    read from the other end, in the opposite order, and turned round: the index entries
    skipped are then at most half the folder's, and the last page costs as the first."""
    order = _file_order(sort, descending)
    from_the_end = offset > file_count // 2
    if from_the_end:
        order = [_opposite(term) for term in order]
        end = min(file_count, offset + limit)  # the page is [offset, end) counted forward
        offset, limit = file_count - end, end - offset
    ids = [
        file_id
        for (file_id,) in database_proxy.execute(
            entries.with_media(StoredFile.select(StoredFile.id))
            .where(files)
            .order_by(*order)
            .limit(limit)
            .offset(offset)
        )
    ]
    return ids[::-1] if from_the_end else ids


def _opposite(term: Any) -> Any:
    """An ORDER BY term the other way round."""
    if isinstance(term, peewee.Ordering):
        return term.node.asc() if term.direction.upper() == "DESC" else term.node.desc()
    return term.desc()


def _folder_sort_key(entry: Entry) -> tuple[str, str]:
    """Folders sort by name whatever the files sort by, as files do by name."""
    return (entry.name.casefold(), entry.name)


def _file_order(sort: str, descending: bool) -> list[Any]:
    """ORDER BY of a folder's files: by `sort`, then by name (case-insensitively: the sort
    key), then by id, all ascending or all descending; files without a capture time come
    last in either order."""
    by_name: list[Any] = [StoredFile.sort_key, StoredFile.id]
    if sort == "name":
        columns = by_name
    elif sort == "taken_at":
        taken = MediaInfo.taken_at
        nulls_last = taken.is_null()
        columns = [taken, *by_name]
        if descending:
            return [nulls_last, *(column.desc() for column in columns)]
        return [nulls_last, *columns]
    else:
        columns = [StoredFile.size if sort == "size" else StoredFile.modified_at, *by_name]
    return [column.desc() for column in columns] if descending else columns


def file_of(owner_id: int, file_id: object) -> StoredFile:
    """The user's file of that id, not in the trash. NotFound otherwise."""
    file_id = tree.as_id(file_id)
    if file_id is None:
        raise NotFound(FILE_NOT_FOUND)
    stored = StoredFile.get_or_none((StoredFile.id == file_id) & (StoredFile.owner == owner_id))
    if stored is None or stored.folder_id is None or not tree.is_live(stored.folder_id):
        raise NotFound(FILE_NOT_FOUND)
    return stored
