"""Backups a running pcloud can make, check and be restored from.

A backup folder holds plain files, so restic, borg or rsync can take it off-site:

    pcloud-backup.json             what this folder is (format version)
    blobs/ab/<sha256>              every content once, named by its SHA-256; shared by
                                   every run, so a run copies only content that is new
    snapshots/<time>-<random>/     one run: database.sqlite3 or database.pgdump,
                                   settings.env (the secret key and the settings a
                                   restore needs), blobs.txt (sha256 and size of every
                                   blob the database names), dropped.txt, manifest.json,
                                   and COMPLETE once all of it is written and synced

A run snapshots the database first (SQLite's online backup API; PostgreSQL's pg_dump
under a snapshot whose blob list is read in the same transaction), then copies the blobs
that snapshot names through the BlobStore contract. Content deleted for good after the
snapshot, before its copy, is listed in dropped.txt: the restore drops the files and
versions that used it, as the live server did. A run killed at any point leaves the last
complete snapshot as it was; the next run copies what is still missing (re-hashing what
the killed run wrote), then removes older snapshots and content no snapshot names.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import enum
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, NamedTuple
from urllib.parse import urlparse

import peewee
from dotenv import dotenv_values

from pcloud import __version__
from pcloud.config import OPTIONS, Settings, load_settings
from pcloud.db import rows
from pcloud.errors import ConfigError, PcloudError
from pcloud.models import Blob, FileVersion, StoredFile, TusUpload, database_proxy
from pcloud.storage import BlobStore

FORMAT = 1
MARKER = "pcloud-backup.json"
COMPLETE = "COMPLETE"
SQLITE_FILE = "database.sqlite3"
PGDUMP_FILE = "database.pgdump"
READ_SIZE = 1024 * 1024
SYNC_THREADS = 16
# Creating a file waits on the disk (its inode's block, the folder's) more than it
# works: a few copies at a time overlap the waits. On this machine's disk, 10,000 blobs
# of ~100 KiB: one at a time 5.9-6.9 s, two 4.3-4.6 s, four 4.2-4.6 s, eight 4.9-5.4 s
# (more threads then mostly contend for the journal).
COPY_THREADS = 4
COPIES_AHEAD = 4 * COPY_THREADS
# Kept out of settings.env: where things are is the restore's to say.
PLACE_OPTIONS = {"PCLOUD_DATA_DIR", "DATABASE_URL", "UPLOAD_FOLDER"}
# What `backup verify` says of a blob it found missing or damaged (and set aside).
COPIED_AGAIN = "the next `pcloud backup` copies it again from the store"
SET_ASIDE = f" (set aside: {COPIED_AGAIN})"

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


class BackupError(PcloudError):
    """A backup, verify or restore that cannot go on; the message says why and what to do."""

    status = 400


class BlobRecord(NamedTuple):  # one per blob: a tuple is made three times as fast
    sha256: str
    store_key: str
    size: int


@dataclass
class BackupReport:
    snapshot: Path
    blobs: int = 0
    bytes_total: int = 0
    blobs_copied: int = 0
    bytes_copied: int = 0
    dropped: list[str] = field(default_factory=list)  # deleted while the backup ran
    damaged: list[str] = field(default_factory=list)  # missing or wrong in the store


@dataclass
class VerifyReport:
    snapshot: Path
    blobs: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class RestoreReport:
    data_dir: Path
    env_file: Path
    database_url: str
    blobs: int = 0
    dropped_files: int = 0


# --- Making a backup ----------------------------------------------------------------------


def backup(
    settings: Settings, blobs: BlobStore, dest: Path, progress: Progress | None = None
) -> BackupReport:
    """Back the running pcloud up into `dest` (made if missing; refused when it holds
    something else than a backup). Returns what was done. The snapshot is marked
    complete only after every byte is written and synced."""
    dest = dest.expanduser().resolve()
    _prepare_folder(dest)
    with _locked(dest):
        trusted, others = _scan_blobs(dest)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        snapshot = dest / "snapshots" / f"{stamp}-{secrets.token_hex(4)}"
        snapshot.mkdir(parents=True)
        engine, database_file, schema, records = _snapshot_database(settings, snapshot)
        report = BackupReport(snapshot, blobs=len(records))
        report.bytes_total = sum(record.size for record in records)
        # What the last snapshot vouches for is sorted out here, in one pass: the pool's
        # hand-over, or a step of the loop below, costs more than the look-up itself.
        to_copy = [r for r in records if trusted.get(r.sha256) != r.size]
        unlisted = {os.path.basename(path) for path in others}  # the scan saw them
        for shard in {record.sha256[:2] for record in to_copy}:  # made once, not per blob
            os.makedirs(f"{dest}/blobs/{shard}", exist_ok=True)
        done = report.bytes_total - sum(record.size for record in to_copy)
        if progress is not None:
            progress(done, report.bytes_total)
        with (
            _durable_writes(dest) as written,
            ThreadPoolExecutor(COPY_THREADS, thread_name_prefix="backup-copy") as copier,
        ):

            def copy(record: BlobRecord) -> Copied:
                found = record.sha256 in unlisted
                return _copy_blob(blobs, dest, record, record.store_key, found)

            for record, copied in _copied(copier, copy, to_copy):
                if copied is Copied.MISSING:  # here, not in the pool: it asks the database
                    copied = _copy_moved(blobs, dest, record, record.sha256 in unlisted)
                done += record.size
                if copied is Copied.NOW:
                    report.blobs_copied += 1
                    report.bytes_copied += record.size
                if copied in (Copied.NOW, Copied.FOUND):
                    written(blob_path(dest, record.sha256))
                elif copied is Copied.DAMAGED:
                    report.damaged.append(record.sha256)
                elif copied is Copied.DROPPED:
                    report.dropped.append(record.sha256)
                if progress is not None:
                    progress(done, report.bytes_total)
        _write(snapshot / "settings.env", _settings_env(settings), private=True)
        left_out = {*report.dropped, *report.damaged}
        kept = [r for r in records if r.sha256 not in left_out]
        _write(snapshot / "blobs.txt", "".join(f"{r.sha256} {r.size}\n" for r in kept))
        _write(snapshot / "dropped.txt", "".join(f"{sha}\n" for sha in report.dropped))
        manifest = {
            "format": FORMAT,
            "pcloud_version": __version__,
            "created_at": stamp,
            "engine": engine,
            "schema": schema,
            "database_file": database_file,
            "database_sha256": _hash_file(snapshot / database_file),
            "blobs": len(kept),
            "blob_bytes": sum(r.size for r in kept),
            "dropped": len(report.dropped),
            "damaged": report.damaged,
        }
        _write(snapshot / "manifest.json", json.dumps(manifest, indent=2) + "\n")
        _write(snapshot / COMPLETE, stamp + "\n")
        _fsync_folder(snapshot)
        _fsync_folder(snapshot.parent)
        needed = {r.sha256 for r in kept}
        others.extend(str(blob_path(dest, sha)) for sha in trusted if sha not in needed)
        _remove_older(dest, snapshot, others, needed)
    return report


def _prepare_folder(dest: Path) -> None:
    marker = dest / MARKER
    if dest.exists() and not dest.is_dir():
        raise BackupError(f"{dest} is a file: give a folder for the backup")
    if dest.is_dir() and any(dest.iterdir()) and not marker.is_file():
        raise BackupError(
            f"{dest} holds other files and is no pcloud backup: give an empty or new folder"
        )
    dest.mkdir(parents=True, exist_ok=True)
    if not marker.is_file():
        _write(marker, json.dumps({"format": FORMAT, "made_by": "pcloud backup"}) + "\n")
    (dest / "blobs").mkdir(exist_ok=True)
    (dest / "snapshots").mkdir(exist_ok=True)


@contextlib.contextmanager
def _locked(dest: Path) -> Iterator[None]:
    """One backup at a time per folder (the lock goes with its process, however it ends)."""
    with open(dest / ".lock", "a+b") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"Another `pcloud backup` is writing to {dest} right now") from None
        yield


@contextlib.contextmanager
def _durable_writes(dest: Path) -> Iterator[Callable[[Path], None]]:
    """Yields `written(path)`, to be called for each file the block writes in `dest`;
    when the block ends, all of them (and their names) are on disk, or an error says why.

    On Linux, one syncfs() of the backup's filesystem at the end: the kernel writes
    everything back in one sweep and one journal commit, twice as fast as an fsync per
    blob for ten thousand of them. Its error report covers every write-back failure
    since the folder was opened, which is before the first blob. Elsewhere, each file is
    fsynced by a pool while the next are copied (concurrent fsyncs share commits), then
    each folder that got a new name."""
    folder = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _syncfs is not None:
            yield lambda _path: None
            if _syncfs(folder) != 0:
                reason = os.strerror(ctypes.get_errno())
                raise BackupError(
                    f"Writing the backup to the disk of {dest} failed ({reason}): it is not "
                    "complete, and the last complete one is kept; check that disk"
                )
            return
        with ThreadPoolExecutor(SYNC_THREADS) as syncer:
            syncing: list[Future[None]] = []
            shards: set[Path] = set()

            def written(path: Path) -> None:
                syncing.append(syncer.submit(_fsync_file, path))
                shards.add(path.parent)

            yield written
            syncing.extend(syncer.submit(_fsync_folder, shard) for shard in shards)
            for future in syncing:
                future.result()  # an error writing any blob stops the run here
    finally:
        os.close(folder)


def _load_syncfs() -> Callable[[int], int] | None:
    """libc's syncfs(fd), on Linux (Python's os module has sync() only, for every disk)."""
    if not sys.platform.startswith("linux"):
        return None
    function = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
    if function is not None:
        function.argtypes = [ctypes.c_int]
        function.restype = ctypes.c_int
    return function


_syncfs = _load_syncfs()
SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """libc's sync_file_range(fd, offset, nbytes, flags), on Linux."""
    if not sys.platform.startswith("linux"):
        return None
    function = getattr(ctypes.CDLL(None, use_errno=True), "sync_file_range", None)
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
        function.restype = ctypes.c_int
    return function


_sync_file_range = _load_sync_file_range()


def _scan_blobs(dest: Path) -> tuple[dict[str, int], list[str]]:
    """(trusted, others) of the files in the backup's blobs folder: trusted, content the
    last complete snapshot lists (hash -> size), written and synced before that snapshot
    was marked complete, so neither read nor stat()ed again (one directory listing per
    shard instead of a stat per blob: `backup verify` is what rechecks sizes and bytes,
    and sets aside what it finds damaged, so that the next run copies it again). Others
    (paths) were left by a run that did not finish, or are no longer needed: a blob among
    them is re-hashed before it counts, and what this run does not need goes at its end."""
    snapshot = latest_snapshot(dest, required=False)
    listed = dict(_read_blob_list(snapshot)) if snapshot is not None else {}
    trusted: dict[str, int] = {}
    others: list[str] = []
    blobs = f"{dest}/blobs"
    for shard in os.listdir(blobs):  # names and set operations: no Python step per blob
        names = os.listdir(f"{blobs}/{shard}")
        found = listed.keys() & names
        trusted.update((name, listed[name]) for name in found)
        if len(found) < len(names):
            others.extend(f"{blobs}/{shard}/{name}" for name in set(names) - found)
    return trusted, others


def _snapshot_database(
    settings: Settings, snapshot: Path
) -> tuple[str, str, str | None, list[BlobRecord]]:
    """(engine, file name, schema, every blob the snapshot names)."""
    url = settings.database_url
    scheme = urlparse(url).scheme.split("+")[0]
    if scheme == "sqlite":
        return ("sqlite", SQLITE_FILE, None, _snapshot_sqlite(url, snapshot / SQLITE_FILE))
    if scheme in ("postgres", "postgresql"):
        schema, records = _snapshot_postgres(url, snapshot / PGDUMP_FILE)
        return ("postgresql", PGDUMP_FILE, schema, records)
    raise ConfigError(f"Cannot back up a database of scheme {scheme!r}")


def sqlite_path(url: str) -> Path:
    parsed = urlparse(url)
    path = parsed.path[1:] if parsed.path.startswith("/") else parsed.path
    if not path or path == ":memory:":
        raise ConfigError("An in-memory SQLite database cannot be backed up")
    return Path(path)


def _snapshot_sqlite(url: str, target: Path) -> list[BlobRecord]:
    source = sqlite3.connect(sqlite_path(url), timeout=30)
    copy = sqlite3.connect(target)
    # No journal and no syncs of its own: the copy is new, counts only once the snapshot
    # is marked complete, and is fsynced once below.
    copy.execute("PRAGMA journal_mode=OFF")
    copy.execute("PRAGMA synchronous=OFF")
    try:
        source.backup(copy)  # one step: a consistent read; WAL writers go on meanwhile
        copy.commit()
        rows = copy.execute("SELECT sha256, store_key, size FROM blob").fetchall()
    finally:
        copy.close()
        source.close()
    _fsync_file(target)
    return list(map(BlobRecord._make, rows))


def libpq_url(url: str) -> str:
    """A DATABASE_URL as libpq's tools take it (no `+pool` in the scheme)."""
    scheme, rest = url.split("://", 1)
    return "postgresql://" + rest if scheme.split("+")[0] in ("postgres", "postgresql") else url


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is not installed, and a PostgreSQL database needs it for backups: "
            "install the PostgreSQL client tools (Debian: apt install postgresql-client) "
            "of the server's major version or newer"
        )
    return found


def _snapshot_postgres(url: str, target: Path) -> tuple[str, list[BlobRecord]]:
    """pg_dump of the schema pcloud uses, under a snapshot exported by a transaction that
    reads the blob list too: the dump and the list see the same moment."""
    import psycopg2  # type: ignore[import-untyped]

    pg_dump = _tool("pg_dump")
    connection = psycopg2.connect(libpq_url(url))
    try:
        connection.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_export_snapshot(), current_schema()")
            snapshot_id, schema = cursor.fetchone()
            cursor.execute("SELECT sha256, store_key, size FROM blob")
            records = list(map(BlobRecord._make, cursor.fetchall()))
            _run(
                [
                    pg_dump,
                    f"--snapshot={snapshot_id}",
                    f"--schema={schema}",
                    "--format=custom",
                    "--no-owner",
                    "--no-privileges",
                    f"--file={target}",
                    f"--dbname={libpq_url(url)}",
                ],
                "pg_dump",
            )
        connection.rollback()
    finally:
        connection.close()
    _fsync_file(target)
    return schema, records


def _run(command: list[str], name: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).strip().splitlines()
        raise BackupError(f"{name} failed: {reason[-1] if reason else result.returncode}")


def blob_path(dest: Path, sha256: str) -> Path:
    return dest / "blobs" / sha256[:2] / sha256


class Copied(enum.Enum):
    """What became of one content in a run that the last complete snapshot did not vouch
    for."""

    FOUND = "in the backup already, written by a run that did not finish (to sync)"
    NOW = "copied now"
    MISSING = "not under the key tried"
    DAMAGED = "missing or of the wrong size in the store"
    DROPPED = "deleted from the store after the snapshot"


def _copied(
    pool: ThreadPoolExecutor,
    copy: Callable[[BlobRecord], Copied],
    records: list[BlobRecord],
) -> Iterator[tuple[BlobRecord, Copied]]:
    """(record, what became of it) for each record, in order: copy(record) done by the
    pool, at most COPIES_AHEAD at a time, so that the futures waiting stay few however
    many blobs there are."""
    waiting: collections.deque[tuple[BlobRecord, Future[Copied]]] = collections.deque()
    for record in records:
        waiting.append((record, pool.submit(copy, record)))
        if len(waiting) >= COPIES_AHEAD:
            first, future = waiting.popleft()
            yield first, future.result()
    while waiting:
        first, future = waiting.popleft()
        yield first, future.result()


def _copy_blob(blobs: BlobStore, dest: Path, record: BlobRecord, key: str, found: bool) -> Copied:
    """Make sure the backup holds this content, from the store's `key`, when the last
    snapshot does not vouch for it (_scan_blobs); `found` when the scan saw a file of its
    name. Runs in the copy pool: files and the store only, no database.

    The copy is written under its final name: a run killed midway leaves a file no
    complete snapshot lists, which the next run re-hashes before it counts (FOUND), so a
    temporary name and a rename would add two folder operations a blob for nothing. The
    folder lock keeps any other run out; the shard folders exist (backup() made them)."""
    final = f"{dest}/blobs/{record.sha256[:2]}/{record.sha256}"
    if found:
        try:
            size = os.stat(final).st_size
        except FileNotFoundError:
            size = -1
        if size == record.size and _hash_file(Path(final)) == record.sha256:
            return Copied.FOUND
    try:
        written = _copy_bytes(blobs, key, final)
    except FileNotFoundError:
        return Copied.MISSING
    if written != record.size:
        os.unlink(final)
        return Copied.DAMAGED
    return Copied.NOW


def _copy_moved(blobs: BlobStore, dest: Path, record: BlobRecord, found: bool) -> Copied:
    """A content not under the key the snapshot gave: deleted since, or healed by
    `files verify` under a new key, which the live database names."""
    tried = record.store_key
    while (key := _current_key(record.sha256, tried)) is not None:
        copied = _copy_blob(blobs, dest, record, key, found)
        if copied is not Copied.MISSING:
            return copied
        tried = key
    return Copied.DAMAGED if _still_stored(record.sha256) else Copied.DROPPED


def _copy_bytes(blobs: BlobStore, key: str, target: str) -> int:
    """Copy one blob into `target` (not synced: _durable_writes does that)."""
    local = blobs.local_path(key)
    if local is not None:
        return _copy_file(local, target)
    with blobs.open(key) as source, open(target, "wb") as copy:
        shutil.copyfileobj(source, copy, READ_SIZE)
        copy.flush()
        _start_writeback(copy.fileno())
        return copy.tell()


def _copy_file(source: Path | str, target: str) -> int:
    """Copy a local file, in the kernel: copy_file_range(2) where there is one (Linux).
    Python 3.11's shutil.copyfile uses sendfile, and blob by blob that took half as long
    again here (10,000 blobs of ~100 KiB: 230 µs a file against 155). Elsewhere, or where
    the filesystems refuse it, the rest goes the portable way."""
    with open(source, "rb") as original, open(target, "wb") as copy:
        copied = 0
        if hasattr(os, "copy_file_range"):
            try:
                while step := os.copy_file_range(original.fileno(), copy.fileno(), 1 << 30):
                    copied += step
                _start_writeback(copy.fileno())
                return copied
            except OSError:  # e.g. EXDEV or ENOSYS: the file offsets are where it stopped
                pass
        shutil.copyfileobj(original, copy, READ_SIZE)
        copy.flush()
        _start_writeback(copy.fileno())
        return copy.tell()


def _start_writeback(descriptor: int) -> None:
    """Have the kernel begin writing a copy to the disk now (Linux's sync_file_range,
    SYNC_FILE_RANGE_WRITE: it does not wait), so that the disk writes while the next
    blobs are copied instead of all at the end: a gigabyte is under the kernel's own
    threshold for starting early, and the final syncfs() would write it all alone.
    Durability still rests on that syncfs (or the fsyncs); errors surface there."""
    if _sync_file_range is not None:
        _sync_file_range(descriptor, 0, 0, SYNC_FILE_RANGE_WRITE)


def _current_key(sha256: str, tried: str) -> str | None:
    """The content's store key now in the live database, if it changed since `tried`."""
    key = Blob.select(Blob.store_key).where(Blob.sha256 == sha256).scalar()
    return key if key is not None and key != tried else None


def _still_stored(sha256: str) -> bool:
    return Blob.select().where(Blob.sha256 == sha256).exists()


def _settings_env(settings: Settings) -> str:
    lines = ["# pcloud settings saved by `pcloud backup` (SECRET_KEY included: keep private)"]
    for option in OPTIONS:
        if option.env in PLACE_OPTIONS:
            continue
        value = getattr(settings, option.field)
        if value is None:
            continue
        if isinstance(value, tuple):
            value = ",".join(value)
        text = str(value)
        if "\n" in text:
            continue
        lines.append(f"{option.env}={json.dumps(text, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


def _remove_older(dest: Path, keep: Path, others: list[str], needed: set[str]) -> None:
    """After a complete run: other snapshots go, and of `others` (files the run found in
    the blobs folder, _scan_blobs) what it does not need: content no longer named,
    what killed runs left half-written (older versions named it `.*.tmp`), what
    `backup verify` set aside as damaged. (No other run is writing: the lock. What this
    run wrote, it needs.)"""
    for snapshot in (dest / "snapshots").iterdir():
        if snapshot != keep:
            shutil.rmtree(snapshot, ignore_errors=True)
    for path in others:
        if os.path.basename(path) not in needed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


# --- Files, hashing, syncing --------------------------------------------------------------


def _write(path: Path, text: str, private: bool = False) -> None:
    """Write a small file durably: a temporary file, synced, renamed into place."""
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(
        temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644
    )
    with os.fdopen(descriptor, "w") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, path)
    _fsync_folder(path.parent)


def _fsync_file(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_folder(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _hash_file(path: Path, progress: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while data := stream.read(READ_SIZE):
            digest.update(data)
            if progress is not None:
                progress(len(data))
    return digest.hexdigest()


# --- Reading a backup ---------------------------------------------------------------------


def latest_snapshot(dest: Path, required: bool = True) -> Path | None:
    """The newest complete snapshot in the backup folder (BackupError if none and
    `required`)."""
    folder = dest / "snapshots"
    complete = sorted(
        (s for s in folder.iterdir() if (s / COMPLETE).is_file()) if folder.is_dir() else ()
    )
    if complete:
        return complete[-1]
    if required:
        if not (dest / MARKER).is_file():
            raise BackupError(f"{dest} is no pcloud backup (no {MARKER} in it)")
        raise BackupError(
            f"{dest} holds no complete backup yet: run `pcloud backup {dest}` to finish one"
        )
    return None


def _read_blob_list(snapshot: Path) -> Iterator[tuple[str, int]]:
    """(hash, size) of each blob a snapshot lists, read a megabyte of lines at a time,
    each batch split at C speed (a Python step per line was a tenth of a run's time)."""
    with open(snapshot / "blobs.txt") as listing:
        while lines := listing.readlines(1024 * 1024):
            fields = "".join(lines).split()
            yield from zip(fields[::2], map(int, fields[1::2]), strict=True)


def read_manifest(snapshot: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((snapshot / "manifest.json").read_text())
    return manifest


def verify(dest: Path, quick: bool = False, progress: Progress | None = None) -> VerifyReport:
    """Check the newest complete snapshot: its database file against its hash, and every
    blob it names against its SHA-256 (with `quick`, against its size only). A damaged
    blob is set aside (renamed `.<hash>.damaged`, removed by the next complete run),
    so that the next `pcloud backup` copies it again from the store."""
    dest = dest.expanduser().resolve()
    snapshot = latest_snapshot(dest)
    assert snapshot is not None
    with _locked(dest):  # a running backup may be deleting this snapshot
        return _verify_snapshot(dest, snapshot, quick, progress)


def _verify_snapshot(
    dest: Path, snapshot: Path, quick: bool, progress: Progress | None
) -> VerifyReport:
    manifest = read_manifest(snapshot)
    listed = list(_read_blob_list(snapshot))
    report = VerifyReport(snapshot, blobs=len(listed))
    database = snapshot / manifest["database_file"]
    if not database.is_file() or _hash_file(database) != manifest["database_sha256"]:
        report.problems.append(f"database file {database.name}: missing or changed")
    total = sum(size for _sha, size in listed)
    done = 0
    for sha256, size in listed:
        path = blob_path(dest, sha256)
        try:
            found_size = path.stat().st_size
        except FileNotFoundError:
            report.problems.append(f"blob {sha256}: missing ({COPIED_AGAIN})")
        else:
            if found_size != size:
                report.problems.append(
                    f"blob {sha256}: {found_size} bytes, expected {size}{SET_ASIDE}"
                )
                _set_aside(path)
            elif not quick and _hash_file(path) != sha256:
                report.problems.append(
                    f"blob {sha256}: its bytes do not match its SHA-256{SET_ASIDE}"
                )
                _set_aside(path)
        done += size
        if progress is not None:
            progress(done, total)
    return report


def _set_aside(path: Path) -> None:
    os.replace(path, path.with_name(f".{path.name}.damaged"))


# --- Restoring ----------------------------------------------------------------------------


def restore(
    dest: Path,
    data_dir: Path,
    database_url: str | None = None,
    progress: Progress | None = None,
    open_store: Callable[[Settings], tuple[peewee.Database, BlobStore]] | None = None,
) -> RestoreReport:
    """Restore the newest complete snapshot into `data_dir`, which must be empty or new:
    the database (SQLite in data_dir, or the empty PostgreSQL database `database_url`),
    the secret key and settings (data_dir/pcloud.env), and every blob, put through the
    BlobStore contract. `open_store` opens the restored database and store (pcloud.core)."""
    dest, data_dir = dest.expanduser().resolve(), data_dir.expanduser().resolve()
    snapshot = latest_snapshot(dest)
    assert snapshot is not None
    checked = verify(dest, quick=True)
    if checked.problems:
        raise BackupError(
            f"The backup in {dest} is damaged ({checked.problems[0]}): run "
            f"`pcloud backup verify {dest}` for the whole list"
        )
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise BackupError(f"{data_dir} is not empty: restore into a new or empty folder")
    manifest = read_manifest(snapshot)
    if manifest["engine"] == "postgresql" and not database_url:
        raise BackupError(
            "This backup is of a PostgreSQL database: give --database-url of an empty "
            "database to restore it into"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    database_url = _restore_database(snapshot, manifest, data_dir, database_url)
    env_file = data_dir / "pcloud.env"
    saved = (snapshot / "settings.env").read_text()
    place = (
        f"PCLOUD_DATA_DIR={json.dumps(str(data_dir))}\nDATABASE_URL={json.dumps(database_url)}\n"
    )
    _write(env_file, saved + place, private=True)
    secret = dotenv_values(snapshot / "settings.env").get("SECRET_KEY") or ""
    _write(data_dir / "secret_key", secret + "\n", private=True)
    report = RestoreReport(data_dir, env_file, database_url)
    if open_store is None:
        raise BackupError("restore needs the store to put blobs into")
    settings = load_settings(environ={}, env_file=env_file)
    database, blobs = open_store(settings)
    try:
        dropped = (snapshot / "dropped.txt").read_text().split()
        report.dropped_files = _drop_contents(dropped)
        report.blobs = _restore_blobs(dest, blobs, progress)
    finally:
        blobs.close()
        database.close()
    return report


def _restore_database(
    snapshot: Path, manifest: dict[str, Any], data_dir: Path, database_url: str | None
) -> str:
    if manifest["engine"] == "sqlite":
        if database_url and urlparse(database_url).scheme.split("+")[0] != "sqlite":
            raise BackupError("This backup is of a SQLite database: restore it into SQLite")
        target = sqlite_path(database_url) if database_url else data_dir / "pcloud.db"
        if target.exists():
            raise BackupError(f"{target} exists: restore into a new database file")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(snapshot / SQLITE_FILE, target)
        _fsync_file(target)
        return f"sqlite:///{target}"
    assert database_url is not None
    return _restore_postgres(snapshot / PGDUMP_FILE, manifest["schema"], database_url)


def _restore_postgres(dump: Path, schema: str, database_url: str) -> str:
    import psycopg2

    pg_restore = _tool("pg_restore")
    url = libpq_url(database_url)
    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,))
            schema_exists = cursor.fetchone()[0] == 1
            cursor.execute("SELECT count(*) FROM pg_tables WHERE schemaname = %s", (schema,))
            if cursor.fetchone()[0]:
                raise BackupError(
                    f"Schema {schema!r} of the target database has tables already: restore "
                    "into an empty database"
                )
        connection.rollback()
    finally:
        connection.close()
    listing = subprocess.run(
        [pg_restore, "--list", str(dump)], capture_output=True, text=True, check=False
    )
    if listing.returncode != 0:
        raise BackupError(f"pg_restore cannot read {dump}: {listing.stderr.strip()}")
    entries = [
        line
        for line in listing.stdout.splitlines()
        if not (schema_exists and f" SCHEMA - {schema} " in f"{line} ")
    ]
    toc = Path(os.environ.get("TMPDIR", "/tmp")) / f"pcloud-restore-{secrets.token_hex(6)}"
    try:
        toc.write_text("\n".join(entries) + "\n")
        _run(
            [
                pg_restore,
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "--single-transaction",
                f"--use-list={toc}",
                f"--dbname={url}",
                str(dump),
            ],
            "pg_restore",
        )
    finally:
        toc.unlink(missing_ok=True)
    if schema != "public" and "options=" not in database_url:
        joiner = "&" if "?" in database_url else "?"
        database_url = f"{database_url}{joiner}options=-csearch_path%3D{schema}"
    return database_url


def _drop_contents(sha256s: list[str]) -> int:
    """Forget files and versions of content deleted while the backup ran; how many files."""
    if not sha256s:
        return 0
    with database_proxy.atomic():
        FileVersion.delete().where(FileVersion.sha256.in_(sha256s)).execute()
        count = StoredFile.delete().where(StoredFile.sha256.in_(sha256s)).execute()
        Blob.delete().where(Blob.sha256.in_(sha256s)).execute()
    return int(count)


def _restore_blobs(dest: Path, blobs: BlobStore, progress: Progress | None) -> int:
    """Put every blob the restored database names into the store (new keys: the store
    makes them), then point the rows at them. Unfinished resumable uploads start over."""
    found = list(rows(Blob.select(Blob.id, Blob.sha256, Blob.size)))
    total, done = sum(size for _id, _sha, size in found), 0
    new_keys: list[tuple[int, str]] = []
    for blob_id, sha256, size in found:
        with open(blob_path(dest, sha256), "rb") as stream:
            stored = blobs.put(_chunks(stream))
        if stored.sha256 != sha256:
            blobs.delete(stored.key)
            raise BackupError(f"Blob {sha256} of the backup does not match its SHA-256")
        new_keys.append((blob_id, stored.key))
        done += size
        if progress is not None:
            progress(done, total)
    with database_proxy.atomic():
        for blob_id, key in new_keys:
            Blob.update(store_key=key).where(Blob.id == blob_id).execute()
        StoredFile.update(
            blob_key=Blob.select(Blob.store_key).where(Blob.sha256 == StoredFile.sha256)
        ).execute()
        TusUpload.delete().execute()
    return len(found)


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while data := stream.read(READ_SIZE):
        yield data
