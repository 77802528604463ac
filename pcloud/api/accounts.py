"""Accounts and tokens: register, sign in (password or Google), refresh, sign out."""

from flask import Blueprint, jsonify

from pcloud.api.context import json_body, pcloud, required
from pcloud.services import google, tokens, users

blueprint = Blueprint("accounts", __name__)


@blueprint.post("/register")
def register():
    username, email, password = required(json_body(), "username", "email", "password")
    user = users.create_user(pcloud().settings, username, email, password)
    return jsonify({"message": f"User '{user.username}' created successfully."}), 201


@blueprint.post("/login")
def login():
    identifier, password = required(json_body(), "login_identifier", "password")
    user = users.authenticate(identifier, password)
    return _signed_in(user)


@blueprint.post("/login/google")
def login_google():
    app = pcloud()
    token = json_body().get("google_token")
    user = google.sign_in(app.settings, app.google_certificates, token)
    return _signed_in(user)


@blueprint.post("/token/refresh")
def refresh():
    (refresh_token,) = required(json_body(), "refresh_token")
    return jsonify({"access_token": tokens.refresh_access_token(pcloud().settings, refresh_token)})


@blueprint.post("/logout")
def logout():
    (refresh_token,) = required(json_body(), "refresh_token")
    tokens.revoke_refresh_token(pcloud().settings, refresh_token)
    return jsonify({"message": "Logged out"})


def _signed_in(user):
    pair = tokens.issue_pair(pcloud().settings, user)
    return jsonify(
        {
            "message": "Login successful",
            "access_token": pair.access_token,
            "refresh_token": pair.refresh_token,
        }
    )
