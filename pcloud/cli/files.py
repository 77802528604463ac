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

from pcloud.cli.common import (
    command_group,
    console,
    new_table,
    open_pcloud,
    print_table,
    reports_errors,
    text,
)
from pcloud.config import parse_duration
from pcloud.services import changes, gc, migrate_storage, thumbnails, trash, verify, versions
from pcloud.sizes import format_size

app = command_group("Maintain stored files.")


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
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("Scanning", total=None)

        def next_stage(name: str) -> None:
            progress.update(task, description=name, completed=0, total=None)

        report = gc.find_garbage(
            pcloud.blobs,
            grace_period,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
            stage=next_stage,
        )
        progress.update(task, description="Scanned", completed=1, total=1)
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
            f"{format_size(report.reclaimable_bytes)} reclaimed."
        )
    if not dry_run:
        days = pcloud.settings.trash_days
        purged = trash.purge_older_than(pcloud.blobs, days)
        if purged:
            console.print(f"Purged {purged} trash item(s) deleted over {days} day(s) ago.")
        pruned = versions.prune_by_settings(pcloud.blobs, pcloud.settings)
        if pruned:
            console.print(f"Deleted {pruned} file version(s) past the retention rules.")
        if purged or pruned:
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
    table = new_table("Garbage found")
    table.add_column("Kind")
    table.add_column("What")
    table.add_column("Size", justify="right")
    for entry in report.orphan_blobs:
        table.add_row("orphan blob", text(entry.key), format_size(entry.size))
    for entry in report.stale_partials:
        table.add_row("partial upload", text(entry.key), format_size(entry.size))
    for upload in report.expired_uploads:
        size = format_size(report.resumable_sizes.get(upload.upload_id, 0))
        table.add_row("expired upload", text(f"{upload.username}: {upload.name}"), size)
    for entry in report.orphan_resumables:
        table.add_row("abandoned upload", text(entry.key), format_size(entry.size))
    for broken in report.broken_files:
        table.add_row("file without content", text(f"{broken.username}: {broken.name}"), "-")
    if report.unused_thumbnails:
        table.add_row("unused thumbnails", f"{report.unused_thumbnails} thumbnail(s)", "-")
    print_table(table)


@app.command("verify")
@reports_errors
def verify_blobs(
    ctx: typer.Context,
    metadata: bool = typer.Option(
        False,
        "--metadata",
        help="Only check that every blob is in the store with its size (one listing, "
        "no byte read: fast on S3).",
    ),
) -> None:
    """Read every stored blob back and check it against its SHA-256 (bit rot, lost
    bytes). Exits 1 when any is damaged."""
    pcloud = open_pcloud(ctx)
    if metadata:
        _verify_sizes(pcloud)
        return
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
    table = new_table(f"{len(damaged)} damaged blob(s)")
    for column in ("Blob", "Expected SHA-256", "Found", "Files"):
        table.add_column(column, overflow="fold")
    for blob in damaged:
        found = text(blob.actual_sha256) if blob.actual_sha256 else "[red]missing[/red]"
        table.add_row(
            text(blob.store_key),
            text(blob.expected_sha256),
            found,
            text("\n".join(blob.files)),
        )
    print_table(table)
    raise typer.Exit(1)


def _verify_sizes(pcloud) -> None:
    with Progress(
        TextColumn("Listing blobs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("list", total=None)
        damaged = verify.check_sizes(
            pcloud.blobs,
            lambda done, total: progress.update(task, completed=done, total=total),
        )
    pcloud.close()
    if not damaged:
        console.print("Every blob is in the store with its size (bytes not read).")
        return
    table = new_table(f"{len(damaged)} blob(s) missing or of the wrong size")
    for column in ("Blob", "Found", "Files"):
        table.add_column(column, overflow="fold")
    for blob in damaged:
        found = "[red]missing[/red]" if blob.found_size is None else f"{blob.found_size} bytes"
        table.add_row(blob.store_key, found, "\n".join(blob.files))
    print_table(table)
    raise typer.Exit(1)


@app.command("migrate-storage")
@reports_errors
def migrate_to(
    ctx: typer.Context,
    to: str = typer.Option(
        ...,
        "--to",
        help="The new store's URL, as STORAGE_URL takes it: file:///folder or "
        "s3://BUCKET[/PREFIX]?endpoint_url=...",
    ),
) -> None:
    """Copy every blob to another store (local folder <-> S3) under the same keys,
    checking each one's SHA-256; run it again after an interruption to go on where it
    stopped. Then set STORAGE_URL to the new store and restart pcloud."""
    from pcloud.errors import ConfigError
    from pcloud.storage.urls import check_storage_url, describe_store, open_store

    pcloud = open_pcloud(ctx)
    if to == pcloud.settings.blob_store_url:
        raise ConfigError("--to names the store pcloud uses now (STORAGE_URL): nothing to do.")
    try:
        target = open_store(check_storage_url(to), pcloud.settings.s3_timeout)
    except ValueError as error:
        raise ConfigError(f"--to {describe_store(to)!r}: {error}.") from None
    count, size = migrate_storage.total_bytes()
    with Progress(
        TextColumn(f"Copying {count} blob(s)"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("copy", total=size)
        report = migrate_storage.migrate(
            pcloud.blobs, target, progress=lambda done: progress.advance(task, done)
        )
    target.close()
    pcloud.close()
    console.print(
        f"Copied {report.copied} blob(s) ({format_size(report.copied_bytes)}); "
        f"{report.skipped} were there already."
    )
    for key in report.missing:
        console.print(f"[red]missing from the current store:[/red] {key}")
    for key in report.damaged:
        console.print(f"[red]bytes differ from their SHA-256, not copied:[/red] {key}")
    if not report.complete:
        console.print("Run `pcloud files verify` and `pcloud files gc` on the current store.")
        raise typer.Exit(1)
    console.print("Done: set STORAGE_URL to the --to URL on every node and restart pcloud.")
