"""Bounds on what a connection may hold: time to send its headers, time idle between
requests, connections per client address.

Waitress's own timeout (channel_timeout) counts idle time only, so a client sending one
header byte every few seconds holds its connection, and its worker's place, forever; and
nothing stops one address from opening every connection the server takes. Here, as
nginx's client_header_timeout and keepalive_timeout do: a request's headers must be
complete within HEADER_TIMEOUT of its first byte (or of the connection's opening), else
408 and the connection closes; a connection idle between requests closes after
KEEPALIVE_TIMEOUT; a body that stops arriving for BODY_TIMEOUT is cut (and judged as a
broken connection: a resumable-upload piece keeps what arrived). A client address may hold at most
CONNECTIONS_PER_ADDRESS connections (shared out among the worker processes); one more is
answered 503 and closed at once. Behind a trusted proxy every connection comes from the
proxy, so there the per-address limit is the proxy's to keep.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pcloud.server import answers

BODY_TIMEOUT = 300  # seconds without a byte of a body arriving (waitress's channel_timeout)


@dataclass(frozen=True)
class Limits:
    header_timeout: float
    keepalive_timeout: float
    per_address: int  # connections one address may hold in this worker; 0: no limit
    body_timeout: float = BODY_TIMEOUT


class ConnectionLimits:
    """One worker's connections, counted per client address, and the timeouts that
    close them (`maintain`, called by the loop about once a second)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.per_address: Counter[str] = Counter()
        self._too_many = answers.raw_answer(
            "503 Service Unavailable",
            answers.TOO_MANY_CONNECTIONS.format(limit=limits.per_address),
        )
        self._header_timeout = answers.raw_answer(
            "408 Request Timeout",
            answers.HEADER_TIMEOUT.format(seconds=f"{limits.header_timeout:g}"),
        )

    @classmethod
    def shared_by(cls, limits: Limits, workers: int) -> ConnectionLimits:
        """The limits of one of `workers` processes, which share out the per-address one."""
        per_worker = math.ceil(limits.per_address / max(1, workers)) if limits.per_address else 0
        return cls(
            Limits(limits.header_timeout, limits.keepalive_timeout, per_worker, limits.body_timeout)
        )

    def admits(self, conn: Any, address: str) -> bool:
        """Whether a just-accepted connection from `address` may stay; if not, it has
        been answered 503 and closed."""
        limit = self.limits.per_address
        if not limit or self.per_address[address] < limit:
            return True
        try:
            conn.setblocking(False)
            conn.send(self._too_many)
        except OSError:
            pass
        finally:
            conn.close()
        return False

    def opened(self, channel: Any) -> None:
        self.per_address[channel.addr[0]] += 1

    def closed(self, channel: Any) -> None:
        address = channel.addr[0]
        self.per_address[address] -= 1
        if self.per_address[address] <= 0:
            del self.per_address[address]

    def maintain(self, channels: list[Any], now: float, event_loop: Any) -> None:
        """Close what has waited too long (`now`: time.time(), as waitress keeps it)."""
        limits = self.limits
        for channel in channels:
            if channel.requests or channel.will_close or channel.close_when_flushed:
                continue  # being answered, or closing already
            request = channel.request
            if request is None:  # between requests, or nothing sent yet
                fresh = channel.last_activity == channel.creation_time
                allowed = limits.header_timeout if fresh else limits.keepalive_timeout
                if now - channel.last_activity > allowed:
                    channel.will_close = True
                    event_loop.watch(channel._fileno)
            elif not request.headers_finished:
                if now - request.started > limits.header_timeout:
                    self._answer_header_timeout(channel)
                    event_loop.watch(channel._fileno)
            elif now - channel.last_activity > limits.body_timeout:
                channel.will_close = True  # handle_close judges the broken body
                event_loop.watch(channel._fileno)

    def _answer_header_timeout(self, channel: Any) -> None:
        channel.request = None  # its headers never came: nothing of it to keep
        with channel.outbuf_lock:
            channel.outbufs[-1].append(self._header_timeout)
            channel.total_outbufs_len += len(self._header_timeout)
        channel.close_when_flushed = True
