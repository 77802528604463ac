"""SQLite's WAL is copied back into the database by a Checkpointer thread under
`pcloud serve`, not inside whichever request's commit crosses SQLite's threshold."""

from __future__ import annotations

import sqlite3
import struct
import threading
import time

import pytest

from pcloud.db import Checkpointer, open_database
from pcloud.models import User, database_proxy
from tests.conftest import TEST_DATABASE

pytestmark = pytest.mark.skipif(TEST_DATABASE != "sqlite", reason="SQLite's WAL only")


@pytest.fixture
def database(tmp_path):
    database = open_database(f"sqlite:///{tmp_path / 'pcloud.db'}")
    with database.connection_context():
        database.create_tables([User])
    yield database
    database.close_all()


def add_users(database, count: int, start: int = 0) -> None:
    for number in range(start, start + count):
        with database.connection_context(), database_proxy.atomic():
            User.create(username=f"user{number}", email=f"user{number}@example.org")


def wal_state(database) -> tuple[int, int]:
    """(frames in the WAL, frames of them copied into the database), read from the WAL
    index without touching the database (its header: https://sqlite.org/walformat.html)."""
    with open(f"{database.database}-shm", "rb") as index:
        header = index.read(136)
    (frames,) = struct.unpack_from("=I", header, 16)  # mxFrame
    (copied,) = struct.unpack_from("=I", header, 96)  # nBackfill
    return frames, copied


def test_commits_leave_checkpoints_to_the_checkpointer(database):
    database.checkpoint_in_background()
    with database.connection_context():
        assert database.execute_sql("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    add_users(database, 1200)  # SQLite would have checkpointed past 1,000 frames
    frames, _copied = wal_state(database)
    assert frames > 1200


def test_a_turn_lets_the_wal_start_over_while_writers_keep_writing(database):
    """A checkpoint that does not reach the WAL's end never lets it start over; writers
    that keep appending during the copy must not keep it from the end."""
    database.checkpoint_in_background()
    add_users(database, 500)
    started_over = threading.Event()
    stop = threading.Event()

    def write_on() -> None:
        number, last_frames = 10_000, 0
        while not stop.is_set():
            add_users(database, 1, start=number)
            number += 1
            frames, _ = wal_state(database)
            if frames < last_frames:
                started_over.set()
            last_frames = frames

    writer = threading.Thread(target=write_on)
    writer.start()
    try:
        checkpointer = Checkpointer(database.database, database._writers)
        with sqlite3.connect(database.database, isolation_level=None) as connection:
            for _ in range(5):
                checkpointer.checkpoint(connection)
                if started_over.wait(timeout=1):
                    break
    finally:
        stop.set()
        writer.join()
    assert started_over.is_set()


def test_the_background_thread_keeps_the_wal_short(database):
    database.checkpoint_in_background()
    deadline = time.monotonic() + 20
    written = 0
    while time.monotonic() < deadline:
        add_users(database, 100, start=written)
        written += 100
        frames, _copied = wal_state(database)
        if frames < written:
            break  # the WAL holds less than all that was written: it started over
    assert frames < written, f"{written} users written, {frames} frames in the WAL"


def test_without_a_checkpointer_commits_keep_checkpointing(database, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr("pcloud.db.sqlite3.connect", refuse)
    database.checkpoint_in_background()
    with database.connection_context():
        assert database.execute_sql("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
