"""pcloud's settings: one table of options, read once from the environment and `.env`.

Precedence, highest first: explicit overrides (CLI flags, tests), the process
environment, the `.env` file, the defaults below. Nothing here runs at import time;
`load_settings()` is called by the CLI and the tests.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from pcloud.errors import ConfigError
from pcloud.private import make_private_folder

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


def _whole_number(text: str, lowest: int, highest: int | None, expected: str) -> int:
    """int(text) within [lowest, highest], or ValueError saying what was expected (never
    Python's "invalid literal for int()")."""
    try:
        number = int(text.strip())
    except ValueError:
        raise ValueError(f"expected {expected}") from None
    if number < lowest or (highest is not None and number > highest):
        raise ValueError(f"expected {expected}")
    return number


def parse_port(text: str) -> int:
    return _whole_number(text, 0, 65535, "a port number from 0 to 65535")


def parse_positive_int(text: str) -> int:
    return _whole_number(text, 1, None, "a whole number of at least 1")


def parse_percent(text: str) -> int:
    number = int(text.strip().rstrip("%"))
    if not 0 <= number <= 100:
        raise ValueError("expected a percentage from 0 to 100")
    return number


def parse_count(text: str) -> int:
    return _whole_number(text, 0, None, "a whole number of 0 or more")


REGISTRATION_MODES = ("open", "closed")


def parse_registration(text: str) -> str:
    mode = text.strip().lower()
    if mode not in REGISTRATION_MODES:
        raise ValueError("expected open or closed")
    return mode


def parse_email_patterns(text: str) -> tuple[str, ...]:
    """'*@family.example, gran@mail.example' -> ('*@family.example', 'gran@mail.example')."""
    patterns = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    for pattern in patterns:
        if "@" not in pattern or any(char.isspace() for char in pattern):
            raise ValueError(
                f"{pattern!r} is not an email pattern: write one such as *@family.example "
                "or ann@mail.example"
            )
    return patterns


def email_matches(email: str, patterns: tuple[str, ...]) -> bool:
    """Whether an email (already lower-cased) matches one of the patterns (* and ? wildcards)."""
    return any(fnmatch.fnmatchcase(email, pattern) for pattern in patterns)


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


def parse_access_log(text: str) -> str:
    """ACCESS_LOG: off, stderr or a file path."""
    text = text.strip()
    if text.lower() in ("off", "stderr"):
        return text.lower()
    if not text:
        raise ValueError("expected off, stderr or a file path")
    return text


def parse_storage_url(text: str) -> str:
    """`file:///absolute/folder` or `s3://BUCKET[/PREFIX]?endpoint_url=...&region=...`."""
    from pcloud.storage.urls import check_storage_url

    if not text.strip():
        return ""  # the upload folder (Settings.blob_store_url)
    return check_storage_url(text.strip())


def _without_credentials(url: str) -> str:
    """The URL with any user:password@ taken out, to be repeated in an error."""
    scheme, separator, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    return f"{scheme}{separator}{authority.rpartition('@')[2]}{slash}{path}"


def parse_flag(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


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
    # How a bad value is repeated in an error (a URL may carry a password).
    shown: Callable[[str], str] = repr


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
        "STORAGE_URL",
        "storage_url",
        "",
        "Where file contents live: file:///srv/pcloud/files (a local folder), or "
        "s3://BUCKET[/PREFIX]?endpoint_url=http://host:port[&region=REGION] for "
        "S3-compatible object storage (pip install 'pcloud[s3]'), whose credentials come "
        "from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or an AWS profile), never from "
        "this URL. Change it only after `pcloud files migrate-storage --to URL`. "
        "Default: file:// and UPLOAD_FOLDER.",
        parse_storage_url,
        lambda url: repr(_without_credentials(url)),
    ),
    Option(
        "S3_TIMEOUT",
        "s3_timeout",
        "10",
        "Seconds pcloud waits for the object store to connect or to answer before a "
        "request gets 503 with Retry-After (S3 storage only).",
        parse_positive_int,
    ),
    Option(
        "S3_REDIRECT_DOWNLOADS",
        "s3_redirect_downloads",
        "false",
        "true: a download is answered with a redirect to a presigned URL valid for five "
        "minutes, so the bytes go from the object store to the client without passing "
        "through pcloud (the store must then be reachable by clients). S3 storage only.",
        parse_flag,
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
        "VERSIONS_MAX_AGE",
        "versions_max_age",
        "365d",
        "How long an earlier version of a replaced file is kept at most: `pcloud files gc` "
        "deletes older ones (seconds, or with s/m/h/d; 0: no limit). Younger ones are "
        "thinned like Nextcloud's: all of the first day, one a day for 30 days, then one "
        "a week.",
        parse_duration,
    ),
    Option(
        "VERSIONS_QUOTA_SHARE",
        "versions_quota_share",
        "50",
        "Percent of a user's quota their kept versions may take; `pcloud files gc` "
        "deletes the oldest beyond it (users without a quota are not capped). Versions "
        "count in the quota, and the oldest go first whenever an upload needs the room.",
        parse_percent,
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
        "PASSWORD_MIN_LENGTH",
        "password_min_length",
        "8",
        "Fewest characters a new password may have (registration, password changes, "
        "`pcloud users create` and `passwd`). A password may never be the username or email.",
        parse_positive_int,
    ),
    Option(
        "REGISTRATION",
        "registration",
        "open",
        "Who may make an account through POST /register (the app's sign-up screen) or a "
        "first Google sign-in: open (anyone who reaches the server, limited by "
        "REGISTRATION_EMAILS) or closed (only the admin, with `pcloud users create`).",
        parse_registration,
    ),
    Option(
        "REGISTRATION_EMAILS",
        "registration_emails",
        "",
        "While registration is open, only emails matching one of these patterns may "
        "register, separated by commas (*@family.example, gran@mail.example). Empty: any.",
        parse_email_patterns,
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
        "HEADER_TIMEOUT",
        "header_timeout",
        "30s",
        "How long a client may take to send a request's headers (from its first byte, or "
        "from connecting); then 408 and the connection closes, so that a client trickling "
        "a byte now and then cannot hold a connection (seconds, or with s/m/h/d).",
        parse_duration,
    ),
    Option(
        "KEEPALIVE_TIMEOUT",
        "keepalive_timeout",
        "60s",
        "How long a connection may wait idle for its next request before it is closed "
        "(seconds, or with s/m/h/d).",
        parse_duration,
    ),
    Option(
        "CONNECTIONS_PER_ADDRESS",
        "connections_per_address",
        "64",
        "Connections one client address may hold open at once (all worker processes "
        "together); one more is answered 503. 0: no limit. Not applied behind a "
        "trusted proxy (TRUSTED_PROXIES), where every connection has the proxy's address.",
        parse_count,
    ),
    Option(
        "MAX_CONNECTIONS",
        "max_connections",
        "10000",
        "Connections the server holds open at once, all worker processes together "
        "(pcloud raises its open-files limit to the system's hard limit to allow them).",
        parse_positive_int,
    ),
    Option(
        "DRAIN_TIMEOUT",
        "drain_timeout",
        "30s",
        "On SIGTERM or Ctrl-C, how long requests in flight may take to finish before the "
        "server stops; a resumable-upload piece cut then keeps the bytes that arrived. A "
        "second signal stops at once (seconds, or with s/m/h/d).",
        parse_duration,
    ),
    Option(
        "ACCESS_LOG",
        "access_log",
        "stderr",
        "Where each request's line goes (time, client address, user, method, path, "
        "status, bytes, duration): stderr, a file path (appended to), or off.",
        parse_access_log,
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


def option_for(field_name: str) -> Option:
    """The option that fills this Settings field."""
    for option in OPTIONS:
        if option.field == field_name:
            return option
    raise KeyError(field_name)


def _default(field_name: str) -> Any:
    """The default of a Settings field: its option's default, parsed, from OPTIONS."""
    option = option_for(field_name)
    if option.default is None:
        raise ValueError(f"option {option.env} has no default")
    return option.parse(option.default)


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. Build it with `load_settings()` (or directly in tests).

    Every default comes from OPTIONS (the one table); the fields without one are the
    folders and secrets `load_settings` works out."""

    data_dir: Path
    database_url: str
    upload_folder: Path
    secret_key: str
    google_client_id: str = _default("google_client_id")
    google_certs_url: str = _default("google_certs_url")
    access_token_lifetime: int = _default("access_token_lifetime")
    refresh_token_lifetime: int = _default("refresh_token_lifetime")
    max_upload_size: int = _default("max_upload_size")
    tus_max_chunk: int = _default("tus_max_chunk")
    tus_expiration: int = _default("tus_expiration")
    trash_days: int = _default("trash_days")
    versions_max_age: int = _default("versions_max_age")
    versions_quota_share: int = _default("versions_quota_share")
    password_hash: str = _default("password_hash")
    password_min_length: int = _default("password_min_length")
    registration: str = _default("registration")
    registration_emails: tuple[str, ...] = _default("registration_emails")
    host: str = _default("host")
    port: int = _default("port")
    workers: int = _default("workers")
    threads: int = _default("threads")
    trusted_proxies: int = _default("trusted_proxies")
    cors_origins: tuple[str, ...] = _default("cors_origins")
    metrics_token: str = _default("metrics_token")
    header_timeout: int = _default("header_timeout")
    keepalive_timeout: int = _default("keepalive_timeout")
    connections_per_address: int = _default("connections_per_address")
    max_connections: int = _default("max_connections")
    drain_timeout: int = _default("drain_timeout")
    access_log: str = _default("access_log")
    storage_url: str = _default("storage_url")  # "": the upload folder (blob_store_url)
    s3_timeout: int = _default("s3_timeout")
    s3_redirect_downloads: bool = _default("s3_redirect_downloads")
    thumbnail_workers: int = _default("thumbnail_workers")
    # Where each value came from ("default", "environment", ".env (/path)", "generated ...").
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    # The .env file read, if one was.
    env_file: Path | None = field(default=None, compare=False)
    # Mistakes worth a warning that did not stop pcloud (a misspelled setting in .env).
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def google_enabled(self) -> bool:
        return bool(self.google_client_id)

    @property
    def registration_open(self) -> bool:
        return self.registration == "open"

    @property
    def blob_store_url(self) -> str:
        """STORAGE_URL, or the upload folder as a file:// URL when it is not set."""
        return self.storage_url or f"file://{self.upload_folder}"


def load_settings(
    environ: Mapping[str, str] | None = None,
    env_file: Path | str | None = ".env",
    overrides: Mapping[str, Any] | None = None,
    create: bool = True,
) -> Settings:
    """Read every option once and return frozen Settings.

    Raises ConfigError naming the option and where its bad value came from. A missing
    env_file is read as empty (the CLI refuses a missing `--env-file` itself).
    When no SECRET_KEY is configured, the key kept in the data folder is used; with
    `create`, the data folder (mode 0700) and a new key (mode 0600) are made when missing,
    without it a missing one is refused with MissingDataFolder.
    """
    environ = os.environ if environ is None else environ
    env_path = Path(env_file).resolve() if env_file else None
    if env_path is None or not env_path.is_file():
        env_path = None
    file_values = dotenv_values(env_path) if env_path else {}
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
                raise ConfigError(
                    f"{option.env}={option.shown(raw)} from {source}: {error}."
                ) from None
        sources[option.field] = source

    data_dir = Path(values["data_dir"]).expanduser().resolve()
    values["data_dir"] = data_dir
    if values["upload_folder"] is None:
        values["upload_folder"] = data_dir / "files"
    values["upload_folder"] = Path(values["upload_folder"]).expanduser().resolve()
    if values["database_url"] is None:
        values["database_url"] = f"sqlite:///{data_dir / 'pcloud.db'}"
    if values["secret_key"] is None:
        if values["storage_url"].startswith("s3://"):
            raise ConfigError(_NODE_LOCAL_SECRET)
        values["secret_key"], sources["secret_key"] = _kept_secret_key(
            data_dir, sources["data_dir"], create
        )
    warnings = unknown_setting_warnings(file_values, f".env ({env_path})") + (
        unknown_setting_warnings(
            {name: value for name, value in environ.items() if name.startswith("PCLOUD_")},
            "the environment",
        )
    )
    return Settings(**values, sources=sources, env_file=env_path, warnings=warnings)


# Names read by the libraries pcloud uses, or by other tools, that a .env may hold too.
KNOWN_ELSEWHERE = ("PCLOUD_TEST_DATABASE", "PCLOUD_TEST_POSTGRES_URL")


def unknown_setting_warnings(values: Mapping[str, Any], source: str) -> tuple[str, ...]:
    """A warning for each name that is not a setting but looks like one misspelled: the
    closest known name (difflib), or, for a PCLOUD_ name with none close, that it is not
    one. Other names (a .env shared with other programs) pass in silence."""
    known = [option.env for option in OPTIONS]
    warnings = []
    for name in values:
        if name in known or name in KNOWN_ELSEWHERE:
            continue
        closest = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.75)
        if closest:
            warnings.append(
                f"{name} in {source} is not a pcloud setting (ignored): did you mean {closest[0]}?"
            )
        elif name.upper().startswith("PCLOUD_"):
            warnings.append(
                f"{name} in {source} is not a pcloud setting (ignored); .env.example "
                "lists them all."
            )
    return tuple(warnings)


class MissingDataFolder(ConfigError):
    """A command that must not create one found no data folder (or no secret key in it)."""


_NODE_LOCAL_SECRET = (
    "SECRET_KEY is not set, and STORAGE_URL is s3://: with shared storage several pcloud "
    "nodes may serve the same accounts, and a key generated on this one would refuse "
    "every token the others signed. Set SECRET_KEY to the same long random value on "
    "every node (e.g. the output of `python3 -c 'import secrets; "
    "print(secrets.token_urlsafe(48))'`), and DATABASE_URL to the one PostgreSQL they share."
)


def _kept_secret_key(data_dir: Path, data_dir_source: str, create: bool) -> tuple[str, str]:
    """Return the key kept in data_dir/secret_key, creating it (mode 0600, in a folder of
    mode 0700) on first use when allowed to."""
    key_path = data_dir / "secret_key"
    if not create and not key_path.exists():
        what = "data folder" if not data_dir.exists() else "secret key"
        looked_for = data_dir if not data_dir.exists() else key_path
        raise MissingDataFolder(
            f"No pcloud {what} at {looked_for} (PCLOUD_DATA_DIR from {data_dir_source}): "
            "run pcloud in the folder that holds pcloud-data, or point PCLOUD_DATA_DIR (or "
            "--env-file, or SECRET_KEY and DATABASE_URL) at your server's; "
            "`pcloud init-db` makes a new one."
        )
    try:
        if create:
            make_private_folder(data_dir)
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
