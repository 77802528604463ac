"""The hashes a resumable upload's bytes go through: the checksums a client may ask for,
and the upload's SHA-256 (its ETag) carried from one piece to the next."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Hasher = Any  # a hashlib object (hashlib's type for them is private)

CHECKSUM_ALGORITHMS: dict[str, Callable[[], Hasher]] = {
    "md5": hashlib.md5,
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}


@dataclass(frozen=True)
class Checksum:
    """What a piece's bytes must hash to (tus' Upload-Checksum): an algorithm among
    CHECKSUM_ALGORITHMS and the digest it promises."""

    algorithm: str
    digest: bytes

    def verifier(self) -> Hasher:
        """A fresh hash of this checksum's algorithm, to feed the piece's bytes to."""
        return CHECKSUM_ALGORITHMS[self.algorithm]()


def verifier_for(algorithm: str | None) -> Hasher | None:
    """A fresh hash of `algorithm` (one of CHECKSUM_ALGORITHMS), or None for none."""
    return CHECKSUM_ALGORITHMS[algorithm]() if algorithm else None


class UploadHashes:
    """The SHA-256 state of uploads whose latest piece this worker process received.

    A file's SHA-256 is its ETag, so the bytes of a resumable upload are hashed as they
    arrive. Consecutive pieces usually reach the same process (a client keeps its
    connection, and a connection stays with one worker), which continues the hash it
    kept. When the state is lost (a restart, or a piece went to another worker) the
    upload is hashed again once, from the store, when it completes: re-hashing the
    prefix at every hop between workers would cost O(n^2) for a client that opens a new
    connection for each piece.
    """

    def __init__(self, capacity: int = 256) -> None:
        self._capacity = capacity
        self._states: OrderedDict[str, tuple[int, Hasher]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, upload_id: str, offset: int) -> Hasher | None:
        """The hash of the upload's first `offset` bytes, if this process has it (it is
        the caller's now; keep() it again to pass it on)."""
        with self._lock:
            kept = self._states.pop(upload_id, None)
        if kept is None or kept[0] != offset:
            return None
        return kept[1]

    def copy(self, upload_id: str, offset: int) -> Hasher | None:
        """A copy of the hash of the upload's first `offset` bytes, if this process has
        it (the original stays, for whoever takes it)."""
        with self._lock:
            kept = self._states.get(upload_id)
        if kept is None or kept[0] != offset:
            return None
        return kept[1].copy()

    def start(self, upload_id: str, offset: int, take: bool = False) -> Hasher | None:
        """The hash to continue for bytes at `offset`: a fresh one at 0, else this
        process's kept one (taken, or a copy of it), or None when it has none (the
        upload is then hashed from the store when it completes)."""
        kept = self.take(upload_id, offset) if take else self.copy(upload_id, offset)
        if kept is None and offset == 0:
            return hashlib.sha256()
        return kept

    def keep(self, upload_id: str, offset: int, sha256: Hasher) -> None:
        """Remember the hash of the upload's first `offset` bytes (the oldest is
        forgotten past the capacity)."""
        with self._lock:
            self._states[upload_id] = (offset, sha256)
            self._states.move_to_end(upload_id)
            while len(self._states) > self._capacity:
                self._states.popitem(last=False)

    def forget(self, upload_id: str) -> None:
        with self._lock:
            self._states.pop(upload_id, None)
