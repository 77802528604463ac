"""The HTTP API: `create_app(settings)` builds the Flask app that `pcloud serve` runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from flask import Flask
from werkzeug.routing import BaseConverter

from pcloud.api import (
    accounts,
    app_passwords,
    archive,
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
    versions,
)
from pcloud.api.bodies import MULTIPART_OVERHEAD
from pcloud.config import Settings
from pcloud.core import Pcloud
from pcloud.dav.app import DavMount
from pcloud.services import users
from pcloud.serving import ServedApp
from pcloud.web import blueprints as web_blueprints


class IdConverter(BaseConverter):
    """A row id in a URL: digits that fit a 64-bit integer (werkzeug's `int` takes any
    length, and a number too large for the database is a 404, not a 500)."""

    regex = r"\d{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


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
    # WebDAV at /dav/ (pcloud.dav): beside the API, over the same tree and services.
    dav_and_api = DavMount(app.wsgi_app, pcloud)
    app.extensions["pcloud.dav"] = dav_and_api.dav
    app.wsgi_app = ReleaseAfterAnswer(dav_and_api, pcloud)  # type: ignore[method-assign]
    security.register(app, pcloud.settings)
    for blueprint in (
        root.blueprint,
        openapi.blueprint,
        accounts.blueprint,
        sessions.blueprint,
        app_passwords.blueprint,
        files.blueprint,
        tus.blueprint,
        tree.blueprint,
        sync.blueprint,
        versions.blueprint,
        archive.blueprint,
        thumbnails.blueprint,
        shares.blueprint,
        share_pages.blueprint,
        *web_blueprints,
    ):
        app.register_blueprint(blueprint)
    app.wsgi_app = tus.method_override(app.wsgi_app)  # type: ignore[method-assign]
    if pcloud.settings.metrics_token:
        from pcloud.api import metrics  # only now: see its docstring

        metrics.register(app)
    return app


def served_app(settings: Settings) -> ServedApp:
    """The app as pcloud.server serves it in one worker process (see pcloud.serving):
    opened in that process, its database connections its own."""
    pcloud = Pcloud.open(settings, create_tables=False)
    try:
        pcloud.checkpoint_in_background()
        pcloud.thumbnails_in_background()
        users.dummy_password_hash(settings.password_hash)  # the first miss costs as the rest
        app = create_app(pcloud=pcloud)
    except BaseException:
        pcloud.close()
        raise
    return ServedApp(app, bodies.RequestPreviews(app), pcloud.close)


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
