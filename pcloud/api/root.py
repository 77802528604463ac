"""`GET /`: tells a client that the server is running; sends a browser to the web app.
`GET /api/v1/server`: what this server offers a client before anyone signs in."""

from flask import Blueprint, jsonify, redirect
from flask.typing import ResponseReturnValue

from pcloud import __version__
from pcloud.api.context import pcloud, quick
from pcloud.web.pages import APP_PATH, wants_page

blueprint = Blueprint("root", __name__)


@blueprint.get("/")
@quick
def index() -> ResponseReturnValue:
    if wants_page():
        response = redirect(APP_PATH, 303)
        response.vary.add("Accept")
        return response
    headers = {"Content-Type": "text/plain; charset=utf-8", "Vary": "Accept"}
    return "pcloud server is running.\n", 200, headers


@blueprint.get("/api/v1/server")
@quick
def server_features() -> ResponseReturnValue:
    """Public: whether accounts can be made here (the web app shows its sign-up link only
    then) and whether Google sign-in is on. Nothing an anonymous visitor could not learn
    by trying."""
    settings = pcloud().settings
    return jsonify(
        name="pcloud",
        version=__version__,
        registration=settings.registration == "open",
        google_sign_in=bool(settings.google_client_id),
    )
