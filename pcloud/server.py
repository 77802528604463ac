"""Running the Flask app under waitress, in one process or several.

Waitress reads each request body completely (spooling it to a temporary file) before the
app runs. So: read the socket in large pieces; hand an upload's body, piece by piece as
it arrives, to a receiver that puts it where it belongs in the store (pcloud.api.bodies),
instead of into a temporary file that the view would copy; and refuse a body larger
than the upload limit from its Content-Length, before any byte of it is read. A tus
request (a piece of a resumable upload) is held to TUS_MAX_CHUNK instead, whatever the
upload limit: an upload of any allowed size arrives in many such pieces, and a piece
that breaks off is lost whole, since waitress never hands an incomplete body to the app.
Waitress's own error answers (413, 400 for a malformed request, ...) are plain text;
ours are JSON, like every other error of the API. File bodies go out through sendfile(2).

One Python process runs one thread at a time, so `pcloud serve` forks a few worker
processes (one per core by default) that share the listening socket, as gunicorn does.
Each worker opens its own database connections after the fork. Within a worker, quick
requests run in the event loop's own thread and the rest in waitress's threads (see
LoopDispatcher).
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import gc
import io
import json
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable

from flask import Flask
from waitress.buffers import ReadOnlyFileBasedBuffer
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import BaseWSGIServer, MultiSocketServer, create_server
from waitress.task import ErrorTask, ThreadedTaskDispatcher, WSGITask
from waitress.wasyncore import _DISCONNECTED

from pcloud.api import MULTIPART_OVERHEAD, create_app
from pcloud.api.bodies import RequestPreviews
from pcloud.api.context import RECEIVED_BODY
from pcloud.config import Settings
from pcloud.core import Pcloud
from pcloud.errors import WorkersFailing

RECV_BYTES = 256 * 1024  # waitress reads 8 KiB at a time by default: slow for uploads
# A worker that dies is replaced after a pause that doubles while workers keep dying; when
# more than MAX_RESTARTS deaths fall within RESTART_WINDOW seconds, something is broken
# for good (a full disk, a lost database) and serve stops instead of looping forever.
RESTART_PAUSE = 1.0
MAX_RESTART_PAUSE = 30.0
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
# Waitress sends a file in pieces of the socket's send buffer size, which starts small
# (a few tens of KiB): a larger buffer means fewer, larger sends for big downloads.
SEND_BUFFER = 4 * 1024 * 1024
SENDFILE_PIECE = 16 * 1024 * 1024
# Waitress 3 sends each write at once (its send_bytes is 1): an answer's headers and its
# body left in two send(2) calls and two TCP segments. Held until this much is written
# (or the request is done), a small answer leaves in one.
SEND_BYTES = 64 * 1024
SOCKET_OPTIONS = [
    (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),  # waitress's default, kept
    (socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER),
]
METRICS_FOLDER_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client at import
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# glibc's malloc gives a freed block of more than 128 KiB (at first) back to the kernel at
# once, and trims the heap's free top beyond 128 KiB: an upload's every 256 KiB piece (the
# socket read, the multipart decoder's buffer) then costs fresh pages, ~3 page faults per
# KiB received, two thirds of the server's CPU time for a large upload on a VM. Above
# these sizes it still does.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # from <malloc.h>
MALLOC_TRIM_THRESHOLD = 64 * 1024 * 1024
MALLOC_MMAP_THRESHOLD = 16 * 1024 * 1024
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
log = logging.getLogger("pcloud.server")


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
        preview = previews.preview(self.command, self.path, self.headers, has_body)
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
        # A request whose body was still arriving: its receiver undoes what it stored.
        partial, self.request = self.request, None
        try:
            super().handle_close()
        finally:
            if partial is not None:
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
            return os.sendfile(
                self.socket.fileno(),
                file_descriptor,
                outbuf.file.tell(),
                min(outbuf.remain, SENDFILE_PIECE),
            )
        except BlockingIOError:
            return 0
        except OSError as error:
            if error.errno in _DISCONNECTED:
                if do_close:
                    self.handle_close()
                return 0
            raise


def _file_descriptor(outbuf) -> int | None:
    """The descriptor of a file body waitress would send piece by piece, if it has one."""
    if type(outbuf) is not ReadOnlyFileBasedBuffer:
        return None
    try:
        return outbuf.file.fileno()
    except (AttributeError, OSError, ValueError):
        return None


class LoopDispatcher:
    """Runs quick requests in the event loop's own thread, and the others in waitress's
    worker threads.

    Waitress hands every request to a worker thread. On the machines measured here that
    costs more than a quick request itself: two thread wake-ups, then the GIL passing
    back and forth between the loop and the worker at every system call either one makes
    (a 4 KiB upload over 8 connections: 3.5 ms of CPU and 387 uploads/s in threads,
    2.3 ms and 583/s in the loop; a 4 KiB download: 1.6 against 1.0 ms). So a view
    marked @quick (pcloud.api.context.quick: it answers from the database and the local
    disk, never waiting on anything slow) runs in the loop, right after the read that
    completed its request, and its answer is sent at once. While it runs, the worker's
    other connections wait: that is why only quick views run there. The rest (password
    hashing, Google's certificates, tus pieces that may hash a whole file, ...) go to
    the threads as before, so that they hold up nobody. Concurrency beyond that comes
    from the worker processes.
    """

    def __init__(self, threads: ThreadedTaskDispatcher) -> None:
        self.threads = threads
        self.loop_thread: int | None = None  # set by the loop itself (PcloudChannel)
        self._pending: deque[HTTPChannel] = deque()

    def in_loop(self) -> bool:
        return threading.get_ident() == self.loop_thread

    def add_task(self, channel: HTTPChannel) -> None:
        """Waitress calls this when a channel has a request to serve."""
        request = channel.requests[0]
        if getattr(request, "quick", False) and self.in_loop():
            self._pending.append(channel)  # run by run_pending, once the read is done
        else:
            self.threads.add_task(channel)

    def run_pending(self) -> None:
        """Serve the quick requests that the last read completed (in the loop thread)."""
        while self._pending:
            channel = self._pending.popleft()
            _stop_signals.serving = True
            try:
                channel.service()  # catches and logs what the app raises, as a thread would
                if channel.total_outbufs_len:
                    channel.handle_write()  # the answer goes out now, not at the next poll
            finally:
                _stop_signals.serving = False
            _stop_signals.stop_if_asked()

    def set_thread_count(self, count: int) -> None:
        self.threads.set_thread_count(count)

    def shutdown(self, cancel_pending: bool = True, timeout: float = 5) -> bool:
        self._pending.clear()
        return self.threads.shutdown(cancel_pending, timeout)


def _wake_unless_in(dispatcher: LoopDispatcher, wake: Callable[[], None]) -> Callable[[], None]:
    """Waitress wakes its loop (a byte through a pipe) whenever a request has been served,
    so that the loop sends the answer; the loop itself is awake already."""

    def pull_trigger() -> None:
        if not dispatcher.in_loop():
            wake()

    return pull_trigger


class StopSignals:
    """SIGINT and SIGTERM stop a worker by raising KeyboardInterrupt in its main thread,
    which runs the event loop; but not in the middle of a request the loop is serving,
    which would be cut short: that stop waits for the request to end. A second signal
    stops at once."""

    def __init__(self) -> None:
        self.serving = False
        self.asked = False

    def handle(self, _signum, _frame) -> None:
        if self.serving and not self.asked:
            self.asked = True
            return
        raise KeyboardInterrupt

    def stop_if_asked(self) -> None:
        if self.asked:
            raise KeyboardInterrupt


_stop_signals = StopSignals()


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one). Raises OSError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


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
            each.pull_trigger = _wake_unless_in(dispatcher, each.pull_trigger)
            each.channel_class = PcloudChannel
            each.adj.socket_options = SOCKET_OPTIONS  # not accepted as a keyword
            each.adj.send_bytes = SEND_BYTES  # deprecated as a keyword
            if isinstance(app, Flask):
                each.adj.pcloud_previews = RequestPreviews(app)
            tus_adjustments = copy.copy(each.adj)
            tus_adjustments.max_request_body_size = settings.tus_max_chunk + 1  # refuses >=
            each.adj.pcloud_tus_adjustments = tus_adjustments
    return server


def run_worker(settings: Settings, sock: socket.socket) -> None:
    """Serve on `sock` in this process until SIGINT or SIGTERM (even one while starting)."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    _keep_freed_memory()
    pcloud = server = None
    try:
        pcloud = Pcloud.open(settings, create_tables=False)
        pcloud.checkpoint_in_background()
        server = build_server(create_app(pcloud=pcloud), settings, sock, settings.threads)
        # The tens of thousands of objects made at start-up live as long as the worker:
        # the collector need not walk them again and again while it serves.
        gc.freeze()
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.close()
        if pcloud is not None:
            pcloud.close()


def run(settings: Settings, sock: socket.socket, workers: int) -> None:
    """Serve until SIGINT or SIGTERM, in this process or in `workers` forked ones."""
    if workers <= 1 or not hasattr(os, "fork"):
        run_worker(settings, sock)
        return
    if settings.metrics_token:
        with _metrics_shared_by_workers():
            _supervise(settings, sock, workers)
    else:
        _supervise(settings, sock, workers)


@contextlib.contextmanager
def _metrics_shared_by_workers():
    """Workers count metrics in files of one folder, which a scrape of any worker adds
    up. Set before any worker (or prometheus_client) starts; removed when serve stops."""
    folder = tempfile.mkdtemp(prefix="pcloud-metrics-")
    os.environ[METRICS_FOLDER_ENV] = folder
    try:
        yield
    finally:
        os.environ.pop(METRICS_FOLDER_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


def _forget_worker_metrics(pid: int) -> None:
    """A dead worker's live gauges (uploads in progress) must stop counting."""
    if os.environ.get(METRICS_FOLDER_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def _supervise(settings: Settings, sock: socket.socket, workers: int) -> None:
    children: set[int] = set()
    deaths: list[float] = []
    stopping = failed = False

    def stop(_signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            _signal_quietly(pid, signal.SIGTERM)

    def start_worker() -> None:
        # Signals wait while a worker is forked and recorded: one arriving in between
        # would otherwise miss the new worker, or reach it with the parent's handler.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            if not stopping:
                children.add(_fork_worker(lambda: run_worker(settings, sock)))
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)  # Ctrl-C reaches the workers too; wait for them
    try:
        for _ in range(workers):
            start_worker()
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            children.discard(pid)
            _forget_worker_metrics(pid)
            if stopping:
                continue
            now = time.monotonic()
            deaths = [moment for moment in deaths if now - moment < RESTART_WINDOW] + [now]
            if len(deaths) > MAX_RESTARTS:
                log.error(
                    "Workers stopped unexpectedly %d times in %d s; stopping pcloud",
                    len(deaths),
                    RESTART_WINDOW,
                )
                stop(None, None)
                failed = True
                continue
            pause = min(RESTART_PAUSE * 2 ** (len(deaths) - 1), MAX_RESTART_PAUSE)
            log.error(
                "Worker %s stopped unexpectedly (status %s); starting another in %.0f s",
                pid,
                status,
                pause,
            )
            time.sleep(pause)
            start_worker()
    finally:
        for pid in children:
            _signal_quietly(pid, signal.SIGTERM)
        for pid in children:
            _wait_quietly(pid)
    if failed:
        raise WorkersFailing("pcloud stopped: its workers keep failing (see the log above)")


def _fork_worker(work: Callable[[], None]) -> int:
    """Fork; the child runs `work` and exits, never returning into the parent's code.

    Called with the stop signals blocked: the child installs its own handlers first.
    """
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)
        _stop_with_parent()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        work()
    except KeyboardInterrupt:
        pass
    except BaseException:
        log.exception("Worker failed")
        code = 1
    finally:
        os._exit(code)


def _stop_with_parent() -> None:
    """Ask Linux to send this worker SIGTERM when the supervising process dies, even by
    SIGKILL, so no orphaned worker keeps the port. Elsewhere this does nothing."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        raise KeyboardInterrupt


def _keep_freed_memory() -> None:
    """Let glibc's malloc reuse freed upload buffers instead of handing them back to the
    kernel (see MALLOC_MMAP_THRESHOLD). Elsewhere (no glibc) this does nothing."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD)
        libc.mallopt(M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD)
    except (OSError, AttributeError):
        return


def _interrupt(signum, frame) -> None:
    _stop_signals.handle(signum, frame)


def _signal_quietly(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _wait_quietly(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
