"""Receiving a multipart upload straight into the blob store.

Werkzeug's multipart parser does the parsing; each file part is written directly into a
blob writer (hashing as it goes), so the bytes are copied once and never held in memory,
and the part's name is checked before its first byte is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

from flask import request
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.formparser import MultiPartParser
from werkzeug.sansio.multipart import File
from werkzeug.wsgi import get_input_stream

from pcloud.errors import BadRequest, PayloadTooLarge
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
    name: str
    blob: StoredBlob


class _Discard:
    """Where file parts other than the first `file` go: nowhere."""

    def write(self, data: bytes) -> int:
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def tell(self) -> int:
        return 0


class _UploadParser(MultiPartParser):
    def __init__(self, blobs: BlobStore, max_file_size: int) -> None:
        super().__init__(
            buffer_size=READ_SIZE,
            max_form_memory_size=MAX_FORM_MEMORY,
            max_form_parts=MAX_FORM_PARTS,
        )
        self.blobs = blobs
        self.max_file_size = max_file_size
        self.writer: BlobWriter | None = None
        self.stored_name: str | None = None

    def start_file_streaming(self, event: File, total_content_length: int | None) -> IO[bytes]:
        if event.name != FILE_FIELD or self.writer is not None:
            return _Discard()  # type: ignore[return-value]
        self.stored_name = names.from_upload(event.filename)
        self.writer = self.blobs.writer(self.max_file_size)
        return self.writer  # type: ignore[return-value]

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()


def receive_file(blobs: BlobStore, max_file_size: int) -> ReceivedFile:
    """Store the request's `file` part as a blob. Raises BadRequest or PayloadTooLarge.

    On any failure nothing is left in the store.
    """
    if request.mimetype != "multipart/form-data":
        raise BadRequest("Upload must be multipart/form-data with a 'file' field")
    boundary = request.mimetype_params.get("boundary", "").encode("latin-1", "replace")
    if not boundary:
        raise BadRequest("Malformed multipart body: no boundary")
    stream = get_input_stream(request.environ, max_content_length=request.max_content_length)
    parser = _UploadParser(blobs, max_file_size)
    try:
        _form, files = parser.parse(stream, boundary, request.content_length)
        received = files.get(FILE_FIELD)
        if not isinstance(received, FileStorage) or parser.writer is None:
            raise BadRequest("No file part in the request (send it in the field 'file')")
        blob = parser.writer.commit()
    except ClientDisconnected:
        raise BadRequest("The upload was cut off before it was complete") from None
    except RequestEntityTooLarge:
        raise PayloadTooLarge("Upload is larger than this server accepts") from None
    except ValueError:
        raise BadRequest("Malformed multipart body") from None
    finally:
        parser.abort()
    assert parser.stored_name is not None
    return ReceivedFile(parser.stored_name, blob)
