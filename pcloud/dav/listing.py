"""PROPFIND of a folder's live properties, written straight from the database rows.

WsgiDAV answers PROPFIND by building an element tree per property of every member:
measured here, a Depth 1 PROPFIND of a folder of 10,000 files took 11-14 s, against
copyparty's 0.4 s. This answers the common case (Depth 0 or 1, allprop or a <prop> list,
no conditional headers, no locks or dead properties on what is listed) from the rows
of one query, with the same properties WsgiDAV would give; anything else is left to
WsgiDAV (`answer` returns None), which stays the reference for the protocol.
The request body is parsed with defusedxml (no entities, no external references).
"""

from __future__ import annotations

import io
import time
from email.utils import formatdate
from functools import lru_cache
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from defusedxml import ElementTree
from wsgidav import util

from pcloud.dav.properties import DatabasePropertyManager
from pcloud.dav.provider import OC_CHECKSUMS, USER, PcloudProvider
from pcloud.services import entries, names, paths, quota
from pcloud.services.paths import FileRow, FolderRow

DAV = "{DAV:}"
ALLPROP_FILE = (
    "resourcetype",
    "creationdate",
    "getcontentlength",
    "getcontenttype",
    "getlastmodified",
    "displayname",
    "getetag",
    "lockdiscovery",
    "supportedlock",
)
ALLPROP_FOLDER = tuple(
    name for name in ALLPROP_FILE if name not in ("getcontentlength", "getcontenttype")
)
QUOTA = ("quota-used-bytes", "quota-available-bytes")
SUPPORTED_LOCK = (
    "<D:supportedlock><D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype>"
    "<D:write/></D:locktype></D:lockentry><D:lockentry><D:lockscope><D:shared/>"
    "</D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry></D:supportedlock>"
)
HREF_SAFE = "/!*'(),$-_|."  # as WsgiDAV quotes hrefs (Nautilus chokes on %28)
CONDITIONS = ("HTTP_IF", "HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE",
              "HTTP_IF_UNMODIFIED_SINCE")  # fmt: skip


@lru_cache(maxsize=8192)
def _rfc1123(seconds: int) -> str:
    return formatdate(seconds, usegmt=True)


@lru_cache(maxsize=8192)
def _rfc3339(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _requested(body: bytes) -> tuple[str, list[str]] | None:
    """("allprop", []) or ("prop", [Clark names]); None when WsgiDAV should decide
    (propname, <include>, anything malformed: it answers 400 for that)."""
    if not body.strip():
        return "allprop", []
    try:
        root = ElementTree.fromstring(body)
    except Exception:  # malformed, or entities: WsgiDAV's parser refuses it with a 400
        return None
    if root.tag != f"{DAV}propfind" or len(root) != 1:
        return None
    mode = root[0]
    if mode.tag == f"{DAV}allprop" and len(mode) == 0:
        return "allprop", []
    if mode.tag == f"{DAV}prop":
        return "prop", [child.tag for child in mode]
    return None


class FastPropfind:
    def __init__(self, provider: PcloudProvider, properties: DatabasePropertyManager) -> None:
        self.provider = provider
        self.properties = properties

    def answer(self, environ: dict, start_response: Any) -> list[bytes] | None:
        """The 207 of a PROPFIND this can answer; None (the body left readable) if not."""
        depth = environ.get("HTTP_DEPTH", "infinity").lower()
        if depth not in ("0", "1") or any(header in environ for header in CONDITIONS):
            return None
        length = environ.get("CONTENT_LENGTH") or "0"
        body = environ["wsgi.input"].read(int(length)) if length.isdigit() else b""
        environ["wsgi.input"] = io.BytesIO(body)  # for WsgiDAV, if it answers instead
        environ["CONTENT_LENGTH"] = str(len(body))
        requested = _requested(body)
        if requested is None:
            return None
        user = environ[USER]
        path = util.re_encode_wsgi(environ["PATH_INFO"])
        parts = paths.segments(path)
        if parts is None:
            return None
        row = paths.resolve(user.user_id, parts)
        if row is None:
            return None
        base = "/".join(parts)
        key_base = f"/{user.user_id}/" + quote(base) if base else f"/{user.user_id}"
        locks = self.provider.lock_manager.storage.lock_roots(user.user_id)
        dead = self.properties.get_all_keys(user.user_id, environ)
        if any(key == key_base or key.startswith(key_base + "/") for key in [*locks, *dead]):
            return None  # locks or dead properties here: WsgiDAV lists them
        href_base = quote(f"{environ['SCRIPT_NAME']}/{base}".rstrip("/"), safe=HREF_SAFE)
        mode, wanted = requested
        is_root = not parts
        chunks = ['<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">']
        if isinstance(row, FolderRow):
            chunks.append(self._folder(row, href_base + "/", mode, wanted, user, is_root))
            if depth == "1":
                subfolders, files = paths.children(row.id)
                for folder in subfolders:
                    href = f"{href_base}/{quote(folder.name, safe=HREF_SAFE)}/"
                    chunks.append(self._folder(folder, href, mode, wanted, user, False))
                file_response = self._file
                for stored in files:
                    href = f"{href_base}/{quote(stored.name, safe=HREF_SAFE)}"
                    chunks.append(file_response(stored, href, mode, wanted))
        else:
            chunks.append(self._file(row, href_base, mode, wanted))
        chunks.append("</D:multistatus>")
        payload = "".join(chunks).encode("utf-8")
        start_response(
            "207 Multi-Status",
            [
                ("Content-Type", "application/xml; charset=utf-8"),
                ("Content-Length", str(len(payload))),
            ],
        )
        return [payload]

    def _folder(
        self, row: FolderRow, href: str, mode: str, wanted: list[str], user: Any, is_root: bool
    ) -> str:
        created = _rfc3339(row.created_micros // 1_000_000)
        modified = _rfc1123(row.modified_micros // 1_000_000)
        values = {
            "resourcetype": "<D:resourcetype><D:collection/></D:resourcetype>",
            "creationdate": f"<D:creationdate>{created}</D:creationdate>",
            "getlastmodified": f"<D:getlastmodified>{modified}</D:getlastmodified>",
            "displayname": f"<D:displayname>{escape(row.name)}</D:displayname>",
            "getetag": f'<D:getetag>"{entries.folder_etag(row.id, row.version)}"</D:getetag>',
            "lockdiscovery": "<D:lockdiscovery/>",
            "supportedlock": SUPPORTED_LOCK,
        }  # fmt: skip
        names_here = ALLPROP_FOLDER
        if is_root:
            used = quota.usage(user.user_id)
            values["quota-used-bytes"] = f"<D:quota-used-bytes>{used}</D:quota-used-bytes>"
            room = quota.room(user.user_id)
            if room is not None:
                values["quota-available-bytes"] = (
                    f"<D:quota-available-bytes>{max(0, room)}</D:quota-available-bytes>"
                )
            names_here = (*ALLPROP_FOLDER, *(name for name in QUOTA if name in values))
        return _response(href, values, names_here, mode, wanted)

    def _file(self, row: FileRow, href: str, mode: str, wanted: list[str]) -> str:
        created = _rfc3339(row.created_micros // 1_000_000)
        modified = _rfc1123(row.modified_micros // 1_000_000)
        if mode == "allprop":
            return (
                f"<D:response><D:href>{href}</D:href><D:propstat><D:prop><D:resourcetype/>"
                f"<D:creationdate>{created}</D:creationdate>"
                f"<D:getcontentlength>{row.size}</D:getcontentlength>"
                f"<D:getcontenttype>{names.mime_type(row.name)}</D:getcontenttype>"
                f"<D:getlastmodified>{modified}</D:getlastmodified>"
                f"<D:displayname>{escape(row.name)}</D:displayname>"
                f'<D:getetag>"{row.sha256}"</D:getetag><D:lockdiscovery/>{SUPPORTED_LOCK}'
                "</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
            )  # fmt: skip
        values = {
            "resourcetype": "<D:resourcetype/>",
            "creationdate": f"<D:creationdate>{created}</D:creationdate>",
            "getcontentlength": f"<D:getcontentlength>{row.size}</D:getcontentlength>",
            "getcontenttype": f"<D:getcontenttype>{names.mime_type(row.name)}</D:getcontenttype>",
            "getlastmodified": f"<D:getlastmodified>{modified}</D:getlastmodified>",
            "displayname": f"<D:displayname>{escape(row.name)}</D:displayname>",
            "getetag": f'<D:getetag>"{row.sha256}"</D:getetag>',
            "lockdiscovery": "<D:lockdiscovery/>",
            "supportedlock": SUPPORTED_LOCK,
            OC_CHECKSUMS: (
                '<oc:checksums xmlns:oc="http://owncloud.org/ns"><oc:checksum>'
                f"SHA256:{row.sha256}</oc:checksum></oc:checksums>"
            ),
        }  # fmt: skip
        return _response(href, values, ALLPROP_FILE, mode, wanted)


def _response(
    href: str, values: dict[str, str], allprop: tuple[str, ...], mode: str, wanted: list[str]
) -> str:
    if mode == "allprop":
        found = [values[name] for name in allprop]
        missing: list[str] = []
    else:
        found, missing = [], []
        for clark in wanted:
            local = clark[len(DAV) :] if clark.startswith(DAV) else clark
            value = values.get(local)
            if value is not None:
                found.append(value)
            else:
                missing.append(_empty_element(clark))
    parts = [f"<D:response><D:href>{href}</D:href>"]
    if found:
        parts.append(
            f"<D:propstat><D:prop>{''.join(found)}</D:prop>"
            "<D:status>HTTP/1.1 200 OK</D:status></D:propstat>"
        )
    if missing:
        parts.append(
            f"<D:propstat><D:prop>{''.join(missing)}</D:prop>"
            "<D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>"
        )
    parts.append("</D:response>")
    return "".join(parts)


@lru_cache(maxsize=256)
def _empty_element(clark: str) -> str:
    """`{uri}local` as an empty element of its namespace."""
    if clark.startswith("{"):
        uri, _, local = clark[1:].partition("}")
        if uri == "DAV:":
            return f"<D:{local}/>"
        return f'<p:{local} xmlns:p="{escape(uri, {chr(34): "&quot;"})}"/>'
    return f'<{clark} xmlns=""/>'
