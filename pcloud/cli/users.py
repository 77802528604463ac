"""`pcloud users ...`: the admin's user management."""

from __future__ import annotations

import typer

from pcloud.cli.common import (
    command_group,
    console,
    new_table,
    open_pcloud,
    print_table,
    reports_errors,
    text,
)
from pcloud.services import app_passwords, audit, quota, sessions, users
from pcloud.sizes import format_size

app = command_group("Manage user accounts.")


@app.command("list")
@reports_errors
def list_users(ctx: typer.Context) -> None:
    """Show every user with their file count, storage used and quota."""
    pcloud = open_pcloud(ctx)
    rows = users.list_users()
    table = new_table(f"{len(rows)} user(s)")
    for column, justify in (
        ("ID", "right"),
        ("Username", "left"),
        ("Email", "left"),
        ("Google", "center"),
        ("Status", "left"),
        ("Files", "right"),
        ("Used", "right"),
        ("Quota", "right"),
        ("Created (UTC)", "left"),
    ):
        table.add_column(column, justify=justify, overflow="fold")
    for row in rows:
        table.add_row(
            str(row.id),
            text(row.username),
            text(row.email),
            "yes" if row.google_linked else "no",
            "[red]disabled[/red]" if row.disabled else "active",
            str(row.file_count),
            format_size(row.bytes_used),
            "none" if row.quota_bytes is None else format_size(row.quota_bytes),
            row.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    print_table(table)
    pcloud.close()


def _new_password(password: str | None) -> str:
    if password is not None:
        return password
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@app.command("create")
@reports_errors
def create(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="The new user's name."),
    email: str = typer.Option(..., "--email", help="The new user's email address."),
    password: str = typer.Option(
        None, "--password", help="The password (asked for, hidden, when left out)."
    ),
) -> None:
    """Create a user that signs in with a password."""
    pcloud = open_pcloud(ctx)
    user = users.create_user(
        pcloud.settings, username, email, _new_password(password), actor=audit.ADMIN_ACTOR
    )
    console.print(f"Created user [bold]{text(user.username)}[/bold] (id {user.id}).")
    pcloud.close()


@app.command("passwd")
@reports_errors
def passwd(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="Username or email of the user."),
    password: str = typer.Option(
        None, "--password", help="The new password (asked for, hidden, when left out)."
    ),
) -> None:
    """Set a user's password; their devices must sign in again."""
    pcloud = open_pcloud(ctx)
    user = users.set_password(pcloud.settings, username, _new_password(password))
    console.print(
        f"Password of [bold]{text(user.username)}[/bold] changed; their devices must sign in again."
    )
    pcloud.close()


@app.command("delete")
@reports_errors
def delete(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="Username or email of the user."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a user and all of their files."""
    pcloud = open_pcloud(ctx)
    user = users.find_user(username)
    if not yes:
        typer.confirm(
            f"Delete user '{user.username}' ({user.email}) and all their files?", abort=True
        )
    user, file_count = users.delete_user(pcloud.blobs, user.username)
    console.print(f"Deleted user [bold]{text(user.username)}[/bold] and {file_count} file(s).")
    pcloud.close()


@app.command("sessions")
@reports_errors
def list_sessions(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="Username or email of the user."),
    include_ended: bool = typer.Option(
        False, "--all", help="Also show revoked and expired sessions."
    ),
) -> None:
    """Show the devices a user is signed in on."""
    pcloud = open_pcloud(ctx)
    user = users.find_user(username)
    rows = sessions.list_sessions(user.id, include_ended=include_ended)
    table = new_table(f"{len(rows)} session(s) of {text(user.username)}")
    for column in ("ID", "Device", "Via", "IP", "Signed in (UTC)", "Last seen (UTC)", "Status"):
        table.add_column(column, overflow="fold")
    for row in rows:
        if row.revoked_at is not None:
            status = f"[red]revoked[/red] ({text(row.revoked_reason)})"
        else:
            status = "live" if row.live else "expired"
        table.add_row(
            text(row.id),
            text(row.device_name or row.user_agent or "-"),
            text(row.method),
            text(row.ip_address or "-"),
            row.created_at.strftime("%Y-%m-%d %H:%M"),
            row.last_seen_at.strftime("%Y-%m-%d %H:%M"),
            status,
        )
    print_table(table)
    pcloud.close()


@app.command("app-password")
@reports_errors
def app_password(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="Username or email of the user."),
    device: str = typer.Option(..., "--device", help="The device it is for, as listed."),
) -> None:
    """Make an app password for one device's WebDAV sign-in (at /dav/); shown once.
    It is a session: `sessions` lists it, `revoke --session ID` ends it."""
    pcloud = open_pcloud(ctx)
    user = users.find_user(username)
    made = app_passwords.create(user, device, sessions.ADMIN, actor=audit.ADMIN_ACTOR)
    console.print(
        f"App password for [bold]{user.username}[/bold] on {made.device_name} "
        f"(session {made.session_id}); it is shown only now:"
    )
    typer.echo(made.password)
    pcloud.close()


@app.command("revoke")
@reports_errors
def revoke(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="Username or email of the user."),
    session_id: str = typer.Option(None, "--session", help="The session to end (see `sessions`)."),
    everywhere: bool = typer.Option(False, "--all", help="End every session of the user."),
) -> None:
    """Sign a user out of one device (--session ID) or all of them (--all), at once."""
    if (session_id is None) == (not everywhere):
        raise typer.BadParameter("give exactly one of --session ID and --all")
    pcloud = open_pcloud(ctx)
    user = users.find_user(username)
    if everywhere:
        count = sessions.revoke_all(user, sessions.ADMIN, actor=audit.ADMIN_ACTOR)
        console.print(f"Revoked {count} session(s) of [bold]{text(user.username)}[/bold].")
    else:
        sessions.revoke(user, session_id, sessions.ADMIN, actor=audit.ADMIN_ACTOR)
        console.print(f"Revoked session {text(session_id)} of [bold]{text(user.username)}[/bold].")
    pcloud.close()


@app.command("disable")
@reports_errors
def disable(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="Username or email of the user."),
) -> None:
    """Stop a user from signing in; every token of theirs stops working at once."""
    pcloud = open_pcloud(ctx)
    user, changed = users.set_disabled(username, True)
    if changed:
        console.print(f"Disabled [bold]{text(user.username)}[/bold]; all their sessions ended.")
    else:
        console.print(f"[bold]{text(user.username)}[/bold] is already disabled; nothing changed.")
    pcloud.close()


@app.command("enable")
@reports_errors
def enable(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="Username or email of the user."),
) -> None:
    """Let a disabled user sign in again."""
    pcloud = open_pcloud(ctx)
    user, changed = users.set_disabled(username, False)
    if changed:
        console.print(f"Enabled [bold]{text(user.username)}[/bold]; they can sign in again.")
    else:
        console.print(f"[bold]{text(user.username)}[/bold] is not disabled; nothing changed.")
    pcloud.close()


@app.command("set-quota")
@reports_errors
def set_quota(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="Username or email of the user."),
    size: str = typer.Argument(..., help="A size such as 50GiB or 500MiB, or 'none' (no limit)."),
) -> None:
    """Limit how many bytes a user's files (trash included) may take; 'none' lifts it."""
    pcloud = open_pcloud(ctx)
    user = quota.set_quota(username, size)
    used = format_size(quota.usage(user.id))
    limit = "no limit" if user.quota_bytes is None else format_size(user.quota_bytes)
    console.print(f"Quota of [bold]{text(user.username)}[/bold]: {limit} ({used} used).")
    pcloud.close()
