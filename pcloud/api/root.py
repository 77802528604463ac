"""`GET /`: tells a client (or a person with a browser) that the server is running."""

from flask import Blueprint

from pcloud.api.context import quick

blueprint = Blueprint("root", __name__)


@blueprint.get("/")
@quick
def index():
    return "pcloud server is running.\n", 200, {"Content-Type": "text/plain; charset=utf-8"}
