"""Where file bytes live. See base.BlobStore for the contract every backend keeps."""

from pcloud.storage.base import (
    BlobEntry,
    BlobStore,
    BlobWriter,
    ResumableBusy,
    ResumableWrite,
    StoredBlob,
)
from pcloud.storage.local import LocalBlobStore

__all__ = [
    "BlobEntry",
    "BlobStore",
    "BlobWriter",
    "LocalBlobStore",
    "ResumableBusy",
    "ResumableWrite",
    "StoredBlob",
]
