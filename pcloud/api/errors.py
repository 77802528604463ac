"""The one place errors become responses: always `{"error": ...}` JSON, never HTML."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from pcloud.errors import PcloudError, StorageFull, out_of_space

log = logging.getLogger("pcloud.api")

HTTP_ERROR_TEXT = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    413: "Request body is larger than this server accepts",
    416: "Requested range not satisfiable",
}


def register(app: Flask) -> None:
    @app.errorhandler(PcloudError)
    def pcloud_error(error: PcloudError):
        if isinstance(error, StorageFull):  # no bug, no traceback: one line for the admin
            log.warning(
                "Out of storage space: %s %s refused (507): %s",
                request.method,
                request.path,
                error.cause,
            )
        response = jsonify(error.to_json())
        response.status = f"{error.status} {error.reason}" if error.reason else error.status
        response.headers.update(error.headers)
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        status = error.code or 500
        text = HTTP_ERROR_TEXT.get(status, error.name)
        response = jsonify({"error": text})
        response.status_code = status
        if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
            response.headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
        if status == 416:  # `bytes */<length>`: what a player needs to ask again
            for name, value in error.get_headers():
                if name == "Content-Range":
                    response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        full = out_of_space(error)
        if full is not None:
            return pcloud_error(full)
        log.exception("Unexpected error", exc_info=error)
        return jsonify({"error": "Internal server error"}), 500
