"""The web app's static files at /app/, each with its own Content-Security-Policy (the
API's `sandbox` one would stop the app's scripts), compressed for browsers that ask.

The files are small and few, so each is read and gzipped once and kept in memory,
keyed by its modification time (an edited file is read again).
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, Response, request
from werkzeug.security import safe_join

from pcloud.errors import NotFound

STATIC_FOLDER = Path(__file__).resolve().parent / "static"
APP_PATH = "/app/"
# Scripts and styles only from our own files (no inline code, no eval); images and media
# also from blob: URLs the app makes of thumbnails it fetched with its token.
APP_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; manifest-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": APP_CSP,
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cache-Control": "no-cache",  # no build step, no hashed names: revalidate (ETag)
    "Vary": "Accept-Encoding",
}
COMPRESSIBLE = (".html", ".js", ".css", ".svg", ".json", ".txt")
FILE_NOT_FOUND = "No such file in the web app"

blueprint = Blueprint("web_pages", __name__)


@dataclass(frozen=True)
class StaticFile:
    modified_ns: int
    mimetype: str
    etag: str
    raw: bytes
    gzipped: bytes | None


_cache: dict[str, StaticFile] = {}


def static_file(name: str) -> StaticFile:
    """The static file of that name below STATIC_FOLDER, from the cache or read now.
    NotFound for anything else (a name that climbs out included)."""
    path_text = safe_join(str(STATIC_FOLDER), name)
    if path_text is None:
        raise NotFound(FILE_NOT_FOUND)
    path = Path(path_text)
    try:
        modified_ns = path.stat().st_mtime_ns
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(FILE_NOT_FOUND) from None
    if not path.is_file():
        raise NotFound(FILE_NOT_FOUND)
    cached = _cache.get(name)
    if cached is None or cached.modified_ns != modified_ns:
        raw = path.read_bytes()
        mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if mimetype.startswith("text/") or mimetype.endswith(("javascript", "json", "+xml")):
            mimetype += "; charset=utf-8"
        compressed = gzip.compress(raw, 9, mtime=0) if path.suffix in COMPRESSIBLE else None
        etag = hashlib.sha256(raw).hexdigest()[:32]
        cached = _cache[name] = StaticFile(modified_ns, mimetype, etag, raw, compressed)
    return cached


@blueprint.get(APP_PATH, defaults={"name": "index.html"})
@blueprint.get(f"{APP_PATH}<path:name>")
def page(name: str) -> Response:
    found = static_file(name)
    gzipped = found.gzipped is not None and "gzip" in request.accept_encodings
    response = Response(found.gzipped if gzipped else found.raw, content_type=found.mimetype)
    if gzipped:
        response.content_encoding = "gzip"
    response.headers.update(PAGE_HEADERS)
    response.set_etag(found.etag + ("-gz" if gzipped else ""))
    return response.make_conditional(request)


def wants_page() -> bool:
    """True when the request's Accept prefers HTML to plain text: a browser, whose person
    should see the app rather than the API's one line (clients that send nothing or
    `*/*` like the contract's `GET /` get the text)."""
    accept = request.accept_mimetypes
    return accept.quality("text/html") > accept.quality("text/plain")
