"""The signed-in user's devices: list their sessions, sign one out, or all of them."""

from flask import Blueprint, jsonify

from pcloud.api.context import (
    client,
    current_session_id,
    current_user_id,
    json_body,
    login_required,
    quick,
)
from pcloud.errors import BadRequest, Unauthorized
from pcloud.moments import iso_utc
from pcloud.services import sessions, users

blueprint = Blueprint("sessions", __name__)


@blueprint.get("/sessions")
@quick
@login_required
def list_sessions():
    found = sessions.list_sessions(current_user_id(), current_session_id())
    return jsonify({"sessions": [_session_json(session) for session in found]})


@blueprint.delete("/sessions/<session_id>")
@quick
@login_required
def revoke_session(session_id: str):
    sessions.revoke(_current_user(), session_id, client())
    return jsonify({"message": "Session revoked", "id": session_id})


@blueprint.post("/sessions/revoke-all")
@login_required
def revoke_all_sessions():
    keep_current = json_body().get("keep_current", False)
    if not isinstance(keep_current, bool):
        raise BadRequest("'keep_current' must be true or false")
    keep = current_session_id() if keep_current else None
    count = sessions.revoke_all(_current_user(), client(), keep_session_id=keep)
    return jsonify({"message": f"{count} session(s) revoked", "revoked": count})


def _current_user():
    user = users.get_user(current_user_id())
    if user is None:
        raise Unauthorized(sessions.USER_GONE)
    return user


def _session_json(session: sessions.SessionInfo) -> dict:
    return {
        "id": session.id,
        "current": session.current,
        "device_name": session.device_name,
        "user_agent": session.user_agent,
        "ip_address": session.ip_address,
        "method": session.method,
        "created_at": iso_utc(int(session.created_at.timestamp())),
        "last_seen_at": iso_utc(int(session.last_seen_at.timestamp())),
        "expires_at": iso_utc(int(session.expires_at.timestamp())),
    }
