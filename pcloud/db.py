"""Opening the database named by DATABASE_URL, and creating its schema."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import peewee
from playhouse import db_url

from pcloud.errors import ConfigError, DatabaseUnavailable
from pcloud.models import ALL_MODELS, database_proxy

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
    "busy_timeout": 10_000,  # wait up to 10 s for another writer (e.g. the CLI)
    "foreign_keys": 1,
}


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
    if scheme == "sqlite+pool":
        path = parsed.path[1:] if parsed.path.startswith("/") else parsed.path
        if path and path != ":memory:":
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise DatabaseUnavailable(
                    f"Cannot create the folder for the database {path}: {error.strerror}."
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
        database = db_url.connect(scheme + url[len(parsed.scheme) :], **options)
    except (ValueError, RuntimeError) as error:
        raise ConfigError(f"DATABASE_URL {describe(url)!r}: {error}") from None
    database_proxy.initialize(database)
    check_connection(database, url)
    return database


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


def create_schema(database: peewee.Database) -> None:
    """Create every table and index that does not exist yet. Safe to run again."""
    with database.connection_context():
        database.create_tables(ALL_MODELS, safe=True)
