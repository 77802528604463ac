"""Dead properties (what a client sets with PROPPATCH) in the database (DavProperty).

The interface of WsgiDAV's PropertyManager, keyed by resource keys `/<owner id>/<path>`
(pcloud.dav.provider). A PROPFIND of a folder of 10,000 files asks for every file's
properties: the owner's property keys are read once per request and kept in its environ,
so that the usual answer (no dead properties) costs no query per file. A file renamed
through the API (not WebDAV) leaves its dead properties behind, under its old path.
"""

from __future__ import annotations

from typing import Any

from pcloud.dav.locks import owner_of
from pcloud.models import DavProperty, database_proxy

_KEYS = "pcloud.dav.property_keys"


class DatabasePropertyManager:
    def __repr__(self) -> str:
        return "DatabasePropertyManager"

    def _keys(self, norm_url: str, environ: dict | None) -> dict[str, list[str]]:
        """Every resource key of the owner that has dead properties, with their names."""
        cache: dict[int, dict[str, list[str]]] = (
            environ.setdefault(_KEYS, {}) if environ is not None else {}
        )
        owner_id = owner_of(norm_url)
        keys = cache.get(owner_id)
        if keys is None:
            keys = {}
            rows = DavProperty.select(DavProperty.path, DavProperty.name).where(
                DavProperty.owner_id == owner_id
            )
            for path, name in rows.tuples():
                keys.setdefault(path, []).append(name)
            cache[owner_id] = keys
        return keys

    def get_all_keys(self, owner_id: int, environ: dict | None) -> dict[str, list[str]]:
        """The owner's resource keys that have dead properties, with their names."""
        return self._keys(f"/{owner_id}/", environ)

    def _changed(self, environ: dict | None) -> None:
        if environ is not None:
            environ.pop(_KEYS, None)

    def get_properties(self, norm_url: str, environ: dict | None = None) -> list[str]:
        return list(self._keys(norm_url, environ).get(norm_url, ()))

    def get_property(self, norm_url: str, name: str, environ: dict | None = None) -> Any:
        if name not in self._keys(norm_url, environ).get(norm_url, ()):
            return None
        return (
            DavProperty.select(DavProperty.value)
            .where((DavProperty.path == norm_url) & (DavProperty.name == name))
            .scalar()
        )

    def write_property(
        self,
        norm_url: str,
        name: str,
        property_value: Any,
        dry_run: bool = False,
        environ: dict | None = None,
    ) -> None:
        if dry_run:
            return
        value = (
            property_value.decode("utf-8")
            if isinstance(property_value, bytes)
            else str(property_value)
        )
        with database_proxy.atomic():
            DavProperty.delete().where(
                (DavProperty.path == norm_url) & (DavProperty.name == name)
            ).execute()
            DavProperty.create(owner_id=owner_of(norm_url), path=norm_url, name=name, value=value)
        self._changed(environ)

    def remove_property(
        self, norm_url: str, name: str, dry_run: bool = False, environ: dict | None = None
    ) -> None:
        if dry_run:
            return
        with database_proxy.atomic():
            DavProperty.delete().where(
                (DavProperty.path == norm_url) & (DavProperty.name == name)
            ).execute()
        self._changed(environ)

    def _under(self, norm_url: str, recursive: bool) -> list[DavProperty]:
        rows = DavProperty.select().where(DavProperty.owner_id == owner_of(norm_url))
        prefix = norm_url.rstrip("/") + "/"
        return [
            row
            for row in rows
            if row.path == norm_url or (recursive and row.path.startswith(prefix))
        ]

    def remove_properties(
        self, norm_url: str, environ: dict | None = None, recursive: bool = False
    ) -> None:
        doomed = [row.id for row in self._under(norm_url, recursive)]
        if doomed:
            with database_proxy.atomic():
                DavProperty.delete().where(DavProperty.id.in_(doomed)).execute()
        self._changed(environ)

    def copy_properties(
        self, src_url: str, dest_url: str, environ: dict | None = None, recursive: bool = False
    ) -> None:
        rows = self._under(src_url, recursive)
        if not rows:
            return
        with database_proxy.atomic():
            for row in rows:
                path = dest_url + row.path[len(src_url) :]
                DavProperty.delete().where(
                    (DavProperty.path == path) & (DavProperty.name == row.name)
                ).execute()
                DavProperty.create(owner_id=row.owner_id, path=path, name=row.name, value=row.value)
        self._changed(environ)

    def move_properties(
        self, src_url: str, dest_url: str, with_children: bool, environ: dict | None = None
    ) -> None:
        rows = self._under(src_url, with_children)
        existing = self._under(dest_url, with_children)
        with database_proxy.atomic():
            if existing:  # what was at the destination was replaced
                DavProperty.delete().where(DavProperty.id.in_([r.id for r in existing])).execute()
            for row in rows:
                path = dest_url + row.path[len(src_url) :]
                DavProperty.update(path=path).where(DavProperty.id == row.id).execute()
        self._changed(environ)
