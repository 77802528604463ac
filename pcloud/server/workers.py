"""`pcloud serve`'s processes: a supervisor forking worker processes that share one
listening socket (as gunicorn does) and replacing those that die, or one process alone."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import resource
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable

from pcloud.config import Settings
from pcloud.errors import WorkersFailing
from pcloud.server.build import build_server
from pcloud.server.limits import AddressCounts
from pcloud.server.loop import serve, stop_signals
from pcloud.serving import ServedApp

OpenApp = Callable[[Settings], ServedApp]  # pcloud.api.served_app

# A worker that dies is replaced after a pause that doubles while workers keep dying; when
# more than MAX_RESTARTS deaths fall within RESTART_WINDOW seconds, something is broken
# for good (a full disk, a lost database) and serve stops instead of looping forever.
RESTART_PAUSE = 1.0
MAX_RESTART_PAUSE = 30.0
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
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


LISTEN_BACKLOG = 4096


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one). Raises OSError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        # Room for a burst of new connections while the workers are busy: a connection
        # that finds the queue full is dropped by the kernel after the client believes it
        # connected (an idle one never finds out). Linux caps it at net.core.somaxconn.
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run_worker(
    settings: Settings,
    sock: socket.socket,
    open_app: OpenApp,
    workers: int = 1,
    address_counts: AddressCounts | None = None,
) -> None:
    """Serve on `sock` in this process (one of `workers`, counting connections per
    address with the others in `address_counts`) until SIGINT or SIGTERM (even one while
    starting); then drain for up to DRAIN_TIMEOUT (loop.serve)."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    _keep_freed_memory()
    served = server = None
    try:
        served = open_app(settings)
        server = build_server(served, settings, sock, settings.threads, workers, address_counts)
        # The tens of thousands of objects made at start-up live as long as the worker:
        # the collector need not walk them again and again while it serves.
        gc.freeze()
        serve(server, settings.drain_timeout)
    except KeyboardInterrupt:  # a second signal: stop at once
        if server is not None:
            server.close_everything()
    finally:
        if server is not None:
            server.access_log.close()
        if served is not None:
            served.close()


def run(settings: Settings, sock: socket.socket, workers: int, open_app: OpenApp) -> None:
    """Serve until SIGINT or SIGTERM, in this process or in `workers` forked ones."""
    _raise_open_files_limit(settings.max_connections)
    if workers <= 1 or not hasattr(os, "fork"):
        run_worker(settings, sock, open_app)
        return
    if settings.metrics_token:
        with _metrics_shared_by_workers():
            _supervise(settings, sock, workers, open_app)
    else:
        _supervise(settings, sock, workers, open_app)


def _raise_open_files_limit(connections: int) -> None:
    """Let each process hold as many descriptors as the system allows it (the soft limit
    up to the hard one: often 1024 against 500,000 or more), so that MAX_CONNECTIONS,
    not the soft limit, is what bounds connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    if soft != resource.RLIM_INFINITY and soft < connections + 64:
        log.warning(
            "This process may open %d files, fewer than MAX_CONNECTIONS=%d needs: "
            "raise the limit (LimitNOFILE= in the systemd unit, ulimit -n)",
            soft,
            connections,
        )


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


def _supervise(settings: Settings, sock: socket.socket, workers: int, open_app: OpenApp) -> None:
    children: dict[int, int] = {}  # pid -> its slot, 0 to workers - 1 (AddressCounts' row)
    address_counts = AddressCounts(workers)
    deaths: list[float] = []
    stopping = failed = False

    def stop(_signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            _signal_quietly(pid, signal.SIGTERM)

    def start_worker(slot: int) -> None:
        # Signals wait while a worker is forked and recorded: one arriving in between
        # would otherwise miss the new worker, or reach it with the parent's handler.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            if not stopping:

                def work() -> None:
                    address_counts.become_worker(slot)
                    run_worker(settings, sock, open_app, workers, address_counts)

                children[_fork_worker(work)] = slot
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)  # Ctrl-C reaches the workers too; wait for them
    try:
        for slot in range(workers):
            start_worker(slot)
        while children:
            try:
                pid, exit_code = os.wait()
            except ChildProcessError:
                break
            slot = children.pop(pid, None)
            if slot is None:
                continue  # not a worker
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
                "Worker %s stopped unexpectedly (wait code %s); starting another in %.0f s",
                pid,
                exit_code,
                pause,
            )
            time.sleep(pause)
            start_worker(slot)
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
    stop_signals.handle(signum, frame)


def _signal_quietly(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _wait_quietly(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
