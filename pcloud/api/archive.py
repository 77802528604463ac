"""A folder as a ZIP download, under /api/v1 (the bytes are made as they are sent)."""

from __future__ import annotations

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
    response.headers.set("Content-Disposition", "attachment", filename=made.name)
    response.cache_control.private = True
    response.cache_control.no_store = True
    return response
