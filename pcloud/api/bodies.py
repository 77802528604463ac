"""Upload bodies received into the store as they arrive, before the view runs.

Waitress reads a whole request body before the app sees it, by default into a temporary
file in /tmp (a tmpfs, so RAM, on many systems), which the view then copied into the
blob store: every uploaded byte was written twice, and a large upload needed room for
itself in /tmp as well. Instead, pcloud.server asks `RequestPreviews` (the app's side of
pcloud.serving) when a request's headers are complete, and hands each piece of the body
to the receiver it returns, as waitress reads it from the connection:

- a multipart upload (a view marked `receives_body("multipart")`): werkzeug's multipart
  decoder feeds the file part straight into a blob writer, hashing as it goes
  (pcloud.services.uploads.multipart.MultipartReceiver);
- a tus PATCH (`receives_body("tus")`): the bytes go straight into the upload's
  resumable file, where they belong, under its exclusive hold, hashed on the way
  (pcloud.services.uploads.pieces.ReceivedPiece, made by pcloud.api.tus.receive_piece);
- a WebDAV PUT under /dav/ (not a Flask route: pcloud.dav): straight into a blob writer
  (pcloud.dav.put.PutBody), refused unread when its headers already say 401 or 507.

Before any byte of a body is stored (or read), a view behind @login_required has its
sign-in checked from the headers, and a multipart upload its size against the quota (from
Content-Length): an anonymous client cannot fill the disk. Refused, the server answers
the same 401 or 507 the view would give and closes the connection, the body unread.
Otherwise the view checks the rest and answers, and takes over the receiver's result
(found with context.received_body()). What the view did not
take (after a 401, a 404, a wrong offset) is undone as soon as the view has answered.
When the connection breaks off before the whole body is in, the view never runs: a
half multipart upload is undone, nothing of it stays; the bytes of a half tus piece
are kept if its request would have been let in (ReceivedPiece.broken),
so that the client re-sends only what never arrived.
When no receiver fits (another route, a resumable upload that is busy or not where the
client thinks), the body is buffered as usual and the view reads it from wsgi.input, as
it does under any other server.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from flask import Flask
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES, parse_options_header
from werkzeug.routing.exceptions import RoutingException

from pcloud.api import tus
from pcloud.api.context import (
    BODY_LIMIT,
    QUICK,
    QUICK_FOUND,
    RECEIVES_BODY,
    SIGNED_IN,
    SIGNS_IN,
    authenticate,
)
from pcloud.api.security import HEADER_LIST
from pcloud.dav.app import MAX_XML_BYTES
from pcloud.dav.app import PREFIX as DAV_PREFIX
from pcloud.dav.put import receiver_for_put
from pcloud.errors import PcloudError
from pcloud.services import quota
from pcloud.services.sessions import SignedIn
from pcloud.services.uploads import BodyReceiver
from pcloud.services.uploads.multipart import MultipartReceiver
from pcloud.serving import NO_PREVIEW, RECEIVED_BODY, Preview, Refusal
from pcloud.sizes import format_size

log = logging.getLogger("pcloud.api")
MATCHES_KEPT = 512
# Room for the multipart framing around a file of the maximum size.
MULTIPART_OVERHEAD = 64 * 1024
# What a multipart upload's Content-Length counts besides the file (see expected_file_size).
MULTIPART_FRAMING = 4096
TOO_LARGE = "Request body is larger than this server accepts ({size})"
XML_TOO_LARGE = f"WebDAV request bodies other than PUT's are limited to {MAX_XML_BYTES} bytes"
# An early refusal carries what the app's answer would (pcloud.api.security, tus_headers).
REFUSAL_HEADERS = tuple(HEADER_LIST)
TUS_HEADERS = (("Tus-Resumable", tus.TUS_VERSION),)


def close_received_body(environ: dict) -> None:
    """Undo what the view did not take of a body received before it ran, as soon as it
    has answered, before the answer goes out (waitress closes the request only after
    sending it): a client that hears 409 and sends the piece again at once must find the
    upload as it was. (Called by pcloud.api.ReleaseAfterAnswer.)"""
    received = environ.get(RECEIVED_BODY)
    if received is not None:
        received.close()


class RequestPreviews:
    """Finds the view a request goes to from its method, path and headers, as soon as its
    headers are complete: who receives its body, whether the view is quick, how large the
    body may be, and whether to refuse it at once (pcloud.serving.Preview)."""

    def __init__(self, app: Flask) -> None:
        self._urls = app.url_map.bind("localhost")
        self._views = app.view_functions
        self._pcloud = app.extensions["pcloud"]
        self._dav_endpoint = app.extensions["pcloud.dav"]
        settings = self._pcloud.settings
        self._upload_limit = settings.max_upload_size + MULTIPART_OVERHEAD
        self._too_large = TOO_LARGE.format(size=format_size(settings.max_upload_size))
        # The same few method and path pairs come again and again (POST /upload): their
        # match is remembered (a few hundred of them; then forgotten all at once).
        self._matches: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}

    def __call__(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body_length: int | None,
        query: str = "",
    ) -> Preview:
        """`headers` as waitress keeps them: upper case, `-` as `_` (CONTENT_TYPE);
        `body_length` from Content-Length (None: chunked, length unknown; 0: no body);
        `query`: the URL's query string, for views quick for some requests only
        (@quick_when)."""
        receiver = None
        if path == DAV_PREFIX or path.startswith(DAV_PREFIX + "/"):
            return self._dav(method, path, headers, body_length)
        try:
            method = tus.effective_method(method, path, headers.get("X_HTTP_METHOD_OVERRIDE", ""))
            endpoint, arguments = self._match(method, path)
            view = self._views.get(endpoint)
            limit, too_large = self._body_limit(view)
            # A store across the network (S3) is never quick: every view then runs in a
            # thread, so that no request waits on the store in the event loop.
            quick = getattr(view, QUICK, False)
            found = None
            if callable(quick):  # @quick_when: quick for some of its requests
                found = quick(arguments, headers, parse_qs(query))
                quick = bool(found)
            quick = quick and self._pcloud.blobs.local
            preview = Preview(quick=quick, body_limit=limit, too_large=too_large)
            if quick and found is not True:
                preview.environ = {QUICK_FOUND: found}
            if body_length == 0 or (body_length is not None and body_length > limit):
                return preview  # no body; or one the server refuses (413) unread
            kind = getattr(view, RECEIVES_BODY, None)
            if getattr(view, SIGNS_IN, False):
                extra = REFUSAL_HEADERS + (TUS_HEADERS if endpoint.startswith("tus.") else ())
                refusal = self._refusal(headers, body_length, kind, preview, extra)
                if refusal is not None:
                    return Preview(body_limit=limit, refusal=refusal)
            if kind == "multipart":
                receiver = self._multipart(headers)
            elif kind == "tus":
                receiver = self._tus_piece(arguments, headers)
            preview.receiver = receiver
            return preview
        except (HTTPException, RoutingException):
            # No such route: the view (or the 404) reads the body as usual.
            return Preview(body_limit=self._upload_limit, too_large=self._too_large)
        except Exception:
            log.exception("Could not look at %s %s before its body", method, path)
            if receiver is not None:
                receiver.close()
        return NO_PREVIEW

    def _dav(
        self, method: str, path: str, headers: Mapping[str, str], body_length: int | None
    ) -> Preview:
        """WebDAV (pcloud.dav, not a Flask route): a PUT's body goes into the store as it
        arrives; any other body is XML, held to MAX_XML_BYTES."""
        if method != "PUT":
            return Preview(body_limit=MAX_XML_BYTES, too_large=XML_TOO_LARGE)
        preview = Preview(body_limit=self._upload_limit, too_large=self._too_large)
        if body_length == 0 or (body_length is not None and body_length > self._upload_limit):
            return preview
        try:
            preview.receiver = receiver_for_put(
                self._pcloud, self._dav_endpoint.passwords, path, headers
            )
        except PcloudError as error:
            preview = Preview(
                body_limit=self._upload_limit, refusal=refusal_of(error, REFUSAL_HEADERS)
            )
        except Exception:
            log.exception("Could not look at %s %s before its body", method, path)
            preview = NO_PREVIEW
        self._pcloud.release_connection()  # WsgiDAV runs in another thread
        return preview

    def _body_limit(self, view: Any) -> tuple[int, str]:
        marked = getattr(view, BODY_LIMIT, None)
        if marked is None:
            return self._upload_limit, self._too_large
        limit_of, too_large = marked
        limit = limit_of(self._pcloud.settings)
        return limit, too_large.format(size=format_size(limit))

    def _refusal(
        self,
        headers: Mapping[str, str],
        body_length: int | None,
        kind: str | None,
        preview: Preview,
        extra_headers: tuple,
    ) -> Refusal | None:
        """Who the request speaks for, checked before its body is read (kept for the
        view, in the environ); a Refusal when the view would refuse it anyway: 401, or,
        for a multipart upload, 507 past the quota (as the view checks it)."""
        try:
            signed_in: SignedIn = authenticate(self._pcloud, headers.get("AUTHORIZATION"))
            if kind == "multipart" and body_length is not None:
                expected = max(0, body_length - MULTIPART_FRAMING)
                quota.check_within(signed_in.user_id, signed_in.quota_bytes, expected)
        except PcloudError as error:
            self._pcloud.release_connection()
            return refusal_of(error, extra_headers)
        if not preview.quick:  # its view runs in another thread, with its own connection
            self._pcloud.release_connection()
        preview.environ = {**(preview.environ or {}), SIGNED_IN: signed_in}
        return None

    def _match(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        """The endpoint and arguments of a route. Raises what werkzeug's match raises."""
        key = (method, path)
        match = self._matches.get(key)
        if match is None:
            match = self._urls.match(path, method)
            if len(self._matches) >= MATCHES_KEPT:
                self._matches.clear()
            self._matches[key] = match
        return match

    def _multipart(self, headers: Mapping[str, str]) -> MultipartReceiver | None:
        mimetype, options = parse_options_header(headers.get("CONTENT_TYPE", ""))
        boundary = options.get("boundary", "")
        if mimetype != "multipart/form-data" or not boundary:
            return None  # the view explains what is wrong
        settings = self._pcloud.settings
        return MultipartReceiver(
            self._pcloud.blobs,
            settings.max_upload_size,
            boundary.encode("latin-1", "replace"),
        )

    def _tus_piece(
        self, arguments: dict[str, Any], headers: Mapping[str, str]
    ) -> BodyReceiver | None:
        return tus.receive_piece(self._pcloud, arguments["upload_id"], headers)


def refusal_of(error: PcloudError, extra_headers: tuple = ()) -> Refusal:
    """A domain error as the server's early answer: the status, headers and JSON that
    the API's error handler (pcloud.api.errors) gives it."""
    reason = error.reason or HTTP_STATUS_CODES.get(error.status, "Error")
    body = json.dumps(error.to_json(), separators=(",", ":")).encode()
    return Refusal(error.status, reason, body, (*error.headers.items(), *extra_headers))
