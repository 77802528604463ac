"""Serving quick requests in a worker's event loop, and stopping it between requests."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from waitress.channel import HTTPChannel
from waitress.task import ThreadedTaskDispatcher


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
            stop_signals.serving = True
            try:
                channel.service()  # catches and logs what the app raises, as a thread would
                if channel.total_outbufs_len:
                    channel.handle_write()  # the answer goes out now, not at the next poll
            finally:
                stop_signals.serving = False
            stop_signals.stop_if_asked()

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


stop_signals = StopSignals()
