"""The access log: one line per request answered, as it is answered.

    2026-12-02T14:51:27Z 192.0.2.7 user=3 GET /files 200 4096 1.2ms

Time (UTC), the client's address (as the trusted proxies give it, TRUSTED_PROXIES),
the signed-in user's id (`-` when none), method, path (without the query, which may carry
secrets; anything unprintable percent-encoded, so that a line is always one line),
the answer's code, body bytes sent, and the time to answer (until the answer was handed to the
connection: a large download goes on after). ACCESS_LOG=stderr (the default; journald
takes it), a file path (appended to, by every worker), or off.

Without the logging module's locks and formatting; the lines of the requests one turn
of the event loop served leave together, in one write(2) (see flush): a line costs a few
microseconds, and lines from threads and processes do not interleave.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from pcloud.errors import ConfigError
from pcloud.serving import ANSWER_LINE, SIGNED_IN_USER

OFF = "off"
STDERR = "stderr"
PATH_SAFE = "/!$&'()*+,;=:@-._~%"
PIPE_BUF = 4096  # bytes a write(2) to a pipe delivers whole (POSIX: at least 512)
PENDING_LINES = 64  # written at once when this many wait, whatever the loop does


class AccessLog:
    """Where access lines go (nowhere, when off)."""

    def __init__(self, fd: int | None, clock: Callable[[], float] = time.time) -> None:
        self._fd = fd
        self._clock = clock
        self._second = -1
        self._stamp = ""
        self._pending: list[bytes] = []  # lines not yet written (see flush)

    @classmethod
    def open(cls, target: str, clock: Callable[[], float] = time.time) -> AccessLog:
        """ACCESS_LOG's target opened. Raises ConfigError when the file cannot be."""
        if target == OFF:
            return cls(None, clock)
        if target == STDERR:
            return cls(2, clock)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as error:
            raise ConfigError(
                f"ACCESS_LOG={target!r}: cannot open it for appending ({error.strerror}); "
                "point it at a writable file, or set stderr or off"
            ) from None
        return cls(fd, clock)

    @property
    def on(self) -> bool:
        return self._fd is not None

    def record_answer(self, task: Any, code: str | None = None) -> None:
        """The line of a request the app answered (`code`: what the client hears when
        the app failed, and waitress answers in its place)."""
        if self._fd is None:
            return
        environ = task.environ or {}
        request = task.request
        if code is None:
            code = environ.get(ANSWER_LINE, "-")[:3]
        sent = task.content_bytes_written
        if not sent and task.content_length and request.command != "HEAD":
            sent = task.content_length  # a file body, handed to the connection whole
        self.record(
            environ.get("REMOTE_ADDR") or _peer(task),
            environ.get(SIGNED_IN_USER),
            request.command,
            request.path,
            code,
            sent,
            self._clock() - task.start_time,
        )

    def record_error(self, task: Any) -> None:
        """The line of a request the server refused itself (request.error)."""
        if self._fd is None:
            return
        request = task.request
        self.record(
            _peer(task),
            None,
            getattr(request, "command", None) or "-",
            getattr(request, "path", None) or "-",
            str(request.error.code),
            task.content_bytes_written,
            self._clock() - task.start_time,
        )

    def record(
        self,
        client: str,
        user: int | None,
        method: str,
        path: str,
        code: str,
        sent: int,
        seconds: float,
    ) -> None:
        now = self._clock()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        if not (path.isascii() and path.isprintable()) or " " in path:
            path = quote(path, safe=PATH_SAFE)
        if not method.isalpha():
            method = quote(method, safe="")
        line = (
            f"{self._stamp} {client} user={'-' if user is None else user} {method} {path} "
            f"{code} {sent} {seconds * 1000:.1f}ms\n"
        )
        self._pending.append(line.encode("utf-8", "replace"))
        if len(self._pending) >= PENDING_LINES:
            self.flush()

    def flush(self) -> None:
        """Write the lines kept so far (the loop calls this after each wait: one write
        for the requests it served together), in appends of at most PIPE_BUF bytes,
        which reach a pipe or a file whole, never mixed with another worker's."""
        if not self._pending or self._fd is None:
            return
        pending, self._pending = self._pending, []
        chunk = b""
        for line in pending:
            if len(chunk) + len(line) > PIPE_BUF and chunk:
                self._write(chunk)
                chunk = b""
            chunk += line
        self._write(chunk)

    def _write(self, data: bytes) -> None:
        try:  # noqa: SIM105 (contextlib.suppress costs more than the write)
            os.write(self._fd, data)  # type: ignore[arg-type]
        except OSError:
            pass  # a full disk or a closed stderr must not stop serving

    def close(self) -> None:
        self.flush()
        if self._fd is not None and self._fd > 2:
            os.close(self._fd)
        self._fd = None


def _peer(task: Any) -> str:
    address = task.channel.addr
    return address[0] if address else "-"


def answers_kept(app: Callable) -> Callable:
    """The WSGI app, keeping its answer line in the environ (ANSWER_LINE) for the log."""

    def app_keeping_answers(environ: dict, start_response: Callable) -> Any:
        def start(line: str, headers: list, exc_info: Any = None) -> Any:
            environ[ANSWER_LINE] = line
            return start_response(line, headers, exc_info)

        return app(environ, start)

    return app_keeping_answers
