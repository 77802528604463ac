"""Resumable uploads over the tus 1.0.0 protocol (https://tus.io/protocols/resumable-upload).

Creation URL `/tus/`; each upload's URL is `/tus/<id>` (a relative Location, so it stays
right behind a TLS proxy). Extensions: creation, creation-with-upload,
creation-defer-length, termination, checksum and expiration. The rules live in
pcloud.services.uploads.resumable; here the headers are read (pcloud.api.tus_headers)
and written.

When the last piece arrives the upload becomes a file like any POST /upload; the answer
(and HEAD afterwards) carries its stored name, percent-encoded UTF-8, in `Pcloud-File`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, g, request
from werkzeug.http import http_date, parse_options_header
from werkzeug.wsgi import get_input_stream

from pcloud.api import tus_headers
from pcloud.api.context import (
    authenticate,
    current_user_id,
    limits_body,
    login_required,
    pcloud,
    received_body,
    receives_body,
)
from pcloud.core import Pcloud
from pcloud.errors import (
    BadRequest,
    PayloadTooLarge,
    PreconditionFailed,
    UnsupportedMediaType,
)
from pcloud.services.uploads import resumable
from pcloud.services.uploads.hashes import CHECKSUM_ALGORITHMS, Checksum
from pcloud.services.uploads.pieces import PlacedPiece, ReceivedPiece
from pcloud.services.uploads.records import UploadState
from pcloud.sizes import format_size

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = (
    "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration"
)
OFFSET_STREAM = "application/offset+octet-stream"
OVERRIDABLE_METHODS = {"PATCH", "DELETE", "HEAD"}
PIECE_TOO_LARGE = (
    "One request may carry at most {size} of an upload (TUS_MAX_CHUNK): send it in smaller pieces"
)

blueprint = Blueprint("tus", __name__)


def effective_method(method: str, path: str, override: str) -> str:
    """POST stands in for PATCH, DELETE or HEAD on tus URLs, as tus clients send it
    behind proxies that know only GET and POST (`X-HTTP-Method-Override: PATCH`)."""
    override = override.strip().upper()
    if override in OVERRIDABLE_METHODS and method == "POST" and path.startswith("/tus/"):
        return override
    return method


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def method_override(wsgi_app: WsgiApp) -> WsgiApp:
    """Apply X-HTTP-Method-Override (see effective_method) before the app routes."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["REQUEST_METHOD"] = effective_method(
            environ.get("REQUEST_METHOD", ""),
            environ.get("PATH_INFO", ""),
            environ.get("HTTP_X_HTTP_METHOD_OVERRIDE", ""),
        )
        return wsgi_app(environ, start_response)

    return app


@blueprint.after_request
def tus_headers_on_every_answer(response: Response) -> Response:
    response.headers["Tus-Resumable"] = TUS_VERSION
    if response.status_code == 412:
        response.headers["Tus-Version"] = TUS_VERSION
    return response


@blueprint.route("/tus/", methods=["OPTIONS"])
@blueprint.route("/tus/<upload_id>", methods=["OPTIONS"])
def discover(upload_id: str | None = None) -> Response:
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
@limits_body(lambda settings: settings.tus_max_chunk, PIECE_TOO_LARGE)
@login_required
def create() -> Response:
    _check_version()
    app = pcloud()
    length = tus_headers.upload_length(request.headers, required=True)
    body, checksum = _body(), _checksum()
    resumable.check_length(app.settings, length)  # (before the metadata is read)
    new = tus_headers.new_upload(length, request.headers.get("Upload-Metadata", ""))
    state = resumable.create_upload(app.blobs, app.settings, current_user_id(), new)
    if body is not None or length == 0:  # creation-with-upload; an empty file is complete now
        state = _append(state.id, 0, body, None, checksum)
    response = _answer(state, 201, offset=body is not None or length == 0)
    response.headers["Location"] = f"{request.script_root}/tus/{state.id}"
    return response


@blueprint.route("/tus/<upload_id>", methods=["HEAD"], provide_automatic_options=False)
@login_required
def status(upload_id: str) -> Response:
    _check_version()
    state = resumable.get_upload(current_user_id(), upload_id)
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
@limits_body(lambda settings: settings.tus_max_chunk, PIECE_TOO_LARGE)
@login_required
@receives_body("tus")
def patch(upload_id: str) -> Response:
    _check_version()
    offset = tus_headers.upload_offset(request.headers)
    length = tus_headers.upload_length(request.headers)
    state = _append(upload_id, offset, _body(patch=True), length, _checksum())
    return _answer(state, 204)


@blueprint.route("/tus/<upload_id>", methods=["DELETE"], provide_automatic_options=False)
@login_required
def terminate(upload_id: str) -> Response:
    _check_version()
    app = pcloud()
    resumable.terminate(app.blobs, app.upload_hashes, current_user_id(), upload_id)
    return Response(status=204)


def _append(
    upload_id: str,
    offset: int,
    body: resumable.Readable | PlacedPiece | None,
    length: int | None,
    checksum: Checksum | None,
) -> UploadState:
    app = pcloud()
    state = resumable.append(
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


def _checksum() -> Checksum | None:
    header = request.headers.get("Upload-Checksum")
    return tus_headers.parse_checksum(header) if header else None


def _body(patch: bool = False) -> resumable.Readable | PlacedPiece | None:
    """The request's bytes (None when there are none), bounded by TUS_MAX_CHUNK: a
    PlacedPiece when the server wrote them into the upload as they arrived (see
    pcloud.api.bodies), else a stream.

    A PATCH must say its body is an offset stream even when empty; a creation POST only
    when it carries bytes.

    Waitress has read the whole body before the app runs (and refused one declared
    larger than TUS_MAX_CHUNK from its headers: limits_body): a piece that breaks
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
        raise PayloadTooLarge(PIECE_TOO_LARGE.format(size=format_size(limit)))
    received = received_body()
    if isinstance(received, ReceivedPiece):
        return received.placed
    stream: resumable.Readable = get_input_stream(request.environ, max_content_length=limit)
    return stream


def receive_piece(app: Pcloud, upload_id: str, headers: Mapping[str, str]) -> ReceivedPiece | None:
    """A receiver for a PATCH's bytes, from its headers as waitress keeps them (upper
    case, `-` as `_`), or None when they cannot go straight into the upload (not an
    offset stream, no offset, an unknown checksum, the upload busy or elsewhere): the
    view then reads the body from wsgi.input and answers what fits."""
    offset = headers.get("UPLOAD_OFFSET", "")
    content_type = parse_options_header(headers.get("CONTENT_TYPE", ""))[0]
    if content_type != OFFSET_STREAM or not (offset.isascii() and offset.isdigit()):
        return None
    algorithm = None
    checksum_header = headers.get("UPLOAD_CHECKSUM")
    if checksum_header:
        try:
            algorithm = tus_headers.parse_checksum(checksum_header).algorithm
        except BadRequest:
            return None
    placed = PlacedPiece.place(app.blobs, app.upload_hashes, upload_id, int(offset), algorithm)
    if placed is None:
        return None
    return ReceivedPiece(
        placed,
        upload_id,
        app.upload_hashes,
        app.settings,
        _owner_if_kept(app, headers),
        app.release_connection,
    )


def _owner_if_kept(app: Pcloud, headers: Mapping[str, str]) -> Callable[[], int | None]:
    """Whom a broken-off PATCH would have been let in as (ReceivedPiece's judge): its
    Tus-Resumable must be 1.0.0 and its access token valid (else Unauthorized). A piece
    that declares the upload's length is judged by its whole: None, nothing is kept."""
    authorization = headers.get("AUTHORIZATION")
    version = headers.get("TUS_RESUMABLE")
    declares_length = "UPLOAD_LENGTH" in headers

    def owner_id() -> int | None:
        if version != TUS_VERSION or declares_length:
            return None
        return authenticate(app, authorization).user_id

    return owner_id


class _NoBytes:
    @staticmethod
    def read(_size: int = -1, /) -> bytes:
        return b""


_EMPTY = _NoBytes()
