"""The `pcloud` command through Typer's CliRunner, on the same database as the test's app."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pcloud import __version__
from pcloud.cli.common import USING
from pcloud.errors import ConfigError
from pcloud.models import User
from pcloud.services import users

# rich sizes tables to the terminal, found through the real fds 0-2 whatever the runner
# captures; COLUMNS pins the width to what cron or a pipe without a terminal gets.
NO_TERMINAL = {"COLUMNS": "80"}


def upload(client, headers, name: str, content: bytes):
    response = client.post("/upload", headers=headers, data={"file": (io.BytesIO(content), name)})
    assert response.status_code == 201, response.get_json()
    return response


def blob_files(settings) -> list[Path]:
    return [path for path in (settings.upload_folder / "blobs").rglob("*") if path.is_file()]


def table_rows(output: str) -> list[list[str]]:
    """The cells of each body row of a rich table (the rows that start with an ID)."""
    rows = []
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells and cells[0].isdigit():
            rows.append(cells)
    return rows


def assert_one_line_error(result, exit_code: int) -> str:
    """The command failed with exit_code and said why in one line, without a traceback
    (besides the line saying which data folder and database it used)."""
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if not line.startswith(USING)]
    assert len(lines) == 1, result.output
    return lines[0]


# --- The command itself -----------------------------------------------------------------


def test_version_prints_the_version(runner):
    result = runner.invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"pcloud {__version__}"


def test_help_lists_the_commands(runner):
    result = runner.invoke("--help")
    assert result.exit_code == 0
    for command in ("serve", "init-db", "users", "files"):
        assert command in result.output


def test_init_db_is_safe_to_run_twice(runner):
    for _ in range(2):
        result = runner.invoke("init-db")
        assert result.exit_code == 0, result.output
        assert "Database ready" in result.output


# --- users create -----------------------------------------------------------------------


def test_a_created_user_can_sign_in_through_the_api(runner, auth):
    result = runner.invoke(
        "users", "create", "bob", "--email", "Bob@Example.org", "--password", "s3cret-password"
    )
    assert result.exit_code == 0, result.output
    assert "bob" in result.output
    assert auth.login("bob", "s3cret-password").status_code == 200
    assert auth.login("bob@example.org", "s3cret-password").status_code == 200


def test_users_create_asks_for_the_password_twice_when_not_given(runner, auth):
    result = runner.invoke(
        "users",
        "create",
        "bob",
        "--email",
        "bob@example.org",
        input="pw-long-enough\npw-long-enough\n",
    )
    assert result.exit_code == 0, result.output
    assert "pw-long-enough" not in result.output  # hidden input
    assert auth.login("bob", "pw-long-enough").status_code == 200


def test_users_create_with_a_taken_username_is_one_line_exit_1(runner, auth):
    auth.register("bob")
    result = runner.invoke(
        "users", "create", "bob", "--email", "other@example.org", "--password", "pw-long-enough"
    )
    line = assert_one_line_error(result, 1)
    assert "Username already exists" in line
    assert User.select().count() == 1


def test_users_create_with_a_bad_email_is_one_line_exit_1(runner):
    result = runner.invoke(
        "users", "create", "bob", "--email", "nope", "--password", "pw-long-enough"
    )
    assert "email" in assert_one_line_error(result, 1)


# --- users list -------------------------------------------------------------------------


def test_users_list_shows_each_user_with_their_files_and_bytes(runner, client, auth, settings):
    headers = auth.headers("ann")
    upload(client, headers, "a.txt", b"a" * 300)
    upload(client, headers, "b.txt", b"b" * 200)
    auth.register("bob")
    users.create_user(settings, "gina", "gina@example.org", None, google_sub="google-123")
    result = runner.invoke("users", "list", env=NO_TERMINAL)
    assert result.exit_code == 0, result.output
    rows = {cells[1]: cells for cells in table_rows(result.output)}
    assert set(rows) == {"ann", "bob", "gina"}, result.output
    # ID, Username, Email, Google, Status, Files, Used, Quota, Created
    assert rows["ann"][2:8] == ["ann@example.org", "no", "active", "2", "500 bytes", "none"]
    assert rows["bob"][2:8] == ["bob@example.org", "no", "active", "0", "0 bytes", "none"]
    assert rows["gina"][2:8] == ["gina@example.org", "yes", "active", "0", "0 bytes", "none"]
    assert "3 user(s)" in result.output


def test_users_list_shows_long_usernames_and_emails_whole(runner, auth):
    auth.register("ann")
    auth.register("gina_with_a_long_name", email="gina.with.a.very.long.email@example.org")
    result = runner.invoke("users", "list", env=NO_TERMINAL)
    assert result.exit_code == 0
    for text in (
        "ann@example.org",
        "gina_with_a_long_name",
        "gina.with.a.very.long.email@example.org",
    ):
        assert text in result.output, result.output


def test_users_list_of_no_users_is_an_empty_table(runner):
    result = runner.invoke("users", "list")
    assert result.exit_code == 0
    assert "0 user(s)" in result.output


# --- users passwd -----------------------------------------------------------------------


def test_users_passwd_replaces_the_password_and_revokes_refresh_tokens(runner, client, auth):
    old = auth.tokens("ann")
    result = runner.invoke("users", "passwd", "ann", "--password", "new password")
    assert result.exit_code == 0, result.output
    assert auth.login("ann").status_code == 401
    assert auth.login("ann", "new password").status_code == 200
    refresh = client.post("/token/refresh", json={"refresh_token": old["refresh_token"]})
    assert refresh.status_code == 401


def test_users_passwd_of_an_unknown_user_is_one_line_exit_1(runner):
    result = runner.invoke("users", "passwd", "nobody", "--password", "pw-long-enough")
    assert "nobody" in assert_one_line_error(result, 1)


# --- users delete -----------------------------------------------------------------------


def test_users_delete_answered_no_keeps_the_user(runner, auth):
    auth.register("ann")
    result = runner.invoke("users", "delete", "ann", input="n\n")
    assert result.exit_code == 1
    assert "Delete user 'ann'" in result.output
    assert User.select().where(User.username == "ann").exists()


def test_users_delete_answered_yes_deletes_the_user(runner, auth):
    auth.register("ann")
    result = runner.invoke("users", "delete", "ann", input="y\n")
    assert result.exit_code == 0, result.output
    assert not User.select().where(User.username == "ann").exists()


def test_users_delete_with_yes_does_not_ask(runner, auth):
    auth.register("ann")
    result = runner.invoke("users", "delete", "ann", "--yes")
    assert result.exit_code == 0, result.output
    assert "Delete user" not in result.output
    assert not User.select().where(User.username == "ann").exists()


def test_users_delete_removes_the_users_blobs_from_disk(runner, client, auth, settings):
    upload(client, auth.headers("ann"), "a.txt", b"ann's")
    upload(client, auth.headers("ann"), "b.txt", b"more of ann's")
    upload(client, auth.headers("bob"), "c.txt", b"bob's")
    assert len(blob_files(settings)) == 3
    result = runner.invoke("users", "delete", "ann@example.org", "--yes")
    assert result.exit_code == 0, result.output
    assert "2 file(s)" in result.output
    [remaining] = blob_files(settings)
    assert remaining.read_bytes() == b"bob's"


def test_users_delete_of_an_unknown_user_is_one_line_exit_1(runner):
    result = runner.invoke("users", "delete", "nobody", "--yes")
    assert "nobody" in assert_one_line_error(result, 1)


# --- Errors at the edge -----------------------------------------------------------------


@pytest.mark.parametrize(
    "unusable_url",
    [
        pytest.param("sqlite:////proc/no-such-dir/pcloud.db", id="sqlite-uncreatable"),
        pytest.param("postgresql://127.0.0.1:1/pcloud", id="postgresql-refused"),
        pytest.param("mysql://127.0.0.1/pcloud", id="unsupported-scheme"),
    ],
)
def test_a_database_that_cannot_be_opened_is_one_line_exit_3(runner, unusable_url):
    result = runner.invoke("users", "list", env={"DATABASE_URL": unusable_url})
    line = assert_one_line_error(result, 3)
    assert "database" in line.lower() or "DATABASE_URL" in line


def test_a_bad_setting_is_exit_3_naming_the_option(runner):
    result = runner.invoke("users", "list", env={"MAX_UPLOAD_SIZE": "lots"})
    line = assert_one_line_error(result, 3)
    assert "MAX_UPLOAD_SIZE" in line
    assert "environment" in line


def test_debug_lets_the_error_and_its_traceback_through(runner):
    result = runner.invoke("--debug", "users", "list", env={"MAX_UPLOAD_SIZE": "lots"})
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    assert result.exc_info[2] is not None  # the traceback goes with it


def test_serve_on_a_port_in_use_is_a_usage_error_naming_the_port(runner):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = runner.invoke("serve", "--host", "127.0.0.1", "--port", port)
    assert result.exit_code == 2, result.output
    assert "--port" in result.output and "Unexpected error" not in result.output


def test_the_env_file_option_is_read(runner, tmp_path):
    env_file = tmp_path / "other.env"
    env_file.write_text("PCLOUD_THREADS=none\n")
    result = runner.invoke("--env-file", str(env_file), "users", "list")
    line = assert_one_line_error(result, 3)
    assert "PCLOUD_THREADS" in line and str(env_file) in line


def test_users_delete_removes_the_users_unfinished_tus_uploads(runner, client, auth, settings):
    from tests.tus_helpers import unfinished_upload

    upload_id = unfinished_upload(client, auth.headers())
    assert runner.invoke("users", "delete", "ann", "--yes").exit_code == 0
    assert not (settings.upload_folder / "resumable" / upload_id).exists()


def test_a_command_imports_its_own_module_not_the_others(tmp_path):
    """`pcloud backup` starts without the server, the thumbnailer or Google sign-in (a
    tenth of a second of every command's start): subcommands load lazily."""
    script = (
        "import json, os, sys\n"
        "from pcloud.cli import app\n"
        "try:\n"
        "    app(['--env-file', os.devnull, 'backup', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('pcloud'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "pcloud.cli.backup" in loaded
    for module in (
        "pcloud.cli.serve",
        "pcloud.cli.files",
        "pcloud.server",
        "pcloud.api",
        "pcloud.services.thumbnails",
        "pcloud.services.google",
    ):
        assert module not in loaded, module
