"""Running the Flask app under waitress, tuned for streaming large bodies.

Waitress reads each request body completely (spooling it to a temporary file) before the
app runs. So: read the socket in large pieces, and refuse a body larger than the upload
limit from its Content-Length, before any byte of it is read. Waitress's own error
answers (413, 400 for a malformed request, ...) are plain text; ours are JSON, like
every other error of the API.
"""

from __future__ import annotations

import json

from flask import Flask
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, MultiSocketServer, create_server
from waitress.task import ErrorTask

from pcloud.api import MULTIPART_OVERHEAD
from pcloud.config import Settings

RECV_BYTES = 256 * 1024  # waitress reads 8 KiB at a time by default: slow for uploads


class JsonErrorTask(ErrorTask):
    """Waitress's error answer, as JSON."""

    def execute(self) -> None:
        error = self.request.error
        body = json.dumps({"error": f"{error.reason}: {error.body}"}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class JsonErrorChannel(HTTPChannel):
    error_task_class = JsonErrorTask


def build_server(app: Flask, settings: Settings, host: str, port: int, threads: int):
    """A waitress server for `app`, bound and listening but not yet running."""
    server = create_server(
        app,
        host=host,
        port=port,
        threads=threads,
        ident="pcloud",
        recv_bytes=RECV_BYTES,
        max_request_body_size=settings.max_upload_size + MULTIPART_OVERHEAD,
        channel_timeout=300,
        connection_limit=1000,
        clear_untrusted_proxy_headers=True,
    )
    servers = server.map.values() if isinstance(server, MultiSocketServer) else [server]
    for each in servers:
        if isinstance(each, BaseWSGIServer):
            each.channel_class = JsonErrorChannel
    return server


def listening_urls(server) -> list[str]:
    """The http:// URL of every socket the server listens on."""
    if isinstance(server, MultiSocketServer):
        return [f"http://{host}:{port}" for (host, port) in server.effective_listen]
    host, port = server.effective_host, server.effective_port
    if ":" in str(host):
        host = f"[{host}]"
    return [f"http://{host}:{port}"]
