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
CONNECTIONS_PER_ADDRESS connections, all worker processes together (AddressCounts); one more
is answered 503 and closed at once. Behind a trusted proxy every connection comes from the
proxy, so there the per-address limit is the proxy's to keep.
"""

from __future__ import annotations

import ctypes
import hashlib
import multiprocessing
import os
from dataclasses import dataclass
from typing import Any

from pcloud.server import answers

BODY_TIMEOUT = 300  # seconds without a byte of a body arriving (waitress's channel_timeout)
# Addresses are counted in ADDRESS_HASHES tables of this many buckets each, by keyed
# hashes (so that no client can aim at another's). MAX_CONNECTIONS fills at most a few
# hundred buckets of a table to the limit.
ADDRESS_BUCKETS = 65536
ADDRESS_HASHES = 4


@dataclass(frozen=True)
class Limits:
    header_timeout: float
    keepalive_timeout: float
    per_address: int  # connections one address may hold, all workers together; 0: no limit
    body_timeout: float = BODY_TIMEOUT


class AddressCounts:
    """Connections held per client address, by every worker process together.

    Made before the workers are forked, in memory they all share: one row of counters
    per worker, which only that worker writes (no lock; a worker that dies takes its
    connections with it, and its replacement starts its row at zero). The kernel hands
    connections to whichever worker accepts first, so a limit shared out per worker
    refused an address that held fewer than the limit in all, whenever most of its
    connections fell to one worker.

    A row is a count-min sketch: each address adds to one bucket in each of
    ADDRESS_HASHES tables, and its count is the smallest of those buckets (summed over
    the rows). One table alone counted two addresses whose buckets collided as one
    client (1,000 addresses in 65,536 buckets collide almost surely), refusing both
    below their limit; with four, an address is over-counted only when all four of its
    buckets are shared. Two workers admitting one address's connections at the same
    instant may let it hold one or two past the limit: a bound, not a count to the
    last connection.
    """

    def __init__(
        self, workers: int = 1, buckets: int = ADDRESS_BUCKETS, hashes: int = ADDRESS_HASHES
    ) -> None:
        self.workers = max(1, workers)
        self.buckets = buckets
        self.hashes = hashes
        self._row_length = buckets * hashes
        self._counts = multiprocessing.RawArray(ctypes.c_int32, self.workers * self._row_length)
        self._key = os.urandom(16)
        self._row = 0

    def become_worker(self, slot: int) -> None:
        """In a new worker process: count in row `slot` (0 to workers - 1), from zero."""
        self._row = slot * self._row_length
        ctypes.memset(ctypes.addressof(self._counts) + self._row * 4, 0, self._row_length * 4)

    def bucket(self, address: str) -> tuple[int, ...]:
        """An address's bucket in each table, as offsets within a row."""
        digest = hashlib.blake2b(
            address.encode(), key=self._key, digest_size=4 * self.hashes
        ).digest()
        return tuple(
            table * self.buckets
            + int.from_bytes(digest[4 * table : 4 * table + 4], "little") % self.buckets
            for table in range(self.hashes)
        )

    def held(self, bucket: tuple[int, ...]) -> int:
        counts = self._counts
        rows = range(0, len(counts), self._row_length)
        return min(sum(counts[row + offset] for row in rows) for offset in bucket)

    def add(self, bucket: tuple[int, ...], change: int) -> None:
        counts, row = self._counts, self._row
        for offset in bucket:
            counts[row + offset] += change


class ConnectionLimits:
    """One worker's connections, counted per client address, and the timeouts that
    close them (`maintain`, called by the loop about once a second)."""

    def __init__(self, limits: Limits, counts: AddressCounts | None = None) -> None:
        self.limits = limits
        self.counts = counts or AddressCounts(1)
        self._too_many = answers.raw_answer(
            "503 Service Unavailable",
            answers.TOO_MANY_CONNECTIONS.format(limit=limits.per_address),
        )
        self._header_timeout = answers.raw_answer(
            "408 Request Timeout",
            answers.HEADER_TIMEOUT.format(seconds=f"{limits.header_timeout:g}"),
        )

    def admits(self, conn: Any, address: str) -> bool:
        """Whether a just-accepted connection from `address` may stay; if not, it has
        been answered 503 and closed."""
        limit = self.limits.per_address
        if not limit or self.counts.held(self.counts.bucket(address)) < limit:
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
        if self.limits.per_address:
            channel.address_bucket = bucket = self.counts.bucket(channel.addr[0])
            self.counts.add(bucket, 1)

    def closed(self, channel: Any) -> None:
        bucket = getattr(channel, "address_bucket", None)
        if bucket is not None:
            self.counts.add(bucket, -1)
            channel.address_bucket = None  # closed once, counted once

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
