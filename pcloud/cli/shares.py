"""`pcloud shares ...`: the admin's view of share links."""

from __future__ import annotations

import typer

from pcloud.cli.common import (
    command_group,
    console,
    new_table,
    open_pcloud,
    print_table,
    reports_errors,
)
from pcloud.services import audit, shares, users

app = command_group("See and revoke share links.")


@app.command("list")
@reports_errors
def list_shares(
    ctx: typer.Context,
    user: str = typer.Option(None, "--user", help="Only this user's links (username or email)."),
) -> None:
    """Every share link, newest first: whose, what, how, and how often used."""
    pcloud = open_pcloud(ctx)
    owner_id = users.find_user(user).id if user else None
    rows = shares.list_of(owner_id)
    table = new_table(f"{len(rows)} share link(s)")
    for column in ("ID", "User", "What", "Mode", "Password", "Expires (UTC)", "Used", "State"):
        table.add_column(column, overflow="fold")
    for share, username in rows:
        item_type, _item_id, name = shares.item_of(share)
        limit = "" if share.max_downloads is None else f"/{share.max_downloads}"
        used = f"{share.downloads}{limit} down, {share.uploads} up"
        table.add_row(
            str(share.id),
            username,
            f"{item_type} {name or '/'}" if name is not None else f"{item_type} (gone)",
            share.mode,
            "yes" if share.password_hash else "no",
            share.expires_at.strftime("%Y-%m-%d %H:%M") if share.expires_at else "never",
            used,
            shares.state(share),
        )
    print_table(table)
    pcloud.close()


@app.command("revoke")
@reports_errors
def revoke(ctx: typer.Context, share_id: int = typer.Argument(..., help="The link's ID.")) -> None:
    """End a share link at once: its page answers 410 from now on."""
    pcloud = open_pcloud(ctx)
    share = shares.revoke(share_id, actor=audit.ADMIN_ACTOR)
    console.print(f"Share link {share.id} revoked.")
    pcloud.close()
