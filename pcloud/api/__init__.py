"""The HTTP API: `create_app(settings)` builds the Flask app that `pcloud serve` runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from flask import Flask
from werkzeug.routing import BaseConverter

from pcloud.api import (
    accounts,
    bodies,
    errors,
    files,
    openapi,
    root,
    security,
    sessions,
    share_pages,
    shares,
    sync,
    thumbnails,
    tree,
    tus,
)
from pcloud.config import Settings
from pcloud.core import Pcloud


class IdConverter(BaseConverter):
    """A row id in a URL: digits that fit a 64-bit integer (werkzeug's `int` takes any
    length, and a number too large for the database is a 404, not a 500)."""

    regex = r"\d{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


# Room for the multipart framing around a file of the maximum size.
MULTIPART_OVERHEAD = 64 * 1024


def create_app(settings: Settings | None = None, pcloud: Pcloud | None = None) -> Flask:
    """Build the app from settings (or from an already opened Pcloud)."""
    if pcloud is None:
        if settings is None:
            raise TypeError("create_app needs settings or a Pcloud")
        pcloud = Pcloud.open(settings)
    app = Flask("pcloud", static_folder=None)  # the API serves no static files
    app.config.update(
        MAX_CONTENT_LENGTH=pcloud.settings.max_upload_size + MULTIPART_OVERHEAD,
    )
    app.url_map.converters["id"] = IdConverter
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep our order; faster too
    app.extensions["pcloud"] = pcloud
    errors.register(app)
    app.wsgi_app = ReleaseAfterAnswer(app.wsgi_app, pcloud)  # type: ignore[method-assign]
    security.register(app, pcloud.settings)
    for blueprint in (
        root.blueprint,
        openapi.blueprint,
        accounts.blueprint,
        sessions.blueprint,
        files.blueprint,
        tus.blueprint,
        tree.blueprint,
        sync.blueprint,
        thumbnails.blueprint,
        shares.blueprint,
        share_pages.blueprint,
    ):
        app.register_blueprint(blueprint)
    app.wsgi_app = tus.method_override(app.wsgi_app)  # type: ignore[method-assign]
    if pcloud.settings.metrics_token:
        from pcloud.api import metrics  # only now: see its docstring

        metrics.register(app)
    return app


class ReleaseAfterAnswer:
    """Once a view has answered, before the answer is sent: undo what it did not take of
    a body received before it ran (pcloud.api.bodies), and give the request's database
    connection back to the pool.

    WSGI middleware rather than Flask teardown hooks, which cost every request ~10 us
    each (Flask asks each one anew whether it is a coroutine).
    """

    def __init__(self, wsgi_app: Callable, pcloud: Pcloud) -> None:
        self.wsgi_app = wsgi_app
        self.pcloud = pcloud

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            bodies.close_received_body(environ)
            self.pcloud.release_connection()
