"""Creating the schema, and upgrading a database made by an older pcloud in place.

Two kinds of change keep an existing database working as the models grow:

- Additive changes need no code: a new model gets its table, a new field gets its column
  (it must be nullable or have a default), a new index gets created. `upgrade_schema`
  compares the models with what the database has, using playhouse.migrate.
- Changes that move data (filling a new table from an old one, say) are functions
  registered with `@data_migration("name")`. Each runs once, in the order registered,
  inside a transaction, and is recorded in the `schema_migration` table.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import peewee
from playhouse.migrate import SchemaMigrator, migrate

from pcloud.models import (
    ALL_MODELS,
    BaseModel,
    Blob,
    DeviceSession,
    Folder,
    RefreshToken,
    StoredFile,
    User,
    UtcDateTimeField,
    name_sort_key,
    utc_now,
)


class SchemaMigration(BaseModel):
    """A data migration that has run on this database."""

    name = peewee.CharField(max_length=100, unique=True)
    applied_at = UtcDateTimeField(default=utc_now)


DataMigration = Callable[[peewee.Database], None]
DATA_MIGRATIONS: list[tuple[str, DataMigration]] = []


def data_migration(name: str) -> Callable[[DataMigration], DataMigration]:
    """Register a function that moves data once, after the tables and columns exist."""

    def register(function: DataMigration) -> DataMigration:
        if any(existing == name for existing, _ in DATA_MIGRATIONS):
            raise ValueError(f"data migration {name!r} is registered twice")
        DATA_MIGRATIONS.append((name, function))
        return function

    return register


def upgrade_schema(database: peewee.Database) -> list[str]:
    """Create what is missing and run pending data migrations. Safe to run again.

    Returns one line per change made, for `pcloud init-db` to report.
    """
    models = (*ALL_MODELS, SchemaMigration)
    changes: list[str] = []
    with database.connection_context(), _schema_lock(database):
        with database.atomic():
            existing_tables = set(database.get_tables())
            for model in models:
                table = model._meta.table_name
                if table not in existing_tables:
                    model.create_table(safe=True)
                    changes.append(f"created table {table}")
                    continue
                changes.extend(_add_missing_columns(database, model))
                changes.extend(_add_missing_indexes(database, model))
        changes.extend(_run_data_migrations(database))
    return changes


# Any 64-bit number no other program on the database uses for an advisory lock: "pcloud".
SCHEMA_LOCK = int.from_bytes(b"pcloud", "big")


@contextmanager
def _schema_lock(database: peewee.Database) -> Iterator[None]:
    """Hold PostgreSQL's advisory lock for the schema while it is compared and changed:
    several nodes starting together on one database take turns, and each after the first
    finds the schema made (without it, two CREATE TABLEs of one name collide in
    pg_type and a node crashes). SQLite needs none: one machine, and its write lock."""
    if not isinstance(database, peewee.PostgresqlDatabase):
        yield
        return
    database.execute_sql("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
    try:
        yield
    finally:
        database.execute_sql("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))


def _add_missing_indexes(database: peewee.Database, model: type[BaseModel]) -> list[str]:
    """Create the model's indexes the table lacks, and only when it lacks one: even a
    `CREATE INDEX IF NOT EXISTS` of an index that exists takes PostgreSQL's SHARE lock
    on the table, and any CLI command next to a live server upgrades the schema, so an
    index statement each time would queue behind uploads (and deadlock with them)."""
    table = model._meta.table_name
    existing = {index.name for index in database.get_indexes(table)}
    missing = [
        index._name for index in model._meta.fields_to_index() if index._name not in existing
    ]
    if not missing:
        return []
    model._schema.create_indexes(safe=True)
    return [f"created index {name}" for name in missing]


def _add_missing_columns(database: peewee.Database, model: type[peewee.Model]) -> list[str]:
    table = model._meta.table_name
    present = {column.name for column in database.get_columns(table)}
    missing = [field for field in model._meta.sorted_fields if field.column_name not in present]
    for field in missing:
        if not field.null and field.default is None:
            raise RuntimeError(
                f"{table}.{field.column_name} is new and NOT NULL without a default; "
                "give it a default or make it nullable"
            )
    if missing:
        migrator = SchemaMigrator.from_database(database)
        migrate(*(migrator.add_column(table, field.column_name, field) for field in missing))
    return [f"added column {table}.{field.column_name}" for field in missing]


def _run_data_migrations(database: peewee.Database) -> list[str]:
    applied = {row.name for row in SchemaMigration.select(SchemaMigration.name)}
    changes = []
    for name, function in DATA_MIGRATIONS:
        if name in applied:
            continue
        with database.atomic():
            function(database)
            SchemaMigration.create(name=name)
        changes.append(f"ran data migration {name}")
    return changes


# --- The data migrations, in the order they run ------------------------------------------


@data_migration("refresh-tokens-get-sessions")
def _give_each_refresh_token_a_session(database: peewee.Database) -> None:
    """Before device sessions, a refresh token stood alone: each live one becomes a session
    of its own, so that the devices signed in before the upgrade stay signed in."""
    now = utc_now()
    legacy = RefreshToken.select().where(
        RefreshToken.session.is_null()
        & RefreshToken.revoked_at.is_null()
        & (RefreshToken.expires_at > now)
    )
    for token in legacy:
        session = DeviceSession.create(
            public_id=secrets.token_urlsafe(12),
            user=token.user_id,
            method="legacy",
            created_at=token.created_at,
            last_seen_at=token.created_at,
            expires_at=token.expires_at,
        )
        RefreshToken.update(session=session.id).where(RefreshToken.id == token.id).execute()


@data_migration("folders-and-content-addressed-blobs")
def _put_files_in_root_folders_and_count_blobs(database: peewee.Database) -> None:
    """Before folders, a user's files were one flat list, unique by (owner, name), and each
    file had bytes of its own. Now each user gets a root folder holding those files, and
    each content one Blob row counting its files; duplicate bytes become orphans for gc."""
    _drop_unique_indexes(database, "stored_file", ({"owner_id", "name"}, {"blob_key"}))
    for (user_id,) in User.select(User.id).tuples():
        root_id = Folder.select(Folder.id).where(Folder.root_of == user_id).scalar()
        if root_id is None:
            root_id = Folder.insert(owner=user_id, name="", root_of=user_id).execute()
        StoredFile.update(folder=root_id).where(
            (StoredFile.owner == user_id)
            & StoredFile.folder.is_null()
            & StoredFile.trashed_at.is_null()
        ).execute()
    known = {sha256 for (sha256,) in Blob.select(Blob.sha256).tuples()}
    rows = StoredFile.select(StoredFile.sha256, StoredFile.blob_key, StoredFile.size).tuples()
    kept: dict[str, tuple[str, int, int]] = {}
    for sha256, key, size in rows.order_by(StoredFile.id):
        if sha256 in known:
            continue
        first_key, first_size, count = kept.get(sha256, (key, size, 0))
        kept[sha256] = (first_key, first_size, count + 1)
    for sha256, (key, size, count) in kept.items():
        Blob.insert(sha256=sha256, store_key=key, size=size, ref_count=count).execute()
        StoredFile.update(blob_key=key).where(StoredFile.sha256 == sha256).execute()
    StoredFile._schema.create_indexes(safe=True)


@data_migration("fewer-indexes-written-per-upload")
def _drop_indexes_that_repeat_others(database: peewee.Database) -> None:
    """Indexes that other indexes made redundant (the owner's, first in two composite
    ones; every trashed_at, where only the set ones are looked up; the folder's and
    (owner, folder, name), which (folder, name) replaces; the blob key's, which only the
    rare healing of lost bytes used): each cost every upload a page written, and its
    copy at the next checkpoint."""
    for name in (
        "stored_file_owner_id",
        "change_owner_id",
        "stored_file_trashed_at",
        "stored_file_folder_id",
        "stored_file_owner_id_folder_id_name",
        "stored_file_blob_key",
    ):
        database.execute_sql(f'DROP INDEX IF EXISTS "{name}"')


@data_migration("listing-sort-keys")
def _give_each_file_its_sort_key(database: peewee.Database) -> None:
    """Files written before StoredFile.sort_key get theirs, a thousand rows at a time (a
    library of a million files is never held in memory at once)."""
    batch = 1000
    last_id = 0
    while True:
        rows = list(
            StoredFile.select(StoredFile.id, StoredFile.name)
            .where(StoredFile.sort_key.is_null() & (StoredFile.id > last_id))
            .order_by(StoredFile.id)
            .limit(batch)
            .tuples()
        )
        if not rows:
            return
        keyed = [StoredFile(id=file_id, sort_key=name_sort_key(name)) for file_id, name in rows]
        StoredFile.bulk_update(keyed, fields=[StoredFile.sort_key], batch_size=batch)
        last_id = rows[-1][0]


@data_migration("content-index-ordered-by-id")
def _drop_the_content_index_without_id(database: peewee.Database) -> None:
    """(owner, sha256, id), made by now, replaces (owner, sha256): each costs every
    upload a page written."""
    database.execute_sql('DROP INDEX IF EXISTS "stored_file_owner_id_sha256"')


def _drop_unique_indexes(database: peewee.Database, table: str, column_sets) -> None:
    for index in database.get_indexes(table):
        if index.unique and set(index.columns) in column_sets:
            database.execute_sql(f'DROP INDEX "{index.name}"')
