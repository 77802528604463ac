"""The Android contract's file routes: list, upload, download, delete, rename."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, g, jsonify, request, send_file

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
    blobs = pcloud().blobs
    try:
        # A path lets werkzeug answer Range requests and the server use sendfile; a
        # backend without local files hands over a stream instead.
        body = blobs.local_path(stored.blob_key) or blobs.open(stored.blob_key)
        response = send_file(
            body,
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
    response.cache_control.private = True
    return response


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
