"""The sync API's folder tree, under /api/v1: list, create, rename, move, copy and delete
(to the trash) files and folders by id, and upload into a folder.

Folders are named by id, or `root` for the user's root folder (the contract's flat list).
A taken name is 409 unless the request asks `?on_conflict=rename`.
"""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from pcloud.api.context import (
    current_user_id,
    json_body,
    login_required,
    pcloud,
    quick,
    receives_body,
    signed_in,
)
from pcloud.api.files import send_stored_file
from pcloud.api.uploads import expected_file_size, modified_at_field, receive_file
from pcloud.errors import BadRequest, NotFound
from pcloud.services import entries, files, folders, moves, quota, trash, tree

PREFIX = "/api/v1"
blueprint = Blueprint("tree", __name__, url_prefix=PREFIX)


def folder_ref(text: str) -> int | None:
    """'root' -> None; '12' -> 12; anything else is a folder nobody has."""
    if text == "root":
        return None
    if not text.isdigit() or not text.isascii() or len(text) > 18:
        raise NotFound(tree.FOLDER_NOT_FOUND)
    return int(text)


def on_conflict(policies: tuple[str, ...] = tree.CONFLICT_POLICIES) -> str:
    policy = request.args.get("on_conflict", tree.FAIL)
    if policy not in policies:
        raise BadRequest(f"'on_conflict' must be one of {', '.join(policies)}")
    return policy


def optional_id(body: dict, field: str) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if (value := tree.as_id(value)) is None:
        raise BadRequest(f"'{field}' must be a folder id (a whole number)")
    return value


def if_match() -> str | None:
    """The If-Match header's ETag, unquoted (None when absent or `*`)."""
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    tag = header.strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    return tag.strip('"')


def query_int(name: str, default: int) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    if not text.isdigit() or not text.isascii() or len(text) > 9:
        raise BadRequest(f"'{name}' must be a whole number")
    return int(text)


@blueprint.get("/folders/<ref>")
@quick
@login_required
def list_folder(ref: str):
    order = request.args.get("order", "asc")
    if order not in ("asc", "desc"):
        raise BadRequest("'order' must be asc or desc")
    page = folders.listing(
        current_user_id(),
        folder_ref(ref),
        offset=query_int("offset", 0),
        limit=query_int("limit", 1000),
        sort=request.args.get("sort", "name"),
        descending=order == "desc",
    )
    response = jsonify(
        {
            "folder": page.folder.to_json(),
            "entries": page.entries,
            "total": page.total,
            "next_offset": page.next_offset,
            "cursor": str(page.cursor),
        }
    )
    response.set_etag(page.folder.etag)
    return response.make_conditional(request)


@blueprint.post("/folders")
@quick
@login_required
def create_folder():
    body = json_body()
    entry = folders.create(
        current_user_id(), optional_id(body, "parent_id"), body.get("name"), on_conflict()
    )
    return jsonify(entry.to_json()), 201


@blueprint.patch("/folders/<id:folder_id>")
@quick
@login_required
def update_folder(folder_id: int):
    body = json_body()
    if body.get("name") is None and body.get("parent_id") is None:
        raise BadRequest("Send 'name' to rename, 'parent_id' to move, or both")
    entry = moves.move_folder(
        current_user_id(),
        folder_id,
        body.get("name"),
        optional_id(body, "parent_id"),
        on_conflict(),
        if_match(),
    )
    return jsonify(entry.to_json())


@blueprint.post("/folders/<id:folder_id>/copy")
@login_required
def copy_folder(folder_id: int):
    body = json_body()
    entry = moves.copy_folder(
        current_user_id(),
        folder_id,
        optional_id(body, "parent_id"),
        body.get("name"),
        on_conflict(),
    )
    return jsonify(entry.to_json()), 201


@blueprint.delete("/folders/<id:folder_id>")
@quick
@login_required
def delete_folder(folder_id: int):
    trash.trash_folder(current_user_id(), folder_id, if_match())
    return jsonify({"message": "Moved to the trash"})


@blueprint.post("/folders/<ref>/files")
@quick
@login_required
@receives_body("multipart")
def upload_into(ref: str):
    app, user = pcloud(), signed_in()
    folder = folders.get(user.user_id, folder_ref(ref))  # 404 before a byte is stored
    policy = on_conflict(tree.UPLOAD_POLICIES)
    quota.check_within(user.user_id, user.quota_bytes, expected_file_size())
    received = receive_file()
    stored = files.add_file(
        app.blobs,
        user.user_id,
        received.name,
        received.blob,
        modified_at=modified_at_field(received.fields),
        folder_id=folder.id,
        on_conflict=policy,
        if_match=if_match(),
        root_id=user.root_folder_id,
        quota_bytes=user.quota_bytes,
        session_id=user.session_id,
    )
    g.uploaded_bytes = stored.size
    return jsonify(entries.of_file(stored).to_json()), 201


@blueprint.get("/files/<id:file_id>")
@quick
@login_required
def get_file(file_id: int):
    stored = folders.file_of(current_user_id(), file_id)
    return jsonify(entries.of_file(stored, entries.media_of(stored.sha256)).to_json())


@blueprint.get("/files/<id:file_id>/content")
@quick
@login_required
def download(file_id: int):
    return send_stored_file(folders.file_of(current_user_id(), file_id))


@blueprint.patch("/files/<id:file_id>")
@quick
@login_required
def update_file(file_id: int):
    body = json_body()
    if body.get("name") is None and body.get("folder_id") is None:
        raise BadRequest("Send 'name' to rename, 'folder_id' to move, or both")
    entry = moves.move_file(
        current_user_id(),
        file_id,
        body.get("name"),
        optional_id(body, "folder_id"),
        on_conflict(),
        if_match(),
    )
    return jsonify(entry.to_json())


@blueprint.post("/files/<id:file_id>/copy")
@quick
@login_required
def copy_file(file_id: int):
    body = json_body()
    entry = moves.copy_file(
        current_user_id(), file_id, optional_id(body, "folder_id"), body.get("name"), on_conflict()
    )
    return jsonify(entry.to_json()), 201


@blueprint.delete("/files/<id:file_id>")
@quick
@login_required
def delete_file(file_id: int):
    trash.trash_file(current_user_id(), file_id, if_match())
    return jsonify({"message": "Moved to the trash"})
