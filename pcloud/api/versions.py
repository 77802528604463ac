"""A file's earlier versions, under /api/v1/files/<id>/versions: list, download (Range and
ETag like any file), restore, delete."""

from __future__ import annotations

from flask import Blueprint, jsonify

from pcloud.api.context import current_user_id, login_required, pcloud, quick, signed_in
from pcloud.api.files import send_stored_file
from pcloud.models import FileVersion, micros
from pcloud.services import entries, files, versions

blueprint = Blueprint("versions", __name__, url_prefix="/api/v1")


def version_json(version: FileVersion) -> dict[str, object]:
    return {
        "id": version.id,
        "file_id": version.file_id,
        "size": version.size,
        "sha256": version.sha256,
        "etag": version.sha256,
        "modified_at": entries.iso_of_micros(micros(version.modified_at)),
        "replaced_at": entries.iso_of_micros(micros(version.replaced_at)),
        "replaced_by_user_id": version.replaced_by,
        "replaced_by_session_id": version.replaced_session,
    }


@blueprint.get("/files/<id:file_id>/versions")
@quick
@login_required
def list_versions(file_id: int):
    listed = versions.list_versions(current_user_id(), file_id)
    return jsonify({"versions": [version_json(version) for version in listed]})


@blueprint.get("/files/<id:file_id>/versions/<id:version_id>/content")
@quick
@login_required
def download(file_id: int, version_id: int):
    stored, version = versions.get_version(current_user_id(), file_id, version_id)
    return send_stored_file(versions.as_file(stored, version))


@blueprint.post("/files/<id:file_id>/versions/<id:version_id>/restore")
@quick
@login_required
def restore(file_id: int, version_id: int):
    user = signed_in()
    stored = versions.restore(user.user_id, file_id, version_id, user.user_id, user.session_id)
    return jsonify(entries.of_file(stored).to_json())


@blueprint.delete("/files/<id:file_id>/versions/<id:version_id>")
@quick
@login_required
def delete(file_id: int, version_id: int):
    freed = versions.delete_version(current_user_id(), file_id, version_id)
    files.delete_bytes(pcloud().blobs, freed)
    return jsonify({"message": "Version deleted"})
