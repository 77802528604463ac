"""The pcloud tree as WsgiDAV resources: every change goes through pcloud.services, the
same functions the API calls (change feed, quota, trash, dedup, audit included).

Resources are keyed for WsgiDAV's lock and property managers by
`/<owner id>/<quoted path>` (get_ref_url), so that one user's locks and dead
properties never meet another's, although every user's tree starts at /dav/.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote

from wsgidav import util
from wsgidav.dav_error import HTTP_BAD_REQUEST, HTTP_FORBIDDEN, HTTP_NOT_FOUND, DAVError
from wsgidav.dav_provider import DAVCollection, DAVNonCollection, DAVProvider
from wsgidav.util import etree

from pcloud.core import Pcloud
from pcloud.dav.errors import as_dav_errors
from pcloud.dav.put import PutTarget
from pcloud.services import entries, folders, moves, names, paths, quota, trash, tree
from pcloud.services.basic_sign_in import BasicUser
from pcloud.services.paths import FileRow, FolderRow

USER = "pcloud.dav.user"  # the environ key of the signed-in BasicUser
OC_NS = "http://owncloud.org/ns"
OC_CHECKSUMS = "{http://owncloud.org/ns}checksums"
_RESOLVED = "pcloud.dav.resolved"
_FOLDERS = "pcloud.dav.folders"  # folders found by path, in this request
_HAS_LOCKS = "pcloud.dav.has_locks"
CREATED = "pcloud.dav.created"  # a COPY or MOVE made its destination: 201, not 204


def _seconds(moment_micros: int) -> float:
    return moment_micros / 1_000_000


class PcloudProvider(DAVProvider):
    """Each signed-in user sees their own tree at the share's root."""

    def __init__(self, app: Pcloud) -> None:
        super().__init__()
        self.app = app

    def is_readonly(self) -> bool:
        return False

    def ref_url_to_path(self, ref_url: str) -> str:
        # "/<owner id>/a%20b" -> "/a b" (the inverse of get_ref_url)
        rest = ref_url.lstrip("/").partition("/")[2]
        return "/" + unquote(rest).lstrip("/")

    def get_resource_inst(self, path: str, environ: dict) -> _Resource | None:
        user: BasicUser = environ[USER]
        parts = paths.segments(path)
        if parts is None:
            raise DAVError(HTTP_BAD_REQUEST, context_info="Paths may not hold '.', '..' or NUL")
        key = "/".join(parts)
        resolved = environ.setdefault(_RESOLVED, {})
        if key in resolved:
            row = resolved[key]
        else:
            folders = environ.setdefault(_FOLDERS, {})
            row = resolved[key] = paths.resolve(user.user_id, parts, folders)
        if row is None:
            return None
        clean = "/" + key
        if isinstance(row, FolderRow):
            return FolderResource(clean, environ, self, row)
        return FileResource(clean, environ, self, row)

    def forget_resolved(self, environ: dict) -> None:
        """After a change: paths must be looked up again."""
        environ.pop(_RESOLVED, None)
        environ.pop(_FOLDERS, None)


class _Resource:
    """What the folder and file resources share (a mixin before WsgiDAV's bases)."""

    provider: PcloudProvider
    environ: dict
    path: str
    is_collection: bool

    @property
    def user(self) -> BasicUser:
        return self.environ[USER]

    def get_ref_url(self) -> str:
        return f"/{self.user.user_id}" + quote(self.get_preferred_path())

    def get_display_name(self) -> str:
        return self.name  # type: ignore[attr-defined]

    def get_used_bytes(self) -> int | None:
        if self.path not in ("", "/"):
            return None  # asked of the root (rclone about); every row would cost a SUM
        return quota.usage(self.user.user_id)

    def get_available_bytes(self) -> int | None:
        if self.path not in ("", "/"):
            return None
        room = quota.room(self.user.user_id)
        if room is None:
            return None
        return max(0, room)

    def get_property_value(self, name: str) -> Any:
        # A file manager lists folders of thousands: a query per entry for its locks
        # would cost more than the listing. One per request says whether there are any.
        if name == "{DAV:}getetag":
            return f'"{self.get_etag()}"'  # an entity-tag is quoted (RFC 4918 15.6)
        if (
            name == "{DAV:}lockdiscovery"
            and self.environ["REQUEST_METHOD"] == "PROPFIND"
            and not self._user_has_locks()
        ):
            return etree.Element(name)
        return super().get_property_value(name)  # type: ignore[misc]

    def _user_has_locks(self) -> bool:
        has = self.environ.get(_HAS_LOCKS)
        if has is None:
            storage = self.provider.lock_manager.storage
            has = self.environ[_HAS_LOCKS] = storage.owner_has_locks(self.user.user_id)
        return has

    def _target(self, dest_path: str) -> tuple[int, str]:
        """(folder id, NFC name) that a Destination path names; the folder must exist.
        What is there already goes to the trash first (WsgiDAV has checked Overwrite and
        the locks), as RFC 4918 9.9.3 has it: a DELETE, then the move or copy."""
        existing = self.provider.get_resource_inst(dest_path, self.environ)
        self.environ[CREATED] = existing is None
        if existing is not None:
            existing.handle_delete()
        parent_path = util.get_uri_parent(dest_path)
        parent = self.provider.get_resource_inst(parent_path, self.environ)
        if not isinstance(parent, FolderResource):
            raise DAVError(409, context_info="The destination's folder does not exist")
        with as_dav_errors():
            name = names.validate(util.get_uri_name(dest_path), "name")
        return parent.row.id, name

    def _check_unlocked(self) -> None:
        """Raise 423 unless the request holds every lock on this resource and below it.
        (WsgiDAV's DELETE checks only the parent before it lets a provider delete.)"""
        self.provider.lock_manager.check_write_permission(
            url=self.get_ref_url(),
            depth="infinity",
            token_list=self.environ.get("wsgidav.ifLockTokenList", []),
            principal=self.environ["wsgidav.user_name"],
        )

    _put: PutTarget | None = None

    def _begin_put(self, replacing_size: int | None) -> Any:
        """Where WsgiDAV writes a PUT's body (after the quota check on its length)."""
        with as_dav_errors():
            self._put = PutTarget(self.provider.app, self.environ, self.user, replacing_size)
        return self._put.sink()

    def _end_put(self, with_errors: bool, folder_id: int) -> FileRow | None:
        """The PUT's bytes as this file (None, and nothing kept, after an error)."""
        put, self._put = self._put, None
        if put is None:
            return None
        if with_errors:
            put.abort()
            return None
        with as_dav_errors():
            stored = put.store(folder_id, self.name)  # type: ignore[attr-defined]
        self._after_change()
        return paths.file_row(stored)

    def _dead_properties(self) -> Any:
        return self.provider.prop_manager

    def _after_change(self) -> None:
        self.provider.forget_resolved(self.environ)


class FolderResource(_Resource, DAVCollection):
    def __init__(self, path: str, environ: dict, provider: PcloudProvider, row: FolderRow) -> None:
        DAVCollection.__init__(self, path, environ)
        self.provider = provider
        self.row = row
        self.name = row.name

    def get_creation_date(self) -> float:
        return _seconds(self.row.created_micros)

    def get_last_modified(self) -> float:
        return _seconds(self.row.modified_micros)

    def get_etag(self) -> str:
        return entries.folder_etag(self.row.id, self.row.version)

    def support_etag(self) -> bool:
        return True

    def get_member_names(self) -> list[str]:
        subfolders, files = paths.children(self.row.id)
        return [row.name for row in subfolders] + [row.name for row in files]

    def get_member(self, name: str) -> _Resource | None:
        return self.provider.get_resource_inst(util.join_uri(self.path, name), self.environ)

    def get_member_list(self) -> list[_Resource]:
        subfolders, files = paths.children(self.row.id)
        base = self.path.rstrip("/")
        members: list[_Resource] = [
            FolderResource(f"{base}/{row.name}", self.environ, self.provider, row)
            for row in subfolders
        ]
        members += [
            FileResource(f"{base}/{row.name}", self.environ, self.provider, row) for row in files
        ]
        return members

    def create_empty_resource(self, name: str) -> _Resource:
        with as_dav_errors():
            name = names.validate(name, "name")
        pending = PendingFile(
            util.join_uri(self.path, name), self.environ, self.provider, self.row.id, name
        )
        if self.environ.get("REQUEST_METHOD") != "PUT":
            pending.store_empty()  # a LOCK of an unmapped URL makes an empty file (RFC 4918 7.3)
        return pending

    def create_collection(self, name: str) -> None:
        with as_dav_errors():
            folders.create(self.user.user_id, self.row.id, name, tree.FAIL)
        self._after_change()

    def support_recursive_delete(self) -> bool:
        return True

    def handle_delete(self) -> bool:
        if self.row.parent_id is None:
            raise DAVError(HTTP_FORBIDDEN, context_info="The root folder cannot be deleted")
        self._check_unlocked()
        with as_dav_errors():
            trash.trash_folder(self.user.user_id, self.row.id)
        self.remove_all_locks(recursive=True)
        self._forget_properties(recursive=True)
        self._after_change()
        return True

    def _forget_properties(self, recursive: bool) -> None:
        manager = self._dead_properties()
        if manager is not None:
            manager.remove_properties(self.get_ref_url(), self.environ, recursive=recursive)

    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        folder_id, name = self._target(dest_path)
        with as_dav_errors():
            if depth_infinity:
                moves.copy_folder(self.user.user_id, self.row.id, folder_id, name, tree.FAIL)
            else:
                folders.create(self.user.user_id, folder_id, name, tree.FAIL)
        self._copy_properties(dest_path, recursive=depth_infinity)
        self._after_change()
        return True

    def _copy_properties(self, dest_path: str, recursive: bool) -> None:
        manager = self._dead_properties()
        if manager is not None:
            dest = f"/{self.user.user_id}" + quote(dest_path.rstrip("/") + "/")
            manager.copy_properties(self.get_ref_url(), dest, self.environ, recursive=recursive)

    def handle_move(self, dest_path: str) -> bool:
        if self.row.parent_id is None:
            raise DAVError(HTTP_FORBIDDEN, context_info="The root folder cannot be moved")
        folder_id, name = self._target(dest_path)
        with as_dav_errors():
            moves.move_folder(self.user.user_id, self.row.id, name, folder_id, tree.FAIL)
        self.remove_all_locks(recursive=True)
        manager = self._dead_properties()
        if manager is not None:
            dest = f"/{self.user.user_id}" + quote(dest_path.rstrip("/") + "/")
            manager.move_properties(self.get_ref_url(), dest, True, self.environ)
        self._after_change()
        return True


class FileResource(_Resource, DAVNonCollection):
    def __init__(self, path: str, environ: dict, provider: PcloudProvider, row: FileRow) -> None:
        DAVNonCollection.__init__(self, path, environ)
        self.provider = provider
        self.row = row
        self.name = row.name

    def get_content_length(self) -> int:
        return self.row.size

    def get_content_type(self) -> str:
        return names.mime_type(self.name)

    def get_creation_date(self) -> float:
        return _seconds(self.row.created_micros)

    def get_last_modified(self) -> float:
        return _seconds(self.row.modified_micros)

    def get_etag(self) -> str:
        return self.row.sha256

    def support_etag(self) -> bool:
        return True

    def support_ranges(self) -> bool:
        return True

    def get_content(self) -> Any:
        try:
            return self.provider.app.blobs.open(self.row.blob_key)
        except FileNotFoundError:
            raise DAVError(HTTP_NOT_FOUND, context_info="The file's bytes are missing") from None

    def get_property_names(self, *, is_allprop: bool) -> list[str]:
        found = super().get_property_names(is_allprop=is_allprop)
        if not is_allprop:
            found.append(OC_CHECKSUMS)
        return found

    def get_property_value(self, name: str) -> Any:
        if name == OC_CHECKSUMS:
            # ownCloud's form, which rclone and the ownCloud/Nextcloud clients read.
            checksums = etree.Element(name)
            etree.SubElement(checksums, f"{{{OC_NS}}}checksum").text = f"SHA256:{self.row.sha256}"
            return checksums
        return super().get_property_value(name)

    def begin_write(self, *, content_type: str | None = None) -> Any:
        return self._begin_put(self.row.size)

    def end_write(self, *, with_errors: bool) -> None:
        stored = self._end_put(with_errors, self.row.folder_id)
        if stored is not None:
            self.row = stored

    def handle_delete(self) -> bool:
        self._check_unlocked()
        with as_dav_errors():
            trash.trash_file(self.user.user_id, self.row.id)
        self.remove_all_locks(recursive=False)
        manager = self._dead_properties()
        if manager is not None:
            manager.remove_properties(self.get_ref_url(), self.environ)
        self._after_change()
        return True

    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        folder_id, name = self._target(dest_path)
        with as_dav_errors():
            moves.copy_file(self.user.user_id, self.row.id, folder_id, name, tree.FAIL)
        manager = self._dead_properties()
        if manager is not None:
            dest = f"/{self.user.user_id}" + quote(dest_path)
            manager.copy_properties(self.get_ref_url(), dest, self.environ)
        self._after_change()
        return True

    def handle_move(self, dest_path: str) -> bool:
        folder_id, name = self._target(dest_path)
        with as_dav_errors():
            moves.move_file(self.user.user_id, self.row.id, name, folder_id, tree.FAIL)
        self.remove_all_locks(recursive=False)
        manager = self._dead_properties()
        if manager is not None:
            dest = f"/{self.user.user_id}" + quote(dest_path)
            manager.move_properties(self.get_ref_url(), dest, False, self.environ)
        self._after_change()
        return True


class PendingFile(_Resource, DAVNonCollection):
    """A file that a PUT is about to make: nothing exists until its bytes are stored."""

    def __init__(
        self, path: str, environ: dict, provider: PcloudProvider, folder_id: int, name: str
    ) -> None:
        DAVNonCollection.__init__(self, path, environ)
        self.provider = provider
        self.folder_id = folder_id
        self.name = name
        self.row: FileRow | None = None

    def get_content_length(self) -> int:
        return self.row.size if self.row else 0

    def get_content_type(self) -> str:
        return names.mime_type(self.name)

    def get_etag(self) -> str | None:
        return self.row.sha256 if self.row else None

    def support_etag(self) -> bool:
        return True

    def get_last_modified(self) -> float | None:
        return _seconds(self.row.modified_micros) if self.row else None

    def get_creation_date(self) -> float | None:
        return _seconds(self.row.created_micros) if self.row else None

    def get_content(self) -> Any:
        raise DAVError(HTTP_NOT_FOUND)

    def store_empty(self) -> None:
        with as_dav_errors():
            put = PutTarget(self.provider.app, self.environ, self.user, None, empty=True)
            stored = put.store(self.folder_id, self.name)
        self.row = paths.file_row(stored)
        self._after_change()

    def begin_write(self, *, content_type: str | None = None) -> Any:
        return self._begin_put(None)

    def end_write(self, *, with_errors: bool) -> None:
        self.row = self._end_put(with_errors, self.folder_id)

    def handle_delete(self) -> bool:
        raise DAVError(HTTP_NOT_FOUND)
