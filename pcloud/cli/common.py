"""What every command shares: the console, settings, opening pcloud, and error reporting.

Everything printed through rich is markup; every piece of data (a name, an email, a path,
an error message) goes through `text()` first, so that `ann[x]` prints as `ann[x]`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

import peewee
import typer
from rich.console import Console
from rich.markup import escape

from pcloud.config import Settings, load_settings
from pcloud.core import Pcloud
from pcloud.db import describe
from pcloud.errors import ConfigError, PcloudError
from pcloud.models import User
from pcloud.private import make_private_folder
from pcloud.schema import upgrade_schema

if TYPE_CHECKING:
    from rich.table import Table

console = Console(highlight=False, soft_wrap=True)
error_console = Console(stderr=True, highlight=False, soft_wrap=True)
Command = TypeVar("Command", bound=Callable[..., Any])

# Exit codes, also listed in the README.
EXIT_ERROR = 1  # bad input or a refused operation (e.g. unknown user)
EXIT_USAGE = 2  # Typer's own: unknown option, missing argument; a flag's bad value
EXIT_CONFIG = 3  # configuration or database unusable
EXIT_UNEXPECTED = 4  # a bug: rerun with --debug for the traceback

# Help is written as Markdown: paragraphs are rewrapped to the terminal's width (a
# docstring's line breaks are not kept), and `[...]` in help is text, not rich markup.
HELP_MARKUP = "markdown"

# The start of the line (on stderr) that says which data folder and database a command used.
USING = "pcloud: data folder"


class UsageError(PcloudError):
    """A flag's value is wrong (`--port 70000`): one line, exit code 2."""

    exit_code = EXIT_USAGE


def command_group(help_text: str) -> typer.Typer:
    """A group of subcommands (`pcloud users ...`). pcloud.cli loads it lazily, not
    through add_typer, so it carries the settings add_typer would have passed down."""
    return typer.Typer(
        help=help_text, no_args_is_help=True, rich_markup_mode=HELP_MARKUP, add_completion=False
    )


def text(value: object) -> str:
    """A piece of data, escaped so that rich prints it as it is, never as markup."""
    return escape(str(value))


def given_on_command_line(ctx: typer.Context, parameter: str) -> bool:
    """Whether the parameter's value was typed on the command line (not its default).

    Compared by name: Typer ships its own copy of Click, whose ParameterSource is not
    click's."""
    source = ctx.get_parameter_source(parameter)
    return source is not None and source.name == "COMMANDLINE"


@dataclass
class CliState:
    env_file: Path | None = Path(".env")
    debug: bool = False


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if root.obj is None:
        root.obj = CliState()
    return root.obj


def settings_for(ctx: typer.Context, create: bool = False, **overrides: Any) -> Settings:
    """The settings, with a warning (stderr) for each likely mistake found in them."""
    settings = load_settings(env_file=state(ctx).env_file, overrides=overrides, create=create)
    for warning in settings.warnings:
        error_console.print(f"[yellow]Warning:[/yellow] {text(warning)}")
    return settings


def open_pcloud(ctx: typer.Context, create: bool = False, **overrides: Any) -> Pcloud:
    """Open pcloud as configured and say (one line, stderr) which data folder and database.

    Only `serve` and `init-db` pass `create`: every other command refuses, in one line, a
    data folder or database that does not exist, rather than make a new empty server."""
    settings = settings_for(ctx, create=create, **overrides)
    if not create:
        _refuse_a_missing_sqlite_file(settings)
    try:
        if create and _keeps_anything_in_the_data_folder(settings):
            make_private_folder(settings.data_dir)
        pcloud = Pcloud.open(settings, create_tables=create)
    except OSError as error:
        raise ConfigError(unusable_folder(settings, error)) from None
    if not create:
        try:
            _refuse_an_empty_database(settings, pcloud.database)
        except ConfigError:
            pcloud.close()
            raise
        upgrade_schema(pcloud.database)  # an older pcloud's tables, brought up to date
    error_console.print(
        f"[dim]{USING} {text(settings.data_dir)}, database {text(database_label(settings))}[/dim]"
    )
    return pcloud


def _keeps_anything_in_the_data_folder(settings: Settings) -> bool:
    """Whether the database, the files or the secret key live in the data folder (with
    all three set elsewhere, the folder is not used and need not exist)."""
    database_path = urlparse(settings.database_url).path
    inside = [settings.upload_folder, Path(database_path[1:] if database_path else "/")]
    return settings.sources.get("secret_key", "").startswith(("kept in", "generated")) or any(
        path == settings.data_dir or settings.data_dir in path.parents for path in inside
    )


def _where_from(settings: Settings, field: str) -> str:
    return settings.sources.get(field, "default")


def _refuse_a_missing_sqlite_file(settings: Settings) -> None:
    parsed = urlparse(settings.database_url)
    if not parsed.scheme.startswith("sqlite"):
        return
    path = Path(parsed.path[1:] if parsed.path.startswith("/") else parsed.path)
    if str(path) in ("", ":memory:") or path.exists():
        return
    if _where_from(settings, "database_url") == "default":
        named_by = f"PCLOUD_DATA_DIR from {_where_from(settings, 'data_dir')}"
    else:
        named_by = f"DATABASE_URL from {_where_from(settings, 'database_url')}"
    raise ConfigError(
        f"No pcloud database at {path} ({named_by}): run pcloud in the folder that holds "
        "pcloud-data, or point PCLOUD_DATA_DIR or DATABASE_URL (or --env-file) at your "
        "server's; `pcloud init-db` makes a new one."
    )


def _refuse_an_empty_database(settings: Settings, database: peewee.Database) -> None:
    with database.connection_context():
        tables = set(database.get_tables())
    if User._meta.table_name not in tables:
        raise ConfigError(
            f"No pcloud tables in the database {database_label(settings)} (DATABASE_URL "
            f"from {_where_from(settings, 'database_url')}): point DATABASE_URL at your "
            "server's; `pcloud init-db` makes them."
        )


def unusable_folder(settings: Settings, error: OSError) -> str:
    where = error.filename or settings.upload_folder
    return (
        f"Cannot use {where}: {error.strerror}. Files are kept in {settings.upload_folder} "
        f"(UPLOAD_FOLDER from {_where_from(settings, 'upload_folder')}): make it a folder "
        "this user can write, or point UPLOAD_FOLDER elsewhere."
    )


def reports_errors(command: Command) -> Command:
    """Turn pcloud's errors into one red line and an exit code; a traceback only with --debug.

    The command must take the Typer context as its `ctx` parameter.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = kwargs.get("ctx") or next(arg for arg in args if isinstance(arg, typer.Context))
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.BadParameter, SystemExit, KeyboardInterrupt):
            raise  # Typer's own: exit codes and usage errors (2) as Typer prints them
        except PcloudError as error:
            if state(ctx).debug:
                raise
            error_console.print(f"[red]Error:[/red] {text(error.message)}")
            raise typer.Exit(error.exit_code) from None
        except peewee.DatabaseError as error:
            if state(ctx).debug:
                raise
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
            error_console.print(f"[red]Database error:[/red] {text(reason)}")
            raise typer.Exit(EXIT_CONFIG) from None
        except Exception as error:
            if state(ctx).debug:
                raise
            error_console.print(
                f"[red]Unexpected error:[/red] {text(type(error).__name__)}: {text(error)} "
                "(run with --debug to see the traceback)"
            )
            raise typer.Exit(EXIT_UNEXPECTED) from None

    return wrapper  # type: ignore[return-value]


def new_table(title: str) -> Table:
    """A rich Table (imported here: rich.table is 20 ms of a start-up most commands skip)."""
    from rich.table import Table

    return Table(title=title)


def print_table(table: Table) -> None:
    """Print a table; off a terminal (a pipe, cron, a file) at full width, cells whole."""
    if console.is_terminal:
        console.print(table)
    else:
        Console(highlight=False, width=100_000).print(table)


def database_label(settings: Settings) -> str:
    return describe(settings.database_url)
