"""`pcloud serve`: the API under waitress."""

from __future__ import annotations

import logging

import typer

from pcloud import __version__
from pcloud.api import served_app
from pcloud.cli.common import console, database_label, human_size, open_pcloud, reports_errors
from pcloud.config import Settings
from pcloud.server import listen, run, url_of

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@reports_errors
def serve(
    ctx: typer.Context,
    host: str = typer.Option(None, help="Address to listen on [default: PCLOUD_HOST or 0.0.0.0]."),
    port: int = typer.Option(
        None, help="Port to listen on; 0 picks a free one [default: PCLOUD_PORT or 5000]."
    ),
    workers: int = typer.Option(
        None, min=1, help="Processes serving requests [default: PCLOUD_WORKERS or one per core]."
    ),
    threads: int = typer.Option(
        None, min=1, help="Threads per process [default: PCLOUD_THREADS or 4]."
    ),
) -> None:
    """Run the pcloud server until Ctrl-C."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    pcloud = open_pcloud(ctx, host=host, port=port, workers=workers, threads=threads)
    settings = pcloud.settings
    pcloud.close()  # each worker opens its own connections
    try:
        sock = listen(settings.host, settings.port)
    except OSError as error:
        message = f"cannot listen on {settings.host}:{settings.port}: {error.strerror}"
        raise typer.BadParameter(message, param_hint="--port") from None
    _print_banner(settings, url_of(sock))
    try:
        run(settings, sock, settings.workers, served_app)
    finally:
        sock.close()
        console.print("pcloud stopped.")


def _print_banner(settings: Settings, url: str) -> None:
    console.print(f"[bold]pcloud {__version__}[/bold] serving on {url}")
    if settings.host in ("0.0.0.0", "::"):
        console.print(
            "  (every network interface; on this machine: "
            f"http://127.0.0.1:{url.rsplit(':', 1)[1]})"
        )
    if not any(
        source == "the environment" or source.startswith(".env")
        for source in settings.sources.values()
    ):
        console.print(
            "  No configuration found (no environment settings, no .env): "
            "using the built-in defaults."
        )
    console.print(f"  Data folder:    {settings.data_dir}")
    console.print(f"  Database:       {database_label(settings)}")
    console.print(f"  Files:          {settings.upload_folder}")
    console.print(f"  Secret key:     {settings.sources.get('secret_key', 'SECRET_KEY')}")
    google = (
        f"on (client {settings.google_client_id})"
        if settings.google_enabled
        else "off (set GOOGLE_CLIENT_ID to enable)"
    )
    console.print(f"  Google sign-in: {google}")
    console.print(f"  Upload limit:   {human_size(settings.max_upload_size)}")
    console.print(f"  Workers:        {settings.workers} processes x {settings.threads} threads")
    console.print(f"  Access log:     {settings.access_log}")
    console.print("Press Ctrl-C to stop.")
