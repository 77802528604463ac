"""Thumbnails of a signed-in user's files: `GET /api/v1/files/<id>/thumbnail?size=S`."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, Response, request
from werkzeug.http import quote_etag

from pcloud.api.context import current_user_id, login_required, pcloud, quick_found, quick_when
from pcloud.api.tree import PREFIX
from pcloud.errors import NotFound, PcloudError
from pcloud.services import thumbnails
from pcloud.services.files import FILE_NOT_FOUND

blueprint = Blueprint("thumbnails", __name__, url_prefix=PREFIX)
YEAR = 365 * 86400
PRIVATE_FOR_A_YEAR = f"private, max-age={YEAR}, immutable"
PUBLIC_FOR_A_YEAR = f"public, max-age={YEAR}, immutable"


def accepted_format(accept: str) -> str:
    return thumbnails.choose_format("image/webp" in accept)


def requested(size: str | None, accept: str) -> tuple[int, str]:
    """The size (`?size=`) and format (from Accept) of the thumbnail asked for."""
    return thumbnails.parse_size(size), accepted_format(accept)


def made_already(
    file_id: int, headers: Mapping[str, str], query: dict[str, list[str]]
) -> thumbnails.FileThumbnail | bool:
    """@quick_when's test: the file (whoever's it is: the view checks) when its thumbnail
    of the size and format asked for is made already; else False (made in a thread)."""
    try:
        size, image_format = requested((query.get("size") or [None])[0], headers.get("ACCEPT", ""))
    except PcloudError:
        return True  # a 400, at once
    found = thumbnails.file_thumbnail(file_id, size, image_format)
    return found if found is not None and found.made is not None else False


@blueprint.get("/files/<id:file_id>/thumbnail")
@quick_when(lambda arguments, headers, query: made_already(arguments["file_id"], headers, query))
@login_required
def file_thumbnail(file_id: int):
    size, image_format = requested(request.args.get("size"), request.headers.get("Accept", ""))
    found = quick_found()
    if not (
        isinstance(found, thumbnails.FileThumbnail)
        and found.made is not None
        and (found.made.size, found.made.format) == (size, image_format)
    ):
        found = thumbnails.file_thumbnail(file_id, size, image_format)
    if found is None or found.owner_id != current_user_id() or not found.live:
        raise NotFound(FILE_NOT_FOUND)
    return send_thumbnail(found.sha256, found.blob_key, private=True, made=found.made)


def send_thumbnail(
    sha256: str, blob_key: str, private: bool, made: thumbnails.ThumbnailRef | None = None
) -> Response:
    """The content's thumbnail of `?size=` in WebP when the client accepts it (else
    JPEG), made now unless `made`, with an ETag and a year's Cache-Control: a content's
    thumbnail never changes. (Also the public share pages' thumbnails.)"""
    app = pcloud()
    ref = made
    if ref is None:
        size, image_format = requested(request.args.get("size"), request.headers.get("Accept", ""))
        ref = thumbnails.thumbnail(
            app.blobs, app.thumbnailer.requests, sha256, blob_key, size, image_format
        )
    try:
        with app.blobs.open(ref.store_key) as stored:
            # Whole: a thumbnail is a few kilobytes (at most a few hundred), and never
            # asked for by range; send_file's Range, stat and Last-Modified cost a warm
            # thumbnail a sixth of its time.
            data = stored.read()
    except FileNotFoundError:
        raise NotFound("The thumbnail's bytes are missing: run `pcloud files gc`") from None
    response = Response(
        data,
        mimetype=ref.mime_type,
        headers={
            # A browser keeps the thumbnail a year, unasked: its content never changes.
            "Cache-Control": PRIVATE_FOR_A_YEAR if private else PUBLIC_FOR_A_YEAR,
            "Vary": "Accept",
            "ETag": quote_etag(ref.etag),
        },
    )
    return response.make_conditional(request.environ)  # If-None-Match: 304
