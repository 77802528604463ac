"""Waitress's connection, request parser and request task, as pcloud needs them.

Waitress reads each request body completely (spooling it to a temporary file) before the
app runs. Here an upload's body goes, piece by piece as it arrives, to a receiver that
puts it where it belongs in the store (pcloud.api.bodies), instead of into a temporary
file that the view would copy. A tus request (a piece of a resumable upload) is held to
TUS_MAX_CHUNK instead of the upload limit: an upload of any allowed size arrives in many
such pieces. Waitress never hands an incomplete body to the app: when the connection
breaks off first, handle_close asks the receiver what to keep of it (a tus piece keeps
what arrived, pcloud.api.tus.ReceivedPiece.broken). Waitress's own error answers (413,
400 for a malformed request, ...) are plain text; ours are JSON, like every other error
of the API. File bodies go out through sendfile(2), large ones corked.
"""

from __future__ import annotations

import io
import json
import os
import socket
import threading
import time

from waitress.buffers import ReadOnlyFileBasedBuffer
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.task import ErrorTask, WSGITask
from waitress.wasyncore import _DISCONNECTED

from pcloud.api.context import RECEIVED_BODY
from pcloud.server.loop import LoopDispatcher

SENDFILE_PIECE = 16 * 1024 * 1024
# A file body larger than this goes out with the socket corked (TCP_CORK, what nginx's
# `tcp_nopush on` does), uncorked after its last byte. Measured here, 1 GiB over
# loopback to curl: a median of 1,515 against 1,100 MB/s uncorked. A smaller body leaves
# in one sendfile(2) call anyway, and is spared the two extra system calls.
CORK_FROM = 256 * 1024
TCP_CORK = getattr(socket, "TCP_CORK", None)  # Linux's; elsewhere files go uncorked


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


class PcloudRequestParser(HTTPRequestParser):
    """Waitress's parser, holding a tus request's body to its own, smaller limit.

    Waitress checks a body against `adj.max_request_body_size`: from Content-Length when
    the headers end, and as the bytes of a chunked body arrive. For a tus request the
    parser switches to adjustments carrying TUS_MAX_CHUNK (set up by build_server).
    """

    receiver = None  # who receives the body as it arrives (pcloud.api.bodies), if anyone
    quick = False  # its view may run in the event loop (see LoopDispatcher)

    def parse_header(self, header_plus):
        super().parse_header(header_plus)
        tus_adjustments = getattr(self.adj, "pcloud_tus_adjustments", None)
        if (
            tus_adjustments is not None
            and self.command in ("PATCH", "POST")
            and self.path.startswith("/tus/")
        ):
            self.adj = tus_adjustments
        previews = getattr(self.adj, "pcloud_previews", None)
        if previews is None:
            return
        has_body = (
            self.body_rcv is not None
            and self.content_length < self.adj.max_request_body_size  # else refused anyway
        )
        preview = previews.preview(
            self.command, self.path, self.headers, has_body, query=self.query
        )
        self.quick = preview.quick
        if preview.receiver is not None:
            self.receiver = preview.receiver
            self.body_rcv.buf = ReceiverBuffer(self.receiver)


class ReceiverBuffer:
    """Stands in for waitress's body buffer (an OverflowableBuffer, spooling to a
    temporary file): each piece of the body goes to a receiver as it arrives, and the
    app's wsgi.input is empty (the view asks the receiver instead)."""

    def __init__(self, receiver) -> None:
        self.receiver = receiver
        self.length = 0

    def append(self, data: bytes) -> None:
        self.length += len(data)
        self.receiver.receive(data)

    def __len__(self) -> int:
        return self.length

    def getfile(self) -> io.BytesIO:
        return io.BytesIO()

    def close(self) -> None:
        self.receiver.close()


class KeepAliveTask(WSGITask):
    """Waitress's request task, keeping the connection open after a 204 or a 304.

    Waitress 3 closes the connection after any HTTP/1.1 answer without a Content-Length,
    including those that never have a body (204, 304), which need no length to end.
    So every tus PATCH (204) and every conditional download that hits (304) cost a new
    connection: a TCP (and, behind a proxy, TLS) handshake each, and a tus upload's
    pieces scattered over the worker processes, each of which then lost the upload's
    running hash.
    """

    _bodiless_answer = False

    def build_response_header(self):
        self._bodiless_answer = (
            self.version == "1.1"
            and not self.has_body
            and not self.close_on_finish
            and self.request.headers.get("CONNECTION", "").lower() != "close"
        )
        try:
            return super().build_response_header()
        finally:
            self._bodiless_answer = False

    def set_close_on_finish(self) -> None:
        if self._bodiless_answer:
            return  # the answer ends with its headers; the connection can go on
        super().set_close_on_finish()

    def get_environment(self):
        environ = super().get_environment()
        if self.request.receiver is not None:
            environ[RECEIVED_BODY] = self.request.receiver
        return environ


class PcloudChannel(HTTPChannel):
    """Waitress's connection, with JSON errors, and file bodies sent by sendfile(2).

    Waitress sends a file body by reading each piece into Python and writing it to the
    socket: two copies through user space. When the body is a real file the kernel moves
    it to the socket itself, as nginx does. `_flush_some` is waitress 3's own loop (which
    is why waitress is pinned below 4), with that one branch added.
    """

    error_task_class = JsonErrorTask
    task_class = KeepAliveTask
    parser_class = PcloudRequestParser
    _corked = False  # see CORK_FROM

    def handle_read(self):
        dispatcher = self.server.task_dispatcher
        if not isinstance(dispatcher, LoopDispatcher):
            super().handle_read()
            return
        dispatcher.loop_thread = threading.get_ident()
        super().handle_read()
        dispatcher.run_pending()

    def _flush_outbufs_below_high_watermark(self):
        # A worker thread waits here, past the high watermark, for the loop to send what
        # it wrote; the loop itself must not wait for itself: it sends what the socket
        # takes now, and the rest later.
        dispatcher = self.server.task_dispatcher
        if isinstance(dispatcher, LoopDispatcher) and dispatcher.in_loop():
            if self.total_outbufs_len > self.adj.outbuf_high_watermark:
                with self.outbuf_lock:
                    self._flush_exception(self._flush_some, do_close=False)
            return
        super()._flush_outbufs_below_high_watermark()

    def handle_close(self):
        # A request whose body was still arriving: its receiver keeps what it may of the
        # bytes it stored (a tus piece's) and undoes the rest.
        partial, self.request = self.request, None
        try:
            super().handle_close()
        finally:
            if partial is not None:
                try:
                    if partial.receiver is not None:
                        partial.receiver.broken()
                finally:
                    partial.close()

    def _flush_some(self, do_close=True):
        sent = 0
        while True:
            outbuf = self.outbufs[0]
            outbuflen = outbuf.__len__()
            while outbuflen > 0:
                file_descriptor = _file_descriptor(outbuf)
                if file_descriptor is not None:
                    num_sent = self._sendfile(outbuf, file_descriptor, do_close)
                else:
                    num_sent = self.send(outbuf.get(self.sendbuf_len), do_close=do_close)
                if not num_sent:
                    break  # the socket is full (or gone): waitress calls again
                outbuf.skip(num_sent, True)
                outbuflen -= num_sent
                sent += num_sent
                self.total_outbufs_len -= num_sent
            else:
                if len(self.outbufs) > 1:
                    finished = self.outbufs.pop(0)
                    try:
                        finished.close()
                    except Exception:
                        self.logger.exception("Unexpected error when closing an outbuf")
                    continue
            break
        if sent:
            self.last_activity = time.time()
            return True
        return False

    def _sendfile(
        self, outbuf: ReadOnlyFileBasedBuffer, file_descriptor: int, do_close: bool
    ) -> int:
        try:
            if not self._corked and outbuf.remain > CORK_FROM and TCP_CORK is not None:
                self._cork(True)
            sent = os.sendfile(
                self.socket.fileno(),
                file_descriptor,
                outbuf.file.tell(),
                min(outbuf.remain, SENDFILE_PIECE),
            )
            if self._corked and sent >= outbuf.remain:
                self._cork(False)  # the file's last segment goes out now
            return sent
        except BlockingIOError:
            return 0
        except OSError as error:
            if error.errno in _DISCONNECTED:
                if do_close:
                    self.handle_close()
                return 0
            raise

    def _cork(self, corked: bool) -> None:
        self.socket.setsockopt(socket.IPPROTO_TCP, TCP_CORK, int(corked))
        self._corked = corked


def _file_descriptor(outbuf) -> int | None:
    """The descriptor of a file body waitress would send piece by piece, if it has one."""
    if type(outbuf) is not ReadOnlyFileBasedBuffer:
        return None
    try:
        return outbuf.file.fileno()
    except (AttributeError, OSError, ValueError):
        return None
