"""What every response carries for the browser's sake, who may call from a web page, and
which client address to believe behind a reverse proxy."""

from __future__ import annotations

from flask import Flask, Response, request
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
HSTS = "max-age=31536000"  # only on answers that travelled over HTTPS (through the proxy)

# What a browser client may send and read, besides the CORS-safelisted headers.
CORS_REQUEST_HEADERS = ["Authorization", "Content-Type", "Range", "If-None-Match", "If-Range"]
CORS_EXPOSED_HEADERS = ["Content-Disposition", "Content-Range", "ETag", "Retry-After"]


def register(app: Flask, settings: Settings) -> None:
    if settings.trusted_proxies:
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
    app.after_request(add_security_headers)


def add_security_headers(response: Response) -> Response:
    headers = response.headers
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    if request.scheme == "https":
        headers.setdefault("Strict-Transport-Security", HSTS)
    return response
