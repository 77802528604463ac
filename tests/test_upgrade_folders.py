"""A database made by the foundation (flat files, one blob per file) upgrades in place:
every file lands in its owner's root folder, and duplicate bytes are shared."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from datetime import datetime, timezone

import peewee

from pcloud.core import Pcloud
from pcloud.db import open_database
from pcloud.models import Blob, Folder, StoredFile, User, micros
from pcloud.services import files
from tests.conftest import Runner


class LegacyModel(peewee.Model):
    class Meta:
        legacy_table_names = False


class UserBeforeFolders(LegacyModel):
    username = peewee.CharField(max_length=150, unique=True)
    email = peewee.CharField(max_length=254, unique=True)
    password_hash = peewee.CharField(max_length=255, null=True)
    google_sub = peewee.CharField(max_length=255, null=True, unique=True)
    created_at = peewee.BigIntegerField()
    disabled_at = peewee.BigIntegerField(null=True)

    class Meta:
        table_name = "user"


class StoredFileBeforeFolders(LegacyModel):
    owner = peewee.ForeignKeyField(UserBeforeFolders, on_delete="CASCADE")
    name = peewee.CharField(max_length=255)
    blob_key = peewee.CharField(max_length=64, unique=True)
    size = peewee.BigIntegerField()
    sha256 = peewee.CharField(max_length=64)
    created_at = peewee.BigIntegerField()
    modified_at = peewee.BigIntegerField()

    class Meta:
        table_name = "stored_file"
        indexes = ((("owner", "name"), True),)


def write_blob(settings, content: bytes) -> str:
    key = uuid.uuid4().hex
    path = settings.upload_folder / "blobs" / key[:2] / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    then = time.time() - 7200
    os.utime(path, (then, then))
    return key


def make_foundation_database(settings) -> dict[str, bytes]:
    database = open_database(settings.database_url)
    now = micros(datetime.now(timezone.utc))
    contents = {"a.txt": b"alpha", "b.jpg": b"beta", "copy of a.txt": b"alpha"}
    legacy = [UserBeforeFolders, StoredFileBeforeFolders]
    with database.bind_ctx(legacy), database.connection_context():
        database.create_tables(legacy)
        for username in ("ann", "bob"):
            email = f"{username}@example.org"
            user = UserBeforeFolders.create(username=username, email=email, created_at=now)
            for name, content in contents.items():
                StoredFileBeforeFolders.create(
                    owner=user,
                    name=name,
                    blob_key=write_blob(settings, content),
                    size=len(content),
                    sha256=hashlib.sha256(content).hexdigest(),
                    created_at=now,
                    modified_at=now,
                )
    database.close()
    return contents


def test_a_foundation_database_keeps_every_file_in_the_root_folders(settings, tmp_path):
    contents = make_foundation_database(settings)
    pcloud = Pcloud.open(settings)
    assert "ran data migration folders-and-content-addressed-blobs" in pcloud.schema_changes
    try:
        with pcloud.database.connection_context():
            for username in ("ann", "bob"):
                root = Folder.get(Folder.root_of == User.get(User.username == username).id)
                names = {f.name for f in StoredFile.select().where(StoredFile.folder == root)}
                assert names == set(contents)
            # Each content has one Blob, counted once per file of every user.
            blobs = {blob.sha256: blob.ref_count for blob in Blob.select()}
            assert blobs == {
                hashlib.sha256(b"alpha").hexdigest(): 4,
                hashlib.sha256(b"beta").hexdigest(): 2,
            }
        # The duplicate bytes are orphans now; gc removes them and every file still reads.
        (tmp_path / "cwd").mkdir()
        result = Runner(settings, tmp_path / "cwd").invoke("files", "gc", "--grace", "0")
        assert "Removed 4 orphan blob(s)" in result.output, result.output
        with pcloud.database.connection_context():
            for stored in StoredFile.select():
                path = settings.upload_folder / "blobs" / stored.blob_key[:2] / stored.blob_key
                assert path.read_bytes() == contents[stored.name]
        # The contract's flat list is the root folder.
        with pcloud.database.connection_context():
            ann = User.get(User.username == "ann").id
            assert [name for name, _size, _at in files.list_files(ann)] == sorted(contents)
        # Upgrading again changes nothing.
        again = Pcloud.open(settings)
        assert again.schema_changes == ()
        again.close()
    finally:
        pcloud.close()


def test_the_old_unique_indexes_are_gone_after_the_upgrade(settings):
    make_foundation_database(settings)
    pcloud = Pcloud.open(settings)
    try:
        with pcloud.database.connection_context():
            unique = {
                tuple(sorted(index.columns))
                for index in pcloud.database.get_indexes("stored_file")
                if index.unique and index.columns != ["id"]
            }
        assert unique == {("folder_id", "name")}
    finally:
        pcloud.close()
