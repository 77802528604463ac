"""What every change to a user's folder tree shares: one writer per tree at a time, the
root folder, free names, ancestors, and folder versions (their ETags).

Every service that changes a tree calls `lock(owner_id)` first, inside its transaction.
On PostgreSQL that locks the root folder's row until the commit; on SQLite every write
transaction is exclusive already. So checks made after `lock` (is this name free? is
that folder inside this one?) stay true until the change commits, and a user's change
feed ids commit in order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import peewee

from pcloud.db import PreparedQuery, rows
from pcloud.errors import Conflict, NotFound
from pcloud.models import Folder, StoredFile, database_proxy
from pcloud.services import names

FOLDER_NOT_FOUND = "Folder not found"
NAME_CANDIDATES = 32
MAX_DEPTH = 1000  # folders deeper than this are not followed
RENAME = "rename"
FAIL = "fail"
REPLACE = "replace"  # uploads only: new content for the file of that name
CONFLICT_POLICIES = (FAIL, RENAME)
UPLOAD_POLICIES = (FAIL, RENAME, REPLACE)


def _lock_query(owner_id: int) -> Any:
    query = Folder.select(Folder.id).where(Folder.root_of == owner_id)
    return query.for_update() if database_proxy.obj.for_update else query


# Every change runs this first: built once per kind of database (see PreparedQuery).
_LOCK_ROOT = PreparedQuery(_lock_query, -8201)
# The owner is asked for too, although the folder implies it: then the folders' side
# finds the name in the (owner, parent, name) index (the files' in (folder, name)).
# Every upload asks: one statement for the files and the folders both.
_NAME_TAKEN = PreparedQuery(
    lambda file_owner, file_folder, file_name, folder_owner, parent, folder_name: (
        StoredFile.select(peewee.SQL("1")).where(
            (StoredFile.owner == file_owner)
            & (StoredFile.folder == file_folder)
            & (StoredFile.name == file_name)
        )
        + Folder.select(peewee.SQL("1")).where(
            (Folder.owner == folder_owner)
            & (Folder.parent == parent)
            & (Folder.name == folder_name)
        )
    ).limit(1),
    -8204,
    -8202,
    "\x01file name",
    -8205,
    -8203,
    "\x01folder name",
)
_BUMP_ONE = PreparedQuery(
    lambda folder_id: Folder.update(version=Folder.version + 1).where(Folder.id == folder_id),
    -8206,
)


def lock(owner_id: int, root_id: int | None = None) -> int:
    """Hold the user's tree until the transaction ends; returns the root folder's id
    (making the root if the user has none yet). `root_id`, when the caller already knows
    it (pcloud.services.sessions.SignedIn), spares SQLite a query: there the write
    transaction itself is the lock."""
    if root_id is not None and not database_proxy.obj.for_update:
        return root_id
    row = _LOCK_ROOT.execute(owner_id).fetchone()
    if row is not None:
        return int(row[0])
    try:
        with database_proxy.atomic():
            make_root(owner_id)
    except peewee.IntegrityError:
        pass  # a concurrent transaction made it first
    return int(_LOCK_ROOT.execute(owner_id).fetchone()[0])


def name_taken(owner_id: int, folder_id: int, name: str) -> bool:
    """Whether a file or a folder in the user's folder has the name."""
    found = _NAME_TAKEN.execute(owner_id, folder_id, name, owner_id, folder_id, name)
    return found.fetchone() is not None


def make_root(owner_id: int) -> int:
    """Give a new user their root folder (in the caller's transaction)."""
    return int(Folder.insert(owner=owner_id, parent=None, name="", root_of=owner_id).execute())


def root_id(owner_id: int) -> int | None:
    """The user's root folder id, without locking anything (None: no root yet)."""
    root: int | None = Folder.select(Folder.id).where(Folder.root_of == owner_id).scalar()
    return root


MAX_ID = 2**63 - 1  # what the database holds; larger ids are nobody's


def as_id(value: object) -> int | None:
    """The row id a value sent as one stands for (JSON's 7.0 is 7), or None when no row
    could have it: not a whole number, negative, or past what the database holds."""
    return whole_number(value, 0, MAX_ID)


def whole_number(value: object, least: int, most: int) -> int | None:
    """A whole number sent in JSON, within [least, most]; None for anything else (true
    and false included). JSON has one kind of number: 3.0 is 3, as JSON Schema says."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
        return None
    return value


def live_folder(owner_id: int, folder_id: object) -> Folder:
    """The user's folder of that id, not in the trash nor inside a trashed folder.
    NotFound for anyone else's, a malformed id, or a trashed one."""
    folder_id = as_id(folder_id)
    if folder_id is None:
        raise NotFound(FOLDER_NOT_FOUND)
    folder = Folder.get_or_none((Folder.id == folder_id) & (Folder.owner == owner_id))
    if folder is None or not is_live(folder.id):
        raise NotFound(FOLDER_NOT_FOUND)
    return folder


def chain_sql(start: str) -> str:
    """`WITH RECURSIVE chain(id, parent_id, trashed_at, depth)`: the folder whose id is
    the SQL expression `start` and every folder above it, nearest first."""
    # The depth bound is a seatbelt: the lock keeps the tree free of cycles, but a query
    # that followed one would never end.
    return (
        "WITH RECURSIVE chain(id, parent_id, trashed_at, depth) AS ("
        f" SELECT id, parent_id, trashed_at, 0 FROM folder WHERE id = {start}"
        " UNION ALL SELECT f.id, f.parent_id, f.trashed_at, c.depth + 1 FROM folder f"
        f" JOIN chain c ON f.id = c.parent_id WHERE c.depth < {MAX_DEPTH})"
    )


def _param() -> str:
    return str(database_proxy.obj.param)


def ancestors(folder_id: int) -> list[tuple[int, int | None, object]]:
    """(id, parent_id, trashed_at) of the folder and every folder above it, nearest first."""
    sql = chain_sql(_param()) + " SELECT id, parent_id, trashed_at FROM chain"
    return list(database_proxy.execute_sql(sql, (folder_id,)).fetchall())


def is_live(folder_id: int) -> bool:
    """True when neither the folder nor one above it is in the trash.

    (Only roots and trashed folders have no parent, so an untrashed chain ends at the root.)
    """
    chain = ancestors(folder_id)
    return bool(chain) and all(trashed is None for _id, _parent, trashed in chain)


def bump(folder_ids: Iterable[int | None], root_id: int | None = None) -> None:
    """Raise the version (the ETag) of these folders and of every folder above them.
    (The root, when the caller names it, has nothing above it to look for.)"""
    for folder_id in {folder_id for folder_id in folder_ids if folder_id is not None}:
        if folder_id == root_id:
            _BUMP_ONE.execute(folder_id)
            continue
        sql = chain_sql(_param()) + (
            " UPDATE folder SET version = version + 1 WHERE id IN (SELECT id FROM chain)"
        )
        database_proxy.execute_sql(sql, (folder_id,))


def descendants(folder_id: int) -> list[int]:
    """The folder's id and the ids of every folder below it."""
    sql = (
        f"WITH RECURSIVE below(id, depth) AS (SELECT id, 0 FROM folder WHERE id = {_param()}"
        " UNION ALL SELECT f.id, b.depth + 1 FROM folder f JOIN below b ON f.parent_id = b.id"
        f" WHERE b.depth < {MAX_DEPTH}) SELECT id FROM below"
    )
    return [row[0] for row in database_proxy.execute_sql(sql, (folder_id,)).fetchall()]


def taken_names(owner_id: int, folder_id: int, candidates: list[str]) -> set[str]:
    """Which of the candidate names a file or a folder in that folder already has."""
    files = StoredFile.select(StoredFile.name).where(
        (StoredFile.owner == owner_id)
        & (StoredFile.folder == folder_id)
        & StoredFile.name.in_(candidates)
    )
    folders = Folder.select(Folder.name).where(
        (Folder.owner == owner_id) & (Folder.parent == folder_id) & Folder.name.in_(candidates)
    )
    return {name for (name,) in rows(files)} | {name for (name,) in rows(folders)}


def taken_names_many(owner_id: int, folder_id: int, candidates: list[str]) -> set[str]:
    """taken_names() for any number of candidates, asked in chunks."""
    unique = list(dict.fromkeys(candidates))
    taken: set[str] = set()
    for start in range(0, len(unique), 500):
        taken |= taken_names(owner_id, folder_id, unique[start : start + 500])
    return taken


def is_live_of(owner_id: int, folder_id: int) -> bool:
    """True for a folder of the user that is not in the trash nor inside a trashed one."""
    try:
        live_folder(owner_id, folder_id)
    except NotFound:
        return False
    return True


def place_name(owner_id: int, folder_id: int, requested: str, on_conflict: str) -> str:
    """The name an item gets in the folder: as requested when free; else the first free
    numbered one (`photo_1.jpg`) with on_conflict "rename", or Conflict (409)."""
    if not name_taken(owner_id, folder_id, requested):
        return requested
    if on_conflict != RENAME:
        raise Conflict(f"An item named '{requested}' already exists in this folder", name=requested)
    first = 1
    while True:
        candidates = [names.numbered(requested, n) for n in range(first, first + NAME_CANDIDATES)]
        taken = taken_names(owner_id, folder_id, candidates)
        for candidate in candidates:
            if candidate not in taken:
                return candidate
        first += NAME_CANDIDATES
