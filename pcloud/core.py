"""The one object the server, the CLI and the tests all build the same way."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import peewee

from pcloud.config import Settings
from pcloud.db import open_database
from pcloud.errors import ConfigError
from pcloud.schema import upgrade_schema
from pcloud.services.google_certificates import GoogleCertificates
from pcloud.services.tokens import AccessTokenCache
from pcloud.services.uploads.hashes import UploadHashes
from pcloud.storage import BlobStore
from pcloud.storage.urls import open_store

if TYPE_CHECKING:
    from pcloud.services.thumbnails import Thumbnailer


@dataclass
class Pcloud:
    """A configured pcloud: its settings, its database and where its bytes live."""

    settings: Settings
    database: peewee.Database
    blobs: BlobStore
    google_certificates: GoogleCertificates
    access_tokens: AccessTokenCache

    schema_changes: tuple[str, ...] = ()
    upload_hashes: UploadHashes = field(default_factory=UploadHashes)

    @classmethod
    def open(cls, settings: Settings, create_tables: bool = True) -> Pcloud:
        """Open the database (creating or upgrading its schema unless told not to) and the store."""
        try:
            blobs = open_store(settings.blob_store_url, settings.s3_timeout)
        except ValueError as error:
            raise ConfigError(f"STORAGE_URL: {error}.") from None
        database = open_database(settings.database_url, max_connections=settings.threads + 8)
        changes = tuple(upgrade_schema(database)) if create_tables else ()
        return cls(
            settings=settings,
            database=database,
            blobs=blobs,
            google_certificates=GoogleCertificates(settings.google_certs_url),
            access_tokens=AccessTokenCache(settings),
            schema_changes=changes,
        )

    @functools.cached_property
    def thumbnailer(self) -> Thumbnailer:
        """The decoder pools of a server (their processes start on first need). Made on
        first use: the CLI's commands never import them (a seventh of a second each)."""
        from pcloud.services.thumbnails import Thumbnailer

        return Thumbnailer(self.settings.thumbnail_workers)

    def checkpoint_in_background(self) -> None:
        """For a server on SQLite: WAL checkpoints move from commits to a thread of their
        own (pcloud.db.Checkpointer). Other databases need nothing of the kind."""
        start = getattr(self.database, "checkpoint_in_background", None)
        if start is not None:
            start()

    def thumbnails_in_background(self) -> None:
        """For a server: details and thumbnails of new uploads are made in a thread of
        this process, by a decoder at the lowest priority (pcloud.services.thumbnails)."""
        self.thumbnailer.start_background(
            self.blobs, self.release_connection, self.settings.data_dir / "thumbnails.lock"
        )

    def release_connection(self) -> None:
        """Give this thread's database connection back to the pool, if it holds one (at
        the end of a request)."""
        if not self.database.is_closed():
            self.database.close()

    def close(self) -> None:
        """Stop the decoders; close every pooled connection, and the blob store."""
        if "thumbnailer" in self.__dict__:  # made (cached_property keeps it there)
            self.thumbnailer.close()
        self.blobs.close()
        close_all = getattr(self.database, "close_all", None)
        if close_all is not None:
            close_all()
        elif not self.database.is_closed():
            self.database.close()
