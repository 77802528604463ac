"""The public side of share links: `/s/<token>` and what hangs below it, for visitors
without an account.

Pages are HTML (Jinja's autoescaping: every name is user content and stays text) with
a Content-Security-Policy that allows only this server's own scripts, styles, pictures
and media. Everything else answers as the API does (JSON errors, the API's sandboxing
CSP): downloads, thumbnails, the ZIP, and the file drop's tus endpoint. The rules of
what a link covers live in pcloud.services.shares.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    make_response,
    redirect,
    render_template,
    request,
    send_from_directory,
    stream_with_context,
)

from pcloud.api import tus, tus_headers
from pcloud.api.archive import name_attachment
from pcloud.api.context import pcloud, quick, quick_when, receives_body
from pcloud.api.files import send_stored_file
from pcloud.api.thumbnails import made_already, send_thumbnail
from pcloud.errors import BadRequest, NotFound, PcloudError, Unauthorized
from pcloud.models import Folder, Share, ShareUpload, database_proxy
from pcloud.services import archive, names, shares
from pcloud.services.uploads import resumable
from pcloud.sizes import format_size

STATIC_FOLDER = Path(__file__).resolve().parent.parent / "web" / "static"
TEMPLATE_FOLDER = Path(__file__).resolve().parent.parent / "web" / "templates"
STATIC_FILES = ("base.css", "share.css", "share.js")
DROP_CHUNK = 8 * 1024 * 1024  # the drop page's tus pieces (at most TUS_MAX_CHUNK)
INLINE_TYPES = ("image", "video")

# The pages run this server's own scripts and styles and show its pictures and videos,
# nothing from anywhere else (the API's `sandbox` policy would stop their scripts).
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "media-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)

blueprint = Blueprint("share_pages", __name__, template_folder=str(TEMPLATE_FOLDER))


# Pages ----------------------------------------------------------------------------


def page(view: Callable[..., Any]) -> Callable[..., Any]:
    """An HTML page: with its own CSP (PAGE_CSP, kept by pcloud.api.security), and its refusals
    (404, 410, 403, 429) rendered as a page of the same look."""

    @functools.wraps(view)
    def page_view(*args: Any, **kwargs: Any) -> Any:
        try:
            response = make_response(view(*args, **kwargs))
        except _Locked:
            token = kwargs["token"]
            response = make_response(
                render_template("share/password.html", token=token, wrong=False), 401
            )
        except PcloudError as error:
            response = make_response(
                render_template("share/error.html", status=error.status, message=error.message),
                error.status,
            )
            response.headers.update(error.headers)
        response.headers["Content-Security-Policy"] = PAGE_CSP
        response.headers["Cache-Control"] = "no-store"
        return response

    return page_view


def unlocked_share(token: str) -> Share:
    """The link, if the visitor may see it (its password's cookie, when it has one)."""
    share = shares.open_link(token)
    cookie = request.cookies.get(cookie_name(share))
    if not shares.is_unlocked(share, cookie, pcloud().settings.secret_key):
        raise _Locked("This link needs its password")
    return share


class _Locked(PcloudError):
    """The link has a password, and this visitor has not given it yet."""

    status = 401


def cookie_name(share: Share) -> str:
    return f"pcloud_share_{share.id}"


@blueprint.get("/s/<token>")
@quick
@page
def share_page(token: str):
    share = unlocked_share(token)
    if share.mode == shares.UPLOAD:
        return render_template(
            "share/drop.html",
            token=token,
            chunk=min(DROP_CHUNK, pcloud().settings.tus_max_chunk),
            folder=Folder.get_by_id(share.folder_id).name or "a folder",
        )
    if share.file_id is not None:
        stored = shares.shared_file(share)
        return render_template(
            "share/file.html",
            token=token,
            file=stored,
            kind=names.file_type(stored.name),
            size=format_size(stored.size),
            inline=share.max_downloads is None,
            mime=names.mime_type(stored.name),
        )
    return _folder_page(token, share, None)


@blueprint.get("/s/<token>/d/<id:folder_id>")
@quick
@page
def folder_page(token: str, folder_id: int):
    share = unlocked_share(token)
    return _folder_page(token, share, folder_id)


def _folder_page(token: str, share: Share, folder_id: int | None):
    folder = shares.shared_folder(share, folder_id)
    contents = shares.folder_page(share, folder)
    return render_template(
        "share/folder.html",
        token=token,
        folder=folder,
        trail=shares.path_below(share, folder),
        share_folder_id=share.folder_id,
        subfolders=contents.subfolders,
        files=[
            {
                "file": stored,
                "kind": names.file_type(stored.name),
                "size": format_size(stored.size),
            }
            for stored in contents.files
        ],
        limited=share.max_downloads is not None,
    )


@blueprint.post("/s/<token>/unlock")
@page
def unlock(token: str):
    share = shares.open_link(token)
    password = request.form.get("password", "")
    try:
        value = shares.unlock(share, password, pcloud().settings.secret_key, request.remote_addr)
    except PcloudError as error:
        if error.status != 401:
            raise
        return render_template("share/password.html", token=token, wrong=True), 401
    response = redirect(f"{request.script_root}/s/{token}", code=303)
    response.set_cookie(
        cookie_name(share),
        value,
        max_age=int(shares.UNLOCK_LIFETIME.total_seconds()),
        path=f"{request.script_root}/s/{token}",
        secure=request.is_secure,
        httponly=True,
        samesite="Lax",
    )
    return response


@blueprint.get("/s/static/<name>")
@quick
def static_file(name: str):
    """The pages' own stylesheets and script (the web app's base.css among them)."""
    if name not in STATIC_FILES:
        raise NotFound("No such file")
    response = send_from_directory(STATIC_FOLDER, name, max_age=3600)
    return response


# Bytes ----------------------------------------------------------------------------


@blueprint.get("/s/<token>/download")
@blueprint.get("/s/<token>/file/<id:file_id>")
@quick
def download(token: str, file_id: int | None = None):
    """A file of the link as an attachment; each request counts as a download."""
    share = _open_for_bytes(token)
    stored = shares.shared_file(share, file_id)
    shares.count_download(share, stored.name, request.remote_addr)
    return send_stored_file(stored)


@blueprint.get("/s/<token>/raw")
@blueprint.get("/s/<token>/raw/<id:file_id>")
@quick
def inline(token: str, file_id: int | None = None):
    """A picture or video of the link to show in the page (Range, so video seeks).
    Not for links with a download limit: their every byte goes through download."""
    share = _open_for_bytes(token)
    stored = shares.shared_file(share, file_id)
    if share.max_downloads is not None or names.file_type(stored.name) not in INLINE_TYPES:
        raise NotFound("Only pictures and videos show inline, on links without a limit")
    response = send_stored_file(stored)
    response.headers["Content-Disposition"] = "inline"
    return response


@blueprint.get("/s/<token>/thumbnail")
@blueprint.get("/s/<token>/thumbnail/<id:file_id>")
@quick_when(lambda arguments, headers, query: _thumbnail_made(arguments, headers, query))
def thumbnail(token: str, file_id: int | None = None):
    share = _open_for_bytes(token)
    stored = shares.shared_file(share, file_id)
    return send_thumbnail(stored.sha256, stored.blob_key, private=share.password_hash is not None)


def _thumbnail_made(
    arguments: dict[str, Any], headers: Mapping[str, str], query: dict[str, list[str]]
) -> bool:
    file_id = arguments.get("file_id")
    if file_id is None:  # a file link's own thumbnail
        file_id = (
            Share.select(Share.file_id)
            .where(Share.token_hash == shares.token_hash(arguments["token"]))
            .scalar()
        )
    return file_id is not None and bool(made_already(file_id, headers, query))


@blueprint.get("/s/<token>/zip")
@blueprint.get("/s/<token>/zip/<id:folder_id>")
def download_zip(token: str, folder_id: int | None = None):
    """The shared folder (or one below it) as one ZIP, streamed; one download."""
    share = _open_for_bytes(token)
    folder = shares.shared_folder(share, folder_id)
    made = archive.folder_archive(pcloud().blobs, share.owner_id, folder.id)
    shares.count_download(share, made.name, request.remote_addr)
    pcloud().release_connection()  # the stream reads the store only
    response = Response(
        stream_with_context(made.chunks),
        mimetype="application/zip",
        headers={"Content-Length": str(made.length)},
    )
    name_attachment(response, made.name)
    response.cache_control.no_store = True
    return response


def _open_for_bytes(token: str) -> Share:
    try:
        return unlocked_share(token)
    except _Locked:
        raise Unauthorized("This link needs its password: open its page first") from None


# The file drop: tus, under the link -----------------------------------------------


@blueprint.route("/s/<token>/tus/", methods=["OPTIONS"])
@blueprint.route("/s/<token>/tus/<upload_id>", methods=["OPTIONS"])
def drop_discover(token: str, upload_id: str | None = None):
    return tus.discover()


@blueprint.route("/s/<token>/tus/", methods=["POST"], provide_automatic_options=False)
def drop_create(token: str):
    tus._check_version()
    share = _drop(token)
    app = pcloud()
    length = tus_headers.upload_length(request.headers, required=True)
    resumable.check_length(app.settings, length)
    metadata = _drop_metadata(request.headers.get("Upload-Metadata", ""), share.folder_id)
    new = tus_headers.new_upload(length, metadata)
    state = resumable.create_upload(app.blobs, app.settings, share.owner_id, new)
    with database_proxy.atomic():
        ShareUpload.create(upload_id=state.id, share=share.id)
    if length == 0:
        state = _drop_append(share, state.id, 0, None, None)
    response = tus._answer(state, 201, offset=length == 0)
    response.headers["Location"] = f"{request.script_root}/s/{token}/tus/{state.id}"
    return _tus(response)


@blueprint.route("/s/<token>/tus/<upload_id>", methods=["HEAD"], provide_automatic_options=False)
def drop_status(token: str, upload_id: str):
    tus._check_version()
    share = _drop(token, upload_id)
    state = resumable.get_upload(share.owner_id, upload_id)
    response = tus._answer(state, 200)
    if state.length is not None:
        response.headers["Upload-Length"] = str(state.length)
    response.headers["Cache-Control"] = "no-store"
    return _tus(response)


@blueprint.route("/s/<token>/tus/<upload_id>", methods=["PATCH"], provide_automatic_options=False)
@receives_body("tus")
def drop_patch(token: str, upload_id: str):
    tus._check_version()
    share = _drop(token, upload_id)
    offset = tus_headers.upload_offset(request.headers)
    state = _drop_append(share, upload_id, offset, tus._body(patch=True), tus._checksum())
    return _tus(tus._answer(state, 204))


@blueprint.route("/s/<token>/tus/<upload_id>", methods=["DELETE"], provide_automatic_options=False)
def drop_terminate(token: str, upload_id: str):
    tus._check_version()
    share = _drop(token, upload_id)
    app = pcloud()
    resumable.terminate(app.blobs, app.upload_hashes, share.owner_id, upload_id)
    return _tus(Response(status=204))


def _drop(token: str, upload_id: str | None = None) -> Share:
    """The upload-only link (unlocked), and, given an upload id, only an upload that
    this very link started: a drop visitor reaches nothing else of the owner's."""
    share = _open_for_bytes(token)
    shares.require_upload(share)
    if upload_id is not None and not (
        ShareUpload.select()
        .where((ShareUpload.upload_id == upload_id) & (ShareUpload.share == share.id))
        .exists()
    ):
        raise NotFound("Upload not found")
    return share


def _drop_append(share: Share, upload_id: str, offset: int, body, checksum):
    app = pcloud()
    state = resumable.append(
        app.blobs,
        app.upload_hashes,
        app.settings,
        share.owner_id,
        upload_id,
        offset,
        body if body is not None else tus._EMPTY,
        checksum=checksum,
    )
    if state.stored_name is not None and state.offset == state.length:
        shares.count_upload(share, state.stored_name, state.offset, request.remote_addr)
    return state


def _drop_metadata(header: str, folder_id: int) -> str:
    """The visitor's Upload-Metadata with its folder forced to the link's: only the
    file's name, modification time and type are taken from them."""
    sent = tus_headers.parse_metadata(header)
    kept = {
        key: sent[key]
        for key in ("filename", "name", "modified_at", "lastModified", "filetype")
        if key in sent
    }
    if "filename" not in kept and "name" not in kept:
        raise BadRequest("Upload-Metadata must name the file (filename)")
    kept["folder_id"] = str(folder_id)
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in kept.items()
    )


def _tus(response: Response) -> Response:
    response.headers["Tus-Resumable"] = tus.TUS_VERSION
    return response
