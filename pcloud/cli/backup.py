"""`pcloud backup DEST`, `pcloud backup verify DEST` and `pcloud restore DEST --data-dir NEW`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import peewee
import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from pcloud.cli.common import console, reports_errors, settings_for
from pcloud.config import Settings
from pcloud.core import Pcloud
from pcloud.services import backup as backups
from pcloud.sizes import format_size
from pcloud.storage import BlobStore


@contextmanager
def _bar(label: str) -> Iterator[backups.Progress]:
    with Progress(
        TextColumn(label),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(label, total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)


@reports_errors
def backup_command(
    ctx: typer.Context,
    target: str = typer.Argument(
        ..., metavar="DEST | VERIFY DEST", help="The backup folder (or `verify`, then it)."
    ),
    dest: Path | None = typer.Argument(None, metavar="", show_default=False),
    quick: bool = typer.Option(
        False, "--quick", help="With verify: check blob sizes only, not their SHA-256."
    ),
) -> None:
    """Back up the database, secret key, settings and every blob into DEST while the
    server runs (only content DEST lacks is copied); `pcloud backup verify DEST` checks
    a backup. Exits 1 when a verify finds damage, or blobs were missing in the store."""
    if target == "verify" and dest is not None:
        _verify(dest, quick)
        return
    if dest is not None:
        raise typer.BadParameter("give one folder, or `verify` and a folder")
    # No schema upgrade: a backup takes the database as the server has it, and on
    # PostgreSQL even CREATE INDEX IF NOT EXISTS locks tables the server is writing to.
    pcloud = Pcloud.open(settings_for(ctx), create_tables=False)
    try:
        with _bar("Backing up") as progress:
            report = backups.backup(pcloud.settings, pcloud.blobs, Path(target), progress)
    finally:
        pcloud.close()
    console.print(
        f"Backup complete: {escape(str(report.snapshot))}\n"
        f"  {report.blobs} blob(s), {format_size(report.bytes_total)}; copied now "
        f"{report.blobs_copied} ({format_size(report.bytes_copied)})"
    )
    if report.dropped:
        console.print(f"  {len(report.dropped)} blob(s) were deleted while the backup ran.")
    if report.damaged:
        console.print(
            f"[red]{len(report.damaged)} blob(s) are missing or damaged in the store[/red] "
            "(their files are in the backup without content): run `pcloud files verify`."
        )
        raise typer.Exit(1)


def _verify(dest: Path, quick: bool) -> None:
    with _bar("Verifying") as progress:
        report = backups.verify(dest, quick=quick, progress=progress)
    what = "sizes" if quick else "SHA-256"
    if not report.problems:
        console.print(
            f"Backup {escape(str(report.snapshot))} is sound: database and "
            f"{report.blobs} blob(s) match ({what})."
        )
        return
    for problem in report.problems:
        console.print(f"[red]{escape(problem)}[/red]")
    console.print(f"[red]{len(report.problems)} problem(s) in the backup.[/red]")
    raise typer.Exit(1)


def _open_restored(settings: Settings) -> tuple[peewee.Database, BlobStore]:
    opened = Pcloud.open(settings)
    return opened.database, opened.blobs


@reports_errors
def restore_command(
    ctx: typer.Context,
    dest: Path = typer.Argument(..., help="The backup folder."),
    data_dir: Path = typer.Option(..., "--data-dir", help="A new or empty folder to restore into."),
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        help="An empty database to restore into (needed for a PostgreSQL backup). "
        "Default: SQLite in the data folder.",
    ),
) -> None:
    """Restore the newest complete backup in DEST into an empty data folder: the
    database, secret key (signed-in devices stay signed in), settings and every file."""
    with _bar("Restoring") as progress:
        report = backups.restore(dest, data_dir, database_url, progress, _open_restored)
    console.print(
        f"Restored {report.blobs} blob(s) into {escape(str(report.data_dir))}.\n"
        f"Start it with: pcloud --env-file {escape(str(report.env_file))} serve"
    )
    if report.dropped_files:
        console.print(f"  {report.dropped_files} file(s) deleted during that backup left out.")
