"""A folder as a ZIP download, under /api/v1 (the bytes are made as they are sent)."""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

from flask import Blueprint, Response

from pcloud.api.context import current_user_id, login_required, pcloud
from pcloud.api.tree import PREFIX, folder_ref
from pcloud.services import archive

blueprint = Blueprint("archive", __name__, url_prefix=PREFIX)


@blueprint.get("/folders/<ref>/zip")
@login_required
def download_folder(ref: str) -> Response:
    return send_folder_archive(current_user_id(), ref)


def send_folder_archive(user_id: int, ref: str) -> Response:
    """The folder (`root` or an id) and all below it as a streamed ZIP attachment. (The
    database is read before the answer starts; sending it reads only the store.)"""
    made = archive.folder_archive(pcloud().blobs, user_id, folder_ref(ref))
    response = Response(made.chunks, mimetype="application/zip")
    response.content_length = made.length
    name_attachment(response, made.name)
    response.cache_control.private = True
    response.cache_control.no_store = True
    return response


def name_attachment(response: Response, name: str) -> None:
    """Content-Disposition: attachment under this name. A header is Latin-1, so a name
    that is not ASCII goes in RFC 6266's `filename*` (UTF-8, percent-encoded), beside an
    ASCII `filename` for old clients: as werkzeug's send_file writes it for files."""
    try:
        name.encode("ascii")
    except UnicodeEncodeError:
        simple = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
        encoded = {"filename*": f"UTF-8''{quote(name, safe='!#$&+^`|~')}"}
        response.headers.set("Content-Disposition", "attachment", filename=simple, **encoded)
    else:
        response.headers.set("Content-Disposition", "attachment", filename=name)
