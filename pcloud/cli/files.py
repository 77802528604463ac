"""`pcloud files ...`: maintenance of stored files."""

from __future__ import annotations

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from pcloud.cli.common import console, human_size, open_pcloud, print_table, reports_errors
from pcloud.config import parse_duration
from pcloud.services import changes, gc, thumbnails, trash, verify

app = typer.Typer(help="Maintain stored files.", no_args_is_help=True)


def _grace(text: str) -> str:
    try:
        parse_duration(text)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    return text


@app.command("gc")
@reports_errors
def collect_garbage(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="Only report; change nothing."),
    grace: str = typer.Option(
        "1h",
        "--grace",
        callback=_grace,
        help="Leave alone anything written more recently than this (uploads in progress).",
    ),
) -> None:
    """Find blobs no file points to, files whose blob is missing, abandoned partial
    uploads and expired resumable uploads; remove them unless --dry-run."""
    from datetime import timedelta

    grace_period = timedelta(seconds=parse_duration(grace))
    pcloud = open_pcloud(ctx)
    with Progress(
        TextColumn("Scanning blobs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("scan", total=None)
        report = gc.find_garbage(
            pcloud.blobs,
            grace_period,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    _print_report(report)
    if report.empty:
        console.print(f"Nothing to collect ({report.blobs_scanned} blob(s) checked).")
    elif dry_run:
        console.print("Dry run: nothing was changed.")
    else:
        gc.collect_garbage(pcloud.blobs, report)
        console.print(
            f"Removed {len(report.orphan_blobs)} orphan blob(s), "
            f"{len(report.stale_partials)} partial upload(s), "
            f"{len(report.expired_uploads) + len(report.orphan_resumables)} "
            "resumable upload(s) and "
            f"{len(report.broken_files)} file record(s) without content, "
            f"{report.unused_thumbnails} thumbnail(s) of content no file uses; "
            f"{human_size(report.reclaimable_bytes)} reclaimed."
        )
    if not dry_run:
        days = pcloud.settings.trash_days
        purged = trash.purge_older_than(pcloud.blobs, days)
        if purged:
            console.print(f"Purged {purged} trash item(s) deleted over {days} day(s) ago.")
            thumbnails.forget_unused(pcloud.blobs)  # of the content the purge freed
        forgotten = changes.purge()
        if forgotten:
            console.print(f"Forgot {forgotten} change feed entry(ies) older than 90 days.")
        ended_sessions, counters = gc.purge_account_records()
        if ended_sessions or counters:
            console.print(
                f"Forgot {ended_sessions} session(s) that ended over 30 days ago and "
                f"{counters} stale sign-in failure count(s)."
            )
    pcloud.close()


def _print_report(report: gc.GarbageReport) -> None:
    if report.empty:
        return
    table = Table(title="Garbage found")
    table.add_column("Kind")
    table.add_column("What")
    table.add_column("Size", justify="right")
    for entry in report.orphan_blobs:
        table.add_row("orphan blob", entry.key, human_size(entry.size))
    for entry in report.stale_partials:
        table.add_row("partial upload", entry.key, human_size(entry.size))
    for upload in report.expired_uploads:
        size = human_size(report.resumable_sizes.get(upload.upload_id, 0))
        table.add_row("expired upload", f"{upload.username}: {upload.name}", size)
    for entry in report.orphan_resumables:
        table.add_row("abandoned upload", entry.key, human_size(entry.size))
    for broken in report.broken_files:
        table.add_row("file without content", f"{broken.username}: {broken.name}", "-")
    if report.unused_thumbnails:
        table.add_row("unused thumbnails", f"{report.unused_thumbnails} thumbnail(s)", "-")
    print_table(table)


@app.command("verify")
@reports_errors
def verify_blobs(ctx: typer.Context) -> None:
    """Read every stored blob back and check it against its SHA-256 (bit rot, lost
    bytes). Exits 1 when any is damaged."""
    pcloud = open_pcloud(ctx)
    todo = verify.plan()
    with Progress(
        TextColumn("Verifying blobs"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("verify", total=todo.total_bytes)
        damaged = verify.verify(pcloud.blobs, todo, lambda read: progress.advance(task, read))
    pcloud.close()
    if not damaged:
        console.print(f"All {len(todo.blobs)} blob(s) match their SHA-256.")
        return
    table = Table(title=f"{len(damaged)} damaged blob(s)")
    for column in ("Blob", "Expected SHA-256", "Found", "Files"):
        table.add_column(column, overflow="fold")
    for blob in damaged:
        found = blob.actual_sha256 or "[red]missing[/red]"
        table.add_row(blob.store_key, blob.expected_sha256, found, "\n".join(blob.files))
    print_table(table)
    raise typer.Exit(1)
