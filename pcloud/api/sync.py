"""The sync API's other half, under /api/v1: upload-check, files made from content the
user has, the trash, and the change feed."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from pcloud.api.context import current_user_id, json_body, login_required, pcloud, quick
from pcloud.api.tree import PREFIX, on_conflict, query_int
from pcloud.errors import BadRequest
from pcloud.services import changes, content, from_content, trash, upload_check
from pcloud.services.entries import Entry, iso_millis, iso_of_micros, media_json

blueprint = Blueprint("sync", __name__, url_prefix=PREFIX)
# 10,000 quoted hashes and their commas, with room for whitespace.
MAX_CHECK_BYTES = upload_check.MAX_HASHES * 80 + 1024
# A thousand files, each with its hash, a name of up to 255 bytes and a time.
MAX_BATCH_BYTES = from_content.MAX_BATCH * 1500


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
        if status.more_paths:
            result["more_paths"] = True
        if status.deleted_at is not None:
            result["deleted_at"] = iso_millis(status.deleted_at)
        results.append(result)
    return jsonify({"results": results})


@blueprint.delete("/deleted-content")
@login_required
def forget_deleted_content():
    return jsonify({"forgotten": content.forget_deleted(current_user_id())})


@blueprint.post("/files/from-content")
@quick
@login_required
def create_from_content():
    wanted = from_content.parse_request(json_body())
    entry = from_content.create_one(current_user_id(), wanted, on_conflict())
    return jsonify(entry.to_json()), 201


@blueprint.post("/files/from-content/batch")
@login_required
def create_many_from_content():
    items = json_body(MAX_BATCH_BYTES).get("files")
    if not isinstance(items, list) or not items:
        raise BadRequest("'files' must be a list of {sha256, name, folder_id, modified_at}")
    wanted = [from_content.parse_request(item) for item in items]
    results = from_content.create_many(current_user_id(), wanted, on_conflict())
    return jsonify(
        {
            "results": [
                {"status": 201, "file": result.to_json()}
                if isinstance(result, Entry)
                else {"status": result.status, **result.to_json()}
                for result in results
            ]
        }
    )


@blueprint.get("/trash")
@quick
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


@blueprint.post("/trash/<any(file, folder):item_type>/<id:item_id>/restore")
@quick
@login_required
def restore(item_type: str, item_id: int):
    return jsonify(trash.restore(current_user_id(), item_type, item_id).to_json())


@blueprint.delete("/trash")
@login_required
def empty_trash():
    purged = trash.empty(pcloud().blobs, current_user_id(), request.remote_addr)
    return jsonify({"purged": purged})


@blueprint.get("/changes")
@quick
@login_required
def change_feed():
    cursor = changes.parse_cursor(request.args.get("cursor"))
    limit = query_int("limit", 1000)
    if not 1 <= limit <= changes.MAX_PAGE:
        raise BadRequest(f"'limit' must be 1 to {changes.MAX_PAGE}")
    with_versions = request.args.get("versions", "false")
    if with_versions not in ("true", "false"):
        raise BadRequest("'versions' must be true or false")
    page = changes.feed(current_user_id(), cursor, limit, with_versions == "true")
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
                    "at": iso_of_micros(change.at_micros),
                    **media_json(
                        page.media.get(change.item_id) if change.item_type == "file" else None
                    ),
                }
                for change in page.changes
            ],
            "cursor": str(page.cursor),
            "has_more": page.has_more,
        }
    )


@blueprint.get("/changes/cursor")
@quick
@login_required
def current_cursor():
    return jsonify({"cursor": str(changes.current_cursor(current_user_id()))})
