"""A worker's event loop: waiting on many connections at little cost, serving quick
requests in the loop itself, and stopping with a drain."""

from __future__ import annotations

import contextlib
import logging
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from waitress.channel import HTTPChannel
from waitress.task import ThreadedTaskDispatcher
from waitress.wasyncore import poll2, readwrite

log = logging.getLogger("pcloud.server")
SAME_STOP_SECONDS = 1.0  # see StopSignals
READ = select.POLLIN | select.POLLPRI
WRITE = select.POLLOUT


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
    hashing, Google's certificates, resumable-upload pieces that may hash a whole file, ...) go to
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
            channel.service()  # catches and logs what the app raises, as a thread would
            if channel.total_outbufs_len:
                channel.handle_write()  # the answer goes out now, not at the next poll

    def set_thread_count(self, count: int) -> None:
        self.threads.set_thread_count(count)

    def shutdown(self, cancel_pending: bool = True, timeout: float = 5) -> bool:
        self._pending.clear()
        return self.threads.shutdown(cancel_pending, timeout)


def wake_unless_in(dispatcher: LoopDispatcher, wake: Callable[[], None]) -> Callable[[], None]:
    """Waitress wakes its loop (a byte through a pipe) whenever a request has been served,
    so that the loop sends the answer; the loop itself is awake already."""

    def pull_trigger() -> None:
        if not dispatcher.in_loop():
            wake()

    return pull_trigger


class EventLoop:
    """Waits for the connections that can go on (epoll), costing each wait only as much
    as the connections that changed: thousands of idle or slowly-sending connections
    cost nothing while others are served.

    Waitress's loop (wasyncore.poll2) asks every connection whether it wants to read or
    write before every wait, and hands them all to poll(2) again: with 3,000 connections
    open that is milliseconds of Python per wait, and a worker serving 4 KiB downloads
    waits thousands of times a second. Here a connection that waits only to read (no
    request in progress, nothing to send) stays registered as it is, and is asked again
    only when it had an event, when it is new, and once a second (after the
    maintenance that may close it). The others (a request in progress in a thread, an
    answer being sent) are asked before every wait, as waitress does. Without epoll
    (not Linux), waitress's own poll2.
    """

    def __init__(self, socket_map: dict[int, Any]) -> None:
        self.map = socket_map
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        self._registered: dict[int, int] = {}  # fd -> the events it is registered for
        self._ask: set[int] = set()  # ask these again before the next wait
        self._busy: set[int] = set()  # asked before every wait
        self._everyone_at = 0.0

    def watch(self, fd: int) -> None:
        """A new connection (or socket) in the map."""
        self._ask.add(fd)

    def forget(self, fd: int) -> None:
        """A connection leaving the map, before its socket closes."""
        self._ask.discard(fd)
        self._busy.discard(fd)
        if self._registered.pop(fd, None) is not None and self._epoll is not None:
            with contextlib.suppress(OSError):
                self._epoll.unregister(fd)

    def ask_everyone(self) -> None:
        self._ask.update(self.map)

    def wait(self, timeout: float) -> None:
        """Wait up to `timeout` seconds, then handle what happened."""
        if self._epoll is None:
            poll2(timeout, self.map)
            return
        now = time.monotonic()
        if now - self._everyone_at >= 1.0:
            self._everyone_at = now
            self.ask_everyone()
        ask, self._ask = self._ask | self._busy, set()
        socket_map, registered, epoll = self.map, self._registered, self._epoll
        for fd in ask:
            channel = socket_map.get(fd)
            if channel is None:
                self.forget(fd)
                continue
            events = 0
            if channel.readable():
                events = READ
            if channel.writable() and not channel.accepting:
                events |= WRITE
            before = registered.get(fd, 0)
            if events != before:
                if not events:
                    del registered[fd]
                    epoll.unregister(fd)
                elif not before:
                    registered[fd] = events
                    epoll.register(fd, events)
                else:
                    registered[fd] = events
                    epoll.modify(fd, events)
            if events == READ and not getattr(channel, "requests", None):
                self._busy.discard(fd)  # waits to read: nothing changes it but an event
            else:
                self._busy.add(fd)
        try:
            happened = epoll.poll(timeout)
        except InterruptedError:
            happened = []
        for fd, events in happened:
            channel = socket_map.get(fd)
            if channel is not None:
                self._ask.add(fd)
                readwrite(channel, events)

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()


class StopSignals:
    """SIGINT and SIGTERM ask a worker to stop: its loop stops accepting, lets the
    requests in flight finish for up to DRAIN_TIMEOUT, and then ends (serve). A second
    signal, a second or more after the first, stops at once (KeyboardInterrupt in the
    main thread, which runs the loop). Sooner it is the same stop said twice: Ctrl-C and
    systemd signal every process of the group, and the supervisor passes it on too."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.asked = False
        self._clock = clock
        self._asked_at = 0.0

    def handle(self, _signum, _frame) -> None:
        if not self.asked:
            self.asked = True
            self._asked_at = self._clock()
        elif self._clock() - self._asked_at >= SAME_STOP_SECONDS:
            raise KeyboardInterrupt


stop_signals = StopSignals()


def serve(server: Any, drain_seconds: float, timeout: float = 1.0) -> None:
    """Run the server's loop until stop_signals asks it to stop; then drain: accept no
    more, close idle connections, let the requests in flight (and the bodies arriving)
    finish for up to `drain_seconds`, then close what is left; a body cut that way is
    judged as a broken connection (a resumable-upload piece keeps what arrived)."""
    event_loop, access_log = server.event_loop, server.access_log
    while not stop_signals.asked:
        event_loop.wait(timeout)
        access_log.flush()
    server.start_draining()
    deadline = time.monotonic() + drain_seconds
    while server.in_flight() and time.monotonic() < deadline:
        event_loop.wait(0.05)
        access_log.flush()
    left = server.in_flight()
    if left:
        log.warning("Stopping with %d requests unfinished after %g s", left, drain_seconds)
    server.close_everything()
