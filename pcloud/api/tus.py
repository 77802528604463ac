"""Resumable uploads over the tus 1.0.0 protocol (https://tus.io/protocols/resumable-upload).

Creation URL `/tus/`; each upload's URL is `/tus/<id>` (a relative Location, so it stays
right behind a TLS proxy). Extensions: creation, creation-with-upload,
creation-defer-length, termination, checksum and expiration. The rules live in
pcloud.services.uploads_resumable; here the headers are read and written.

When the last piece arrives the upload becomes a file like any POST /upload; the answer
(and HEAD afterwards) carries its stored name, percent-encoded UTF-8, in `Pcloud-File`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import quote

from flask import Blueprint, Response, g, request
from werkzeug.http import http_date
from werkzeug.wsgi import get_input_stream

from pcloud.api.context import (
    authenticate,
    current_user_id,
    login_required,
    pcloud,
    received_body,
    receives_body,
)
from pcloud.core import Pcloud
from pcloud.errors import (
    BadRequest,
    PayloadTooLarge,
    PcloudError,
    PreconditionFailed,
    UnsupportedMediaType,
)
from pcloud.services import uploads_resumable
from pcloud.services.uploads_resumable import CHECKSUM_ALGORITHMS, PlacedPiece, UploadState

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = (
    "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration"
)
OFFSET_STREAM = "application/offset+octet-stream"
OVERRIDABLE_METHODS = {"PATCH", "DELETE", "HEAD"}

blueprint = Blueprint("tus", __name__)
log = logging.getLogger("pcloud.api")


def effective_method(method: str, path: str, override: str) -> str:
    """POST stands in for PATCH, DELETE or HEAD on tus URLs, as tus clients send it
    behind proxies that know only GET and POST (`X-HTTP-Method-Override: PATCH`)."""
    override = override.strip().upper()
    if override in OVERRIDABLE_METHODS and method == "POST" and path.startswith("/tus/"):
        return override
    return method


def method_override(wsgi_app):
    """Apply X-HTTP-Method-Override (see effective_method) before the app routes."""

    def app(environ, start_response):
        environ["REQUEST_METHOD"] = effective_method(
            environ.get("REQUEST_METHOD", ""),
            environ.get("PATH_INFO", ""),
            environ.get("HTTP_X_HTTP_METHOD_OVERRIDE", ""),
        )
        return wsgi_app(environ, start_response)

    return app


@blueprint.after_request
def tus_headers(response: Response) -> Response:
    response.headers["Tus-Resumable"] = TUS_VERSION
    if response.status_code == 412:
        response.headers["Tus-Version"] = TUS_VERSION
    return response


@blueprint.route("/tus/", methods=["OPTIONS"])
@blueprint.route("/tus/<upload_id>", methods=["OPTIONS"])
def discover(upload_id: str | None = None):
    """What this server speaks; no sign-in needed."""
    return Response(
        status=204,
        headers={
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": TUS_EXTENSIONS,
            "Tus-Max-Size": str(pcloud().settings.max_upload_size),
            "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
        },
    )


@blueprint.route("/tus/", methods=["POST"], provide_automatic_options=False)
@login_required
def create():
    _check_version()
    app = pcloud()
    length = _length_header(required=True)
    body, checksum = _body(), _checksum()
    state = uploads_resumable.create_upload(
        app.blobs,
        app.settings,
        current_user_id(),
        length,
        request.headers.get("Upload-Metadata", ""),
    )
    if body is not None or length == 0:  # creation-with-upload; an empty file is complete now
        state = _append(state.id, 0, body, None, checksum)
    response = _answer(state, 201, offset=body is not None or length == 0)
    response.headers["Location"] = f"{request.script_root}/tus/{state.id}"
    return response


@blueprint.route("/tus/<upload_id>", methods=["HEAD"], provide_automatic_options=False)
@login_required
def status(upload_id: str):
    _check_version()
    state = uploads_resumable.get_upload(current_user_id(), upload_id)
    response = _answer(state, 200)
    if state.length is None:
        response.headers["Upload-Defer-Length"] = "1"
    else:
        response.headers["Upload-Length"] = str(state.length)
    if state.metadata:
        response.headers["Upload-Metadata"] = state.metadata
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.route("/tus/<upload_id>", methods=["PATCH"], provide_automatic_options=False)
@login_required
@receives_body("tus")
def patch(upload_id: str):
    _check_version()
    offset = _offset_header()
    state = _append(upload_id, offset, _body(patch=True), _length_header(), _checksum())
    return _answer(state, 204)


@blueprint.route("/tus/<upload_id>", methods=["DELETE"], provide_automatic_options=False)
@login_required
def terminate(upload_id: str):
    _check_version()
    app = pcloud()
    uploads_resumable.terminate(app.blobs, app.upload_hashes, current_user_id(), upload_id)
    return Response(status=204)


def _append(upload_id, offset, body, length, checksum) -> UploadState:
    app = pcloud()
    state = uploads_resumable.append(
        app.blobs,
        app.upload_hashes,
        app.settings,
        current_user_id(),
        upload_id,
        offset,
        body if body is not None else _EMPTY,
        declared_length=length,
        checksum=checksum,
    )
    g.uploaded_bytes = state.offset - offset  # for the metrics, when they are on
    return state


def _answer(state: UploadState, status: int, offset: bool = True) -> Response:
    response = Response(status=status)
    if offset:
        response.headers["Upload-Offset"] = str(state.offset)
    response.headers["Upload-Expires"] = http_date(state.expires_at)
    if state.stored_name is not None:
        response.headers["Pcloud-File"] = quote(state.stored_name, safe="")
    return response


def _check_version() -> None:
    if request.headers.get("Tus-Resumable") != TUS_VERSION:
        raise PreconditionFailed(f"Send the header Tus-Resumable: {TUS_VERSION}")


def _whole_number(name: str) -> int | None:
    text = request.headers.get(name)
    if text is None:
        return None
    if not text.isdigit() or not text.isascii():
        raise BadRequest(f"{name} must be a whole number of bytes")
    return int(text)


def _offset_header() -> int:
    offset = _whole_number("Upload-Offset")
    if offset is None:
        raise BadRequest("Upload-Offset is missing")
    return offset


def _length_header(required: bool = False) -> int | None:
    """Upload-Length, or None when deferred (`Upload-Defer-Length: 1`) or absent."""
    length = _whole_number("Upload-Length")
    deferred = request.headers.get("Upload-Defer-Length")
    if deferred is not None and (deferred != "1" or length is not None):
        raise BadRequest("Send Upload-Length, or Upload-Defer-Length: 1, not both")
    if required and length is None and deferred is None:
        raise BadRequest("Upload-Length is missing (or send Upload-Defer-Length: 1)")
    return length


def _checksum():
    header = request.headers.get("Upload-Checksum")
    return uploads_resumable.parse_checksum(header) if header else None


def _body(patch: bool = False):
    """The request's bytes (None when there are none), bounded by TUS_MAX_CHUNK: a
    PlacedPiece when the server wrote them into the upload as they arrived (see
    pcloud.api.bodies), else a stream.

    A PATCH must say its body is an offset stream even when empty; a creation POST only
    when it carries bytes.

    Waitress has read the whole body before the app runs (and refused one declared
    larger than TUS_MAX_CHUNK from its headers, see pcloud.server): a piece that breaks
    off never reaches this point. What arrived of it is kept (ReceivedPiece.broken) when
    the server received it into the upload as it arrived; else it is lost.
    """
    length = request.content_length or 0
    if (patch or length) and request.mimetype != OFFSET_STREAM:
        raise UnsupportedMediaType(f"Content-Type must be {OFFSET_STREAM}")
    if length == 0:
        return None
    limit = pcloud().settings.tus_max_chunk
    if length > limit:
        raise PayloadTooLarge(
            f"One request may carry at most {limit} bytes of an upload (TUS_MAX_CHUNK): "
            "send it in smaller pieces"
        )
    received = received_body()
    if isinstance(received, ReceivedPiece):
        return received.placed
    return get_input_stream(request.environ, max_content_length=limit)


class ReceivedPiece:
    """A PATCH's bytes, received into the upload as they arrive (a PlacedPiece; see
    pcloud.api.bodies), with what it takes to judge the request should its connection
    break off before its view can run."""

    def __init__(
        self, app: Pcloud, upload_id: str, placed: PlacedPiece, headers: Mapping[str, str]
    ) -> None:
        self._app = app
        self._upload_id = upload_id
        self.placed = placed
        self._authorization = headers.get("AUTHORIZATION")
        self._version = headers.get("TUS_RESUMABLE")
        self._declares_length = "UPLOAD_LENGTH" in headers

    def receive(self, data: bytes) -> None:
        self.placed.receive(data)

    def close(self) -> None:
        self.placed.close()

    def broken(self) -> None:
        """The connection broke off (or stalled past the timeout) before the whole piece
        arrived: keep the bytes that did, when the request would have been let in (the
        upload owner's valid access token, Tus-Resumable 1.0.0) and the bytes fit
        (uploads_resumable.keep_broken_piece); the client's HEAD then reports them. A
        piece that declares the upload's length is judged by its whole: undone. Never
        raises; whatever is not kept is undone."""
        try:
            if self._version == TUS_VERSION and not self._declares_length:
                signed_in = authenticate(self._app, self._authorization)
                kept = uploads_resumable.keep_broken_piece(
                    self._app.upload_hashes,
                    self._app.settings,
                    signed_in.user_id,
                    self._upload_id,
                    self.placed,
                )
                if kept is not None:
                    log.info("Kept %d bytes of a broken-off piece", self.placed.length)
        except PcloudError:
            pass  # not let in, or no longer there: nothing to keep
        except Exception:
            log.exception("Could not keep the bytes of a broken-off piece")
        finally:
            self.placed.close()  # undoes what was not kept
            self._app.release_connection()


class _NoBytes:
    @staticmethod
    def read(_size: int = -1) -> bytes:
        return b""


_EMPTY = _NoBytes()
