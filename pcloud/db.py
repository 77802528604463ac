"""Opening the database named by DATABASE_URL (pcloud.schema creates and upgrades its tables)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import peewee
from playhouse import db_url
from playhouse.pool import PooledSqliteDatabase

from pcloud.errors import ConfigError, DatabaseUnavailable
from pcloud.models import database_proxy
from pcloud.private import PRIVATE_FOLDER, make_private_file, tighten

log = logging.getLogger("pcloud.db")

# Each connection is checked out per request (or command) and returned to the pool
# afterwards; pooling saves the connect and pragma round trips on every request.
POOLED_SCHEMES = {
    "sqlite": "sqlite+pool",
    "sqlite+pool": "sqlite+pool",
    "postgres": "postgresql+pool",
    "postgresql": "postgresql+pool",
    "postgres+pool": "postgresql+pool",
    "postgresql+pool": "postgresql+pool",
}

SQLITE_PRAGMAS = {
    "journal_mode": "wal",  # readers never block the writer
    "synchronous": "normal",  # durable across crashes of pcloud; WAL keeps it consistent
    "busy_timeout": 10_000,  # a last resort: writers queue on WriterQueue first
    "foreign_keys": 1,
    "mmap_size": 256 * 1024 * 1024,  # read pages through memory, not a syscall each
    "journal_size_limit": 64 * 1024 * 1024,  # the WAL file shrinks back after a burst
}
CHECKPOINT_INTERVAL = 0.5  # seconds between two of a Checkpointer's turns
CATCH_UP_PASSES = 4  # copies without holding writers up, before the short last one
CAUGHT_UP = 64  # WAL pages written during a copy that the last one may take


class WriterQueue:
    """Lets one SQLite writer in at a time, across threads and processes.

    SQLite itself makes a second writer retry on a timer (sleeping 1, 2, 5, 10... ms), which
    under concurrent uploads costs far more time than the writes. Here a waiting writer
    blocks on a thread lock and an flock() of a file beside the database instead, and the
    kernel wakes it the moment the lock is free. Other programs that write the database
    still meet SQLite's own locking, so this is only ever faster, never required.
    """

    def __init__(self, lock_path: Path) -> None:
        self._lock_path = lock_path
        self._thread_lock = threading.Lock()
        self._lock_file: Any = None
        self._opened_in = -1  # the _ForkCount.forks the lock file was opened at

    def acquire(self) -> None:
        self._thread_lock.acquire()
        try:
            fcntl.flock(self._file().fileno(), fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise

    def release(self) -> None:
        try:
            fcntl.flock(self._file().fileno(), fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def _file(self):
        # A forked child opens the file anew: an flock() belongs to the open file, which
        # parent and child would otherwise share (and so hold each other's lock).
        if self._opened_in != _ForkCount.forks:
            self._lock_file = open(self._lock_path, "a+b")  # noqa: SIM115 (kept open)
            self._opened_in = _ForkCount.forks
        return self._lock_file


class _ForkCount:
    """How many forks led to this process (os.getpid() would be a system call a time)."""

    forks = 0

    @classmethod
    def count(cls) -> None:
        cls.forks += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_ForkCount.count)


class Checkpointer:
    """Copies committed pages from the WAL back into the database file in a thread of
    its own, every CHECKPOINT_INTERVAL seconds, instead of in a request's commit.

    SQLite checkpoints inside the commit that takes the WAL past 1,000 pages: that
    request then copies and fsyncs megabytes, here while it holds the writers' queue, so
    every other writer waits too (measured: a commit of 0.1 ms took 20-30 ms every ~70
    uploads; under 8 uploading clients the machine sat 8% in I/O wait).

    Each turn has two steps. PASSIVE checkpoints, which block neither readers nor
    writers, copy the bulk, again while the writers add more during each copy than a
    last, short copy can take. But SQLite starts the WAL over only after a checkpoint
    that reached its very end, and writers append meanwhile; so a last one, holding the
    writers' queue, copies what was committed since, and the next writer starts the WAL
    from its beginning again. The WAL stays as small as one turn's writes, and writers
    wait only for that last copy (measured under 8 uploading clients: 15-25 ms every
    turn when it followed a single copy). Several workers' checkpointers take turns.
    """

    def __init__(
        self, path: str, writers: WriterQueue, interval: float = CHECKPOINT_INTERVAL
    ) -> None:
        self._path = path
        self._writers = writers
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Open the checkpointer's connection (and the database's files, now) and start
        its thread. False, with the reason logged, when it cannot: then commits must
        keep checkpointing."""
        try:
            connection = sqlite3.connect(
                self._path, isolation_level=None, timeout=10, check_same_thread=False
            )
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as error:
            log.error("Cannot checkpoint %s in the background: %s", self._path, error)
            return False
        self._thread = threading.Thread(
            target=self._run, args=(connection,), name="pcloud-checkpoint", daemon=True
        )
        self._thread.start()
        return True

    def stop(self) -> None:
        """Stop (the last connection to close checkpoints what is left, as SQLite does)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self, connection: sqlite3.Connection) -> None:
        try:
            while not self._stop.wait(self._interval):
                try:
                    self.checkpoint(connection)
                except Exception as error:  # busy, or the disk: the next turn tries again
                    log.warning("WAL checkpoint of %s failed: %s", self._path, error)
        finally:
            with contextlib.suppress(sqlite3.Error):
                connection.close()

    def checkpoint(self, connection: sqlite3.Connection) -> None:
        """One turn (see the class)."""
        wal_frames = 0
        for _ in range(CATCH_UP_PASSES):  # each copies what the one before left behind
            _busy, frames, _copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames <= 0:
                return  # nothing written since the WAL last started over
            written_meanwhile, wal_frames = frames - wal_frames, frames
            if written_meanwhile <= CAUGHT_UP:
                break
        self._writers.acquire()
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            self._writers.release()


class QueuedSqliteDatabase(PooledSqliteDatabase):
    """Pooled SQLite whose write transactions queue on a WriterQueue."""

    def __init__(self, database: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._writers = WriterQueue(Path(f"{database}.writelock"))
        self._holding = threading.local()
        self._checkpointer: Checkpointer | None = None

    def checkpoint_in_background(self) -> None:
        """From now on, a Checkpointer thread checkpoints, not the commits (see there)."""
        if self._checkpointer is not None:
            return
        checkpointer = Checkpointer(self.database, self._writers)
        if checkpointer.start():
            self._checkpointer = checkpointer
            self._pragmas = [*self._pragmas, ("wal_autocheckpoint", 0)]
            self.close_idle()  # pooled connections opened before lack the pragma

    def close_all(self) -> None:
        super().close_all()
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None

    def begin(self, lock_type: str | None = None) -> None:
        self._writers.acquire()
        self._holding.lock = True
        try:
            super().begin(lock_type)
        except BaseException:
            self._release_writer()
            raise

    def commit(self) -> bool:
        try:
            return super().commit()
        finally:
            self._release_writer()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._release_writer()

    def _release_writer(self) -> None:
        if getattr(self._holding, "lock", False):
            self._holding.lock = False
            self._writers.release()


def rows(query: Any) -> Iterator[tuple[Any, ...]]:
    """A query's rows as tuples: what `query.tuples()` gives, typed so that type checkers
    let a caller unpack them (peewee's stubs say iterating a query gives its models)."""
    return iter(query.tuples())


def describe(url: str) -> str:
    """The URL with any password hidden, for printing."""
    parsed = urlparse(url)
    if parsed.password:
        netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
        return parsed._replace(netloc=netloc).geturl()
    return url


def open_database(url: str, max_connections: int = 32) -> peewee.Database:
    """Connect the models to the database at `url` and return it.

    Raises ConfigError for a URL pcloud cannot use, DatabaseUnavailable when the
    database cannot be reached.
    """
    parsed = urlparse(url)
    scheme = POOLED_SCHEMES.get(parsed.scheme)
    if scheme is None:
        raise ConfigError(
            f"DATABASE_URL {describe(url)!r}: unsupported scheme {parsed.scheme!r}; "
            "use sqlite:///path/to/pcloud.db or postgresql://user@host/database."
        )
    options: dict = {"max_connections": max_connections, "stale_timeout": 300, "timeout": 30}
    path = parsed.path[1:] if parsed.path.startswith("/") else parsed.path
    if scheme == "sqlite+pool":
        if path and path != ":memory:":
            try:
                _private_sqlite_files(Path(path))
            except OSError as error:
                raise DatabaseUnavailable(
                    f"Cannot create the database {path}: {error.strerror}."
                ) from None
        # Every write transaction takes the write lock up front (BEGIN IMMEDIATE), so two
        # writers queue on the busy timeout instead of failing with 'database is locked'.
        # The pool hands a connection to one thread at a time, possibly not the one
        # that opened it.
        options.update(pragmas=SQLITE_PRAGMAS, lock_type="IMMEDIATE", check_same_thread=False)
    else:
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            raise ConfigError(
                "DATABASE_URL points at PostgreSQL but its driver is missing: "
                "install it with `pip install 'pcloud[postgres]'`."
            ) from None
    try:
        if scheme == "sqlite+pool" and path and path != ":memory:":
            database = QueuedSqliteDatabase(**{**db_url.parse(url), **options})
        else:
            database = db_url.connect(scheme + url[len(parsed.scheme) :], **options)
    except (ValueError, RuntimeError) as error:
        raise ConfigError(f"DATABASE_URL {describe(url)!r}: {error}") from None
    database_proxy.initialize(database)
    check_connection(database, url)
    return database


def _private_sqlite_files(path: Path) -> None:
    """The database file (created empty if missing, so SQLite finds it so) and its
    companions readable by their owner only: SQLite gives its -wal and -shm files the
    database file's mode. A missing folder is created private too."""
    path.parent.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
    make_private_file(path)
    make_private_file(Path(f"{path}.writelock"))
    for suffix in ("-wal", "-shm", "-journal"):
        companion = Path(f"{path}{suffix}")
        if companion.exists():
            tighten(companion)


def check_connection(database: peewee.Database, url: str) -> None:
    """Open (and return to the pool) one connection, turning failures into one clear line."""
    try:
        database.connect(reuse_if_open=True)
    except peewee.OperationalError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else "unknown"
        raise DatabaseUnavailable(f"Cannot open the database {describe(url)}: {reason}") from None
    finally:
        if not database.is_closed():
            database.close()


# peewee's own translation of driver exceptions into peewee.IntegrityError and the like.
_DRIVER_ERRORS = peewee.__exception_wrapper__


class PreparedQuery:
    """A peewee query turned into SQL once per kind of database, then run with new values.

    Building SQL with peewee's query builder costs a few hundred microseconds, more than
    SQLite takes to answer; the queries that every request makes are built once instead.
    `build` receives one placeholder value per parameter; those values must be distinct
    and unlike any constant in the query.
    """

    def __init__(self, build: Callable[..., peewee.Query], *placeholders: Any) -> None:
        self._build = build
        self._placeholders = placeholders
        self._compiled: dict[type, tuple[peewee.Query, str, tuple | None]] = {}

    def _compile(self, database: peewee.Database):
        query = self._build(*self._placeholders)
        if isinstance(query, peewee.Insert) and database.returning_clause and not query._returning:
            query = query.returning(query.model._meta.primary_key)  # else no id comes back
        sql, params = database.get_sql_context().sql(query).query()
        slots = [self._placeholders.index(p) if p in self._placeholders else None for p in params]
        if sorted(slot for slot in slots if slot is not None) != list(
            range(len(self._placeholders))
        ):
            raise ValueError("every placeholder must appear in the query exactly once")
        in_order = slots == list(range(len(slots)))  # the values are the parameters as given
        compiled = (query, sql, None if in_order else (slots, params))
        self._compiled[type(database)] = compiled
        return compiled

    def execute(self, *values: Any):
        """Run the query with these values; returns the database cursor.

        Straight to the driver's cursor, with peewee's translation of its errors
        (IntegrityError, ...) but without peewee's query logging: every request runs
        several of these, and each of peewee's layers costs microseconds.
        """
        database = database_proxy.obj
        _query, sql, binding = self._compiled.get(type(database)) or self._compile(database)
        if binding is None:
            params: Any = values
        else:
            slots, constants = binding
            params = [
                constant if slot is None else values[slot]
                for slot, constant in zip(slots, constants, strict=True)
            ]
        cursor = database.cursor()
        with _DRIVER_ERRORS:
            cursor.execute(sql, params)
        return cursor

    def insert(self, *values: Any) -> int:
        """Run a prepared INSERT; returns the new row's id."""
        database = database_proxy.obj
        cursor = self.execute(*values)
        if database.returning_clause:
            return cursor.fetchone()[0]
        return database.last_insert_id(cursor, peewee.Insert.SIMPLE)

    def first(self, *values: Any) -> Any:
        """The first row as a model instance (values converted as peewee would), or None."""
        database = database_proxy.obj
        query = (self._compiled.get(type(database)) or self._compile(database))[0]
        row = self.execute(*values).fetchone()
        if row is None:
            return None
        fields = query._returning  # the selected fields, in order
        return query.model(
            **{
                field.name: field.python_value(value)
                for field, value in zip(fields, row, strict=True)
            }
        )


class PreparedSQL:
    """SQL that peewee's builder cannot write (a recursive chain joined to other tables),
    written once per kind of database by `write(marker)`, `marker` being the driver's
    placeholder (`?` or `%s`), then run as PreparedQuery runs its SQL."""

    def __init__(self, write: Callable[[str], str]) -> None:
        self._write = write
        self._sql: dict[type, str] = {}

    def execute(self, *values: Any):
        """Run the SQL with these values (one per placeholder, in order); returns the cursor."""
        database = database_proxy.obj
        sql = self._sql.get(type(database))
        if sql is None:
            sql = self._sql[type(database)] = self._write(str(database.param))
        cursor = database.cursor()
        with _DRIVER_ERRORS:
            cursor.execute(sql, values)
        return cursor
