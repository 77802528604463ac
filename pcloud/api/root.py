"""`GET /`: tells a client that the server is running; sends a browser to the web app."""

from flask import Blueprint, redirect
from flask.typing import ResponseReturnValue

from pcloud.api.context import quick
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
