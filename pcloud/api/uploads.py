"""A multipart upload's HTTP side: what the request says of the file, and where its body
is (received already under `pcloud serve`, or still in wsgi.input). The receiving itself
is pcloud.services.uploads.multipart's."""

from __future__ import annotations

from datetime import datetime

from flask import request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.wsgi import get_input_stream

from pcloud.api.context import pcloud, received_body
from pcloud.errors import BadRequest
from pcloud.moments import parse_moment
from pcloud.services.uploads import multipart
from pcloud.services.uploads.multipart import MultipartReceiver, ReceivedFile


def receive_file() -> ReceivedFile:
    """The request's `file` part, stored as a blob (now the caller's). Raises BadRequest
    or PayloadTooLarge (InsufficientStorage on a full disk); on any failure nothing is
    left in the store.

    Under `pcloud serve` the body was received into the blob store as it arrived (a
    MultipartReceiver, see pcloud.api.bodies); elsewhere it is read from wsgi.input now.
    """
    received = received_body()
    if isinstance(received, MultipartReceiver):
        return received.take()
    if request.mimetype != "multipart/form-data":
        raise BadRequest("Upload must be multipart/form-data with a 'file' field")
    boundary = request.mimetype_params.get("boundary", "").encode("latin-1", "replace")
    if not boundary:
        raise BadRequest("Malformed multipart body: no boundary")
    stream = get_input_stream(request.environ, max_content_length=request.max_content_length)
    app = pcloud()
    try:
        return multipart.receive_multipart(
            app.blobs, app.settings.max_upload_size, boundary, stream.read
        )
    except ClientDisconnected:
        raise BadRequest("The upload was cut off before it was complete") from None
    except RequestEntityTooLarge as error:  # (werkzeug's, from the stream's limit)
        raise multipart.client_error(error) from None


def expected_file_size() -> int | None:
    """The file's size as Content-Length foretells it, less room for the multipart
    framing (for a quota check before any byte is stored; add_file checks exactly)."""
    if request.content_length is None:
        return None
    return max(0, request.content_length - 4096)


def modified_at_field(fields: dict[str, str]) -> datetime | None:
    """The form field `modified_at` (ISO 8601, or epoch milliseconds), if sent."""
    text = fields.get("modified_at")
    if not text:
        return None
    try:
        return parse_moment(text)
    except ValueError:
        raise BadRequest("'modified_at' must be ISO 8601 or epoch milliseconds") from None
