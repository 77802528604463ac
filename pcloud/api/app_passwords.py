"""App passwords: a secret for one device that can only sign in with a user name and a
password (WebDAV at /dav/). Each is a device session: GET /sessions lists it,
DELETE /sessions/<id> revokes it."""

from flask import Blueprint, jsonify

from pcloud.api.context import client, current_user_id, json_body, login_required, quick
from pcloud.dav.app import PREFIX
from pcloud.errors import Unauthorized
from pcloud.services import app_passwords, sessions, users

blueprint = Blueprint("app_passwords", __name__, url_prefix="/api/v1")


@blueprint.post("/app-passwords")
@quick
@login_required
def create_app_password():
    user = users.get_user(current_user_id())
    if user is None:
        raise Unauthorized(sessions.USER_GONE)
    made = app_passwords.create(user, json_body().get("device_name"), client())
    return jsonify(
        {
            "id": made.session_id,
            "device_name": made.device_name,
            "username": user.username,
            "password": made.password,
            "webdav_path": f"{PREFIX}/",
            "message": "Shown this once: enter it in the device now",
        }
    ), 201
