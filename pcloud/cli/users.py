"""`pcloud users ...`: the admin's user management."""

from __future__ import annotations

import typer
from rich.table import Table

from pcloud.cli.common import console, human_size, open_pcloud, print_table, reports_errors
from pcloud.services import users

app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)


@app.command("list")
@reports_errors
def list_users(ctx: typer.Context) -> None:
    """Show every user with their file count and storage used."""
    pcloud = open_pcloud(ctx)
    rows = users.list_users()
    table = Table(title=f"{len(rows)} user(s)")
    for column, justify in (
        ("ID", "right"),
        ("Username", "left"),
        ("Email", "left"),
        ("Google", "center"),
        ("Files", "right"),
        ("Used", "right"),
        ("Created (UTC)", "left"),
    ):
        table.add_column(column, justify=justify, overflow="fold")
    for row in rows:
        table.add_row(
            str(row.id),
            row.username,
            row.email,
            "yes" if row.google_linked else "no",
            str(row.file_count),
            human_size(row.bytes_used),
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
    user = users.create_user(pcloud.settings, username, email, _new_password(password))
    console.print(f"Created user [bold]{user.username}[/bold] (id {user.id}).")
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
        f"Password of [bold]{user.username}[/bold] changed; their devices must sign in again."
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
    console.print(f"Deleted user [bold]{user.username}[/bold] and {file_count} file(s).")
    pcloud.close()
