"""The change feed: every change to a user's tree, in order, under a cursor (a change id).

`record` is called inside the transaction of the change, after `tree.lock`, so a user's
changes commit in id order and a client that reads up to a cursor never misses one.
Changes older than RETENTION are purged by `pcloud files gc`; a cursor from before the
purge gets 410, and the client lists its tree again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import peewee

from pcloud.db import PreparedQuery, rows
from pcloud.errors import BadRequest, Gone
from pcloud.models import (
    Change,
    FeedHorizon,
    MediaInfo,
    StoredFile,
    database_proxy,
    micros,
    utc_now,
)

RETENTION = timedelta(days=90)
CREATED = "created"
MODIFIED = "modified"
MOVED = "moved"
RENAMED = "renamed"
DELETED = "deleted"
RESTORED = "restored"
FILE = "file"
FOLDER = "folder"
MAX_PAGE = 10_000
RELIST = "This cursor is unknown or older than the change history kept: list your folders again"


_INSERT_CHANGE = PreparedQuery(
    lambda owner_id, kind, item_type, item_id, parent_id, name, at: Change.insert(
        owner=owner_id,
        kind=kind,
        item_type=item_type,
        item_id=item_id,
        parent_id=parent_id,
        name=name,
        at=at,
    ),
    -9101,
    "\x01kind",
    "\x01type",
    -9102,
    -9103,
    "\x01name",
    -9104,
)


def record(
    owner_id: int, kind: str, item_type: str, item_id: int, parent_id: int | None, name: str
) -> None:
    """Add one change to the user's feed (in the caller's transaction)."""
    _INSERT_CHANGE.execute(owner_id, kind, item_type, item_id, parent_id, name, micros(utc_now()))


def current_cursor(owner_id: int) -> int:
    """A cursor from which the feed shows only the user's changes committed after now.

    Read it before listing: a change committed in between then shows up twice (in the
    listing and the feed), which is harmless, rather than never.
    """
    return Change.select(peewee.fn.MAX(Change.id)).where(Change.owner == owner_id).scalar() or 0


def _horizon(owner_id: int) -> int:
    return (
        FeedHorizon.select(FeedHorizon.purged_through).where(FeedHorizon.owner == owner_id).scalar()
        or 0
    )


class ChangeRow(NamedTuple):
    id: int
    kind: str
    item_type: str
    item_id: int
    parent_id: int | None
    name: str
    at_micros: int


@dataclass(frozen=True)
class FeedPage:
    changes: list[ChangeRow]
    cursor: int  # pass it back for the next page
    has_more: bool
    # The photo details of the files the page names, as they are now, by file id (a row
    # of entries.MEDIA_COLUMNS; absent: not looked at yet, not media, or gone).
    media: dict[int, tuple[Any, ...]] = field(default_factory=dict)


def parse_cursor(text: object) -> int:
    if not isinstance(text, str) or not text.isdigit() or not text.isascii() or len(text) > 18:
        raise BadRequest("'cursor' must be a whole number from an earlier answer")
    return int(text)


# Changes to a file's versions (pcloud.services.versions), shown only to a client that asks:
# one that follows the feed to mirror the tree need not know the item type.
VERSION = "version"


def feed(owner_id: int, cursor: int, limit: int, with_versions: bool = False) -> FeedPage:
    """The user's changes after `cursor`, oldest first (versions' only `with_versions`).
    Gone (410) for a cursor from before the history kept, or from the future (a database
    restored from a backup)."""
    newest = Change.select(peewee.fn.MAX(Change.id)).scalar() or 0
    if cursor < _horizon(owner_id) or cursor > newest:
        raise Gone(RELIST, relist=True)
    query = (
        Change.select(
            Change.id,
            Change.kind,
            Change.item_type,
            Change.item_id,
            Change.parent_id,
            Change.name,
            Change.at,
        )
        .where((Change.owner == owner_id) & (Change.id > cursor))
        .order_by(Change.id)
        .limit(limit + 1)
    )
    if not with_versions:
        query = query.where(Change.item_type != VERSION)
    # Raw rows: a feed page may hold 10,000 changes, and model instances cost more than
    # the query.
    found = [ChangeRow(*row) for row in database_proxy.execute(query).fetchall()]
    has_more = len(found) > limit
    found = found[:limit]
    return FeedPage(found, found[-1].id if found else cursor, has_more, _media_of_files(found))


def _media_of_files(found: list[ChangeRow]) -> dict[int, tuple[Any, ...]]:
    from pcloud.services.entries import MEDIA_COLUMNS  # entries imports models only

    file_ids = list({row.item_id for row in found if row.item_type == FILE})
    media: dict[int, tuple[Any, ...]] = {}
    for start in range(0, len(file_ids), 500):
        query = (
            StoredFile.select(StoredFile.id, *MEDIA_COLUMNS)
            .join(MediaInfo, on=(MediaInfo.sha256 == StoredFile.sha256))
            .where(StoredFile.id.in_(file_ids[start : start + 500]))
        )
        for file_id, *details in rows(query):
            media[file_id] = tuple(details)
    return media


def purge(now: datetime | None = None) -> int:
    """Forget changes older than RETENTION; returns how many went."""
    cutoff = (now or utc_now()) - RETENTION
    with database_proxy.atomic():
        # The newest change is always kept, so ids (SQLite's rowids) never go back.
        newest = Change.select(peewee.fn.MAX(Change.id)).scalar() or 0
        purged = (
            Change.select(Change.owner, peewee.fn.MAX(Change.id))
            .where((Change.at < cutoff) & (Change.id < newest))
            .group_by(Change.owner)
        )
        count = 0
        for owner_id, newest_old in list(rows(purged)):
            count += (
                Change.delete()
                .where((Change.owner == owner_id) & (Change.id <= newest_old))
                .execute()
            )
            FeedHorizon.insert(owner=owner_id, purged_through=newest_old).on_conflict(
                conflict_target=[FeedHorizon.owner],
                update={FeedHorizon.purged_through: newest_old},
            ).execute()
    return count
