"""STORAGE_URL: which BlobStore holds the bytes, from one URL.

file:///srv/pcloud/files                          a folder on this machine
s3://BUCKET[/PREFIX]?endpoint_url=...&region=...  S3-compatible object storage
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from pcloud.storage.base import BlobStore
from pcloud.storage.local import LocalBlobStore


def check_storage_url(url: str) -> str:
    """Return the URL unchanged when it names a store; raise ValueError saying why not."""
    scheme = urlsplit(url).scheme
    if scheme == "file":
        _folder(url)
    elif scheme == "s3":
        from pcloud.storage.s3 import S3Location

        S3Location.parse(url)
    else:
        raise ValueError(
            "expected file:///absolute/folder or "
            "s3://BUCKET/PREFIX?endpoint_url=http://host:port&region=REGION "
            "(PREFIX and region optional)"
        )
    return url


def open_store(url: str, s3_timeout: float = 10) -> BlobStore:
    """The store a checked STORAGE_URL names. Opening an S3 store does not connect yet."""
    check_storage_url(url)
    if url.startswith("s3://"):
        try:
            from pcloud.storage.s3 import S3BlobStore

            return S3BlobStore(url, timeout=s3_timeout)
        except ModuleNotFoundError as error:
            raise ValueError(
                f"STORAGE_URL is s3:// but {error.name} is not installed: pip install 'pcloud[s3]'"
            ) from None
    return LocalBlobStore(_folder(url))


def describe_store(url: str) -> str:
    """The URL as people may see it (it never holds credentials; its query is dropped)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _folder(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise ValueError("a file:// URL names an absolute folder: file:///srv/pcloud/files")
    return Path(unquote(parts.path))
