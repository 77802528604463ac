"""Thumbnails of a signed-in user's files: `GET /api/v1/files/<id>/thumbnail?size=S`."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, Response, request, send_file

from pcloud.api.context import current_user_id, login_required, pcloud, quick_when
from pcloud.api.tree import PREFIX
from pcloud.errors import NotFound, PcloudError
from pcloud.services import thumbnails, tree
from pcloud.services.files import FILE_NOT_FOUND

blueprint = Blueprint("thumbnails", __name__, url_prefix=PREFIX)
YEAR = 365 * 86400


def accepted_format(accept: str) -> str:
    return thumbnails.choose_format("image/webp" in accept)


def made_already(file_id: int, headers: Mapping[str, str], query: dict[str, list[str]]) -> bool:
    """@quick_when's test: the file's thumbnail of the size asked for is made already,
    in the format Accept picks."""
    try:
        size = thumbnails.parse_size((query.get("size") or [None])[0])
    except PcloudError:
        return True  # a 400, at once
    return thumbnails.is_made_for_file(file_id, size, accepted_format(headers.get("ACCEPT", "")))


@blueprint.get("/files/<id:file_id>/thumbnail")
@quick_when(lambda arguments, headers, query: made_already(arguments["file_id"], headers, query))
@login_required
def file_thumbnail(file_id: int):
    size = thumbnails.parse_size(request.args.get("size"))
    image_format = accepted_format(request.headers.get("Accept", ""))
    found = thumbnails.file_thumbnail(current_user_id(), file_id, size, image_format)
    if found is None or found.folder_id is None or not tree.is_live(found.folder_id):
        raise NotFound(FILE_NOT_FOUND)
    return send_thumbnail(found.sha256, found.blob_key, private=True, made=found.made)


def send_thumbnail(
    sha256: str, blob_key: str, private: bool, made: thumbnails.ThumbnailRef | None = None
) -> Response:
    """The content's thumbnail of `?size=` in WebP when the client accepts it (else
    JPEG), made now unless `made`, with an ETag and a year's Cache-Control: a content's
    thumbnail never changes. (Also the public share pages' thumbnails.)"""
    app = pcloud()
    size = thumbnails.parse_size(request.args.get("size"))
    image_format = accepted_format(request.headers.get("Accept", ""))
    assert app.thumbnailer is not None
    ref = made or thumbnails.thumbnail(
        app.blobs, app.thumbnailer.requests, sha256, blob_key, size, image_format
    )
    try:
        body = app.blobs.local_path(ref.store_key) or app.blobs.open(ref.store_key)
        response = send_file(body, mimetype=ref.mime_type, etag=ref.etag, conditional=True)
    except FileNotFoundError:
        raise NotFound("The thumbnail's bytes are missing: run `pcloud files gc`") from None
    response.cache_control.max_age = YEAR
    response.cache_control.immutable = True
    if private:
        response.cache_control.private = True
    else:
        response.cache_control.public = True
    response.vary.add("Accept")
    return response
