"""A multipart/form-data upload, received straight into the blob store.

Werkzeug's multipart decoder (its sans-IO `MultipartDecoder`) does the parsing; the
`file` part is written directly into a blob writer (hashing as it goes), so the bytes are
copied once and never held in memory, and the part's name is checked before its first
byte is stored. Small text fields are kept for the caller; other file parts are skipped.

Two ways in, one result (a ReceivedFile): a MultipartReceiver, handed the body's pieces
by the server as they arrive (see the package's contract), or receive_multipart(), which
reads a stream (wsgi.input under any other server).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.multipart import (
    LINE_BREAK,
    Data,
    Epilogue,
    Field,
    File,
    MultipartDecoder,
    NeedData,
)

from pcloud.errors import BadRequest, PayloadTooLarge, out_of_space
from pcloud.services import names
from pcloud.storage import BlobStore, BlobWriter, StoredBlob

FILE_FIELD = "file"
READ_SIZE = 256 * 1024
MAX_FORM_PARTS = 16
# Caps the text fields held in memory; werkzeug also applies it to each piece it reads,
# so it must exceed READ_SIZE.
MAX_FORM_MEMORY = 1024 * 1024


@dataclass(frozen=True)
class ReceivedFile:
    """An upload's file part, stored: its name (checked as a file name), its blob (the
    caller's now: record it with files.add_file, which deletes it on failure), and the
    form's text fields."""

    name: str
    blob: StoredBlob
    fields: dict[str, str] = field(default_factory=dict)


def receive_multipart(
    blobs: BlobStore, max_file_size: int, boundary: bytes, read: Callable[[int], bytes]
) -> ReceivedFile:
    """Read a multipart body through `read(size)` (b"" at its end) and store its `file`
    part. Raises BadRequest (malformed, no file part, a bad name), PayloadTooLarge, or
    what `read` raises; on any failure nothing is left in the store."""
    upload = MultipartUpload(blobs, max_file_size, boundary)
    try:
        while True:
            chunk = read(READ_SIZE)
            upload.feed(chunk or None)
            if not chunk:
                break
        return upload.commit()
    except (RequestEntityTooLarge, ValueError, OSError) as error:
        raise client_error(error) from None
    finally:
        upload.abort()


class MultipartReceiver:
    """A BodyReceiver for a multipart upload: the body goes into the blob store piece by
    piece as the server reads it from the connection, before the view runs.

    Errors are kept, not raised, until the view takes the result: the server's reading
    loop must not fail, and the view decides what the client hears (a 401 comes before
    a malformed body's 400). What the view does not take is discarded on close().
    """

    def __init__(self, blobs: BlobStore, max_file_size: int, boundary: bytes) -> None:
        self._upload = MultipartUpload(blobs, max_file_size, boundary)
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
        """The stored file, now the caller's. Raises what receiving it raised, as
        receive_multipart() would."""
        if self._error is None:
            try:
                self._upload.feed(None)  # the body is complete
                return self._upload.commit()
            except Exception as error:
                self._error = error
            finally:
                self._upload.abort()
        raise client_error(self._error) from None

    def broken(self) -> None:
        """Half a file is no file: close() discards what arrived."""

    def close(self) -> None:
        self._upload.abort()  # nothing, once committed


def client_error(error: BaseException) -> BaseException:
    """What a client hears of a failure while its multipart body was parsed and stored."""
    if isinstance(error, RequestEntityTooLarge):
        return PayloadTooLarge("Upload is larger than this server accepts")
    full = out_of_space(error)
    if full is not None:
        return full
    if isinstance(error, ValueError):
        return BadRequest("Malformed multipart body")
    return error


class MultipartUpload:
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
        fields), PayloadTooLarge (the file) or OSError (the store's)."""
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
                self._data(event)
            event = decoder.next_event()

    def _data(self, event: Data) -> None:
        part = self._part
        if part == "file":
            assert self.writer is not None  # a "file" part has its writer
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

    def __init__(self, boundary: bytes, **limits: Any) -> None:
        super().__init__(b"pcloud", **limits)  # compiled once, then from re's cache
        self.boundary = boundary
        self.preamble_re = BoundaryFinder(boundary, line_break_required=False)  # type: ignore[assignment]
        self.boundary_re = BoundaryFinder(boundary, line_break_required=True)  # type: ignore[assignment]


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
