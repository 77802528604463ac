"""What every command shares: the console, settings, opening pcloud, and error reporting."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import peewee
import typer
from rich.console import Console
from rich.table import Table

from pcloud.config import Settings, load_settings
from pcloud.core import Pcloud
from pcloud.db import describe
from pcloud.errors import PcloudError

console = Console(highlight=False, soft_wrap=True)
error_console = Console(stderr=True, highlight=False, soft_wrap=True)
Command = TypeVar("Command", bound=Callable[..., Any])

# Exit codes, also listed in the README.
EXIT_ERROR = 1  # bad input or a refused operation (e.g. unknown user)
EXIT_USAGE = 2  # Typer's own: unknown option, missing argument
EXIT_CONFIG = 3  # configuration or database unusable
EXIT_UNEXPECTED = 4  # a bug: rerun with --debug for the traceback


@dataclass
class CliState:
    env_file: Path | None = Path(".env")
    debug: bool = False


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if root.obj is None:
        root.obj = CliState()
    return root.obj


def settings_for(ctx: typer.Context, **overrides: Any) -> Settings:
    return load_settings(env_file=state(ctx).env_file, overrides=overrides)


def open_pcloud(ctx: typer.Context, **overrides: Any) -> Pcloud:
    return Pcloud.open(settings_for(ctx, **overrides))


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
            error_console.print(f"[red]Error:[/red] {error.message}")
            raise typer.Exit(error.exit_code) from None
        except peewee.DatabaseError as error:
            if state(ctx).debug:
                raise
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
            error_console.print(f"[red]Database error:[/red] {reason}")
            raise typer.Exit(EXIT_CONFIG) from None
        except Exception as error:
            if state(ctx).debug:
                raise
            error_console.print(
                f"[red]Unexpected error:[/red] {type(error).__name__}: {error} "
                "(run with --debug to see the traceback)"
            )
            raise typer.Exit(EXIT_UNEXPECTED) from None

    return wrapper  # type: ignore[return-value]


def print_table(table: Table) -> None:
    """Print a table; off a terminal (a pipe, cron, a file) at full width, cells whole."""
    if console.is_terminal:
        console.print(table)
    else:
        Console(highlight=False, width=100_000).print(table)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def database_label(settings: Settings) -> str:
    return describe(settings.database_url)
