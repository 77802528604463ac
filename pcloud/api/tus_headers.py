"""tus 1.0's request headers, read: Upload-Metadata, Upload-Checksum, and the lengths and
offsets (https://tus.io/protocols/resumable-upload). Raises BadRequest, with the
header's name, for anything that does not parse."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import datetime

from pcloud.errors import BadRequest, NotFound
from pcloud.moments import parse_moment
from pcloud.services import tree
from pcloud.services.uploads.hashes import CHECKSUM_ALGORITHMS, Checksum
from pcloud.services.uploads.resumable import NewUpload

MAX_METADATA_CHARS = 16 * 1024
METADATA_PAIR = re.compile(r"([^\s,]+)(?: ([A-Za-z0-9+/=]*))?")


def new_upload(length: int | None, metadata_header: str) -> NewUpload:
    """What a creation request says of its upload: its length and Upload-Metadata."""
    filename, modified_at, folder_id = file_details(parse_metadata(metadata_header))
    return NewUpload(length, filename, modified_at, folder_id, metadata_header)


def parse_metadata(header: str) -> dict[str, str]:
    """'filename ZG9nLmpwZw==,is_confidential' -> {'filename': 'dog.jpg', 'is_confidential': ''}."""
    if len(header) > MAX_METADATA_CHARS:
        raise BadRequest(f"Upload-Metadata is longer than {MAX_METADATA_CHARS} characters")
    values: dict[str, str] = {}
    for pair in header.split(","):
        pair = pair.strip()
        if not pair:
            continue
        match = METADATA_PAIR.fullmatch(pair)
        if match is None:
            raise BadRequest(f"Upload-Metadata: {pair[:40]!r} is not 'key base64-value'")
        key, encoded = match.group(1), match.group(2) or ""
        if key in values:
            raise BadRequest(f"Upload-Metadata: key {key!r} appears twice")
        try:
            values[key] = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise BadRequest(
                f"Upload-Metadata: the value of {key!r} is not base64 of UTF-8 text"
            ) from None
    return values


def file_details(metadata: dict[str, str]) -> tuple[str, datetime | None, int | None]:
    """The file name as sent, its modification time, and the id of the folder it goes
    to (None: the root), from the keys tus clients use for them."""
    filename = metadata.get("filename", metadata.get("name"))
    if not filename:
        raise BadRequest("Upload-Metadata needs the file name: key 'filename' (or 'name')")
    # Folders are named by id (`folder_id`); `folder` is for clients that send a path.
    if metadata.get("folder", "") not in ("", "/"):
        raise BadRequest("Upload-Metadata: send a folder's id as 'folder_id', not a path")
    folder_text = metadata.get("folder_id", "")
    if folder_text and (not folder_text.isdigit() or not folder_text.isascii()):
        raise BadRequest("Upload-Metadata: 'folder_id' must be a folder's id")
    moment = metadata.get("modified_at", metadata.get("lastModified"))
    folder_id = int(folder_text) if folder_text and len(folder_text) < 19 else None
    if folder_text and folder_id is None:
        raise NotFound(tree.FOLDER_NOT_FOUND)
    if not moment:
        return filename, None, folder_id
    try:
        return filename, parse_moment(moment), folder_id
    except ValueError:
        raise BadRequest(
            f"Upload-Metadata: modification time {moment.strip()[:40]!r} is neither ISO 8601 "
            "nor epoch milliseconds"
        ) from None


def parse_checksum(header: str) -> Checksum:
    """'sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=' -> Checksum."""
    algorithm, _, encoded = header.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        supported = ", ".join(CHECKSUM_ALGORITHMS)
        raise BadRequest(f"Upload-Checksum: unsupported algorithm {algorithm!r}; use {supported}")
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise BadRequest("Upload-Checksum: the digest is not base64") from None
    return Checksum(algorithm, digest)


def whole_number(headers: Mapping[str, str], name: str) -> int | None:
    """A header holding a whole number of bytes (Upload-Offset, Upload-Length), if sent."""
    text = headers.get(name)
    if text is None:
        return None
    if not text.isdigit() or not text.isascii():
        raise BadRequest(f"{name} must be a whole number of bytes")
    return int(text)


def upload_offset(headers: Mapping[str, str]) -> int:
    """Upload-Offset, which a PATCH must send."""
    offset = whole_number(headers, "Upload-Offset")
    if offset is None:
        raise BadRequest("Upload-Offset is missing")
    return offset


def upload_length(headers: Mapping[str, str], required: bool = False) -> int | None:
    """Upload-Length; None for a deferred one (Upload-Defer-Length: 1), which a creation
    request (`required`) must then say."""
    length = whole_number(headers, "Upload-Length")
    deferred = headers.get("Upload-Defer-Length")
    if deferred is not None and (deferred != "1" or length is not None):
        raise BadRequest("Send Upload-Length, or Upload-Defer-Length: 1, not both")
    if required and length is None and deferred is None:
        raise BadRequest("Upload-Length is missing (or send Upload-Defer-Length: 1)")
    return length
