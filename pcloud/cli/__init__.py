"""The `pcloud` command: serve, init-db, users, files, audit, backup, restore, systemd-unit."""

from __future__ import annotations

from pathlib import Path

import typer

from pcloud import __version__
from pcloud.cli.common import (
    EXIT_USAGE,
    HELP_MARKUP,
    CliState,
    console,
    database_label,
    error_console,
    given_on_command_line,
    open_pcloud,
    reports_errors,
    text,
)
from pcloud.cli.lazy import LazyGroup


class Commands(LazyGroup):
    """`pcloud`'s subcommands: each module is imported when its command runs."""

    lazy_commands = {  # in the order `pcloud --help` lists them
        "serve": "pcloud.cli.serve:serve",
        "audit": "pcloud.cli.audit:show_audit",
        "backup": "pcloud.cli.backup:backup_command",
        "restore": "pcloud.cli.backup:restore_command",
        "systemd-unit": "pcloud.cli.systemd:systemd_unit",
        "init-db": "pcloud.cli:init_db",
        "users": "pcloud.cli.users:app",
        "files": "pcloud.cli.files:app",
        "shares": "pcloud.cli.shares:app",
    }


app = typer.Typer(
    help="pcloud: your own personal cloud. Run `pcloud serve` to start the server.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=HELP_MARKUP,
    cls=Commands,
)


def _print_version(value: bool) -> None:
    if value:
        console.print(f"pcloud {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    env_file: Path = typer.Option(
        Path(".env"),
        "--env-file",
        help="Read settings from this file. The default one may be missing; a file named "
        "here must exist.",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Show the version."
    ),
) -> None:
    named = given_on_command_line(ctx, "env_file")
    if named and (not env_file.exists() or env_file.is_dir()):  # /dev/null: read none
        error_console.print(
            f"[red]Error:[/red] --env-file {text(env_file)}: no such file "
            f"(looked for {text(env_file.resolve())})."
        )
        raise typer.Exit(EXIT_USAGE)
    ctx.obj = CliState(env_file=env_file, debug=debug)


@reports_errors
def init_db(ctx: typer.Context) -> None:
    """Create the data folder and database tables, or upgrade an older pcloud's in place
    (safe to run again)."""
    pcloud = open_pcloud(ctx, create=True)
    for change in pcloud.schema_changes:
        console.print(f"  {text(change)}")
    console.print(f"Database ready: {text(database_label(pcloud.settings))}")
    pcloud.close()


def main() -> None:
    app()
