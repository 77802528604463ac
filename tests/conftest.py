"""Fixtures: settings, pcloud, app, client, runner, auth — the same app `pcloud serve` runs.

The database is chosen by PCLOUD_TEST_DATABASE: `sqlite` (default) or `postgresql`
(the server at PCLOUD_TEST_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/test).
Every PostgreSQL test gets a schema of its own and drops it afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
from typer.testing import CliRunner

from pcloud.api import create_app
from pcloud.cli import app as cli_app
from pcloud.config import Settings
from pcloud.core import Pcloud
from tests.seaweedfs import s3_bucket, s3_engine  # noqa: F401 (fixtures: a real S3 engine)

TEST_DATABASE = os.environ.get("PCLOUD_TEST_DATABASE", "sqlite")
POSTGRES_URL = os.environ.get(
    "PCLOUD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
# Cheap hashing keeps the suite fast; production uses werkzeug's scrypt default.
TEST_PASSWORD_HASH = "scrypt:1024:8:1"


def pytest_report_header() -> str:
    return f"pcloud test database: {TEST_DATABASE}"


def _postgres_admin():
    import psycopg2

    connection = psycopg2.connect(POSTGRES_URL)
    connection.autocommit = True
    return connection


@contextmanager
def fresh_database_url(folder: Path) -> Iterator[str]:
    """A new, empty database (SQLite in folder, or a PostgreSQL schema), dropped afterwards."""
    if TEST_DATABASE == "sqlite":
        yield f"sqlite:///{folder / 'pcloud.db'}"
        return
    if TEST_DATABASE != "postgresql":
        raise pytest.UsageError("PCLOUD_TEST_DATABASE must be sqlite or postgresql")
    schema = f"pcloud_test_{uuid.uuid4().hex[:12]}"
    admin = _postgres_admin()
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{POSTGRES_URL}?options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database for one test."""
    with fresh_database_url(tmp_path) as url:
        yield url


def make_settings(folder: Path, database_url: str, **changes) -> Settings:
    values = {
        "data_dir": folder,
        "database_url": database_url,
        "upload_folder": folder / "files",
        "secret_key": "test-secret-key-that-is-long-enough",
        "password_hash": TEST_PASSWORD_HASH,
        "max_upload_size": 8 * 1024 * 1024,
        "tus_max_chunk": 1024 * 1024,
        **changes,
    }
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


# Given on `pcloud serve`'s command line by the tests that start it (tests.served).
COMMAND_LINE_FIELDS = {"host", "port", "workers", "threads"}


def settings_environment(settings: Settings) -> dict[str, str]:
    """Environment variables that make a `pcloud` process use these settings: the paths
    and keys always, and every other option whose value is not its default."""
    from pcloud.config import OPTIONS

    changed = {}
    for option in OPTIONS:
        if option.field in COMMAND_LINE_FIELDS or option.default is None:
            continue
        value = getattr(settings, option.field)
        if value == option.parse(option.default):
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, tuple):
            text = ",".join(value)
        else:
            text = str(value)
        assert option.parse(text) == value, f"{option.env}={text!r} does not read back"
        changed[option.env] = text
    return changed | {
        "PCLOUD_DATA_DIR": str(settings.data_dir),
        "DATABASE_URL": settings.database_url,
        "UPLOAD_FOLDER": str(settings.upload_folder),
        "SECRET_KEY": settings.secret_key,
        "PASSWORD_HASH": settings.password_hash,
        "MAX_UPLOAD_SIZE": str(settings.max_upload_size),
        "TUS_MAX_CHUNK": str(settings.tus_max_chunk),
        "TUS_EXPIRATION": str(settings.tus_expiration),
        "GOOGLE_CLIENT_ID": settings.google_client_id,
        "GOOGLE_CERTS_URL": settings.google_certs_url,
    }


@pytest.fixture
def pcloud(settings: Settings) -> Iterator[Pcloud]:
    instance = Pcloud.open(settings)
    yield instance
    instance.close()


@pytest.fixture
def app(pcloud: Pcloud):
    application = create_app(pcloud=pcloud)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app):
    return app.test_client()


class Runner:
    """Typer's CliRunner on the real `pcloud` command, configured like the test's app."""

    def __init__(self, settings: Settings, cwd: Path) -> None:
        self.settings = settings
        self.cwd = cwd
        self.runner = CliRunner()

    def invoke(self, *args: str, input: str | None = None, env: dict | None = None):
        environment = {**settings_environment(self.settings), **(env or {})}
        previous = Path.cwd()
        os.chdir(self.cwd)  # so no developer's .env is read
        try:
            return self.runner.invoke(cli_app, list(args), input=input, env=environment)
        finally:
            os.chdir(previous)


@pytest.fixture
def runner(settings: Settings, tmp_path: Path, pcloud: Pcloud) -> Runner:
    workdir = tmp_path / "cwd"
    workdir.mkdir(exist_ok=True)
    return Runner(settings, workdir)


class AuthActions:
    """Register, sign in and make authenticated requests."""

    def __init__(self, client) -> None:
        self.client = client

    def register(self, username="ann", email=None, password="correct horse battery"):
        email = email or f"{username}@example.org"
        return self.client.post(
            "/register", json={"username": username, "email": email, "password": password}
        )

    def login(self, identifier="ann", password="correct horse battery"):
        return self.client.post(
            "/login", json={"login_identifier": identifier, "password": password}
        )

    def tokens(self, username="ann", password="correct horse battery") -> dict:
        """Register (if needed) and sign in; the login answer's JSON."""
        self.register(username, password=password)
        response = self.login(username, password)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def headers(self, username="ann") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens(username)['access_token']}"}


@pytest.fixture
def auth(client) -> AuthActions:
    return AuthActions(client)


@pytest.fixture
def headers(auth) -> dict[str, str]:
    """The Authorization header of a fresh user, ann (registered and signed in)."""
    return auth.headers()


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    """`pcloud serve` as a process (two workers) for the tests of one module, on a fresh
    database. A module changes its settings with SERVER_SETTINGS (make_settings' keyword
    arguments), its environment with SERVER_ENV and its worker count with SERVER_WORKERS."""
    from tests.served import Server, start_server, stop_server

    folder = tmp_path_factory.mktemp("served")
    with fresh_database_url(folder) as url:
        served_settings = make_settings(
            folder, url, **getattr(request.module, "SERVER_SETTINGS", {})
        )
        process, address = start_server(
            served_settings,
            getattr(request.module, "SERVER_ENV", None),
            workers=getattr(request.module, "SERVER_WORKERS", 2),
        )
        try:
            yield Server(process, address, served_settings)
        finally:
            stop_server(process)
