"""The `pcloud` command: serve, init-db, users, files, audit."""

from __future__ import annotations

from pathlib import Path

import typer

from pcloud import __version__
from pcloud.cli import audit, files, serve, shares, users
from pcloud.cli.common import CliState, console, database_label, open_pcloud, reports_errors

app = typer.Typer(
    help="pcloud: your own personal cloud. Run `pcloud serve` to start the server.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(users.app, name="users")
app.add_typer(files.app, name="files")
app.add_typer(shares.app, name="shares")
app.command()(serve.serve)
app.command("audit")(audit.show_audit)


def _print_version(value: bool) -> None:
    if value:
        console.print(f"pcloud {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    env_file: Path = typer.Option(
        Path(".env"), "--env-file", help="Read settings from this file (if it exists)."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Show the version."
    ),
) -> None:
    ctx.obj = CliState(env_file=env_file, debug=debug)


@app.command("init-db")
@reports_errors
def init_db(ctx: typer.Context) -> None:
    """Create the database tables, or upgrade an older pcloud's in place (safe to run again)."""
    pcloud = open_pcloud(ctx)
    for change in pcloud.schema_changes:
        console.print(f"  {change}")
    console.print(f"Database ready: {database_label(pcloud.settings)}")
    pcloud.close()


def main() -> None:
    app()
