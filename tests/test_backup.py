"""`pcloud backup`, `pcloud backup verify` and `pcloud restore`, through the real CLI, on
the test's database (SQLite, or PostgreSQL in a database the test makes and drops)."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest

from pcloud.api import create_app
from pcloud.config import load_settings
from pcloud.core import Pcloud
from pcloud.services import backup, files, gc, verify
from tests.conftest import POSTGRES_URL, TEST_DATABASE, _postgres_admin
from tests.sync_helpers import API, put_file


@contextmanager
def empty_database() -> Iterator[str | None]:
    """A database to restore into: None for SQLite (the data folder gets one), or a new
    PostgreSQL database, dropped afterwards."""
    if TEST_DATABASE != "postgresql":
        yield None
        return
    name = f"pcloud_restore_{uuid.uuid4().hex[:10]}"
    admin = _postgres_admin()
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def restore_url() -> Iterator[str | None]:
    with empty_database() as url:
        yield url


def restore_args(dest: Path, new: Path, url: str | None) -> list[str]:
    return ["restore", str(dest), "--data-dir", str(new), *(["--database-url", url] if url else [])]


@contextmanager
def restored_client(new: Path) -> Iterator:
    """A test client on the restored data folder, with the settings the restore wrote."""
    settings = load_settings(environ={}, env_file=new / "pcloud.env")
    restored = Pcloud.open(settings)
    try:
        app = create_app(pcloud=restored)
        yield app.test_client(), restored
    finally:
        restored.close()


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def test_a_backup_restores_every_file_version_and_token(
    runner, client, auth, tmp_path, pcloud, restore_url
):
    tokens = auth.tokens()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    contents = {f"file{i}.bin": os.urandom(1000 + i) for i in range(20)}
    for name, content in contents.items():
        assert put_file(client, headers, name, content).status_code == 201
    put_file(client, headers, "file0.bin", b"newer", on_conflict="replace")
    dest, new = tmp_path / "backup", tmp_path / "restored"
    result = runner.invoke("backup", str(dest))
    assert result.exit_code == 0, result.output
    assert "Backup complete" in result.output and "copied now 21" in result.output
    assert runner.invoke("backup", "verify", str(dest)).exit_code == 0
    pcloud.close()  # the restore opens the models on the restored database
    result = runner.invoke(*restore_args(dest, new, restore_url))
    assert result.exit_code == 0, result.output
    with restored_client(new) as (restored, restored_pcloud):
        listed = restored.get(f"{API}/folders/root", headers=headers)
        assert listed.status_code == 200, listed.get_json()  # the old token works
        by_name = {e["name"]: e for e in listed.get_json()["entries"]}
        assert set(by_name) == set(contents)
        for name, content in {**contents, "file0.bin": b"newer"}.items():
            got = restored.get(f"{API}/files/{by_name[name]['id']}/content", headers=headers)
            assert got.data == content
        file_id = by_name["file0.bin"]["id"]
        (version,) = restored.get(f"{API}/files/{file_id}/versions", headers=headers).get_json()[
            "versions"
        ]
        url = f"{API}/files/{file_id}/versions/{version['id']}/content"
        assert restored.get(url, headers=headers).data == contents["file0.bin"]
        refreshed = restored.post("/token/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 200
        assert verify.verify(restored_pcloud.blobs, verify.plan()) == []
        assert gc.find_garbage(restored_pcloud.blobs).broken_files == []


def test_a_second_backup_copies_only_new_content(runner, client, headers, tmp_path):
    for i in range(5):
        put_file(client, headers, f"a{i}", f"content {i}".encode())
    dest = tmp_path / "backup"
    assert "copied now 5" in runner.invoke("backup", str(dest)).output
    put_file(client, headers, "new", b"new content")
    put_file(client, headers, "dup", b"content 1")  # stored already: nothing to copy
    result = runner.invoke("backup", str(dest))
    assert result.exit_code == 0, result.output
    assert "6 blob(s)" in result.output and "copied now 1 " in result.output
    assert len(list((dest / "snapshots").iterdir())) == 1  # the older one went


def test_content_deleted_for_good_leaves_the_next_backup(runner, client, headers, tmp_path):
    put_file(client, headers, "keep", b"kept")
    put_file(client, headers, "gone", b"deleted later")
    dest = tmp_path / "backup"
    runner.invoke("backup", str(dest))
    assert (backup.blob_path(dest, sha(b"deleted later"))).is_file()
    client.delete("/delete/gone", headers=headers)
    runner.invoke("backup", str(dest))
    assert not (backup.blob_path(dest, sha(b"deleted later"))).exists()
    assert runner.invoke("backup", "verify", str(dest)).exit_code == 0


class DeletingStore:
    """The real store, but a file is deleted for good (through the service, as a user
    would) just as the backup comes to copy its content: deleted while the backup ran."""

    def __init__(self, store, owner_id: int, name: str, key: str) -> None:
        self.store, self.owner_id, self.name, self.key = store, owner_id, name, key

    def local_path(self, key: str):
        if key == self.key and self.name:
            files.delete_file(self.store, self.owner_id, self.name)
            self.name = ""
        return self.store.local_path(key)

    def __getattr__(self, attribute: str):
        return getattr(self.store, attribute)


def test_a_file_deleted_during_the_backup_is_left_out_of_its_restore(
    client, headers, tmp_path, pcloud, settings, restore_url
):
    put_file(client, headers, "stays", b"stays")
    put_file(client, headers, "goes", b"goes away")
    stored = files.get_file(1, "goes")
    dest, new = tmp_path / "backup", tmp_path / "restored"
    store = DeletingStore(pcloud.blobs, stored.owner_id, "goes", stored.blob_key)
    report = backup.backup(settings, store, dest)  # type: ignore[arg-type]
    assert report.dropped == [sha(b"goes away")] and report.damaged == []
    assert backup.verify(dest).problems == []
    pcloud.close()
    restored = backup.restore(dest, new, restore_url, open_store=_open)
    assert restored.dropped_files == 1
    with restored_client(new) as (restored_app, restored_pcloud):
        names = [e["filename"] for e in restored_app.get("/files", headers=headers).get_json()]
        assert names == ["stays"]
        assert gc.find_garbage(restored_pcloud.blobs).broken_files == []


def test_content_healed_under_a_new_key_after_the_snapshot_is_copied_from_there(
    client, headers, tmp_path, pcloud, settings, monkeypatch
):
    """`files verify` may store a content again under a new key while a backup runs: the
    key the snapshot read is gone, and the copy follows the live database to the new one."""
    from pcloud.models import Blob

    put_file(client, headers, "healed", b"healed content")
    put_file(client, headers, "other", b"other content")
    blob = Blob.get(Blob.sha256 == sha(b"healed content"))
    old_key, new_key = blob.store_key, uuid.uuid4().hex
    snapshot_database = backup._snapshot_database

    def snapshot_then_heal(*args):
        snapshotted = snapshot_database(*args)
        old_path = pcloud.blobs.local_path(old_key)
        new_path = pcloud.blobs.local_path(new_key)
        new_path.parent.mkdir(parents=True, exist_ok=True)
        old_path.rename(new_path)
        Blob.update(store_key=new_key).where(Blob.id == blob.id).execute()
        return snapshotted

    monkeypatch.setattr(backup, "_snapshot_database", snapshot_then_heal)
    dest = tmp_path / "backup"
    report = backup.backup(settings, pcloud.blobs, dest)
    assert (report.blobs_copied, report.dropped, report.damaged) == (2, [], [])
    assert backup.blob_path(dest, sha(b"healed content")).read_bytes() == b"healed content"
    assert backup.verify(dest).problems == []


def _open(settings):
    opened = Pcloud.open(settings)
    return opened.database, opened.blobs


def test_verify_finds_changed_and_missing_blobs(runner, client, headers, tmp_path):
    put_file(client, headers, "a", b"aaaa")
    put_file(client, headers, "b", b"bbbb")
    dest = tmp_path / "backup"
    runner.invoke("backup", str(dest))
    backup.blob_path(dest, sha(b"aaaa")).write_bytes(b"aaab")  # same size: bit rot
    quick = runner.invoke("backup", "verify", str(dest), "--quick")
    assert quick.exit_code == 0, quick.output
    full = runner.invoke("backup", "verify", str(dest))
    assert full.exit_code == 1 and "do not match" in full.output
    backup.blob_path(dest, sha(b"bbbb")).unlink()
    quick = runner.invoke("backup", "verify", str(dest), "--quick")
    assert quick.exit_code == 1 and "missing" in quick.output


def test_damage_verify_finds_is_set_aside_and_the_next_backup_copies_it_again(
    runner, client, headers, tmp_path
):
    """The next run trusts what its last snapshot lists by name alone (no stat of each
    blob): what verify finds wrong it sets aside, and that run copies it again."""
    for name, content in (("a", b"aaaa"), ("b", b"bbbb"), ("c", b"cccc")):
        put_file(client, headers, name, content)
    dest = tmp_path / "backup"
    runner.invoke("backup", str(dest))
    backup.blob_path(dest, sha(b"aaaa")).write_bytes(b"aaab")  # bit rot
    backup.blob_path(dest, sha(b"bbbb")).write_bytes(b"bb")  # cut short
    backup.blob_path(dest, sha(b"cccc")).unlink()
    damaged = runner.invoke("backup", "verify", str(dest))
    assert damaged.exit_code == 1 and "3 problem(s)" in damaged.output
    assert "set aside" in damaged.output and "copies it again" in damaged.output
    result = runner.invoke("backup", str(dest))
    assert result.exit_code == 0 and "copied now 3 " in result.output, result.output
    sound = runner.invoke("backup", "verify", str(dest))
    assert sound.exit_code == 0, sound.output
    assert backup.blob_path(dest, sha(b"aaaa")).read_bytes() == b"aaaa"
    left = sorted(p.name for p in (dest / "blobs").rglob("*") if p.is_file())
    assert left == sorted(sha(c) for c in (b"aaaa", b"bbbb", b"cccc"))  # set-asides went


def test_verify_refuses_while_a_backup_writes_to_the_folder(runner, client, headers, tmp_path):
    put_file(client, headers, "a", b"aaaa")
    dest = tmp_path / "backup"
    runner.invoke("backup", str(dest))
    with open(dest / ".lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running backup holds it
        result = runner.invoke("backup", "verify", str(dest))
    assert result.exit_code == 1 and "Another `pcloud backup`" in result.output, result.output


def test_restore_refuses_a_folder_that_is_not_empty(runner, client, headers, tmp_path):
    put_file(client, headers, "a", b"a")
    dest, new = tmp_path / "backup", tmp_path / "busy"
    runner.invoke("backup", str(dest))
    new.mkdir()
    (new / "something").write_text("mine")
    result = runner.invoke("restore", str(dest), "--data-dir", str(new))
    assert result.exit_code == 1 and "not empty" in result.output
    assert [p.name for p in new.iterdir()] == ["something"]


def test_a_folder_without_a_complete_backup_is_refused(runner, tmp_path):
    empty = tmp_path / "nothing"
    empty.mkdir()
    result = runner.invoke("restore", str(empty), "--data-dir", str(tmp_path / "new"))
    assert result.exit_code == 1 and "no pcloud backup" in result.output
    assert runner.invoke("backup", "verify", str(empty)).exit_code == 1


def test_a_backup_into_a_folder_of_other_files_is_refused(runner, tmp_path):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"jpg")
    result = runner.invoke("backup", str(other))
    assert result.exit_code == 1 and "no pcloud backup" in result.output
    assert [p.name for p in other.iterdir()] == ["holiday.jpg"]


def test_a_backup_killed_before_it_completes_keeps_the_last_complete_one(
    runner, client, headers, tmp_path
):
    put_file(client, headers, "a", b"first")
    dest = tmp_path / "backup"
    runner.invoke("backup", str(dest))
    first = backup.latest_snapshot(dest)
    put_file(client, headers, "b", b"second")
    unfinished = dest / "snapshots" / "99990101T000000.000000Z-dead"
    unfinished.mkdir()  # what a killed run leaves: no COMPLETE
    assert backup.latest_snapshot(dest) == first
    result = runner.invoke("backup", str(dest))
    assert result.exit_code == 0, result.output
    assert not unfinished.exists() and backup.latest_snapshot(dest) != first


@pytest.mark.skipif(TEST_DATABASE != "postgresql", reason="pg_dump is for PostgreSQL")
def test_a_postgresql_backup_without_pg_dump_says_what_to_install(runner, tmp_path):
    result = runner.invoke("backup", str(tmp_path / "b"), env={"PATH": str(tmp_path)})
    assert result.exit_code == 1
    assert "pg_dump is not installed" in result.output and "postgresql-client" in result.output


def test_restore_of_a_postgresql_url_into_sqlite_backup_is_refused(
    runner, client, headers, tmp_path
):
    if TEST_DATABASE == "postgresql":
        pytest.skip("the backup is of PostgreSQL here")
    put_file(client, headers, "a", b"a")
    dest = tmp_path / "backup"
    runner.invoke("backup", str(dest))
    url = f"{POSTGRES_URL}?options={quote('-csearch_path=nowhere')}"
    result = runner.invoke(
        "restore", str(dest), "--data-dir", str(tmp_path / "n"), "--database-url", url
    )
    assert result.exit_code == 1 and "SQLite" in result.output


def test_without_syncfs_each_blob_is_synced_and_the_backup_restores(
    runner, client, headers, tmp_path, monkeypatch
):
    """Off Linux there is no syncfs(): the blobs are fsynced one by one instead."""
    synced: list[str] = []
    fsync_file = backup._fsync_file
    monkeypatch.setattr(backup, "_syncfs", None)
    monkeypatch.setattr(
        backup, "_fsync_file", lambda path: (synced.append(path.name), fsync_file(path))
    )
    contents = [os.urandom(500 + i) for i in range(3)]
    for i, content in enumerate(contents):
        put_file(client, headers, f"f{i}", content)
    dest = tmp_path / "backup"
    result = runner.invoke("backup", str(dest))
    assert result.exit_code == 0, result.output
    assert {sha(content) for content in contents} <= set(synced)
    assert runner.invoke("backup", "verify", str(dest)).exit_code == 0


def test_a_backup_whose_disk_fails_to_sync_is_not_marked_complete(
    runner, client, headers, tmp_path, monkeypatch
):
    """The write-back error (EIO from syncfs, which a failing disk gives) cannot be made
    on a healthy disk, so syncfs is replaced by one that reports it."""
    put_file(client, headers, "a", b"first")
    dest = tmp_path / "backup"
    assert runner.invoke("backup", str(dest)).exit_code == 0
    first = backup.latest_snapshot(dest)
    put_file(client, headers, "b", b"second")

    def failing_syncfs(_descriptor: int) -> int:
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(backup, "_syncfs", failing_syncfs)
    result = runner.invoke("backup", str(dest))
    assert result.exit_code == 1
    assert "Input/output error" in result.output and "not complete" in result.output
    assert "Traceback" not in result.output
    assert backup.latest_snapshot(dest) == first  # the last complete one is kept
    monkeypatch.undo()
    result = runner.invoke("backup", str(dest))  # what the failed run wrote is re-hashed
    assert result.exit_code == 0 and "2 blob(s)" in result.output, result.output
    assert runner.invoke("backup", "verify", str(dest)).exit_code == 0


def test_syncfs_is_found_on_linux():
    """The fast path is the one taken here: a libc without syncfs would fall back silently."""
    if sys.platform.startswith("linux"):
        assert backup._syncfs is not None


def test_a_blob_copy_the_kernel_stops_midway_is_finished_the_portable_way(tmp_path, monkeypatch):
    source = tmp_path / "blob"
    source.write_bytes(os.urandom(300_000))
    real = os.copy_file_range
    calls = []

    def refuses_after_one(fd_in, fd_out, count, *args):
        calls.append(count)
        if len(calls) > 1:
            raise OSError(errno.EXDEV, "cross-device")
        return real(fd_in, fd_out, 1000)

    monkeypatch.setattr(os, "copy_file_range", refuses_after_one)
    target = tmp_path / "copy"
    assert backup._copy_file(source, str(target)) == 300_000
    assert target.read_bytes() == source.read_bytes() and len(calls) == 2
