"""Accounts and tokens: register, sign in (password or Google), refresh, sign out."""

from flask import Blueprint, jsonify

from pcloud.api.context import (
    client,
    current_session_id,
    current_user_id,
    json_body,
    login_required,
    pcloud,
    quick,
    required,
)
from pcloud.errors import BadRequest, Unauthorized
from pcloud.moments import iso_utc
from pcloud.services import quota, sessions, sign_in, users, versions
from pcloud.services.tokens import TokenPair

blueprint = Blueprint("accounts", __name__)


@blueprint.post("/register")
def register():
    username, email, password = required(json_body(), "username", "email", "password")
    user = users.register(pcloud().settings, username, email, password, client())
    return jsonify({"message": f"User '{user.username}' created successfully."}), 201


@blueprint.post("/login")
def login():
    body = json_body()
    identifier, password = required(body, "login_identifier", "password")
    device = client(body.get("device_name"))
    return _signed_in(sign_in.with_password(pcloud().settings, identifier, password, device))


@blueprint.post("/login/google")
def login_google():
    app, body = pcloud(), json_body()
    device = client(body.get("device_name"))
    pair = sign_in.with_google(
        app.settings, app.google_certificates, body.get("google_token"), device
    )
    return _signed_in(pair)


@blueprint.post("/token/refresh")
@quick
def refresh():
    body = json_body()
    (refresh_token,) = required(body, "refresh_token")
    rotate = body.get("rotate", False)
    if not isinstance(rotate, bool):
        raise BadRequest("'rotate' must be true or false")
    answer = sessions.refresh(pcloud().settings, refresh_token, client(), rotate=rotate)
    if isinstance(answer, TokenPair):
        return _no_store(
            {"access_token": answer.access_token, "refresh_token": answer.refresh_token}
        )
    return _no_store({"access_token": answer})


@blueprint.post("/logout")
@quick
def logout():
    (refresh_token,) = required(json_body(), "refresh_token")
    sessions.sign_out(pcloud().settings, refresh_token, client())
    return jsonify({"message": "Logged out"})


def _signed_in(pair: TokenPair):
    return _no_store(
        {
            "message": "Login successful",
            "access_token": pair.access_token,
            "refresh_token": pair.refresh_token,
        }
    )


def _no_store(body: dict):
    """Answers that carry tokens must not be kept by any cache (RFC 6749, 5.1)."""
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/me")
@quick
@login_required
def me():
    user = users.get_user(current_user_id())
    if user is None:
        raise Unauthorized(sessions.USER_GONE)
    return jsonify(
        {
            "id": user.id,
            "username": user.username,
            "email": user.email,
            "google_linked": user.google_sub is not None,
            "has_password": user.password_hash is not None,
            "created_at": iso_utc(int(user.created_at.timestamp())),
            "session_id": current_session_id(),
            "usage_bytes": quota.usage(user.id),
            "versions_bytes": versions.bytes_of(user.id),
            "quota_bytes": user.quota_bytes,
        }
    )


@blueprint.post("/password")
@login_required
def change_password():
    body = json_body()
    old_password, new_password = required(body, "old_password", "new_password")
    ended = users.change_own_password(
        pcloud().settings,
        current_user_id(),
        current_session_id(),
        old_password,
        new_password,
        client(),
    )
    return jsonify({"message": "Password changed", "sessions_revoked": ended})
