"""/dav/: the WSGI side of WebDAV. Signs the request in (HTTP Basic), refuses what no
request may do (unsafe paths, large XML bodies), answers file downloads itself as the
API does (Range, ETag, If-None-Match, sendfile), and hands the rest to WsgiDAV with
the pcloud provider, lock storage and property manager.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any

from werkzeug.datastructures import Authorization
from werkzeug.utils import send_file
from wsgidav import util
from wsgidav.error_printer import ErrorPrinter
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from pcloud.core import Pcloud
from pcloud.dav.listing import FastPropfind
from pcloud.dav.locks import DatabaseLockManager, DatabaseLockStorage
from pcloud.dav.properties import DatabasePropertyManager
from pcloud.dav.provider import CREATED, USER, FileResource, PcloudProvider
from pcloud.dav.put import CHALLENGE, MTIME_HEADER
from pcloud.errors import PcloudError, TooManyRequests, Unauthorized
from pcloud.services import names, paths
from pcloud.services.basic_sign_in import BasicUser, PasswordCache, sign_in

PREFIX = "/dav"
REALM = "pcloud"
MAX_XML_BYTES = 1024 * 1024  # PROPFIND, PROPPATCH, LOCK bodies: a few KiB in practice
# Encoded slashes, backslashes and NUL: no name may hold them, so no URL may name one.
UNSAFE_IN_URL = re.compile(r"%(2f|5c|00)", re.IGNORECASE)
log = logging.getLogger("pcloud.dav")
# A whole tree in one answer is a denial of service waiting to happen (RFC 4918 9.1).
FINITE_DEPTH = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>'
)

StartResponse = Callable[..., Any]


def _json(
    start_response: StartResponse, status: str, message: str, headers: list | None = None
) -> list[bytes]:
    body = json.dumps({"error": message}).encode()
    start_response(
        status,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            *(headers or []),
        ],
    )
    return [body]


class DavEndpoint:
    """The WSGI application answering everything under /dav/."""

    def __init__(self, app: Pcloud) -> None:
        self.app = app
        # WsgiDAV warns at start-up about Basic without TLS (the proxy's job here) and
        # logs each request at INFO: its errors are what is worth a line in our log.
        logging.getLogger("wsgidav").setLevel(logging.ERROR)
        self.passwords = PasswordCache(app.settings.password_hash)
        self.provider = PcloudProvider(app)
        storage = DatabaseLockStorage()
        properties = DatabasePropertyManager()
        self.fast_propfind = FastPropfind(self.provider, properties)
        self.wsgidav = WsgiDAVApp(
            {
                "provider_mapping": {"/": self.provider},
                "mount_path": PREFIX,
                "lock_storage": storage,
                "property_manager": properties,
                "middleware_stack": [ErrorPrinter, RequestResolver],
                "verbose": 1,
                "logging": {"enable": False},
                "dir_browser": {"enable": False},
                "suppress_version_info": True,
                "block_size": 256 * 1024,
            }
        )
        # Its check-then-grant must hold across processes (see DatabaseLockManager).
        lock_manager = DatabaseLockManager(storage)
        self.wsgidav.lock_manager = lock_manager
        self.provider.set_lock_manager(lock_manager)

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + PREFIX
        environ["PATH_INFO"] = path[len(PREFIX) :] or "/"
        refusal = self._refusal(environ)
        if refusal is not None:
            return _json(start_response, "400 Bad Request", refusal)
        if environ["REQUEST_METHOD"] != "PUT" and _content_length(environ) > MAX_XML_BYTES:
            return _json(
                start_response,
                "413 Request Entity Too Large",
                f"Request bodies other than PUT's are limited to {MAX_XML_BYTES} bytes",
            )
        try:
            user = self._sign_in(environ)
        except TooManyRequests as error:
            retry = [("Retry-After", str(error.extra.get("retry_after", 60)))]
            return _json(start_response, "429 Too Many Requests", error.message, retry)
        except Unauthorized as error:
            return _json(
                start_response,
                "401 Unauthorized",
                error.message,
                [("WWW-Authenticate", CHALLENGE)],
            )
        environ[USER] = user
        environ["wsgidav.provider"] = self.provider
        environ["wsgidav.config"] = self.wsgidav.config
        environ["wsgidav.verbose"] = 1
        environ["wsgidav.auth.user_name"] = user.username
        environ["wsgidav.auth.realm"] = REALM
        environ["wsgidav.auth.roles"] = []
        method = environ["REQUEST_METHOD"]
        if method in ("GET", "HEAD"):
            answer = self._download(environ, start_response)
            if answer is not None:
                return answer
        elif method == "PROPFIND":
            if environ.get("HTTP_DEPTH", "infinity").strip().lower() == "infinity":
                start_response(
                    "403 Forbidden",
                    [("Content-Type", "application/xml; charset=utf-8"),
                     ("Content-Length", str(len(FINITE_DEPTH)))],
                )  # fmt: skip
                return [FINITE_DEPTH]
            listed = self.fast_propfind.answer(environ, start_response)
            if listed is not None:
                return listed
        return self._run_wsgidav(environ, start_response)

    def _refusal(self, environ: dict) -> str | None:
        """Why the request's path may not be served, if it may not."""
        raw = environ.get("REQUEST_URI") or environ.get("RAW_URI") or ""
        if UNSAFE_IN_URL.search(raw.partition("?")[0]):
            return "Paths may not hold encoded slashes, backslashes or NUL"
        if "#" in raw:
            return "A request's URL may not hold a fragment (#...)"
        try:
            path = util.re_encode_wsgi(environ["PATH_INFO"])
        except UnicodeDecodeError:
            return "Paths must be UTF-8"
        if paths.segments(path) is None:
            return "Paths may not hold '.', '..' or NUL"
        return None

    def _sign_in(self, environ: dict) -> BasicUser:
        header = environ.get("HTTP_AUTHORIZATION")
        if not header:
            raise Unauthorized("Sign in with your user name and an app password")
        authorization = Authorization.from_header(header)
        if authorization is None or authorization.type != "basic":
            raise Unauthorized("Sign in with HTTP Basic: your user name and an app password")
        return sign_in(
            authorization.username or "",
            authorization.password or "",
            self.passwords,
            environ.get("REMOTE_ADDR"),
        )

    def _download(self, environ: dict, start_response: StartResponse) -> Iterable[bytes] | None:
        """A file's bytes as the API sends them; None for anything but a file."""
        path = util.re_encode_wsgi(environ["PATH_INFO"])
        resource = self.provider.get_resource_inst(path, environ)
        if not isinstance(resource, FileResource):
            return None
        row = resource.row
        blobs = self.app.blobs
        try:
            body = blobs.local_path(row.blob_key) or blobs.open(row.blob_key)
            response = send_file(
                body,
                environ,
                mimetype=names.mime_type(row.name),
                conditional=True,
                etag=row.sha256,
                last_modified=row.modified_micros / 1_000_000,
            )
        except FileNotFoundError:
            log.error(
                "File %r of user %s has no blob %s", row.name, resource.user.user_id, row.blob_key
            )
            return _json(start_response, "404 Not Found", "The file's bytes are missing")
        response.headers["OC-Checksum"] = f"SHA256:{row.sha256}"
        response.cache_control.private = True
        return response(environ, start_response)

    def _run_wsgidav(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        """WsgiDAV's answer, worked out now: it is a generator that would otherwise run
        after pcloud.api.ReleaseAfterAnswer has given back the database connection and
        undone the received PUT body."""
        mtime_sent = MTIME_HEADER in environ

        def start(status: str, headers: list, exc_info: Any = None) -> Any:
            if mtime_sent and status.startswith("2"):
                headers.append(("X-OC-MTime", "accepted"))
            if environ["REQUEST_METHOD"] == "LOCK":
                headers[:] = [_lock_header(name, value) for name, value in headers]
            if status.startswith("204") and environ.get(CREATED):
                # WsgiDAV answers 204 to every COPY and MOVE a provider handles itself.
                status = "201 Created"
            return start_response(status, headers, exc_info)

        try:
            answer = iter(self.wsgidav(environ, start))
            first = next(answer, None)
        except PcloudError as error:
            return _json(
                start_response, f"{error.status} {error.reason or ''}".strip(), error.message
            )
        if first is None:
            return []
        return chain([first], answer)


def _lock_header(name: str, value: str) -> tuple[str, str]:
    """WsgiDAV 4.3.3 answers a new lock with `Lock-Token: opaquelocktoken:...`, where
    RFC 4918 10.5 has a Coded-URL, `<opaquelocktoken:...>` (clients look for the
    brackets), and with the Content-Type `application`: both put right here."""
    lowered = name.lower()
    if lowered == "lock-token" and not value.startswith("<"):
        return name, f"<{value}>"
    if lowered == "content-type" and value.startswith("application;"):
        return name, "application/xml; charset=utf-8"
    return name, value


def _content_length(environ: dict) -> int:
    text = environ.get("CONTENT_LENGTH") or ""
    return int(text) if text.isdigit() else 0


class DavMount:
    """WSGI middleware sending /dav and everything under it to the DAV endpoint."""

    def __init__(self, wsgi_app: Callable, app: Pcloud) -> None:
        self.wsgi_app = wsgi_app
        self.dav = DavEndpoint(app)

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == PREFIX or path.startswith(PREFIX + "/"):
            return self.dav(environ, start_response)
        return self.wsgi_app(environ, start_response)
