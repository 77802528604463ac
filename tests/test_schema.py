"""Upgrading a database made by an older pcloud in place: columns, indexes, data migrations."""

from __future__ import annotations

import peewee
import pytest
from playhouse.migrate import SchemaMigrator, migrate

from pcloud import schema
from pcloud.core import Pcloud
from pcloud.models import AuditEvent, User
from pcloud.services import users


def _drop_column(database: peewee.Database, table: str, column: str) -> None:
    with database.connection_context():
        for index in database.get_indexes(table):
            if column in index.columns:
                database.execute_sql(f'DROP INDEX "{index.name}"')
        migrator = SchemaMigrator.from_database(database)
        migrate(migrator.drop_column(table, column))


def test_a_missing_column_and_its_index_come_back_and_keep_the_rows(pcloud, settings):
    with pcloud.database.connection_context():
        users.create_user(settings, "ada", "ada@example.com", "secret-password")
    _drop_column(pcloud.database, "user", "google_sub")
    with pcloud.database.connection_context():
        assert "google_sub" not in {c.name for c in pcloud.database.get_columns("user")}

    changes = schema.upgrade_schema(pcloud.database)

    assert changes == ["added column user.google_sub"]
    with pcloud.database.connection_context():
        assert User.get(User.username == "ada").google_sub is None
        User.update(google_sub="sub-1").execute()
        with pytest.raises(peewee.IntegrityError), pcloud.database.atomic():
            User.create(username="bob", email="bob@example.com", google_sub="sub-1")
    assert schema.upgrade_schema(pcloud.database) == []


def test_a_missing_index_is_created_and_reported(pcloud):
    with pcloud.database.connection_context():
        pcloud.database.execute_sql('DROP INDEX "stored_file_owner_id_sha256_id"')
    assert schema.upgrade_schema(pcloud.database) == [
        "created index stored_file_owner_id_sha256_id"
    ]
    with pcloud.database.connection_context():
        names = {index.name for index in pcloud.database.get_indexes("stored_file")}
    assert "stored_file_owner_id_sha256_id" in names


def test_the_content_index_without_id_is_replaced_by_the_one_with_it(pcloud):
    """A database made before (owner, sha256, id): the new index is made and the old one,
    which it repeats, dropped."""
    with pcloud.database.connection_context():
        pcloud.database.execute_sql('DROP INDEX "stored_file_owner_id_sha256_id"')
        pcloud.database.execute_sql(
            'CREATE INDEX "stored_file_owner_id_sha256" ON "stored_file" ("owner_id", "sha256")'
        )
        schema.SchemaMigration.delete().where(
            schema.SchemaMigration.name == "content-index-ordered-by-id"
        ).execute()
    assert schema.upgrade_schema(pcloud.database) == [
        "created index stored_file_owner_id_sha256_id",
        "ran data migration content-index-ordered-by-id",
    ]
    with pcloud.database.connection_context():
        names = {index.name for index in pcloud.database.get_indexes("stored_file")}
    assert "stored_file_owner_id_sha256_id" in names
    assert "stored_file_owner_id_sha256" not in names


def test_an_up_to_date_schema_is_left_alone_without_a_lock_on_any_table(pcloud, caplog):
    """Every CLI command upgrades the schema, next to a live server: it must not so much
    as `CREATE INDEX IF NOT EXISTS`, which takes PostgreSQL's SHARE lock on the table
    (blocking uploads, and deadlocking with them)."""
    with caplog.at_level("DEBUG", logger="peewee"):
        assert schema.upgrade_schema(pcloud.database) == []
    statements = [record.getMessage() for record in caplog.records if record.name == "peewee"]
    assert statements, "peewee logs the statements it runs"
    assert not [s for s in statements if "CREATE" in s.upper() or "ALTER" in s.upper()]


def test_a_missing_table_is_created(pcloud):
    with pcloud.database.connection_context():
        pcloud.database.drop_tables([AuditEvent])
    assert schema.upgrade_schema(pcloud.database) == ["created table audit_event"]


def test_a_data_migration_runs_once_and_a_failing_one_changes_nothing(pcloud, monkeypatch):
    calls = []
    monkeypatch.setattr(schema, "DATA_MIGRATIONS", [])

    @schema.data_migration("count-users")
    def count_users(database):
        calls.append(User.select().count())

    assert schema.upgrade_schema(pcloud.database) == ["ran data migration count-users"]
    assert schema.upgrade_schema(pcloud.database) == []
    assert calls == [0]

    @schema.data_migration("half-done")
    def half_done(database):
        User.create(username="ghost", email="ghost@example.com")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        schema.upgrade_schema(pcloud.database)
    with pcloud.database.connection_context():
        assert not User.select().where(User.username == "ghost").exists()
        assert (
            not schema.SchemaMigration.select()
            .where(schema.SchemaMigration.name == "half-done")
            .exists()
        )

    with pytest.raises(ValueError):
        schema.data_migration("count-users")(count_users)


def test_init_db_reports_what_it_upgraded(runner, settings):
    instance = Pcloud.open(settings)
    _drop_column(instance.database, "user", "google_sub")
    instance.close()

    result = runner.invoke("init-db")

    assert result.exit_code == 0, result.output
    assert "added column user.google_sub" in result.output


def test_the_indexes_that_repeated_others_are_dropped_and_queries_keep_an_index(pcloud):
    """Before, the owner columns and every trashed_at had indexes of their own, which each
    upload wrote; they go, and the trash and a user's files are still found by index."""
    database = pcloud.database
    old = {
        "stored_file_owner_id": 'ON "stored_file" ("owner_id")',
        "change_owner_id": 'ON "change" ("owner_id")',
        "stored_file_trashed_at": 'ON "stored_file" ("trashed_at")',
        "stored_file_folder_id": 'ON "stored_file" ("folder_id")',
        "stored_file_owner_id_folder_id_name": 'ON "stored_file" ("owner_id", "folder_id", "name")',
        "stored_file_blob_key": 'ON "stored_file" ("blob_key")',
    }
    with database.connection_context():
        for name, target in old.items():
            database.execute_sql(f'CREATE INDEX "{name}" {target}')
        schema.SchemaMigration.delete().where(
            schema.SchemaMigration.name == "fewer-indexes-written-per-upload"
        ).execute()

    assert schema.upgrade_schema(pcloud.database) == [
        "ran data migration fewer-indexes-written-per-upload"
    ]
    with database.connection_context():
        names = {
            index.name
            for table in ("stored_file", "change")
            for index in database.get_indexes(table)
        }
        assert not names & set(old)
        assert {"stored_file_trashed", "stored_file_folder_id_name"} <= names
        if isinstance(database, peewee.SqliteDatabase):
            plan = " ".join(
                str(row)
                for row in database.execute_sql(
                    "EXPLAIN QUERY PLAN SELECT id FROM stored_file"
                    " WHERE owner_id = 1 AND trashed_at IS NOT NULL"
                ).fetchall()
            )
            assert "USING INDEX" in plan, plan
