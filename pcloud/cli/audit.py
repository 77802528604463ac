"""`pcloud audit`: the audit log as a table."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import typer

from pcloud.cli.common import new_table, open_pcloud, print_table, reports_errors, text
from pcloud.config import parse_duration
from pcloud.services import audit, users


def _since(text: str | None) -> datetime | None:
    """'7d', '12h' (that long ago) or an ISO date or time ('2026-11-01', UTC if no zone)."""
    if text is None:
        return None
    try:
        return datetime.now(timezone.utc) - timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            "expected a duration such as 7d or 12h, or a date such as 2026-11-01",
            param_hint="--since",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@reports_errors
def show_audit(
    ctx: typer.Context,
    user: str = typer.Option(None, "--user", help="Only this user's events (username or email)."),
    since: str = typer.Option(
        None, "--since", help="Only events after this: a duration (7d, 12h) or a date."
    ),
    limit: int = typer.Option(200, "--limit", min=1, help="Show at most this many events."),
) -> None:
    """Show the audit log, newest first: sign-ins and failures, sessions ended, password
    changes, deletions and admin actions."""
    moment = _since(since)
    pcloud = open_pcloud(ctx)
    user_id = users.find_user(user).id if user is not None else None
    events = audit.list_events(user_id=user_id, since=moment, limit=limit)
    table = new_table(f"{len(events)} event(s), newest first")
    for column in ("When (UTC)", "Action", "User", "By", "IP", "Detail"):
        table.add_column(column, overflow="fold")
    for event in events:
        detail = ", ".join(f"{key}={value}" for key, value in event.detail.items() if value)
        table.add_row(
            event.at.strftime("%Y-%m-%d %H:%M:%S"),
            text(event.action),
            text(event.username or "-"),
            text(event.actor),
            text(event.ip_address or "-"),
            text(detail),
        )
    print_table(table)
    pcloud.close()
