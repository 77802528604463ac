"""The Android contract's file routes: list, upload, download, delete, rename."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

from flask import Blueprint, Response, g, jsonify, redirect, request, send_file

from pcloud.api.context import (
    current_user_id,
    json_body,
    login_required,
    pcloud,
    quick,
    receives_body,
    required,
    signed_in,
)
from pcloud.api.uploads import expected_file_size, modified_at_field, receive_file
from pcloud.errors import NotFound
from pcloud.services import files, names, quota

blueprint = Blueprint("files", __name__)
log = logging.getLogger("pcloud.api")


@blueprint.get("/files")
@quick
@login_required
def list_files():
    return jsonify(
        [
            {
                "filename": name,
                "file_type": names.file_type(name),
                "size": size,
                "modified_at": modified_at,
            }
            for name, size, modified_at in files.list_files(current_user_id())
        ]
    )


@blueprint.post("/upload")
@quick
@login_required
@receives_body("multipart")
def upload():
    app, user = pcloud(), signed_in()
    quota.check_within(user.user_id, user.quota_bytes, expected_file_size())  # before storing
    received = receive_file()
    stored = files.add_file(
        app.blobs,
        user.user_id,
        received.name,
        received.blob,
        modified_at_field(received.fields),
        root_id=user.root_folder_id,
        quota_bytes=user.quota_bytes,
    )
    g.uploaded_bytes = stored.size  # for the metrics, when they are on
    return jsonify({"message": "File uploaded successfully", "file": stored.name}), 201


@blueprint.get("/download/<path:filename>")
@quick
@login_required
def download(filename: str):
    return send_stored_file(files.get_file(current_user_id(), filename))


def send_stored_file(stored) -> Response:
    """A file's bytes as an attachment, with Range, ETag (its SHA-256) and conditional
    answers; NotFound when its blob is missing. Every download route answers with this."""
    app = pcloud()
    blobs = app.blobs
    try:
        # A path lets werkzeug answer Range requests and the server use sendfile; a
        # backend without local files streams the range asked for from where it is.
        path = blobs.local_path(stored.blob_key)
        if path is None:
            response = _send_from_store(app, stored)
        else:
            response = send_file(
                path,
                mimetype=names.mime_type(stored.name),
                as_attachment=True,
                download_name=stored.name,
                conditional=True,
                etag=stored.sha256,
                last_modified=stored.modified_at,
            )
    except FileNotFoundError:
        log.error(
            "File %r of user %s has no blob %s: run `pcloud files gc`",
            stored.name,
            stored.owner_id,
            stored.blob_key,
        )
        raise NotFound(files.FILE_NOT_FOUND) from None
    # send_file's no-cache, and private: set whole (werkzeug's cache_control re-parses
    # the header at each change, a cost every download would pay).
    response.headers["Cache-Control"] = "no-cache, private"
    return response


PRESIGNED_URL_LIFETIME = 300


def _send_from_store(app, stored) -> Response:
    """The answer send_file gives for a file on disk (ETag, Last-Modified, Range with
    206 and If-Range, 304, 412), its body streamed from the store, which is asked only
    for the range the client wants, and only when the answer has a body. With
    S3_REDIRECT_DOWNLOADS, a redirect to a short-lived URL of the store instead."""
    mimetype = names.mime_type(stored.name)
    if app.settings.s3_redirect_downloads:
        url = app.blobs.download_url(stored.blob_key, stored.name, mimetype, PRESIGNED_URL_LIFETIME)
        if url is not None:
            return redirect(url, 302)
    # werkzeug writes the headers (Content-Disposition for any name, validators) ...
    response = send_file(
        io.BytesIO(),
        mimetype=mimetype,
        as_attachment=True,
        download_name=stored.name,
        conditional=False,
        etag=stored.sha256,
        last_modified=stored.modified_at,
    )
    # ... and decides the status and the range from the size the database knows.
    response.response = []
    response.content_length = stored.size
    response.make_conditional(request.environ, accept_ranges=True, complete_length=stored.size)
    if response.status_code == 206:
        byte_range = response.content_range
        body = app.blobs.open_range(stored.blob_key, byte_range.start, byte_range.stop)
    elif response.status_code == 200 and request.method != "HEAD":
        body = app.blobs.open_range(stored.blob_key)
    else:
        return response
    response.response = _chunks(body)
    response.direct_passthrough = True
    return response


def _chunks(body) -> Iterator[bytes]:
    with body:
        while chunk := body.read(STREAM_CHUNK):
            yield chunk


# The server keeps what a worker wrote in memory up to its high watermark (4 MiB; see
# pcloud/server/build.py): a streamed download holds at most that, twice, plus a chunk.
STREAM_CHUNK = 1024 * 1024


@blueprint.delete("/delete/<path:filename>")
@quick
@login_required
def delete(filename: str):
    name = files.delete_file(pcloud().blobs, current_user_id(), filename, request.remote_addr)
    return jsonify({"message": f"File '{name}' deleted successfully"})


@blueprint.put("/rename")
@quick
@login_required
def rename():
    old_name, new_name = required(json_body(), "old_filename", "new_filename")
    old_name, new_name = files.rename_file(current_user_id(), old_name, new_name)
    return jsonify(
        {
            "message": f"File '{old_name}' renamed to '{new_name}'",
            "old_filename": old_name,
            "new_filename": new_name,
        }
    )
