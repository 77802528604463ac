"""What a page reads without a script, under /api/v1/web/content: a file's bytes for a
<video> (which seeks with Range), an <img> or a download link, and a folder as a ZIP.

The access token comes from the HttpOnly, SameSite=Strict cookie that the web session
sets (pcloud.web.session); these routes only read, so a request another site starts
(which SameSite keeps the cookie from anyway) could change nothing.
"""

from __future__ import annotations

from flask import Blueprint, Response, g, request

from pcloud.api.archive import send_folder_archive
from pcloud.api.context import authenticate, current_user_id, pcloud, quick
from pcloud.api.files import send_stored_file
from pcloud.errors import Unauthorized
from pcloud.services import folders
from pcloud.web.session import CONTENT_COOKIE, CONTENT_PATH, NOT_SIGNED_IN

blueprint = Blueprint("web_content", __name__, url_prefix=CONTENT_PATH)


@blueprint.before_request
def sign_in_from_cookie() -> None:
    token = request.cookies.get(CONTENT_COOKIE)
    if not token:
        raise Unauthorized(NOT_SIGNED_IN)
    g.signed_in = authenticate(pcloud(), f"Bearer {token}", request.remote_addr)


@blueprint.get("/files/<id:file_id>")
@quick
def file_content(file_id: int) -> Response:
    return send_stored_file(folders.file_of(current_user_id(), file_id))


@blueprint.get("/folders/<ref>/zip")
def folder_zip(ref: str) -> Response:
    return send_folder_archive(current_user_id(), ref)
