"""`GET /`: tells a client (or a person with a browser) that the server is running."""

from flask import Blueprint

blueprint = Blueprint("root", __name__)


@blueprint.get("/")
def index():
    return "pcloud server is running.\n", 200, {"Content-Type": "text/plain; charset=utf-8"}
