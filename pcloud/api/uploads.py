"""Receiving a multipart upload straight into the blob store.

Werkzeug's multipart decoder (its sans-IO `MultipartDecoder`) does the parsing; the
`file` part is written directly into a blob writer (hashing as it goes), so the bytes are
copied once and never held in memory, and the part's name is checked before its first
byte is stored. Small text fields are kept for the route; other file parts are skipped.

Under `pcloud serve` this happens while the body arrives, before the view runs
(MultipartReceiver, chosen by pcloud.api.bodies); elsewhere, from wsgi.input when the
view asks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from flask import request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.sansio.multipart import (
    LINE_BREAK,
    Data,
    Epilogue,
    Field,
    File,
    MultipartDecoder,
    NeedData,
)
from werkzeug.wsgi import get_input_stream

from pcloud.api.context import received_body
from pcloud.errors import BadRequest, PayloadTooLarge
from pcloud.services import names
from pcloud.services.uploads_resumable import parse_moment
from pcloud.storage import BlobStore, BlobWriter, StoredBlob

FILE_FIELD = "file"
READ_SIZE = 256 * 1024
MAX_FORM_PARTS = 16
# Caps the text fields held in memory; werkzeug also applies it to each piece it reads,
# so it must exceed READ_SIZE.
MAX_FORM_MEMORY = 1024 * 1024


@dataclass(frozen=True)
class ReceivedFile:
    name: str
    blob: StoredBlob
    fields: dict[str, str] = field(default_factory=dict)


def receive_file(blobs: BlobStore, max_file_size: int) -> ReceivedFile:
    """Store the request's `file` part as a blob. Raises BadRequest or PayloadTooLarge.

    Under `pcloud serve` the body was received into the blob store as it arrived (see
    MultipartReceiver); elsewhere it is read from wsgi.input now. On any failure nothing
    is left in the store.
    """
    received = received_body()
    if isinstance(received, MultipartReceiver):
        return received.take()
    if request.mimetype != "multipart/form-data":
        raise BadRequest("Upload must be multipart/form-data with a 'file' field")
    boundary = request.mimetype_params.get("boundary", "").encode("latin-1", "replace")
    if not boundary:
        raise BadRequest("Malformed multipart body: no boundary")
    stream = get_input_stream(request.environ, max_content_length=request.max_content_length)
    upload = _Upload(blobs, max_file_size, boundary)
    try:
        while True:
            chunk = stream.read(READ_SIZE)
            upload.feed(chunk or None)
            if not chunk:
                break
        return upload.commit()
    except ClientDisconnected:
        raise BadRequest("The upload was cut off before it was complete") from None
    except (RequestEntityTooLarge, ValueError) as error:
        raise _client_error(error) from None
    finally:
        upload.abort()


class MultipartReceiver:
    """A multipart upload's body, received into the blob store piece by piece as the
    server reads it from the connection (pcloud.api.bodies), before the view runs.

    Errors are kept, not raised, until the view takes the result: the server's reading
    loop must not fail, and the view decides what the client hears (a 401 comes before
    a malformed body's 400). What the view does not take is discarded on close().
    """

    def __init__(self, blobs: BlobStore, max_file_size: int, boundary: bytes) -> None:
        self._upload = _Upload(blobs, max_file_size, boundary)
        self._error: BaseException | None = None

    def receive(self, data: bytes) -> None:
        if self._error is not None:
            return
        try:
            self._upload.feed(data)
        except Exception as error:  # kept for the view; the bytes are dropped
            self._error = error
            self._upload.abort()

    def take(self) -> ReceivedFile:
        """The stored file, now the caller's. Raises what receiving it raised."""
        if self._error is None:
            try:
                self._upload.feed(None)  # the body is complete
                return self._upload.commit()
            except Exception as error:
                self._error = error
            finally:
                self._upload.abort()
        raise _client_error(self._error) from None

    def broken(self) -> None:
        """Half a file is no file: close() discards what arrived."""

    def close(self) -> None:
        self._upload.abort()  # nothing, once committed


def _client_error(error: BaseException) -> BaseException:
    """What a client hears of a failure while its multipart body was parsed."""
    if isinstance(error, RequestEntityTooLarge):
        return PayloadTooLarge("Upload is larger than this server accepts")
    if isinstance(error, ValueError):
        return BadRequest("Malformed multipart body")
    return error


def expected_file_size() -> int | None:
    """The file's size as Content-Length foretells it, less room for the multipart
    framing (for a quota check before any byte is stored; add_file checks exactly)."""
    if request.content_length is None:
        return None
    return max(0, request.content_length - 4096)


def modified_at_field(fields: dict[str, str]) -> datetime | None:
    """The form field `modified_at` (ISO 8601, or epoch milliseconds), if sent."""
    text = fields.get("modified_at")
    if not text:
        return None
    try:
        return parse_moment(text)
    except BadRequest:
        raise BadRequest("'modified_at' must be ISO 8601 or epoch milliseconds") from None


class _Upload:
    """One request's multipart body, fed piece by piece into a blob writer."""

    def __init__(self, blobs: BlobStore, max_file_size: int, boundary: bytes) -> None:
        self.blobs = blobs
        self.max_file_size = max_file_size
        self.writer: BlobWriter | None = None
        self.stored_name = ""
        self.file_complete = False
        self.fields: dict[str, str] = {}
        self._field_bytes = 0
        self._decoder = FastBoundaryDecoder(
            boundary, max_form_memory_size=MAX_FORM_MEMORY, max_parts=MAX_FORM_PARTS
        )
        self._part: str | None = None  # the current part's data: "file", "field" or None
        self._field_name = ""
        self._field_value = bytearray()

    def feed(self, chunk: bytes | None) -> None:
        """The body's next bytes; None when it has ended. Raises ValueError (malformed,
        or ended early), BadRequest (the file's name), RequestEntityTooLarge (the text
        fields) or PayloadTooLarge (the file)."""
        decoder = self._decoder
        decoder.receive_data(chunk)
        event = decoder.next_event()
        while not isinstance(event, (Epilogue, NeedData)):
            if isinstance(event, File):
                self._part = self._start_file(event)
            elif isinstance(event, Field):
                self._part, self._field_name = "field", event.name
                self._field_value.clear()
            elif isinstance(event, Data):
                part = self._part
                if part == "file":
                    self.writer.write(event.data)
                elif part == "field":
                    self._field_bytes += len(event.data)
                    if self._field_bytes > MAX_FORM_MEMORY:
                        raise RequestEntityTooLarge()
                    self._field_value += event.data
                if not event.more_data:
                    if part == "file":
                        self.file_complete = True
                    elif part == "field":
                        self.fields[self._field_name] = self._field_value.decode("utf-8", "replace")
                    self._part = None
            event = decoder.next_event()

    def _start_file(self, event: File) -> str | None:
        if event.name != FILE_FIELD or self.writer is not None:
            return None  # another file part: skipped
        self.stored_name = names.from_upload(event.filename)
        self.writer = self.blobs.writer(self.max_file_size)
        return "file"

    def commit(self) -> ReceivedFile:
        """The file part as a blob. Raises BadRequest when there was none."""
        if self.writer is None or not self.file_complete:
            raise BadRequest("No file part in the request (send it in the field 'file')")
        return ReceivedFile(self.stored_name, self.writer.commit(), self.fields)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()


class FastBoundaryDecoder(MultipartDecoder):
    """Werkzeug's MultipartDecoder, without compiling two regular expressions per request.

    Werkzeug compiles a pattern for each new boundary, and clients send a new random
    boundary with every request: the compiling cost ~0.2 ms, a fifth of a small upload.
    The finder below matches exactly what those patterns match (tests/test_uploads.py
    compares the two on random bodies), with one search for the boundary and one
    precompiled pattern for what follows it.
    """

    def __init__(self, boundary: bytes, **limits) -> None:
        super().__init__(b"pcloud", **limits)  # compiled once, then from re's cache
        self.boundary = boundary
        self.preamble_re = BoundaryFinder(boundary, line_break_required=False)
        self.boundary_re = BoundaryFinder(boundary, line_break_required=True)


# What may follow `--boundary`: `--` for the last one, then optional blanks and a line break.
_AFTER_BOUNDARY = re.compile(rb"(--[^\S\n\r]*%s?|[^\S\n\r]*%s)" % (LINE_BREAK, LINE_BREAK))


class BoundaryFinder:
    """Finds what werkzeug's compiled patterns find, where B is the boundary, LB a line
    break (CRLF, LF or CR) and WS a blank other than those:

    preamble_re: LB? --B (--WS*LB? | WS*LB)     boundary_re: the same, LB required.
    """

    def __init__(self, boundary: bytes, line_break_required: bool) -> None:
        self.delimiter = b"--" + boundary
        self.line_break_required = line_break_required

    def search(self, data: bytes | bytearray, pos: int = 0) -> BoundaryMatch | None:
        delimiter = self.delimiter
        index = data.find(delimiter, pos)
        while index != -1:
            if index - 2 >= pos and data[index - 2 : index] == b"\r\n":
                start = index - 2
            elif index - 1 >= pos and data[index - 1] in b"\r\n":
                start = index - 1
            else:
                start = -1 if self.line_break_required else index
            if start != -1:
                after = _AFTER_BOUNDARY.match(data, index + len(delimiter))
                if after is not None:
                    return BoundaryMatch(start, after.end(), after.group(1))
            index = data.find(delimiter, index + 1)
        return None


@dataclass(frozen=True)
class BoundaryMatch:
    """The parts of a re.Match that werkzeug's decoder uses."""

    begin: int
    finish: int
    suffix: bytes

    def start(self) -> int:
        return self.begin

    def end(self) -> int:
        return self.finish

    def group(self, index: int) -> bytes:
        if index != 1:
            raise IndexError(index)
        return self.suffix
