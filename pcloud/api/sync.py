"""The sync API's other half, under /api/v1: upload-check, files made from content the
user has, the trash, and the change feed."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from pcloud.api.context import current_user_id, json_body, login_required, pcloud
from pcloud.api.tree import PREFIX, on_conflict, optional_id, query_int
from pcloud.errors import BadRequest
from pcloud.services import changes, content, trash, upload_check
from pcloud.services.entries import iso_millis
from pcloud.services.uploads_resumable import parse_moment

blueprint = Blueprint("sync", __name__, url_prefix=PREFIX)
# 10,000 quoted hashes and their commas, with room for whitespace.
MAX_CHECK_BYTES = upload_check.MAX_HASHES * 80 + 1024


@blueprint.post("/upload-check")
@login_required
def check_uploads():
    body = json_body(MAX_CHECK_BYTES)
    hashes = upload_check.parse_hashes(body.get("sha256"))
    results = []
    for status in upload_check.check(current_user_id(), hashes):
        result = {"sha256": status.sha256, "status": status.status}
        if status.paths:
            result["paths"] = status.paths
        if status.deleted_at is not None:
            result["deleted_at"] = iso_millis(status.deleted_at)
        results.append(result)
    return jsonify({"results": results})


@blueprint.delete("/deleted-content")
@login_required
def forget_deleted_content():
    return jsonify({"forgotten": content.forget_deleted(current_user_id())})


@blueprint.post("/files/from-content")
@login_required
def create_from_content():
    body = json_body()
    moment = body.get("modified_at")
    if moment is not None and not isinstance(moment, (str, int)) or isinstance(moment, bool):
        raise BadRequest("'modified_at' must be ISO 8601 text or epoch milliseconds")
    entry = upload_check.create_from_content(
        current_user_id(),
        body.get("sha256"),
        optional_id(body, "folder_id"),
        body.get("name"),
        _moment(moment),
        on_conflict(),
    )
    return jsonify(entry.to_json()), 201


def _moment(value):
    if value is None:
        return None
    try:
        return parse_moment(str(value))
    except BadRequest:
        raise BadRequest("'modified_at' must be ISO 8601 text or epoch milliseconds") from None


@blueprint.get("/trash")
@login_required
def list_trash():
    return jsonify(
        {
            "entries": [
                {
                    **item.entry.to_json(),
                    "size": item.size,
                    "trashed_at": iso_millis(item.trashed_at),
                    "original_folder_id": item.original_folder_id,
                }
                for item in trash.list_trash(current_user_id())
            ]
        }
    )


@blueprint.post("/trash/<any(file, folder):item_type>/<int:item_id>/restore")
@login_required
def restore(item_type: str, item_id: int):
    return jsonify(trash.restore(current_user_id(), item_type, item_id).to_json())


@blueprint.delete("/trash")
@login_required
def empty_trash():
    purged = trash.empty(pcloud().blobs, current_user_id(), request.remote_addr)
    return jsonify({"purged": purged})


@blueprint.get("/changes")
@login_required
def change_feed():
    cursor = changes.parse_cursor(request.args.get("cursor"))
    limit = query_int("limit", 1000)
    if not 1 <= limit <= changes.MAX_PAGE:
        raise BadRequest(f"'limit' must be 1 to {changes.MAX_PAGE}")
    page = changes.feed(current_user_id(), cursor, limit)
    return jsonify(
        {
            "changes": [
                {
                    "cursor": str(change.id),
                    "kind": change.kind,
                    "type": change.item_type,
                    "id": change.item_id,
                    "parent_id": change.parent_id,
                    "name": change.name,
                    "at": iso_millis(change.at),
                }
                for change in page.changes
            ],
            "cursor": str(page.cursor),
            "has_more": page.has_more,
        }
    )


@blueprint.get("/changes/cursor")
@login_required
def current_cursor():
    return jsonify({"cursor": str(changes.current_cursor(current_user_id()))})
