"""A waitress server for the app, with pcloud's connection, dispatcher and limits."""

from __future__ import annotations

import copy
import socket

from flask import Flask
from waitress.server import BaseWSGIServer, MultiSocketServer, create_server

from pcloud.api import MULTIPART_OVERHEAD
from pcloud.api.bodies import RequestPreviews
from pcloud.config import Settings
from pcloud.server.connection import PcloudChannel
from pcloud.server.loop import LoopDispatcher, wake_unless_in

RECV_BYTES = 256 * 1024  # waitress reads 8 KiB at a time by default: slow for uploads
# Waitress sends a file in pieces of the socket's send buffer size, which starts small
# (a few tens of KiB): a larger buffer means fewer, larger sends for big downloads.
SEND_BUFFER = 4 * 1024 * 1024
# Waitress 3 sends each write at once (its send_bytes is 1): an answer's headers and its
# body left in two send(2) calls and two TCP segments. Held until this much is written
# (or the request is done), a small answer leaves in one.
SEND_BYTES = 64 * 1024
SOCKET_OPTIONS = [
    (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),  # waitress's default, kept
    (socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER),
]


def build_server(app, settings: Settings, sock: socket.socket, threads: int):
    """A waitress server for `app` on an already listening socket."""
    server = create_server(
        app,
        sockets=[sock],
        threads=threads,
        ident="pcloud",
        recv_bytes=RECV_BYTES,
        max_request_body_size=settings.max_upload_size + MULTIPART_OVERHEAD,
        channel_timeout=300,
        connection_limit=1000,
        # X-Forwarded-* reach the app only when a proxy is trusted (ProxyFix reads them).
        clear_untrusted_proxy_headers=not settings.trusted_proxies,
    )
    servers = server.map.values() if isinstance(server, MultiSocketServer) else [server]
    dispatcher = None
    for each in servers:
        if isinstance(each, BaseWSGIServer):
            # One dispatcher (waitress's threads) serves every socket; wrapped once.
            dispatcher = dispatcher or LoopDispatcher(each.task_dispatcher)
            each.task_dispatcher = dispatcher
            each.pull_trigger = wake_unless_in(dispatcher, each.pull_trigger)
            each.channel_class = PcloudChannel
            each.adj.socket_options = SOCKET_OPTIONS  # not accepted as a keyword
            each.adj.send_bytes = SEND_BYTES  # deprecated as a keyword
            if isinstance(app, Flask):
                each.adj.pcloud_previews = RequestPreviews(app)
            tus_adjustments = copy.copy(each.adj)
            tus_adjustments.max_request_body_size = settings.tus_max_chunk + 1  # refuses >=
            each.adj.pcloud_tus_adjustments = tus_adjustments
    return server
