"""The admin's command line never misleads: names print as they are, the wrong folder is
refused rather than made into a new server, configuration mistakes are said in one line,
and the banner tells a home server's admin what the phone needs."""

from __future__ import annotations

import re
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pcloud.cli import app as cli_app
from pcloud.cli.common import USING
from pcloud.cli.network import machine_addresses
from pcloud.config import OPTIONS
from pcloud.models import AuditEvent, User
from pcloud.services import gc
from tests.test_cli import NO_TERMINAL, assert_one_line_error, blob_files, table_rows, upload

PASSWORD = "long enough pw"


def stderr_lines(result) -> list[str]:
    return result.stderr.strip().splitlines()


@pytest.fixture
def bare(tmp_path, monkeypatch):
    """Runs `pcloud` in an empty folder, with no pcloud setting in the environment."""
    folder = tmp_path / "empty"
    folder.mkdir()
    monkeypatch.chdir(folder)
    for option in OPTIONS:
        monkeypatch.delenv(option.env, raising=False)
    cli = CliRunner()

    def invoke(*args: str, env: dict | None = None, input: str | None = None):
        return cli.invoke(cli_app, list(args), env=env, input=input)

    invoke.folder = folder
    return invoke


@pytest.fixture
def serve_banner(runner, monkeypatch):
    """`pcloud serve` in this process up to its banner: the workers are not started."""
    monkeypatch.setattr("pcloud.server.run", lambda *arguments: None)

    def invoke(*args: str, env: dict | None = None):
        return runner.invoke("serve", "--port", "0", *args, env={**NO_TERMINAL, **(env or {})})

    return invoke


# --- Data printed through rich stays text -----------------------------------------------


def test_users_list_shows_a_name_with_brackets_as_it_is(runner, auth):
    auth.register("ann")
    auth.register("ann[x]", email="annx@example.org")
    result = runner.invoke("users", "list", env=NO_TERMINAL)
    assert result.exit_code == 0, result.output
    assert sorted(cells[1] for cells in table_rows(result.output)) == ["ann", "ann[x]"]


def test_users_create_says_the_name_it_created(runner):
    result = runner.invoke(
        "users", "create", "x[y]", "--email", "x@example.org", "--password", PASSWORD
    )
    assert result.exit_code == 0, result.output
    assert "Created user x[y] (id" in result.stdout
    assert User.get(User.email == "x@example.org").username == "x[y]"


def test_users_passwd_names_the_user_it_did_not_find_as_typed(runner, auth):
    auth.register("bob")
    result = runner.invoke("users", "passwd", "[bold]bob", "--password", PASSWORD)
    assert "No user '[bold]bob'" in assert_one_line_error(result, 1)


def test_users_passwd_says_whose_password_changed(runner, auth):
    auth.register("x[y]", email="x@example.org")
    result = runner.invoke("users", "passwd", "x[y]", "--password", "another long one")
    assert result.exit_code == 0, result.output
    assert "Password of x[y] changed" in result.stdout


def test_users_delete_says_whom_it_deleted(runner, auth):
    auth.register("x[y]", email="x@example.org")
    result = runner.invoke("users", "delete", "x[y]", "--yes")
    assert result.exit_code == 0, result.output
    assert "Deleted user x[y] and 0 file(s)" in result.stdout


def test_users_sessions_and_revoke_show_names_and_devices_as_they_are(runner, client, auth):
    auth.register("x[y]", email="x@example.org")
    signed_in = client.post(
        "/login",
        json={
            "login_identifier": "x[y]",
            "password": "correct horse battery",
            "device_name": "[red]phone[/red]",
        },
    )
    assert signed_in.status_code == 200
    listed = runner.invoke("users", "sessions", "x[y]", env=NO_TERMINAL)
    assert listed.exit_code == 0, listed.output
    assert "session(s) of x[y]" in listed.stdout
    assert "[red]phone[/red]" in listed.stdout
    revoked = runner.invoke("users", "revoke", "x[y]", "--all")
    assert "Revoked 1 session(s) of x[y]" in revoked.stdout


def test_users_disable_enable_and_set_quota_name_the_user_as_typed(runner, auth):
    auth.register("x[y]", email="x@example.org")
    assert "Disabled x[y];" in runner.invoke("users", "disable", "x[y]").stdout
    assert "Enabled x[y];" in runner.invoke("users", "enable", "x[y]").stdout
    quota = runner.invoke("users", "set-quota", "x[y]", "1GiB")
    assert "Quota of x[y]: 1 GiB (0 bytes used)" in quota.stdout


def test_audit_shows_names_as_they_are(runner, auth):
    auth.register("x[y]", email="x@example.org")
    result = runner.invoke("audit", "--user", "x[y]", env=NO_TERMINAL)
    assert result.exit_code == 0, result.output
    assert "x[y]" in result.stdout


def test_files_gc_and_verify_show_file_names_as_they_are(runner, client, auth, settings):
    headers = auth.headers("x[y]")
    upload(client, headers, "[bold]gone.txt", b"bytes that will go missing")
    upload(client, headers, "[i]rotten.txt", b"bytes that will rot")
    gone, rotten = sorted(blob_files(settings), key=lambda path: path.read_bytes())
    gone.unlink()
    rotten.write_bytes(b"bytes that have rotted")
    verified = runner.invoke("files", "verify", env=NO_TERMINAL)
    assert verified.exit_code == 1
    assert "x[y]: [i]rotten.txt" in verified.stdout
    collected = runner.invoke("files", "gc", "--dry-run", env=NO_TERMINAL)
    assert collected.exit_code == 0, collected.output
    assert "x[y]: [bold]gone.txt" in collected.stdout


def test_the_postgresql_driver_hint_keeps_its_brackets(runner, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg2", None)  # as if not installed
    result = runner.invoke("users", "list", env={"DATABASE_URL": "postgresql://127.0.0.1/x"})
    assert "pip install 'pcloud[postgres]'" in assert_one_line_error(result, 3)


# --- Only serve and init-db make a data folder or database ------------------------------

COMMANDS_THAT_NEED_A_SERVER = [
    ["users", "list"],
    ["users", "create", "bob", "--email", "bob@example.org", "--password", PASSWORD],
    ["users", "passwd", "bob", "--password", PASSWORD],
    ["users", "delete", "bob", "--yes"],
    ["users", "sessions", "bob"],
    ["users", "revoke", "bob", "--all"],
    ["users", "disable", "bob"],
    ["users", "enable", "bob"],
    ["users", "set-quota", "bob", "1GiB"],
    ["files", "gc"],
    ["files", "verify"],
    ["audit"],
]


@pytest.mark.parametrize("command", COMMANDS_THAT_NEED_A_SERVER, ids=" ".join)
def test_a_command_run_in_the_wrong_folder_refuses_and_creates_nothing(bare, command):
    result = bare(*command)
    line = assert_one_line_error(result, 3)
    assert f"No pcloud data folder at {bare.folder / 'pcloud-data'}" in line
    assert "PCLOUD_DATA_DIR" in line
    assert list(bare.folder.iterdir()) == []


def test_a_database_url_to_a_missing_folder_is_refused_and_not_created(bare, tmp_path):
    url = f"sqlite:///{tmp_path / 'nonexistent' / 'dir' / 'x.db'}"
    result = bare("users", "list", env={"DATABASE_URL": url, "SECRET_KEY": "k" * 40})
    line = assert_one_line_error(result, 3)
    assert f"No pcloud database at {tmp_path / 'nonexistent' / 'dir' / 'x.db'}" in line
    assert "DATABASE_URL from the environment" in line
    assert not (tmp_path / "nonexistent").exists()


def test_an_empty_database_is_refused_not_filled_with_tables(bare, database_url):
    """SQLite: a file that is not there; PostgreSQL: a schema without pcloud's tables."""
    env = {"DATABASE_URL": database_url, "SECRET_KEY": "k" * 40}
    result = bare("users", "list", env=env)
    line = assert_one_line_error(result, 3)
    assert "No pcloud" in line and "init-db" in line
    assert bare("init-db", env=env).exit_code == 0
    again = bare("users", "list", env=env)
    assert again.exit_code == 0, again.output
    assert "0 user(s)" in again.stdout


def test_init_db_makes_a_private_data_folder_and_database(bare):
    result = bare("init-db")
    assert result.exit_code == 0, result.output
    data = bare.folder / "pcloud-data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert bare("users", "create", "ann", "--email", "a@example.org", "--password", PASSWORD)
    for name in ("pcloud.db", "pcloud.db-wal", "pcloud.db-shm", "secret_key"):
        path = data / name
        if name.endswith(("-wal", "-shm")) and not path.exists():
            continue  # checkpointed away at close
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name


def test_an_older_pclouds_readable_database_is_made_private(bare):
    assert bare("init-db").exit_code == 0
    data = bare.folder / "pcloud-data"
    data.chmod(0o755)
    (data / "pcloud.db").chmod(0o644)
    assert bare("users", "list").exit_code == 0
    assert stat.S_IMODE(data.stat().st_mode) == 0o755  # only serve and init-db touch it
    assert stat.S_IMODE((data / "pcloud.db").stat().st_mode) == 0o600
    assert bare("init-db").exit_code == 0
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


def test_init_db_makes_the_data_folder_private_with_a_configured_secret_key_too(bare):
    data = bare.folder / "pcloud-data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    assert bare("init-db", env={"SECRET_KEY": "k" * 40}).exit_code == 0
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert not (data / "secret_key").exists()


@pytest.mark.parametrize(
    "command", [["users", "list"], ["audit"], ["files", "gc", "--dry-run"], ["init-db"]]
)
def test_every_command_says_on_stderr_which_data_folder_and_database_it_used(
    runner, settings, command
):
    result = runner.invoke(*command)
    assert result.exit_code == 0, result.output
    [used] = [line for line in stderr_lines(result) if line.startswith(USING)]
    assert str(settings.data_dir) in used
    assert settings.database_url.split("?")[0] in used
    assert USING not in result.stdout


# --- Configuration mistakes -------------------------------------------------------------


def test_a_misspelled_setting_in_dotenv_is_warned_with_the_closest_name(runner):
    (runner.cwd / ".env").write_text("PCLOUD_DATADIR=/srv/pcloud\n")
    result = runner.invoke("users", "list")
    assert result.exit_code == 0, result.output
    warnings = [line for line in stderr_lines(result) if line.startswith("Warning:")]
    assert warnings == [
        f"Warning: PCLOUD_DATADIR in .env ({runner.cwd / '.env'}) is not a pcloud setting "
        "(ignored): did you mean PCLOUD_DATA_DIR?"
    ]


def test_a_missing_env_file_named_on_the_command_line_is_refused(runner):
    result = runner.invoke("--env-file", "/no/such/pcloud.env", "users", "list")
    line = assert_one_line_error(result, 2)
    assert "--env-file /no/such/pcloud.env: no such file" in line


def test_a_port_that_is_not_a_number_is_said_in_one_line(runner):
    result = runner.invoke("users", "list", env={"PCLOUD_PORT": "abc"})
    line = assert_one_line_error(result, 3)
    assert line == (
        "Error: PCLOUD_PORT='abc' from the environment: expected a port number from 0 to 65535."
    )


@pytest.mark.parametrize(
    ("flag", "value"), [("--port", "70000"), ("--port", "abc"), ("--workers", "0")]
)
def test_a_bad_serve_flag_is_one_line_exit_2(serve_banner, flag, value):
    result = serve_banner(flag, value)
    line = assert_one_line_error(result, 2)
    assert line.startswith(f"Error: {flag} {value}: expected")


def test_an_unusable_files_folder_stops_serve_in_one_line_exit_3(serve_banner, tmp_path):
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    result = serve_banner(env={"UPLOAD_FOLDER": str(not_a_folder / "files")})
    line = assert_one_line_error(result, 3)
    assert "UPLOAD_FOLDER from the environment" in line and "Not a directory" in line


@pytest.fixture
def taken_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_a_busy_port_from_dotenv_is_blamed_on_dotenv(runner, monkeypatch, taken_port):
    (runner.cwd / ".env").write_text(f"PCLOUD_HOST=127.0.0.1\nPCLOUD_PORT={taken_port}\n")
    result = runner.invoke("serve")
    line = assert_one_line_error(result, 3)
    assert f"(PCLOUD_PORT from .env ({runner.cwd / '.env'}))" in line
    assert "--port" not in line


def test_a_busy_port_from_the_command_line_is_blamed_on_the_flag(runner, taken_port):
    result = runner.invoke("serve", "--host", "127.0.0.1", "--port", str(taken_port))
    line = assert_one_line_error(result, 2)
    assert "(--port)" in line and "Address already in use" in line


def test_a_flag_left_out_leaves_the_setting_alone(serve_banner):
    result = serve_banner("--host", "127.0.0.1", env={"PCLOUD_THREADS": "3"})
    assert result.exit_code == 0, result.output
    assert "x 3 threads" in result.stdout


# --- The banner -------------------------------------------------------------------------


def interface_addresses() -> set[str]:
    """This machine's IPv4 addresses as `ip` (iproute2) sees them, where it is installed."""
    ip = shutil.which("ip")
    if ip is None:
        pytest.skip("no `ip` command to compare with")
    listing = subprocess.run([ip, "-o", "-4", "addr", "show", "up"], capture_output=True, text=True)
    return set(re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", listing.stdout))


def test_on_every_interface_the_banner_lists_every_address_of_the_machine(serve_banner):
    result = serve_banner()
    assert result.exit_code == 0, result.output
    port = re.search(r"serving on http://0\.0\.0\.0:(\d+)", result.stdout).group(1)
    listed = set(re.findall(rf"http://(\d+\.\d+\.\d+\.\d+):{port}\b", result.stdout))
    assert "127.0.0.1" in listed
    assert interface_addresses() <= listed
    assert set(machine_addresses(ipv6=False)) <= listed


def test_the_banner_says_which_dotenv_it_read(serve_banner, runner):
    (runner.cwd / ".env").write_text("TRASH_DAYS=7\n")
    result = serve_banner()
    assert f"Settings file:  {runner.cwd / '.env'}" in result.stdout


def test_the_banner_says_when_no_dotenv_was_read(serve_banner, runner):
    result = serve_banner()
    assert f"Settings file:  none (no {runner.cwd / '.env'})" in result.stdout


def test_the_banner_warns_of_open_registration_on_a_public_interface(serve_banner):
    result = serve_banner()
    assert "Registration:   open (anyone" in result.stdout
    assert "Warning: registration is open on a public interface" in result.stdout


@pytest.mark.parametrize(
    ("args", "env", "mode"),
    [
        (["--host", "127.0.0.1"], {}, "open (anyone"),
        ([], {"REGISTRATION": "closed"}, "closed"),
        ([], {"REGISTRATION_EMAILS": "*@family.example"}, "open to *@family.example"),
    ],
)
def test_the_banner_does_not_warn_when_registration_is_closed_limited_or_local(
    serve_banner, args, env, mode
):
    result = serve_banner(*args, env=env)
    assert result.exit_code == 0, result.output
    assert f"Registration:   {mode}" in result.stdout
    assert "Warning" not in result.stdout


# --- The password policy on the command line --------------------------------------------


@pytest.mark.parametrize(
    ("password", "says"),
    [("short", "at least 8 characters"), ("bob@example.org", "may not be the username")],
)
def test_users_create_and_passwd_follow_the_password_policy(runner, auth, password, says):
    created = runner.invoke(
        "users", "create", "bob", "--email", "bob@example.org", "--password", password
    )
    assert says in assert_one_line_error(created, 1)
    assert not User.select().where(User.username == "bob").exists()
    auth.register("ann")
    changed = runner.invoke("users", "passwd", "ann", "--password", password.replace("bob", "ann"))
    assert says in assert_one_line_error(changed, 1)
    assert auth.login("ann").status_code == 200


def test_users_create_works_while_registration_is_closed(runner, auth):
    env = {"REGISTRATION": "closed"}
    result = runner.invoke(
        "users", "create", "bob", "--email", "bob@example.org", "--password", PASSWORD, env=env
    )
    assert result.exit_code == 0, result.output


# --- Smaller things ---------------------------------------------------------------------


def test_disabling_a_disabled_user_says_so_and_audits_nothing(runner, auth):
    auth.register("ann")
    assert runner.invoke("users", "disable", "ann").exit_code == 0
    events = AuditEvent.select().count()
    again = runner.invoke("users", "disable", "ann")
    assert again.exit_code == 0, again.output
    assert "ann is already disabled; nothing changed." in again.stdout
    assert AuditEvent.select().count() == events
    assert runner.invoke("users", "enable", "ann").exit_code == 0
    enabled_again = runner.invoke("users", "enable", "ann")
    assert "ann is not disabled; nothing changed." in enabled_again.stdout
    assert AuditEvent.select().count() == events + 1


def test_users_list_shows_each_users_quota(runner, auth):
    auth.register("ann")
    auth.register("bob")
    assert runner.invoke("users", "set-quota", "ann", "1536MiB").exit_code == 0
    result = runner.invoke("users", "list", env=NO_TERMINAL)
    quotas = {cells[1]: cells[7] for cells in table_rows(result.output)}
    assert quotas == {"ann": "1.5 GiB", "bob": "none"}


def test_files_gc_shows_a_progress_bar(runner, client, auth):
    upload(client, auth.headers(), "a.txt", b"a")
    result = runner.invoke("files", "gc", "--dry-run", env=NO_TERMINAL)
    assert result.exit_code == 0, result.output
    assert re.search(r"Scanned ━+ 1/1", result.stdout), result.stdout


def test_find_garbage_reports_each_scan_and_its_progress(pcloud, client, auth):
    headers = auth.headers()
    for name in ("a.txt", "b.txt"):
        upload(client, headers, name, name.encode())
    stages, steps = [], []
    gc.find_garbage(pcloud.blobs, progress=lambda *step: steps.append(step), stage=stages.append)
    assert stages == [
        "Reading the database",
        "Scanning blobs",
        "Scanning partial uploads",
        "Scanning resumable uploads",
    ]
    assert steps == [(1, 2), (2, 2)]


# --- Running as a service ---------------------------------------------------------------

HARDENING = (
    "User=pcloud",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "ReadWritePaths=/var/lib/pcloud",
    "StateDirectoryMode=0700",
    "CapabilityBoundingSet=",
    "SystemCallFilter=@system-service",
    "UMask=0077",
)


def test_the_systemd_unit_runs_this_pcloud_hardened(bare):
    result = bare("systemd-unit")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for setting in HARDENING:
        assert setting in lines, setting
    assert f"ExecStart={Path(sys.executable).parent / 'pcloud'} serve" in lines
    assert list(bare.folder.iterdir()) == []  # prints, opens nothing


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
@pytest.mark.parametrize("data_dir", ["/var/lib/pcloud", "/srv/pcloud"])
def test_the_systemd_unit_passes_systemd_analyze_verify(bare, tmp_path, data_dir):
    unit = tmp_path / "pcloud.service"
    unit.write_text(bare("systemd-unit", "--data-dir", data_dir).stdout)
    verified = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr.strip() == "", verified.stderr  # unknown keys are only warned


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_rates_the_units_exposure_low(bare, tmp_path):
    unit = tmp_path / "pcloud.service"
    unit.write_text(bare("systemd-unit").stdout)
    rated = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    level = re.search(r"Overall exposure level for pcloud\.service: ([\d.]+)", rated.stdout)
    assert level is not None, rated.stdout + rated.stderr
    assert float(level.group(1)) <= 2.0, rated.stdout
