"""What every response carries for the browser's sake, who may call from a web page, and
which client address to believe behind a reverse proxy."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from pcloud.config import Settings

# The API answers JSON and file bytes, never a page: nothing it serves should run script,
# be framed, or be sniffed into HTML (a user's uploaded .html opened from a download link
# stays inert).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-site",
}
HEADER_LIST = list(SECURITY_HEADERS.items())
# The public share pages (pcloud.api.share_pages) are pages: they run this server's own
# scripts and styles and show its pictures and videos, and nothing from anywhere else.
# A view marks its answer as a page by setting this key in the WSGI environ.
PAGE = "pcloud.page"
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "media-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
PAGE_HEADER_LIST = [
    (name, PAGE_CSP if name == "Content-Security-Policy" else value)
    for name, value in SECURITY_HEADERS.items()
]
HSTS = "max-age=31536000"  # only on answers that travelled over HTTPS (through the proxy)

# tus clients in a browser (Uppy, tus-js-client) send and read these.
TUS_REQUEST_HEADERS = [
    "Tus-Resumable",
    "Upload-Length",
    "Upload-Defer-Length",
    "Upload-Offset",
    "Upload-Metadata",
    "Upload-Checksum",
    "X-HTTP-Method-Override",
]
TUS_RESPONSE_HEADERS = [
    "Location",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Defer-Length",
    "Upload-Metadata",
    "Upload-Expires",
    "Pcloud-File",
]
# What a browser client may send and read, besides the CORS-safelisted headers.
CORS_REQUEST_HEADERS = [
    "Authorization",
    "Content-Type",
    "Range",
    "If-None-Match",
    "If-Range",
    *TUS_REQUEST_HEADERS,
]
CORS_EXPOSED_HEADERS = [
    "Content-Disposition",
    "Content-Range",
    "ETag",
    "Retry-After",
    *TUS_RESPONSE_HEADERS,
]


def register(app: Flask, settings: Settings) -> None:
    app.wsgi_app = SecurityHeaders(app.wsgi_app)  # type: ignore[method-assign]
    if settings.trusted_proxies:  # outermost: what runs inside sees the client's address
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops
        )
    if settings.cors_origins:
        from flask_cors import CORS

        CORS(
            app,
            origins=list(settings.cors_origins),
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
            supports_credentials=False,  # bearer tokens, never cookies
            max_age=600,
        )


class SecurityHeaders:
    """Adds SECURITY_HEADERS (and HSTS over HTTPS) to every answer.

    WSGI middleware rather than a Flask after_request hook: appending to the header list
    as the answer starts costs a microsecond; werkzeug's per-header checks cost fifteen,
    a tenth of a small download's whole time.
    """

    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        def start_with_headers(status, headers, exc_info=None):
            headers.extend(PAGE_HEADER_LIST if environ.get(PAGE) else HEADER_LIST)
            if environ.get("wsgi.url_scheme") == "https":
                headers.append(("Strict-Transport-Security", HSTS))
            return start_response(status, headers, exc_info)

        return self.app(environ, start_with_headers)
