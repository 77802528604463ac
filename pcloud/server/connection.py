"""Waitress's connection, request parser and request tasks, as pcloud needs them.

Waitress reads each request body completely (spooling it to a temporary file) before the
app runs. Here, when a request's headers are in, the app's previews (pcloud.serving) say
who receives its body, piece by piece as it arrives, into the store, instead of into a
temporary file that the view would copy; how large the body may be (checked from
Content-Length before any byte of it is read); or that the request is refused at once
(401, 507: the body is never read, the connection closed). Waitress never hands an
incomplete body to the app: when the connection breaks off first, handle_close asks the
receiver what to keep of it. Every error leaves as the API's JSON (answers.py). File
bodies go out through sendfile(2), large ones corked. Each request is written to the
access log (access_log.py) once answered.

The waitress internals this relies on are listed, with the reason for each, in
waitress_internals.py.
"""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from typing import Any

from waitress.buffers import ReadOnlyFileBasedBuffer
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.task import ErrorTask, WSGITask
from waitress.utilities import Error, InternalServerError
from waitress.wasyncore import _DISCONNECTED

from pcloud.server import answers
from pcloud.server.loop import LoopDispatcher
from pcloud.serving import RECEIVED_BODY, Preview, Refusal

SENDFILE_PIECE = 16 * 1024 * 1024
# A file body larger than this goes out with the socket corked (TCP_CORK, what nginx's
# `tcp_nopush on` does), uncorked after its last byte. Measured here, 1 GiB over
# loopback to curl: a median of 1,515 against 1,100 MB/s uncorked. A smaller body leaves
# in one sendfile(2) call anyway, and is spared the two extra system calls.
CORK_FROM = 256 * 1024
TCP_CORK = getattr(socket, "TCP_CORK", None)  # Linux's; elsewhere files go uncorked


class Refused(Error):
    """The app's early refusal (pcloud.serving.Refusal), as waitress carries an error."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__("")
        self.code = refusal.code
        self.reason = refusal.reason
        self.refusal = refusal

    def to_response(self, ident: str | None = None) -> tuple[str, list, bytes]:
        refusal = self.refusal
        return f"{self.code} {self.reason}", [answers.JSON, *refusal.headers], refusal.body


class JsonError(Error):
    """An error waitress found in a request (its own 400, 413, 431, 501, 500), answered
    in the API's words and shape (answers.py)."""

    def __init__(self, found: Error, text: str) -> None:
        super().__init__(found.body)
        self.code = found.code
        self.reason = found.reason
        self.text = text

    def to_response(self, ident: str | None = None) -> tuple[str, list, bytes]:
        return f"{self.code} {self.reason}", [answers.JSON], answers.json_body(self.text)


class JsonErrorTask(ErrorTask):
    """An error answer (waitress's own, or the app's early refusal), as JSON; the
    connection closes after it (ErrorTask.execute asks the error for its answer)."""

    def execute(self) -> None:
        request = self.request
        found = request.error
        self.after_crash = isinstance(found, InternalServerError)  # its line is written
        if not isinstance(found, (Refused, JsonError)):
            too_large = getattr(request, "too_large", "")
            if found.code == 413 and too_large:
                text = too_large  # the app's words for its limit
            else:
                text = answers.waitress_error_text(
                    found.code,
                    str(found.body),
                    request.adj.max_request_body_size - 1,  # waitress refuses from it on
                    request.adj.max_request_header_size,
                )
            request.error = JsonError(found, text)
        super().execute()

    def service(self) -> None:
        try:
            super().service()
        finally:
            if not getattr(self, "after_crash", False):
                self.channel.server.access_log.record_error(self)


class PcloudRequestParser(HTTPRequestParser):
    """Waitress's parser, asking the app's previews about a request once its headers are
    in (see the module's docstring). Made by PcloudChannel.parser_class."""

    receiver = None  # who receives the body as it arrives (pcloud.serving), if anyone
    quick = False  # its view may run in the event loop (see LoopDispatcher)
    environ_extra: dict | None = None  # what the app adds to the WSGI environ
    too_large = ""  # what a 413 says, when the app said it

    def __init__(self, adj: Any, server: Any) -> None:
        super().__init__(adj)
        self.server = server
        self.started = time.time()  # its first byte's arrival: the header timeout counts

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        previews = self.server.previews
        if previews is None:
            return
        length = None if self.chunked else self.content_length
        preview: Preview = previews(self.command, self.path, self.headers, length, self.query)
        self.quick = preview.quick
        if preview.body_limit is not None:
            self.adj = self.server.adjustments_for(preview.body_limit)
            self.too_large = preview.too_large
        if preview.refusal is not None:
            # Answered at once; the body is never read and the connection closes.
            self.error = Refused(preview.refusal)
            self.body_rcv = None
            self.content_length = 0
            self.expect_continue = False
            self.connection_close = True
            return
        self.environ_extra = preview.environ
        if preview.receiver is not None:
            if self.body_rcv is None:  # no body after all: nothing to receive
                preview.receiver.close()
                return
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
    So every resumable-upload piece (204) and every conditional download that hits (304) cost a new
    connection: a TCP (and, behind a proxy, TLS) handshake each, and a resumable upload's
    pieces scattered over the worker processes, each of which then lost the upload's
    running hash.
    """

    _bodiless_answer = False

    def build_response_header(self):
        if self.channel.server.draining:
            self.set_close_on_finish()  # the server is stopping: no next request here
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
        request = self.request
        if request.receiver is not None:
            environ[RECEIVED_BODY] = request.receiver
        if request.environ_extra:
            environ.update(request.environ_extra)
        return environ

    def service(self) -> None:
        try:
            super().service()
        except BaseException:
            self.channel.server.access_log.record_answer(self, "500")
            raise  # waitress answers 500 (through JsonErrorTask, which logs no line)
        self.channel.server.access_log.record_answer(self)


class PcloudChannel(HTTPChannel):
    """Waitress's connection, with the parser and tasks above, counted per client
    address (limits.py), and file bodies sent by sendfile(2).

    Waitress sends a file body by reading each piece into Python and writing it to the
    socket: two copies through user space. When the body is a real file the kernel moves
    it to the socket itself, as nginx does. `_flush_some` is waitress 3's own loop (which
    is why waitress is pinned exactly), with that one branch added.
    """

    error_task_class = JsonErrorTask
    task_class = KeepAliveTask
    _corked = False  # see CORK_FROM
    _counted = False  # in the server's connections per address
    address_bucket: tuple[int, ...] | None = None  # where limits.AddressCounts counts its address

    def __init__(self, server, sock, addr, adj, map=None) -> None:
        super().__init__(server, sock, addr, adj, map)
        server.limits.opened(self)
        self._counted = True

    def parser_class(self, adj) -> PcloudRequestParser:
        """Waitress makes each request's parser by calling this."""
        return PcloudRequestParser(adj, self.server)

    def add_channel(self, map=None) -> None:
        super().add_channel(map)
        self.server.event_loop.watch(self._fileno)

    def del_channel(self, map=None) -> None:
        fd = self._fileno
        if fd is not None:
            self.server.event_loop.forget(fd)
        super().del_channel(map)
        if self._counted:
            self._counted = False
            self.server.limits.closed(self)

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
        # bytes it stored (a resumable-upload piece's) and undoes the rest.
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
