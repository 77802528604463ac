"""A bounded pool of decoder processes (pcloud.media.decode), shared by a server process's
threads.

Each decoder is a long-lived child process (so a thumbnail costs a decode, not a Python
start) with an address-space limit. A job that outlives its time limit, or a decoder
that dies (a codec crash, the memory limit), costs that one process: it is killed and
replaced on the next job, and the caller gets a DecodeFailed. At most `size` decodes
run at once; a caller that finds every decoder busy waits for one, up to `wait`
seconds. A pool made with `niceness` runs its decoders at that lower priority (the
background pool: requests come first).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("pcloud.media")

MEMORY_LIMIT = 1536 * 1024 * 1024  # per decoder: a 120-megapixel picture fits, a bomb not
JOB_TIMEOUT = 20.0  # seconds one file may take
MAX_THUMBNAIL_BYTES = 8 * 1024 * 1024


class DecodeFailed(Exception):
    """The decoder could not answer (timed out, died, or answered nonsense)."""


class PoolBusy(Exception):
    """Every decoder stayed busy for as long as the caller would wait."""


@dataclass(frozen=True)
class Decoded:
    """A decoder's answer: what the file is (see pcloud.media.decode.describe)."""

    details: dict[str, Any]
    thumbnail: bytes


class Decoder:
    """One decoder process and its pipes."""

    def __init__(self, memory_limit: int, niceness: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pcloud.media.decode", str(memory_limit), str(niceness)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            start_new_session=True,  # Ctrl-C on the server's terminal is the server's
        )

    def run(self, job: dict[str, Any], timeout: float) -> Decoded:
        assert self.process.stdin is not None
        deadline = time.monotonic() + timeout
        try:
            data = json.dumps(job).encode()
            self.process.stdin.write(struct.pack(">I", len(data)) + data)
            self.process.stdin.flush()
            details = json.loads(self._read_message(deadline, 64 * 1024))
            if not isinstance(details, dict):
                raise DecodeFailed("the decoder answered nonsense")
            length = details.pop("thumbnail_bytes", 0)
            thumbnail = b""
            if length:
                thumbnail = self._read_message(deadline, MAX_THUMBNAIL_BYTES)
            return Decoded(details, thumbnail)
        except (OSError, ValueError) as error:
            raise DecodeFailed(f"the decoder failed: {error}") from None

    def _read_message(self, deadline: float, limit: int) -> bytes:
        (length,) = struct.unpack(">I", self._read_exactly(4, deadline))
        if length > limit:
            raise DecodeFailed("the decoder answered too much")
        return self._read_exactly(length, deadline)

    def _read_exactly(self, count: int, deadline: float) -> bytes:
        assert self.process.stdout is not None
        descriptor = self.process.stdout.fileno()
        chunks: list[bytes] = []
        while count:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([descriptor], [], [], left)[0]:
                raise DecodeFailed("the file took too long to decode")
            chunk = os.read(descriptor, count)
            if not chunk:
                raise DecodeFailed("the decoder stopped (the file needed too much memory?)")
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILL cannot be ignored
            self.process.wait(timeout=5)

    def close(self) -> None:
        """Let it end by itself (stdin closed), or kill it."""
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
            self.process.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()


class DecoderPool:
    """At most `size` decoder processes, started on first need and kept."""

    def __init__(
        self,
        size: int,
        niceness: int = 0,
        memory_limit: int = MEMORY_LIMIT,
        timeout: float = JOB_TIMEOUT,
    ) -> None:
        self.size = max(1, size)
        self.niceness = niceness
        self.memory_limit = memory_limit
        self.timeout = timeout
        self._slots = threading.BoundedSemaphore(self.size)
        self._idle: list[Decoder] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()  # decoders belong to the process that started them

    def decode(self, path: str, size: int | None, image_format: str, wait: float = 30.0) -> Decoded:
        """What the file is, and a thumbnail of it (see pcloud.media.decode.describe).
        Raises PoolBusy after waiting `wait` seconds for a free decoder, DecodeFailed
        when the decoder times out or dies on this file."""
        if not self._slots.acquire(timeout=wait):
            raise PoolBusy("every decoder is busy")
        try:
            decoder = self._take()
            try:
                decoded = decoder.run(
                    {"path": path, "size": size, "format": image_format}, self.timeout
                )
            except DecodeFailed:
                decoder.kill()
                raise
            with self._lock:
                self._idle.append(decoder)
            return decoded
        finally:
            self._slots.release()

    def _take(self) -> Decoder:
        with self._lock:
            if os.getpid() != self._pid:  # forked: the parent's decoders are not ours
                self._idle, self._pid = [], os.getpid()
            while self._idle:
                decoder = self._idle.pop()
                if decoder.process.poll() is None:
                    return decoder
        return Decoder(self.memory_limit, self.niceness)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        if os.getpid() != self._pid:
            return
        for decoder in idle:
            decoder.close()
