"""The web app: a browser's way into pcloud, served at /app/ from the static files beside
this module (plain HTML, CSS and JavaScript modules; nothing to build).

`blueprints` are what create_app registers: the static files (pcloud.web.pages), the
browser's cookie-held session (pcloud.web.session) and the cookie-authenticated reads a
page's <video> and download links need (pcloud.web.content).
"""

from __future__ import annotations

from pcloud.web import content, pages, session

blueprints = (pages.blueprint, session.blueprint, content.blueprint)
