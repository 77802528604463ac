"""Upload bodies received into the store as they arrive, before the view runs.

Waitress reads a whole request body before the app sees it, by default into a temporary
file in /tmp (a tmpfs, so RAM, on many systems), which the view then copied into the
blob store: every uploaded byte was written twice, and a large upload needed room for
itself in /tmp as well. Instead, pcloud.server asks `RequestPreviews.preview` when a
request's headers are complete (which also tells it whether the view is @quick), and
hands each piece of the body to the receiver it returns, as waitress reads it from the
connection:

- a multipart upload (a view marked `receives_body("multipart")`): werkzeug's multipart
  decoder feeds the file part straight into a blob writer, hashing as it goes
  (pcloud.services.uploads.multipart.MultipartReceiver);
- a tus PATCH (`receives_body("tus")`): the bytes go straight into the upload's
  resumable file, where they belong, under its exclusive hold, hashed on the way
  (pcloud.services.uploads.pieces.ReceivedPiece, made by pcloud.api.tus.receive_piece).

Nothing is decided here: the view still authenticates, checks and answers, and takes
over the receiver's result (found with context.received_body()). What the view did not
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

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from flask import Flask
from werkzeug.exceptions import HTTPException
from werkzeug.http import parse_options_header
from werkzeug.routing.exceptions import RoutingException

from pcloud.api import tus
from pcloud.api.context import QUICK, RECEIVED_BODY, RECEIVES_BODY
from pcloud.services.uploads import BodyReceiver
from pcloud.services.uploads.multipart import MultipartReceiver

log = logging.getLogger("pcloud.api")
MATCHES_KEPT = 512


def close_received_body(environ: dict) -> None:
    """Undo what the view did not take of a body received before it ran, as soon as it
    has answered, before the answer goes out (waitress closes the request only after
    sending it): a client that hears 409 and sends the piece again at once must find the
    upload as it was. (Called by pcloud.api.ReleaseAfterAnswer.)"""
    received = environ.get(RECEIVED_BODY)
    if received is not None:
        received.close()


@dataclass(frozen=True)
class Preview:
    """What the server knows of a request once its headers are in, before its body."""

    receiver: BodyReceiver | None = None  # who takes the body as it arrives; None: buffer it
    quick: bool = False  # its view is marked @quick


NO_PREVIEW = Preview()


class RequestPreviews:
    """Finds the view a request goes to from its method, path and headers, as soon as its
    headers are complete: who receives its body, and whether the view is quick."""

    def __init__(self, app: Flask) -> None:
        self._urls = app.url_map.bind("localhost")
        self._views = app.view_functions
        self._pcloud = app.extensions["pcloud"]
        # The same few method and path pairs come again and again (POST /upload): their
        # match is remembered (a few hundred of them; then forgotten all at once).
        self._matches: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}

    def preview(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        has_body: bool,
        query: str = "",
    ) -> Preview:
        """`headers` as waitress keeps them: upper case, `-` as `_` (CONTENT_TYPE).
        Without a body (`has_body` False) no receiver is made. `query`: the URL's query
        string, for views quick for some requests only (@quick_when)."""
        receiver = None
        try:
            method = tus.effective_method(method, path, headers.get("X_HTTP_METHOD_OVERRIDE", ""))
            endpoint, arguments = self._match(method, path)
            view = self._views.get(endpoint)
            kind = getattr(view, RECEIVES_BODY, None) if has_body else None
            if kind == "multipart":
                receiver = self._multipart(headers)
            elif kind == "tus":
                receiver = self._tus_piece(arguments, headers)
            quick = getattr(view, QUICK, False)
            if callable(quick):  # @quick_when: quick for some of its requests
                quick = bool(quick(arguments, headers, parse_qs(query)))
            return Preview(receiver, quick)
        except (HTTPException, RoutingException):
            return NO_PREVIEW  # no such route: the view (or the 404) reads the body as usual
        except Exception:
            log.exception("Could not look at %s %s before its body", method, path)
            if receiver is not None:
                receiver.close()
        return NO_PREVIEW

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
