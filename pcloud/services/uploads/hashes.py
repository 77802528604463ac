"""The hashes a resumable upload's bytes go through: the checksums a client may ask for,
and the upload's SHA-256 (its ETag) carried from one piece to the next."""

from __future__ import annotations

import ctypes
import ctypes.util
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


# OpenSSL's SHA256_CTX (openssl/sha.h: h[8], Nl, Nh, data[16], num, md_len: 112 bytes)
# is a plain struct, so its bytes are the whole state of a hash and may be saved with the
# upload's row and continued by any process on any node. hashlib keeps its state hidden.
# The low-level SHA256_* calls are deprecated in OpenSSL 3 but exported and stable; this
# is the one place pcloud uses them (tests/test_tus_s3.py fails by name should they go).
SHA256_STATE_SIZE = 112


def _openssl() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("crypto")
    try:
        library = ctypes.CDLL(name or "libcrypto.so.3")
        library.SHA256_Init, library.SHA256_Update, library.SHA256_Final  # noqa: B018
    except (OSError, AttributeError):
        return None
    return library


_LIBCRYPTO = _openssl()


class ResumableSha256:
    """A SHA-256 whose state can be saved (`state()`) and continued elsewhere
    (`from_state()`): the upload's hash travels with its row from piece to piece."""

    name = "sha256"

    def __init__(self, state: bytes | None = None) -> None:
        if _LIBCRYPTO is None:
            raise RuntimeError("OpenSSL's libcrypto is not loadable")
        self._context = ctypes.create_string_buffer(SHA256_STATE_SIZE)
        if state is None:
            _LIBCRYPTO.SHA256_Init(self._context)
        elif len(state) == SHA256_STATE_SIZE:
            ctypes.memmove(self._context, state, SHA256_STATE_SIZE)
        else:
            raise ValueError("not a saved SHA-256 state")

    @staticmethod
    def available() -> bool:
        return _LIBCRYPTO is not None

    def update(self, data: bytes | bytearray | memoryview) -> None:
        assert _LIBCRYPTO is not None
        buffer: object = data  # bytes go to C as they are, without a copy
        if not isinstance(data, bytes):
            view = memoryview(data).cast("B")
            buffer = bytes(view) if view.readonly else (ctypes.c_char * len(view)).from_buffer(view)
        _LIBCRYPTO.SHA256_Update(self._context, buffer, ctypes.c_size_t(len(data)))

    def copy(self) -> ResumableSha256:
        return ResumableSha256(self.state())

    def state(self) -> bytes:
        return self._context.raw

    def digest(self) -> bytes:
        assert _LIBCRYPTO is not None
        finished = ctypes.create_string_buffer(self.state(), SHA256_STATE_SIZE)
        out = ctypes.create_string_buffer(32)
        _LIBCRYPTO.SHA256_Final(out, finished)
        return out.raw

    def hexdigest(self) -> str:
        return self.digest().hex()


def new_sha256(state: bytes | None = None) -> Hasher:
    """The upload's SHA-256: one whose state can be saved where OpenSSL allows, else
    hashlib's (and a saved `state` is then of no use: None)."""
    if ResumableSha256.available():
        return ResumableSha256(state)
    if state is not None:
        return None
    return hashlib.sha256()


def saved_state(sha256: Hasher | None) -> bytes | None:
    """What to save of an upload's hash for another process to continue, if anything."""
    return sha256.state() if isinstance(sha256, ResumableSha256) else None


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

    def start(
        self, upload_id: str, offset: int, take: bool = False, saved: bytes | None = None
    ) -> Hasher | None:
        """The hash to continue for bytes at `offset`: a fresh one at 0, else this
        process's kept one (taken, or a copy of it), else the one `saved` with the
        upload's row (by whichever process took its last piece), or None when there is
        none (the upload is then hashed from the store when it completes)."""
        kept = self.take(upload_id, offset) if take else self.copy(upload_id, offset)
        if kept is None and offset == 0:
            return new_sha256()
        if kept is None and saved is not None:
            return new_sha256(saved)
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
