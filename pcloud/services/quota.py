"""Per-user quotas: usage is the size of every file the user has, trash included, and of
every earlier version of them kept (pcloud.services.versions).

Versions are room that can be made: an addition is refused only when the files alone
would pass the quota, and the services that add content prune the oldest versions first
(versions.make_room)."""

from __future__ import annotations

import peewee

from pcloud.config import parse_size
from pcloud.db import PreparedQuery
from pcloud.errors import BadRequest, InsufficientStorage
from pcloud.models import StoredFile, User, database_proxy
from pcloud.services import users, versions
from pcloud.sizes import format_size


def files_usage(owner_id: int) -> int:
    """Bytes the user's files take (each name counts, copies and trash too)."""
    total = (
        StoredFile.select(peewee.fn.SUM(StoredFile.size))
        .where(StoredFile.owner == owner_id)
        .scalar()
    )
    return int(total or 0)


def usage(owner_id: int) -> int:
    """Bytes the user's files and their kept versions take: what counts in the quota."""
    return files_usage(owner_id) + versions.bytes_of(owner_id)


_QUOTA_OF = PreparedQuery(
    lambda owner_id: User.select(User.quota_bytes).where(User.id == owner_id), -8101
)


def quota_of(owner_id: int) -> int | None:
    row = _QUOTA_OF.execute(owner_id).fetchone()  # every upload asks: built once
    return row[0] if row else None


def room(owner_id: int) -> int | None:
    """Bytes the user may still add, pruning versions if need be (None: no quota)."""
    quota = quota_of(owner_id)
    return None if quota is None else quota - files_usage(owner_id)


# For the callers that pass on a quota they read: "read it now".
ASK: object = object()


def check(
    owner_id: int,
    incoming: int | None,
    quota: int | None | object = ASK,
    what: str = "This upload",
) -> None:
    """Raise InsufficientStorage (507) if `incoming` more bytes would pass the user's quota
    (`quota`: as the caller read it already, None for none; by default it is read now).
    `what` names the change in the message ("This upload", "This copy")."""
    if quota is ASK:
        quota = quota_of(owner_id)
    check_within(owner_id, quota, incoming, what)  # type: ignore[arg-type]


def check_within(
    owner_id: int, quota: int | None, incoming: int | None, what: str = "This upload"
) -> None:
    """check(), against a quota the caller read already (None: no quota). Versions do not
    count here: they are pruned to make room (versions.make_room)."""
    if quota is None or incoming is None:
        return
    used = files_usage(owner_id)
    if used + incoming > quota:
        raise InsufficientStorage(
            f"{what} would add {format_size(incoming)}, bringing your usage to "
            f"{format_size(used + incoming)}, over your quota of {format_size(quota)}: "
            "delete files and empty the trash, or ask the admin for more room",
            usage_bytes=used,
            quota_bytes=quota,
        )


def set_quota(username: str, size: str) -> User:
    """Set a user's quota from '10GiB' or similar; 'none' means unlimited."""
    user = users.find_user(username)
    if size.strip().lower() in ("none", "unlimited"):
        quota = None
    else:
        try:
            quota = parse_size(size)
        except ValueError as error:
            raise BadRequest(f"Quota {size!r}: {error}") from None
    with database_proxy.atomic():
        User.update(quota_bytes=quota).where(User.id == user.id).execute()
    return User.get_by_id(user.id)
