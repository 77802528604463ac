"""WebDAV locks in the database (pcloud.models.DavLock), so that a lock taken through one
`pcloud serve` process holds in every other, and across restarts.

WsgiDAV's LockManager decides what conflicts with what; this is its storage (the
interface of wsgidav.lock_man.lock_storage.LockStorageDict). Lock roots are resource
keys `/<owner id>/<path>` (pcloud.dav.provider), so each query is one user's locks.
Timeouts are capped at MAX_TIMEOUT: a client that vanishes holding a lock (or asks for
an infinite one) blocks nobody for longer.
"""

from __future__ import annotations

import time
from typing import Any

from wsgidav.lock_man.lock_manager import (
    LockManager,
    generate_lock_token,
    normalize_lock_root,
    validate_lock,
)

from pcloud.models import DavLock, database_proxy
from pcloud.services import tree

MAX_TIMEOUT = 3600  # seconds
DEFAULT_TIMEOUT = 600


def owner_of(path: str) -> int:
    """The owner id at the head of a resource key; -1 for a key that has none."""
    head = path.lstrip("/").partition("/")[0]
    return int(head) if head.isdigit() else -1


def _capped(timeout: float | None) -> float:
    if timeout is None:
        return DEFAULT_TIMEOUT
    if timeout < 0 or timeout > MAX_TIMEOUT:
        return MAX_TIMEOUT
    return timeout


def _as_dict(row: DavLock) -> dict[str, Any]:
    return {
        "root": row.root,
        "depth": row.depth,
        "scope": row.scope,
        "type": row.kind,
        "principal": row.principal,
        "owner": row.lock_owner,
        "timeout": row.timeout,
        "expire": row.expire,
        "token": row.token,
    }


class DatabaseLockStorage:
    """WsgiDAV's lock storage interface, over the DavLock table."""

    def __repr__(self) -> str:
        return "DatabaseLockStorage"

    def open(self) -> None:
        """Nothing to open: the database is pcloud's."""

    def close(self) -> None:
        """Nothing to close."""

    def cleanup(self) -> None:
        with database_proxy.atomic():
            DavLock.delete().where(DavLock.expire < time.time()).execute()

    def clear(self) -> None:
        with database_proxy.atomic():
            DavLock.delete().execute()

    def owner_has_locks(self, owner_id: int) -> bool:
        return (
            DavLock.select()
            .where((DavLock.owner_id == owner_id) & (DavLock.expire >= time.time()))
            .exists()
        )

    def lock_roots(self, owner_id: int) -> list[str]:
        """The roots of the owner's live locks."""
        query = DavLock.select(DavLock.root).where(
            (DavLock.owner_id == owner_id) & (DavLock.expire >= time.time())
        )
        return [root for (root,) in query.tuples()]

    def get(self, token: str) -> dict[str, Any] | None:
        """The live lock of that token (an expired one is deleted, and None)."""
        row = DavLock.get_or_none(DavLock.token == token)
        if row is None:
            return None
        if row.expire < time.time():
            self.delete(token)
            return None
        return _as_dict(row)

    def create(self, path: str, lock: dict[str, Any]) -> dict[str, Any]:
        root = normalize_lock_root(path)
        timeout = _capped(float(lock["timeout"]) if lock.get("timeout") is not None else None)
        lock.update(root=root, timeout=timeout, expire=time.time() + timeout)
        validate_lock(lock)
        lock["token"] = generate_lock_token()
        with database_proxy.atomic():
            DavLock.create(
                token=lock["token"],
                owner_id=owner_of(root),
                root=root,
                depth=lock["depth"],
                scope=lock["scope"],
                kind=lock["type"],
                principal=lock["principal"] or "",
                lock_owner=lock.get("owner") or "",
                timeout=timeout,
                expire=lock["expire"],
            )
        return lock

    def refresh(self, token: str, *, timeout: float) -> dict[str, Any]:
        timeout = _capped(timeout)
        with database_proxy.atomic():
            DavLock.update(timeout=timeout, expire=time.time() + timeout).where(
                DavLock.token == token
            ).execute()
        lock = self.get(token)
        if lock is None:
            raise ValueError(f"Invalid lock token {token}")
        return lock

    def delete(self, token: str) -> bool:
        with database_proxy.atomic():
            return DavLock.delete().where(DavLock.token == token).execute() > 0

    def get_lock_list(
        self, path: str, *, include_root: bool, include_children: bool, token_only: bool
    ) -> list[Any]:
        """The live locks rooted at `path` (include_root) and/or below it."""
        root = normalize_lock_root(path)
        prefix = root.rstrip("/") + "/"
        rows = DavLock.select().where(
            (DavLock.owner_id == owner_of(root)) & (DavLock.expire >= time.time())
        )
        found: list[Any] = []
        for row in rows:
            if (include_root and row.root == root) or (
                include_children and row.root.startswith(prefix)
            ):
                found.append(row.token if token_only else _as_dict(row))
        return found


class DatabaseLockManager(LockManager):
    """WsgiDAV's lock manager, whose check-then-create runs under the owner's tree lock
    (pcloud.services.tree.lock), so that two processes cannot both grant a conflicting
    lock."""

    def acquire(self, *, url: str, **arguments: Any) -> dict[str, Any]:
        with database_proxy.atomic():
            owner_id = owner_of(url)
            if owner_id >= 0:
                tree.lock(owner_id)
            return super().acquire(url=url, **arguments)
