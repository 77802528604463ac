"""Blobs as objects in an S3-compatible bucket (AWS S3, SeaweedFS, MinIO, ...), with boto3.

Layout under the URL's prefix:
    blobs/<key>   finished blobs; <key> is a UUID4 in hex, as in the local store
A blob being written is an unfinished multipart upload to its final key (or, when it is
smaller than one part, nothing at all until a single PUT at commit): nothing is visible
under a key before commit, the bytes are sent once, and a cut upload is aborted (or, if
its process died, found by `scan_partials()` and aborted by `pcloud files gc`). A
resumable write (tus) is a multipart upload too, kept open across requests and nodes,
its state in the database (pcloud.storage.s3_resumable).

Credentials come from boto3's standard chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
a profile, an instance role), never from STORAGE_URL; they are never logged. Every call
is bounded by botocore's connect and read timeouts; a store that does not answer, or
answers with an error of its own, raises StorageUnavailable (503 with Retry-After).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO, NoReturn
from urllib.parse import parse_qs, urlsplit

from pcloud.errors import StorageUnavailable
from pcloud.storage.base import BlobEntry, BlobStore, BlobWriter, ResumableWrite, StoredBlob
from pcloud.storage.local import KEY_PATTERN
from pcloud.storage.s3_resumable import S3Resumables

S3Client = Any  # boto3's client (boto3 ships no types)

log = logging.getLogger("pcloud.storage")

# S3 wants every part but the last to be at least 5 MiB, and at most 10,000 parts: 8 MiB
# parts carry a file of up to 78 GiB. A writer holds the part it fills and at most
# PARTS_IN_FLIGHT more being sent: 24 MiB per upload, however large the file.
PART_SIZE = 8 * 1024 * 1024
PARTS_IN_FLIGHT = 2
SENDING_THREADS = 8
READ_CHUNK = 1024 * 1024
RETRY_AFTER = 10
UNAVAILABLE = "The file store is not answering right now; try again in a few seconds"
UPLOAD_ID = re.compile(r"[A-Za-z0-9_=+.-]{1,512}")  # a multipart upload's id, as S3 gives it
NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound", "NoSuchUpload"}


@dataclass(frozen=True)
class S3Location:
    """What an `s3://BUCKET[/PREFIX]?endpoint_url=...&region=...` URL names."""

    bucket: str
    prefix: str  # "" or ending in "/"
    endpoint_url: str | None
    region: str | None

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """Raises ValueError saying what is wrong (never repeating a secret: there is none
        in a valid URL, and the error names only the part that is wrong)."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.hostname:
            raise ValueError(
                "expected s3://BUCKET/PREFIX?endpoint_url=http://host:port (PREFIX optional)"
            )
        if parts.username or parts.password:
            raise ValueError(
                "credentials do not belong in STORAGE_URL: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or a profile) in pcloud's environment"
            )
        query = parse_qs(parts.query)
        unknown = set(query) - {"endpoint_url", "region"}
        if unknown:
            raise ValueError(f"unknown option {sorted(unknown)[0]!r} (endpoint_url, region)")
        endpoint = query.get("endpoint_url", [None])[-1]
        if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
            raise ValueError("endpoint_url must start with http:// or https://")
        prefix = parts.path.strip("/")
        return cls(
            bucket=parts.netloc,
            prefix=f"{prefix}/" if prefix else "",
            endpoint_url=endpoint,
            region=query.get("region", [None])[-1],
        )


def make_client(location: S3Location, timeout: float) -> S3Client:
    """A boto3 client with bounded waits, credentials from boto3's own chain."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"max_attempts": 2, "mode": "standard"},
        max_pool_connections=32,
        # Presigned URLs with response overrides (the download's name) verify only under
        # SigV4 on SeaweedFS; AWS and MinIO want it anyway.
        signature_version="s3v4",
        s3={"addressing_style": "path" if location.endpoint_url else "auto"},
        # pcloud hashes every byte with SHA-256 itself; boto3's extra CRC is spared.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    session = boto3.session.Session()
    return session.client(
        "s3", endpoint_url=location.endpoint_url, region_name=location.region, config=config
    )


def store_error(error: Exception, what: str) -> NoReturn:
    """Raise what a failed call means: FileNotFoundError for a missing object, else
    StorageUnavailable (logged without the request, which could carry signed headers)."""
    from botocore.exceptions import ClientError

    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in NOT_FOUND_CODES:
            raise FileNotFoundError(what) from None
        log.error("Object store refused to %s: %s", what, code or "error")
    else:
        log.error("Object store did not answer (%s): %s", what, type(error).__name__)
    raise StorageUnavailable(UNAVAILABLE, retry_after=RETRY_AFTER) from None


def _store_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


class S3BlobWriter(BlobWriter):
    """Sends a new blob's bytes as they arrive: one PUT at commit when it stays under a
    part, otherwise a multipart upload whose parts go out in the store's threads (so the
    caller's thread, the server's event loop, does not wait on the network unless
    PARTS_IN_FLIGHT parts are already on their way)."""

    def __init__(self, store: S3BlobStore, max_size: int | None, key: str | None) -> None:
        super().__init__(max_size)
        self._store = store
        self.key = key or os.urandom(16).hex()
        self._object_key = store.object_key(self.key)
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[Future[dict[str, Any]]] = []
        self._committed = False

    def _write(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= PART_SIZE:
            part = bytes(self._buffer[:PART_SIZE])
            del self._buffer[:PART_SIZE]
            self._send_part(part)

    def _send_part(self, part: bytes) -> None:
        client, bucket = self._store.client, self._store.bucket
        try:
            if self._upload_id is None:
                started = client.create_multipart_upload(Bucket=bucket, Key=self._object_key)
                self._upload_id = started["UploadId"]
            in_flight = [future for future in self._parts if not future.done()]
            if len(in_flight) >= PARTS_IN_FLIGHT:
                in_flight[0].result()  # backpressure: memory stays bounded
            for future in self._parts:
                if future.done():
                    future.result()  # a part that failed fails the upload now
        except _store_errors() as error:
            self.abort()
            store_error(error, "start an upload")
        except BaseException:
            self.abort()
            raise
        number = len(self._parts) + 1
        self._parts.append(
            self._store.senders.submit(self._upload_part, self._upload_id, number, part)
        )

    def _upload_part(self, upload_id: str, number: int, part: bytes) -> dict[str, Any]:
        answer = self._store.client.upload_part(
            Bucket=self._store.bucket,
            Key=self._object_key,
            UploadId=upload_id,
            PartNumber=number,
            Body=part,
        )
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def commit(self) -> StoredBlob:
        client, bucket = self._store.client, self._store.bucket
        try:
            if self._upload_id is None:
                client.put_object(Bucket=bucket, Key=self._object_key, Body=bytes(self._buffer))
            else:
                if self._buffer:
                    self._send_part(bytes(self._buffer))
                parts = [future.result() for future in self._parts]
                client.complete_multipart_upload(
                    Bucket=bucket,
                    Key=self._object_key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except _store_errors() as error:
            self.abort()
            store_error(error, "store a blob")
        except BaseException:
            self.abort()
            raise
        self._buffer = bytearray()
        self._committed = True
        self.closed = True
        return StoredBlob(key=self.key, size=self.size, sha256=self.sha256)

    def abort(self) -> None:
        if self._committed or self.closed:
            return
        self.closed = True
        self._buffer = bytearray()
        for future in self._parts:
            future.cancel()
        if self._upload_id is not None:
            for future in self._parts:
                if not future.cancelled():
                    # Wait for it: a part that lands after the abort would linger.
                    with contextlib.suppress(Exception):
                        future.exception()
            try:
                self._store.client.abort_multipart_upload(
                    Bucket=self._store.bucket, Key=self._object_key, UploadId=self._upload_id
                )
            except _store_errors():
                # Left for `pcloud files gc`, which lists and aborts unfinished uploads.
                log.warning("Could not abort an unfinished upload; `pcloud files gc` will")


class S3Body:
    """A blob's bytes (or a range of them) as a stream, read in large chunks."""

    def __init__(self, body: Any, what: str) -> None:
        self._body = body
        self._what = what

    def read(self, size: int = -1) -> bytes:
        try:
            data: bytes = self._body.read(None if size < 0 else size)
            return data
        except _store_errors() as error:
            store_error(error, self._what)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            chunk = self.read(READ_CHUNK)
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> S3Body:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class S3BlobStore(BlobStore):
    """Blobs in a bucket (see the module's docstring for the layout and the guarantees)."""

    partial_from = PART_SIZE  # a smaller write is sent whole at commit: no partial before

    def __init__(self, url: str, timeout: float = 10, client: S3Client | None = None) -> None:
        self.location = S3Location.parse(url)
        self.bucket = self.location.bucket
        self.prefix = self.location.prefix
        self.client = client or make_client(self.location, timeout)
        self.senders = ThreadPoolExecutor(SENDING_THREADS, thread_name_prefix="s3-part")
        self.resumables = S3Resumables(self)

    def object_key(self, key: str) -> str:
        if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
            raise ValueError(f"not a blob key: {key!r}")
        return f"{self.prefix}blobs/{key}"

    def writer(self, max_size: int | None = None, key: str | None = None) -> BlobWriter:
        return S3BlobWriter(self, max_size, key)

    def open(self, key: str) -> BinaryIO:
        return self.open_range(key)

    def open_range(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """The bytes from `start` up to, not including, `end` (None: to the last)."""
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Key": self.object_key(key)}
        if start or end is not None:
            arguments["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            answer = self.client.get_object(**arguments)
        except _store_errors() as error:
            store_error(error, f"read blob {key}")
        return S3Body(answer["Body"], f"read blob {key}")  # type: ignore[return-value]

    def download_url(self, key: str, name: str, mimetype: str, expires_in: int) -> str | None:
        """A presigned URL that serves the blob as `name` for `expires_in` seconds."""
        from urllib.parse import quote

        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self.object_key(key),
                "ResponseContentType": mimetype,
                "ResponseContentDisposition": f"attachment; filename*=UTF-8''{quote(name)}",
            },
            ExpiresIn=expires_in,
        )
        return url

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
            return True
        except _store_errors() as error:
            try:
                store_error(error, f"look for blob {key}")
            except FileNotFoundError:
                return False

    def delete(self, key: str) -> bool:
        if not self.exists(key):
            return False
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))
        except _store_errors() as error:
            store_error(error, f"delete blob {key}")
        return True

    def close(self) -> None:
        self.senders.shutdown(wait=True, cancel_futures=True)
        self.resumables.close()
        self.client.close()

    def scan(self) -> Iterator[BlobEntry]:
        blob_prefix = f"{self.prefix}blobs/"
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=blob_prefix
        )
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"][len(blob_prefix) :]
                    if KEY_PATTERN.fullmatch(key):  # anything else is not ours to claim
                        modified_at = item["LastModified"]
                        yield BlobEntry(key=key, size=item["Size"], modified_at=modified_at)
        except _store_errors() as error:
            store_error(error, "list blobs")

    def scan_partials(self) -> Iterator[BlobEntry]:
        """Unfinished multipart uploads (key: `<blob key>/<upload id>`) but those of
        resumable writes (scan_resumables() lists them), with their parts' size."""
        blob_prefix = f"{self.prefix}blobs/"
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=blob_prefix
        )
        resumable = self.resumables.multipart_uploads()
        try:
            for page in pages:
                for upload in page.get("Uploads", []):
                    key = upload["Key"][len(blob_prefix) :]
                    if KEY_PATTERN.fullmatch(key) and (key, upload["UploadId"]) not in resumable:
                        size, last_part_at = self._parts(upload["Key"], upload["UploadId"])
                        yield BlobEntry(
                            key=f"{key}/{upload['UploadId']}",
                            size=size,
                            modified_at=max(
                                upload["Initiated"], last_part_at or upload["Initiated"]
                            ),
                        )
        except _store_errors() as error:
            store_error(error, "list unfinished uploads")

    def _parts(self, object_key: str, upload_id: str) -> tuple[int, datetime | None]:
        """An unfinished upload's bytes so far, and when its last part arrived: an upload
        that is still sending parts is young, however long ago it started."""
        pages = self.client.get_paginator("list_parts").paginate(
            Bucket=self.bucket, Key=object_key, UploadId=upload_id
        )
        parts = [part for page in pages for part in page.get("Parts", [])]
        last = max((part["LastModified"] for part in parts), default=None)
        return sum(part["Size"] for part in parts), last

    def delete_partial(self, key: str) -> bool:
        blob_key, _, upload_id = key.partition("/")
        if not UPLOAD_ID.fullmatch(upload_id):
            raise ValueError(f"not a partial upload: {key!r}")
        try:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.object_key(blob_key), UploadId=upload_id
            )
            return True
        except _store_errors() as error:
            try:
                store_error(error, "abort an unfinished upload")
            except FileNotFoundError:
                return False

    # Resumable (tus) uploads: multipart uploads kept open across pieces, their state
    # and their holds in the database (pcloud.storage.s3_resumable).

    def create_resumable(self, upload_id: str) -> None:
        self.resumables.create(upload_id)

    def open_resumable(self, upload_id: str) -> ResumableWrite:
        return self.resumables.open(upload_id)

    def delete_resumable(self, upload_id: str) -> bool:
        return self.resumables.delete(upload_id)

    def scan_resumables(self) -> Iterator[BlobEntry]:
        return self.resumables.scan()
