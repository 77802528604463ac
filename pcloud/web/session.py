"""The web app's sign-in, kept in cookies the page's scripts cannot read, under
/api/v1/web/session.

A browser page should not hold a 30-day refresh token where any script could take it
(localStorage, or memory across reloads), so here the refresh token lives in an
HttpOnly, SameSite=Strict cookie that the browser sends only to these routes; the page
holds just the hour-long access token, in memory, and asks for a new one after a
reload. A second HttpOnly cookie carries the access token to /api/v1/web/content, for
the reads a <video> or a download link makes without a script (pcloud.web.content).

Cross-site request forgery: SameSite=Strict keeps the cookies off requests another
site starts, and every route here also wants the `Pcloud-Web: 1` header (which a
cross-site form cannot send, and a cross-site script cannot without a CORS preflight
that does not allow credentials) and refuses an Origin other than the server's own.

The Android contract's /login, /token/refresh and /logout are untouched.
"""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify, request

from pcloud.api.context import client, json_body, pcloud, quick, required
from pcloud.errors import Forbidden, Unauthorized
from pcloud.services import sessions, sign_in

PREFIX = "/api/v1/web/session"
CONTENT_PATH = "/api/v1/web/content"
REFRESH_COOKIE = "pcloud_refresh"
CONTENT_COOKIE = "pcloud_content"
CSRF_HEADER = "Pcloud-Web"
DEVICE_NAME = "Web browser"
NOT_SIGNED_IN = "Not signed in (no session cookie): sign in again"

blueprint = Blueprint("web_session", __name__, url_prefix=PREFIX)


@blueprint.before_request
def refuse_cross_site() -> None:
    """Forbidden unless the request carries `Pcloud-Web: 1` and comes from this origin."""
    if request.headers.get(CSRF_HEADER) != "1":
        raise Forbidden(f"Send the header {CSRF_HEADER}: 1 (the web app does)")
    origin = request.headers.get("Origin")
    # The host alone: behind a TLS proxy the page is https while pcloud hears http.
    if origin is not None and urlsplit(origin).netloc != request.host:
        raise Forbidden("Requests from another site may not use the web app's session")


@blueprint.post("")
def sign_in_with_password() -> Response:
    body = json_body()
    identifier, password = required(body, "login_identifier", "password")
    device = client(body.get("device_name") or DEVICE_NAME)
    pair = sign_in.with_password(pcloud().settings, identifier, password, device)
    response = _access_answer(pair.access_token, {"message": "Login successful"})
    _set_cookie(response, REFRESH_COOKIE, pair.refresh_token, PREFIX, _refresh_lifetime())
    return response


@blueprint.post("/refresh")
@quick
def refresh() -> Response:
    refresh_token = request.cookies.get(REFRESH_COOKIE)
    if not refresh_token:
        raise Unauthorized(NOT_SIGNED_IN)
    # Not rotated: two tabs refreshing at once would look like a stolen token.
    access_token = sessions.refresh(pcloud().settings, refresh_token, client())
    return _access_answer(str(access_token), {})


@blueprint.delete("")
@quick
def sign_out() -> Response:
    refresh_token = request.cookies.get(REFRESH_COOKIE)
    if refresh_token:
        # Already ended (elsewhere, or expired): the cookies go all the same.
        with contextlib.suppress(Unauthorized):
            sessions.sign_out(pcloud().settings, refresh_token, client())
    response = jsonify({"message": "Logged out"})
    response.headers["Cache-Control"] = "no-store"
    for name, path in ((REFRESH_COOKIE, PREFIX), (CONTENT_COOKIE, CONTENT_PATH)):
        response.delete_cookie(name, path=path, secure=request.is_secure, httponly=True)
    return response


def _access_answer(access_token: str, body: dict[str, Any]) -> Response:
    lifetime = pcloud().settings.access_token_lifetime
    response = jsonify({**body, "access_token": access_token, "expires_in": lifetime})
    response.headers["Cache-Control"] = "no-store"
    _set_cookie(response, CONTENT_COOKIE, access_token, CONTENT_PATH, lifetime)
    return response


def _refresh_lifetime() -> int:
    return pcloud().settings.refresh_token_lifetime


def _set_cookie(response: Response, name: str, value: str, path: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        secure=request.is_secure,
        httponly=True,
        samesite="Strict",
    )
