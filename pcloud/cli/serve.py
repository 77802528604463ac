"""`pcloud serve`: the API under waitress."""

from __future__ import annotations

import errno
import logging
import tempfile
from typing import Any

import typer

from pcloud import __version__
from pcloud.cli.common import (
    EXIT_CONFIG,
    EXIT_USAGE,
    UsageError,
    console,
    database_label,
    given_on_command_line,
    open_pcloud,
    reports_errors,
    state,
    text,
    unusable_folder,
)
from pcloud.cli.network import is_loopback, listens_everywhere, machine_addresses, url_for
from pcloud.config import Settings, option_for
from pcloud.core import Pcloud
from pcloud.errors import ConfigError, PcloudError
from pcloud.sizes import format_size
from pcloud.storage import LocalBlobStore

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The flags of `serve` and the settings they override; their defaults come from OPTIONS.
FLAGS = {"host": "--host", "port": "--port", "workers": "--workers", "threads": "--threads"}
HOST, PORT, WORKERS, THREADS = (option_for(field) for field in FLAGS)


class CannotListen(PcloudError):
    """The address or port cannot be listened on; exit_code says whose fault it is."""

    exit_code = EXIT_CONFIG


@reports_errors
def serve(
    ctx: typer.Context,
    host: str = typer.Option(
        HOST.default,
        metavar="ADDRESS",
        help=f"Address to listen on; 0.0.0.0 is every interface. Overrides {HOST.env}.",
    ),
    port: str = typer.Option(
        PORT.default,
        metavar="PORT",
        help=f"Port to listen on; 0 picks a free one. Overrides {PORT.env}.",
    ),
    workers: str = typer.Option(
        WORKERS.default,
        metavar="N",
        help="Processes serving requests: a number, or auto (one per CPU core, at most 8). "
        f"Overrides {WORKERS.env}.",
    ),
    threads: str = typer.Option(
        THREADS.default,
        metavar="N",
        help=f"Threads per process for the requests that may wait. Overrides {THREADS.env}.",
    ),
) -> None:
    """Run the pcloud server until Ctrl-C (or SIGTERM). Creates the data folder and the
    database on first use."""
    overrides = _flags_given(ctx, host=host, port=port, workers=workers, threads=threads)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    pcloud = open_pcloud(ctx, create=True, **overrides)
    settings = pcloud.settings
    try:
        _check_writable(pcloud)
    finally:
        pcloud.close()  # each worker opens its own connections
    # Here, not at the top: the other commands do without waitress and Flask.
    from pcloud.api import served_app
    from pcloud.server import listen, run, url_of

    try:
        sock = listen(settings.host, settings.port)
    except OSError as error:
        raise _cannot_listen(settings, error) from None
    _print_banner(settings, url_of(sock), state(ctx).env_file)

    try:
        run(settings, sock, settings.workers, served_app)
    finally:
        sock.close()
        console.print("pcloud stopped.")


def _check_writable(pcloud: Pcloud) -> None:
    """Refuse to start, in one line, when the files folder takes no new file (rather than
    answer every upload with an error). Raises ConfigError."""
    if not isinstance(pcloud.blobs, LocalBlobStore):
        return
    try:
        with tempfile.TemporaryFile(dir=pcloud.blobs.partial_dir):
            pass
    except OSError as error:
        raise ConfigError(unusable_folder(pcloud.settings, error)) from None


def _flags_given(ctx: typer.Context, **values: str) -> dict[str, Any]:
    """The flags given on the command line, parsed as their settings are (a flag left out
    leaves the environment's or .env's value alone). Raises UsageError."""
    given = {}
    for field, value in values.items():
        if not given_on_command_line(ctx, field):
            continue
        try:
            given[field] = option_for(field).parse(value)
        except ValueError as error:
            raise UsageError(f"{FLAGS[field]} {value}: {error}.") from None
    return given


def _cannot_listen(settings: Settings, error: OSError) -> CannotListen:
    """Blame the setting at fault where it came from (--port, or PCLOUD_PORT in .env)."""
    field = "port" if error.errno == errno.EADDRINUSE else "host"
    source = settings.sources.get(field, "default")
    option = option_for(field)
    named = FLAGS[field] if source == "command line" else f"{option.env} from {source}"
    reason = error.strerror or str(error)
    refusal = CannotListen(
        f"Cannot listen on {settings.host}:{settings.port} ({named}): {reason}. "
        + (
            f"Another program uses port {settings.port}: stop it, or choose another port."
            if field == "port"
            else "Use an address of this machine, or 0.0.0.0 for every interface."
        )
    )
    if source == "command line":
        refusal.exit_code = EXIT_USAGE
    return refusal


def _print_banner(settings: Settings, url: str, env_file: Any) -> None:
    console.print(f"[bold]pcloud {__version__}[/bold] serving on {text(url)}")
    port = int(url.rsplit(":", 1)[1])
    if listens_everywhere(settings.host):
        addresses = machine_addresses(ipv6=":" in settings.host)
        console.print("  (every network interface; reach it at:)")
        for address in addresses or ["127.0.0.1"]:
            console.print(f"    {text(url_for(address, port))}")
    if not any(
        source == "the environment" or source.startswith(".env")
        for source in settings.sources.values()
    ):
        console.print(
            "  No configuration found (no environment settings, no .env): "
            "using the built-in defaults."
        )
    if settings.env_file is not None:
        console.print(f"  Settings file:  {text(settings.env_file)}")
    else:
        looked_for = env_file.resolve() if env_file is not None else "none"
        console.print(f"  Settings file:  none (no {text(looked_for)})")
    console.print(f"  Data folder:    {text(settings.data_dir)}")
    console.print(f"  Database:       {text(database_label(settings))}")
    console.print(f"  Files:          {text(settings.upload_folder)}")
    console.print(f"  Secret key:     {text(settings.sources.get('secret_key', 'SECRET_KEY'))}")
    google = (
        f"on (client {text(settings.google_client_id)})"
        if settings.google_enabled
        else "off (set GOOGLE_CLIENT_ID to enable)"
    )
    console.print(f"  Google sign-in: {google}")
    console.print(f"  Registration:   {_registration(settings)}")
    console.print(f"  Upload limit:   {format_size(settings.max_upload_size)}")
    console.print(f"  Workers:        {settings.workers} processes x {settings.threads} threads")
    console.print(f"  Access log:     {text(settings.access_log)}")
    open_to_anyone = settings.registration_open and not settings.registration_emails
    if open_to_anyone and not is_loopback(settings.host):
        console.print(
            "  [yellow]Warning:[/yellow] registration is open on a public interface: "
            "anyone who reaches this server can make an account and store files. Set "
            "REGISTRATION=closed (and make accounts with `pcloud users create`), or "
            "REGISTRATION_EMAILS=*@your.domain."
        )
    console.print("Press Ctrl-C to stop.")


def _registration(settings: Settings) -> str:
    if not settings.registration_open:
        return "closed (accounts only through `pcloud users create`)"
    if settings.registration_emails:
        return "open to " + text(", ".join(settings.registration_emails))
    return "open (anyone who reaches the server can make an account)"
