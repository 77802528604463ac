"""A WebDAV PUT's body, into the blob store as it arrives, then a file through
pcloud.services.files.add_file (on_conflict "replace": the one way a file's content is
replaced, with the versions, quota and change feed that go with it).

Under `pcloud serve` the server hands the body to a PutBody piece by piece as it reads
it from the connection, before WsgiDAV runs (pcloud.api.bodies asks
`receiver_for_put`): the bytes are hashed on the way and written once, and WsgiDAV's
PUT handler finds an empty wsgi.input and takes the PutBody's blob instead. Elsewhere
(the Flask test client, another WSGI server) the body is read from wsgi.input by
WsgiDAV and written into a blob writer the same way. Memory stays flat either way.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone

from werkzeug.datastructures import Authorization
from wsgidav.dav_error import HTTP_BAD_REQUEST, DAVError

from pcloud.core import Pcloud
from pcloud.dav.errors import as_dav_errors
from pcloud.errors import BadRequest, PcloudError, ServiceUnavailable, Unauthorized
from pcloud.models import StoredFile, database_proxy
from pcloud.services import files, paths, quota, tree
from pcloud.services.basic_sign_in import (
    INVALID_CREDENTIALS,
    BasicUser,
    PasswordCache,
    account_password_verdict,
    signed_in_already,
)
from pcloud.serving import RECEIVED_BODY
from pcloud.storage import BlobStore, BlobWriter, StoredBlob

CHALLENGE = 'Basic realm="pcloud", charset="UTF-8"'  # what a 401 under /dav/ asks for
MTIME_HEADER = "HTTP_X_OC_MTIME"
CHECKSUM_HEADER = "HTTP_OC_CHECKSUM"
LATEST_MTIME = 253402300799  # 9999-12-31T23:59:59Z
# Account passwords being checked for PUTs (by the two verifier threads) or waiting to
# be, at most: past this, such a PUT is answered 503 at once. Without a bound, a client
# opening PUTs faster than scrypt runs queued work (and memory) without end.
VERIFICATIONS_AT_MOST = 32
VERIFIER_BUSY = "Too many sign-ins are being checked right now: try again in a moment"


class PutBody:
    """A PUT body received into the store before the view runs (a pcloud.api.bodies
    BodyReceiver). Errors are kept for the view; what it does not take is undone.

    `signed_in`, when given, is the answer (coming) to whether the credentials are good:
    once it says no, what arrived is deleted and the rest is dropped as it comes, so
    that a client with a wrong password stores at most what it sent while its password
    was checked (the view then answers 401 through sign_in, which counts the failure)."""

    def __init__(
        self, blobs: BlobStore, max_size: int, signed_in: Future[bool] | None = None
    ) -> None:
        self._writer: BlobWriter | None = blobs.writer(max_size)
        self._error: PcloudError | None = None
        self._signed_in = signed_in

    def receive(self, data: bytes) -> None:
        if self._writer is None:
            return
        verdict = self._signed_in
        if verdict is not None and verdict.done():
            self._signed_in = None
            if verdict.exception() is not None or not verdict.result():
                self._error = Unauthorized(INVALID_CREDENTIALS)
                self._writer.abort()
                self._writer = None
                return
        try:
            self._writer.write(data)
        except PcloudError as error:  # too large: the bytes are dropped
            self._error = error
            self._writer.abort()
            self._writer = None

    def take(self) -> StoredBlob:
        """The stored bytes, now the caller's. Raises what receiving them raised."""
        if self._error is not None:
            raise self._error
        if self._writer is None:
            raise BadRequest("The body was already taken")
        writer, self._writer = self._writer, None
        return writer.commit()

    def broken(self) -> None:
        """Half a file is no file: close() discards what arrived."""

    def close(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
        if self._signed_in is not None:  # a check not begun yet is no longer wanted
            self._signed_in.cancel()
            self._signed_in = None


def receiver_for_put(
    app: Pcloud, passwords: PasswordCache, path: str, headers: Mapping[str, str]
) -> PutBody:
    """The receiver of a PUT under /dav/, for pcloud.api.bodies: its body goes straight
    into a blob writer. Raises the PcloudError the view would answer with, when the
    headers already tell (then the server answers at once, the body unread):
    Unauthorized without Basic credentials, InsufficientStorage when the user is known
    cheaply (an app password, or an account password this worker verified already) and
    Content-Length, less the size of the file it replaces, is past their quota. Other
    credentials may be an account password not verified lately: that is checked in a
    thread (scrypt never runs in the server's event loop) while the body arrives, and a
    wrong one has what arrived deleted and the rest dropped (see PutBody)."""
    header = headers.get("AUTHORIZATION", "")
    authorization = Authorization.from_header(header) if header else None
    if authorization is None or authorization.type != "basic":
        refusal = Unauthorized("Sign in with your user name and an app password")
        refusal.headers["WWW-Authenticate"] = CHALLENGE
        raise refusal
    login, password = authorization.username or "", authorization.password or ""
    user = signed_in_already(login, password, passwords)
    if user is None:  # perhaps an account password not verified lately: in a thread
        return PutBody(
            app.blobs, app.settings.max_upload_size, _verify_later(login, password, passwords)
        )
    length = headers.get("CONTENT_LENGTH", "")
    if user is not None and length.isdigit():
        try:  # waitress's path: decoded, as latin-1 (PEP 3333)
            parts = paths.segments(path[len("/dav") :].encode("latin-1").decode("utf-8"))
        except UnicodeError:
            parts = None
        existing = paths.resolve(user.user_id, parts) if parts else None
        replacing = existing.size if isinstance(existing, paths.FileRow) else 0
        quota.check_within(user.user_id, user.quota_bytes, int(length) - replacing)
    return PutBody(app.blobs, app.settings.max_upload_size)


_verifier: ThreadPoolExecutor | None = None  # made in the worker process, when first needed
_verifier_lock = threading.Lock()
_verifications = threading.BoundedSemaphore(VERIFICATIONS_AT_MOST)


def _verify_later(login: str, password: str, passwords: PasswordCache) -> Future[bool]:
    """The verdict on an account password, coming from the verifier threads. Raises
    ServiceUnavailable (Retry-After: 1) when VERIFICATIONS_AT_MOST are under way."""
    global _verifier
    if not _verifications.acquire(blocking=False):
        busy = ServiceUnavailable(VERIFIER_BUSY, retry_after=1)
        busy.headers = {"Retry-After": "1"}
        raise busy
    try:
        with _verifier_lock:
            if _verifier is None:
                _verifier = ThreadPoolExecutor(
                    max_workers=2, thread_name_prefix="pcloud-dav-sign-in"
                )
        future = _verifier.submit(_verdict, login, password, passwords)
    except BaseException:
        _verifications.release()
        raise
    future.add_done_callback(lambda _done: _verifications.release())  # cancelled too
    return future


def _verdict(login: str, password: str, passwords: PasswordCache) -> bool:
    with database_proxy.connection_context():
        return account_password_verdict(login, password, passwords)


class _Sink:
    """What WsgiDAV writes the body into (when it reads one from wsgi.input)."""

    def __init__(self, writer: BlobWriter | None) -> None:
        self.writer = writer

    def write(self, data: bytes) -> None:
        if self.writer is None:
            if data:
                raise DAVError(HTTP_BAD_REQUEST, context_info="The body was received already")
            return
        with as_dav_errors():
            self.writer.write(data)

    def close(self) -> None:
        """The blob is committed by PutTarget.store, once the file can be recorded."""


class PutTarget:
    """One PUT: checks what can be checked before any byte is stored, then stores."""

    def __init__(
        self,
        app: Pcloud,
        environ: dict,
        user: BasicUser,
        replacing_size: int | None,
        empty: bool = False,
    ) -> None:
        self.app = app
        self.environ = environ
        self.user = user
        self._writer: BlobWriter | None = None
        self._empty = empty
        received = environ.get(RECEIVED_BODY)
        self._received = received if isinstance(received, PutBody) else None
        if not empty:
            length = _content_length(environ)
            if length is not None:
                with as_dav_errors():
                    quota.check_within(
                        user.user_id, user.quota_bytes, length - (replacing_size or 0)
                    )

    def sink(self) -> _Sink:
        if self._received is not None:
            return _Sink(None)
        self._writer = self.app.blobs.writer(self.app.settings.max_upload_size)
        return _Sink(self._writer)

    def store(self, folder_id: int, name: str) -> StoredFile:
        """Record the bytes as the file `name` in the folder, replacing the content of one
        of that name. Raises PcloudError kinds; on any failure nothing stays stored."""
        modified_at = mtime(self.environ)
        if self._empty:
            blob = self.app.blobs.put([])
        elif self._received is not None:
            blob = self._received.take()
        elif self._writer is not None:
            blob, self._writer = self._writer.commit(), None
        else:
            raise BadRequest("No body")
        try:
            _check_sha256(self.environ, blob)
        except BaseException:
            self.app.blobs.delete(blob.key)
            raise
        return files.add_file(
            self.app.blobs,
            self.user.user_id,
            name,
            blob,
            modified_at=modified_at,
            folder_id=folder_id,
            on_conflict=tree.REPLACE,
            root_id=self.user.root_folder_id,
            quota_bytes=self.user.quota_bytes,
            session_id=self.user.session_id,  # an app password's device: the version says so
        )

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None


def _content_length(environ: dict) -> int | None:
    text = environ.get("CONTENT_LENGTH") or ""
    return int(text) if text.isdigit() else None


def mtime(environ: dict) -> datetime | None:
    """The X-OC-Mtime header (seconds since the epoch, as ownCloud clients and rclone
    send it) as the file's modification time. Raises BadRequest for a malformed one."""
    text: str | None = environ.get(MTIME_HEADER)
    if text is None:
        return None
    try:
        seconds = float(text.strip())
    except ValueError:
        raise BadRequest("X-OC-Mtime must be seconds since 1970") from None
    if not 0 <= seconds <= LATEST_MTIME:
        raise BadRequest("X-OC-Mtime must be seconds since 1970")
    return datetime.fromtimestamp(seconds, timezone.utc)


def _check_sha256(environ: dict, blob: StoredBlob) -> None:
    """OC-Checksum: `SHA256:<hex>` must match what arrived (other algorithms: ignored)."""
    header: str = environ.get(CHECKSUM_HEADER) or ""
    for checksum in header.split():
        algorithm, _, value = checksum.partition(":")
        if algorithm.upper() == "SHA256" and not hmac.compare_digest(
            value.lower().encode(), blob.sha256.encode()
        ):
            raise BadRequest("OC-Checksum SHA256 does not match the bytes received")
