"""A waitress server for the app, with pcloud's connection, loop, dispatcher and limits."""

from __future__ import annotations

import copy
import socket
import time
from typing import Any

from waitress.adjustments import Adjustments
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from pcloud.config import Settings
from pcloud.server.access_log import AccessLog, answers_kept
from pcloud.server.connection import PcloudChannel
from pcloud.server.limits import AddressCounts, ConnectionLimits, Limits
from pcloud.server.loop import EventLoop, LoopDispatcher, wake_unless_in
from pcloud.serving import ServedApp

RECV_BYTES = 256 * 1024  # waitress reads 8 KiB at a time by default: slow for uploads
# Waitress sends a file in pieces of the socket's send buffer size, which starts small
# (a few tens of KiB): a larger buffer means fewer, larger sends for big downloads.
SEND_BUFFER = 4 * 1024 * 1024
# Waitress 3 sends each write at once (its send_bytes is 1): an answer's headers and its
# body left in two send(2) calls and two TCP segments. Held until this much is written
# (or the request is done), a small answer leaves in one.
SEND_BYTES = 64 * 1024
# What a worker writes of a streamed answer (an S3 blob, a ZIP) waits in memory until the
# loop sends it; past the high watermark the worker waits. Waitress moves a buffer past
# outbuf_overflow (1 MiB by default) into a temporary file, so every 1 MiB piece of a
# streamed download went to disk and back. A buffer holds at most the watermark plus one
# piece, so with overflow well past that it stays in memory: at most two buffers, about
# 2 x (4 MiB + a piece) per connection, where waitress's 16 MiB watermark allowed 32.
OUTBUF_HIGH_WATERMARK = 4 * 1024 * 1024
OUTBUF_OVERFLOW = 4 * OUTBUF_HIGH_WATERMARK
# Bodies of requests the app's previews say nothing about (none, under `pcloud serve`).
DEFAULT_BODY_LIMIT = 1024 * 1024


class PcloudAdjustments(Adjustments):
    """Waitress's settings, with two that its constructor does not take as keywords."""

    socket_options = [
        (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),  # waitress's default, kept
        (socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER),
    ]
    send_bytes = SEND_BYTES  # a deprecated keyword


class PcloudServer(TcpWSGIServer):
    """Waitress's server on one listening socket, with pcloud's connections (see
    connection.py), limits (limits.py), access log and event loop (loop.py)."""

    channel_class = PcloudChannel
    draining = False  # stopping: no new connections, none kept alive

    def __init__(
        self,
        served: ServedApp,
        adjustments: Adjustments,
        sock: socket.socket,
        limits: ConnectionLimits,
        access_log: AccessLog,
    ) -> None:
        self.previews = served.previews
        self.limits = limits
        self.access_log = access_log
        self._adjustments_by_limit: dict[int, Adjustments] = {}
        socket_map: dict[int, Any] = {}
        self.event_loop = EventLoop(socket_map)
        dispatcher = LoopDispatcher(ThreadedTaskDispatcher())
        dispatcher.set_thread_count(adjustments.threads)
        super().__init__(
            answers_kept(served.wsgi) if access_log.on else served.wsgi,
            map=socket_map,
            _sock=sock,
            dispatcher=dispatcher,
            adj=adjustments,
            bind_socket=False,
            sockinfo=(sock.family, sock.type, sock.proto, sock.getsockname()),
        )
        self.pull_trigger = wake_unless_in(dispatcher, self.pull_trigger)

    def add_channel(self, map=None) -> None:
        super().add_channel(map)
        self.event_loop.watch(self._fileno)

    def adjustments_for(self, body_limit: int) -> Adjustments:
        """Waitress's settings with the body limit the app's previews gave (waitress
        refuses a body of max_request_body_size or more, hence the + 1)."""
        adjustments = self._adjustments_by_limit.get(body_limit)
        if adjustments is None:
            adjustments = copy.copy(self.adj)
            adjustments.max_request_body_size = body_limit + 1
            self._adjustments_by_limit[body_limit] = adjustments
        return adjustments

    def handle_accept(self) -> None:
        try:
            accepted = self.accept()
        except OSError:
            return  # a connection gone before it was accepted: nothing to do
        if accepted is None:
            return
        conn, addr = accepted
        if not self.limits.admits(conn, addr[0]):
            return
        try:
            self.set_socket_options(conn)
        except OSError:
            conn.close()
            return
        self.channel_class(self, conn, addr, self.adj, map=self._map)

    def maintenance(self, now: float) -> None:
        self.limits.maintain(list(self.active_channels.values()), now, self.event_loop)

    def start_draining(self) -> None:
        """Stop accepting; close the connections waiting for a next request."""
        self.draining = True
        self.accepting = False
        if self._fileno is not None:
            self.event_loop.forget(self._fileno)
            self.del_channel()
        self.socket.close()  # this process's handle on the shared listening socket
        for channel in list(self.active_channels.values()):
            if not (channel.requests or _receiving_body(channel)):
                channel.request = None  # headers still arriving: not yet a request
                channel.will_close = True
                self.event_loop.watch(channel._fileno)

    def in_flight(self) -> int:
        """Connections with a request whose body is arriving, or being served or sent."""
        return sum(
            1
            for channel in self.active_channels.values()
            if channel.requests or _receiving_body(channel) or channel.total_outbufs_len
        )

    def close_everything(self) -> None:
        """Close every connection (a body still arriving is judged as broken off), let
        the threads finish what they serve (a few seconds at most), and close."""
        for channel in list(self.active_channels.values()):
            channel.handle_close()
        self.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        self.trigger.close()
        self.event_loop.close()


def _receiving_body(channel: PcloudChannel) -> bool:
    request = channel.request
    return request is not None and request.headers_finished and not request.completed


def build_server(
    served: ServedApp,
    settings: Settings,
    sock: socket.socket,
    threads: int,
    workers: int = 1,
    address_counts: AddressCounts | None = None,
) -> PcloudServer:
    """A waitress server for the app on an already listening socket, as one of `workers`
    processes: they share out MAX_CONNECTIONS, and count connections per address
    together in `address_counts` (made before they were forked)."""
    adjustments = PcloudAdjustments(
        threads=threads,
        ident="pcloud",
        recv_bytes=RECV_BYTES,
        outbuf_high_watermark=OUTBUF_HIGH_WATERMARK,
        outbuf_overflow=OUTBUF_OVERFLOW,
        max_request_body_size=DEFAULT_BODY_LIMIT,  # the previews give each request's
        channel_timeout=settings.keepalive_timeout,
        cleanup_interval=1,  # limits.py: header and idle timeouts, checked each second
        connection_limit=max(1, settings.max_connections // max(1, workers)),
        asyncore_use_poll=True,  # select() takes no descriptor past 1023
        # X-Forwarded-* reach the app only when a proxy is trusted (ProxyFix reads them).
        clear_untrusted_proxy_headers=not settings.trusted_proxies,
    )
    limits = Limits(
        header_timeout=settings.header_timeout,
        keepalive_timeout=settings.keepalive_timeout,
        # Behind a proxy every connection has the proxy's address.
        per_address=0 if settings.trusted_proxies else settings.connections_per_address,
    )
    return PcloudServer(
        served,
        adjustments,
        sock,
        ConnectionLimits(limits, address_counts),
        AccessLog.open(settings.access_log, clock=time.time),
    )
