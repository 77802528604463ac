"""pcloud's settings: one table of options, read once from the environment and `.env`.

Precedence, highest first: explicit overrides (CLI flags, tests), the process
environment, the `.env` file, the defaults below. Nothing here runs at import time;
`load_settings()` is called by the CLI and the tests.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from pcloud.errors import ConfigError

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"


def parse_size(text: str) -> int:
    """'10GiB', '500M', '1048576' -> bytes (K/M/G/T are binary multiples)."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)(i?b)?\s*", text, re.IGNORECASE)
    if not match:
        raise ValueError("expected a size such as 10GiB, 500MiB or 1048576")
    number, unit = int(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** " kmgt".index(unit or " "))


def parse_duration(text: str) -> int:
    """'3600', '60m', '1h', '30d' -> seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text, re.IGNORECASE)
    if not match:
        raise ValueError("expected a duration such as 3600, 60m, 1h or 30d")
    factor = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2).lower()]
    return int(match.group(1)) * factor


def parse_port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError("expected a port number from 0 to 65535")
    return port


def parse_positive_int(text: str) -> int:
    number = int(text)
    if number < 1:
        raise ValueError("expected a whole number of at least 1")
    return number


def parse_count(text: str) -> int:
    number = int(text)
    if number < 0:
        raise ValueError("expected a whole number of 0 or more")
    return number


ORIGIN = re.compile(r"https?://[^\s/,:]+(:\d{1,5})?")


def parse_origins(text: str) -> tuple[str, ...]:
    """'https://a.example, http://b.example:8080' -> ('https://a.example', ...)."""
    origins = tuple(part.strip().rstrip("/") for part in text.split(",") if part.strip())
    for origin in origins:
        if not ORIGIN.fullmatch(origin):
            raise ValueError(
                f"{origin!r} is not an origin: write scheme and host, such as "
                "https://files.example.org or http://localhost:8080"
            )
    return origins


def parse_workers(text: str) -> int:
    if text.strip().lower() == "auto":
        return max(1, min(os.cpu_count() or 1, 8))
    return parse_positive_int(text)


@dataclass(frozen=True)
class Option:
    """One setting: its environment name, the Settings field it fills, its default and help."""

    env: str
    field: str
    default: str | None
    help: str
    parse: Callable[[str], Any] = str


# The one table of options. `.env.example` documents every entry (a test checks it).
OPTIONS: tuple[Option, ...] = (
    Option(
        "PCLOUD_DATA_DIR",
        "data_dir",
        "pcloud-data",
        "Folder for everything pcloud keeps when nothing else is set: the SQLite "
        "database, uploaded files and the generated secret key. Relative paths are "
        "taken from the folder pcloud is started in.",
        Path,
    ),
    Option(
        "DATABASE_URL",
        "database_url",
        None,
        "Database to use, e.g. sqlite:////srv/pcloud/pcloud.db or "
        "postgresql://user:password@127.0.0.1:5432/pcloud. "
        "Default: SQLite at PCLOUD_DATA_DIR/pcloud.db.",
    ),
    Option(
        "UPLOAD_FOLDER",
        "upload_folder",
        None,
        "Folder holding the file contents (under generated names). Default: PCLOUD_DATA_DIR/files.",
    ),
    Option(
        "SECRET_KEY",
        "secret_key",
        None,
        "Key that signs access and refresh tokens. Default: a random key generated "
        "once and kept in PCLOUD_DATA_DIR/secret_key (mode 0600).",
    ),
    Option(
        "GOOGLE_CLIENT_ID",
        "google_client_id",
        "",
        "OAuth client ID of the Android app; Google sign-in is off while empty.",
    ),
    Option(
        "GOOGLE_CERTS_URL",
        "google_certs_url",
        GOOGLE_CERTS_URL,
        "Where Google publishes the certificates that sign ID tokens.",
    ),
    Option(
        "ACCESS_TOKEN_LIFETIME",
        "access_token_lifetime",
        "1h",
        "How long an access token is valid (seconds, or with s/m/h/d).",
        parse_duration,
    ),
    Option(
        "REFRESH_TOKEN_LIFETIME",
        "refresh_token_lifetime",
        "30d",
        "How long a refresh token is valid (seconds, or with s/m/h/d).",
        parse_duration,
    ),
    Option(
        "MAX_UPLOAD_SIZE",
        "max_upload_size",
        "16GiB",
        "Largest file one upload may carry (bytes, or with KiB/MiB/GiB/TiB).",
        parse_size,
    ),
    Option(
        "TUS_MAX_CHUNK",
        "tus_max_chunk",
        "64MiB",
        "Largest body one tus PATCH (or creation POST) may carry; a resumable upload of any "
        "size up to MAX_UPLOAD_SIZE arrives in pieces of at most this. A piece that breaks "
        "off keeps the bytes that arrived, unless it carries a checksum: then it is lost "
        "whole, so clients on mobile data should send 5-10 MiB pieces.",
        parse_size,
    ),
    Option(
        "TUS_EXPIRATION",
        "tus_expiration",
        "7d",
        "How long an unfinished tus upload waits for its next piece before it expires "
        "(410) and `pcloud files gc` reclaims its bytes (seconds, or with s/m/h/d).",
        parse_duration,
    ),
    Option(
        "TRASH_DAYS",
        "trash_days",
        "30",
        "Days a deleted file or folder stays in the trash (restorable, and counted in the "
        "user's quota) before `pcloud files gc` purges it for good.",
        parse_count,
    ),
    Option(
        "PASSWORD_HASH",
        "password_hash",
        "scrypt",
        "How new passwords are hashed, as werkzeug names it: scrypt (n=32768, the "
        "default) or e.g. scrypt:16384:8:1 for a slow machine. Existing hashes keep "
        "working whatever this says.",
    ),
    Option(
        "PCLOUD_HOST",
        "host",
        "0.0.0.0",
        "Address `pcloud serve` listens on (0.0.0.0: every interface, so phones on "
        "the home network reach it).",
        str,
    ),
    Option("PCLOUD_PORT", "port", "5000", "Port `pcloud serve` listens on.", parse_port),
    Option(
        "PCLOUD_WORKERS",
        "workers",
        "auto",
        "Processes `pcloud serve` runs (auto: one per CPU core, at most 8). Python runs "
        "one thread at a time per process, so more processes use more cores.",
        parse_workers,
    ),
    Option(
        "PCLOUD_THREADS",
        "threads",
        "4",
        "Threads per process for the requests that may wait (sign-ins, resumable upload "
        "pieces, big batches); quick ones (file uploads, downloads, listings) run in the "
        "process's event loop.",
        parse_positive_int,
    ),
    Option(
        "TRUSTED_PROXIES",
        "trusted_proxies",
        "0",
        "How many reverse proxies (Caddy, nginx) stand in front of pcloud. With 1 or more, "
        "the client's IP and scheme are taken from their X-Forwarded-For and "
        "X-Forwarded-Proto headers; with 0 those headers are ignored, as any client could "
        "forge them. When set, let only the proxy reach pcloud (PCLOUD_HOST=127.0.0.1).",
        parse_count,
    ),
    Option(
        "CORS_ORIGINS",
        "cors_origins",
        "",
        "Web origins allowed to call the API from a browser, separated by commas "
        "(https://files.example.org). Empty: none; the Android app needs none.",
        parse_origins,
    ),
    Option(
        "METRICS_TOKEN",
        "metrics_token",
        "",
        "Turns on the Prometheus endpoint /metrics, readable with "
        "`Authorization: Bearer <this token>`. Empty: /metrics is off.",
        str,
    ),
    Option(
        "THUMBNAIL_WORKERS",
        "thumbnail_workers",
        "1",
        "Processes per `pcloud serve` process that decode pictures and videos for "
        "thumbnails and photo details (each a separate process with a memory limit, so "
        "a hostile file costs one of them, never the server). 0: thumbnails are made "
        "only on request, never in the background after an upload.",
        parse_count,
    ),
)


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. Build it with `load_settings()` (or directly in tests)."""

    data_dir: Path
    database_url: str
    upload_folder: Path
    secret_key: str
    google_client_id: str = ""
    google_certs_url: str = GOOGLE_CERTS_URL
    access_token_lifetime: int = 3600
    refresh_token_lifetime: int = 30 * 86400
    max_upload_size: int = 16 * 1024**3
    tus_max_chunk: int = 64 * 1024**2
    tus_expiration: int = 7 * 86400
    trash_days: int = 30
    password_hash: str = "scrypt"
    host: str = "0.0.0.0"
    port: int = 5000
    workers: int = 1
    threads: int = 4
    trusted_proxies: int = 0
    cors_origins: tuple[str, ...] = ()
    metrics_token: str = ""
    thumbnail_workers: int = 1
    # Where each value came from ("default", "environment", ".env (/path)", "generated ...").
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def google_enabled(self) -> bool:
        return bool(self.google_client_id)


def load_settings(
    environ: Mapping[str, str] | None = None,
    env_file: Path | str | None = ".env",
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read every option once and return frozen Settings.

    Raises ConfigError naming the option and where its bad value came from.
    When no SECRET_KEY is configured, generates one and keeps it in the data folder.
    """
    environ = os.environ if environ is None else environ
    env_path = Path(env_file).resolve() if env_file else None
    file_values = dotenv_values(env_path) if env_path and env_path.is_file() else {}
    overrides = {key: value for key, value in (overrides or {}).items() if value is not None}

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option in OPTIONS:
        if option.field in overrides:
            values[option.field] = overrides[option.field]
            sources[option.field] = "command line"
            continue
        raw: str | None
        if option.env in environ:
            raw, source = environ[option.env], "the environment"
        elif option.env in file_values:
            raw, source = file_values[option.env], f".env ({env_path})"
        else:
            raw, source = option.default, "default"
        if raw is not None and raw.strip() == "" and source != "default":
            if option.default is None or option.env == "SECRET_KEY":
                raise ConfigError(
                    f"{option.env} is empty in {source}: set it, or delete the line to "
                    "use the default."
                )
            raw = option.default
        if raw is None:
            values[option.field] = None
        else:
            try:
                values[option.field] = option.parse(raw)
            except ValueError as error:
                raise ConfigError(f"{option.env}={raw!r} from {source}: {error}.") from None
        sources[option.field] = source

    data_dir = Path(values["data_dir"]).expanduser().resolve()
    values["data_dir"] = data_dir
    if values["upload_folder"] is None:
        values["upload_folder"] = data_dir / "files"
    values["upload_folder"] = Path(values["upload_folder"]).expanduser().resolve()
    if values["database_url"] is None:
        values["database_url"] = f"sqlite:///{data_dir / 'pcloud.db'}"
    if values["secret_key"] is None:
        values["secret_key"], sources["secret_key"] = _kept_secret_key(data_dir)
    return Settings(**values, sources=sources)


def _kept_secret_key(data_dir: Path) -> tuple[str, str]:
    """Return the key kept in data_dir/secret_key, creating it (mode 0600) on first use."""
    key_path = data_dir / "secret_key"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            key = key_path.read_text().strip()
            if not key:
                raise ConfigError(
                    f"{key_path} is empty: delete it to let pcloud generate a new key "
                    "(signed-in devices will have to sign in again), or set SECRET_KEY."
                ) from None
            return key, f"kept in {key_path}"
        key = secrets.token_urlsafe(48)
        with os.fdopen(descriptor, "w") as key_file:
            key_file.write(key + "\n")
        return key, f"generated into {key_path}"
    except OSError as error:
        raise ConfigError(
            f"Cannot keep the secret key in {key_path}: {error.strerror}. "
            "Set SECRET_KEY, or point PCLOUD_DATA_DIR at a writable folder."
        ) from None
