"""A million files for one account (issue 19): does the cost of each request and command
stay flat as a photo library grows?

    .venv/bin/python bench/million.py [--files 1000000] [--postgresql] [--json out.json]

The files are made in the database directly (tiny contents, each stored once in the
local store and shared by many files, as `--contents` says), in folders of 100,000, with
a change feed entry each. Then, at 10,000 files and again at the full count:

- a page of 1,000 from a 100,000-file folder (`GET /api/v1/folders/<id>?offset=..`), ms;
- upload-check of 10,000 hashes (half present, half not), ms;
- a page of 1,000 of the change feed from its middle, ms;
- `pcloud users list`, `pcloud files gc --dry-run` and `pcloud files verify --metadata`
  as processes: seconds, and peak memory (max RSS) above an idle `pcloud` process.

Requests go through the app in this process (Flask's test client: the app's own cost,
no HTTP); the commands run as the `pcloud` an admin runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import peewee

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from pcloud.api import create_app  # noqa: E402
from pcloud.config import Settings  # noqa: E402
from pcloud.core import Pcloud  # noqa: E402
from pcloud.models import (  # noqa: E402
    Blob,
    Change,
    Folder,
    StoredFile,
    User,
    database_proxy,
    micros,
    name_sort_key,
    utc_now,  # noqa: E402
)

FOLDER_SIZE = 100_000
PAGE = 1000
CHECKED = 10_000
PASSWORD = "bench password 1234"
BATCH = 5000
POSTGRES_URL = os.environ.get(
    "PCLOUD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
TARGETS = {
    "folder page ms": 50.0,
    "gc --dry-run s": 120.0,
    "verify --metadata s": 120.0,
}


def timed(function, repeats: int = 5) -> float:
    """Median milliseconds of `repeats` calls (after one unrecorded)."""
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def memory_mb(pid: int) -> tuple[float, float]:
    """The process's own memory now (RssAnon: heap and stacks) and its peak RSS so far
    (VmHWM), MB. The RSS also counts the SQLite file pages it reads through mmap (up to
    256 MiB), which are the kernel's page cache, shared and given back under pressure,
    not memory the command holds. (wait4's ru_maxrss is no use here: a child forked from
    this large bench process starts with the bench's RSS as its high-water mark.)"""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0, 0.0
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    try:
        return int(fields["RssAnon"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
    except (KeyError, ValueError):  # exiting: a zombie has no memory lines
        return 0.0, 0.0


def command_cost(environment: dict[str, str], *arguments: str) -> tuple[float, float, float]:
    """Seconds, peak own memory (RssAnon, sampled every 20 ms) and peak RSS (VmHWM, as
    last sampled) in MB of one `pcloud` command, as a process of its own."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "pcloud", "--env-file", os.devnull, *arguments],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    peak_anonymous = peak_rss = 0.0
    while True:
        pid, status, _usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        anonymous, rss = memory_mb(process.pid)
        peak_anonymous, peak_rss = max(peak_anonymous, anonymous), max(peak_rss, rss)
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"pcloud {' '.join(arguments)}: {process.stderr.read().decode()}")
    return seconds, peak_anonymous, peak_rss


class Library:
    """The bench account, its folders and its contents."""

    def __init__(self, pcloud: Pcloud, contents: int) -> None:
        self.pcloud = pcloud
        self.client = create_app(pcloud=pcloud).test_client()
        self.client.post(
            "/register",
            json={"username": "many", "email": "many@example.org", "password": PASSWORD},
        )
        token = self.client.post(
            "/login", json={"login_identifier": "many", "password": PASSWORD}
        ).get_json()["access_token"]
        self.headers = {"Authorization": f"Bearer {token}"}
        self.user = User.get(User.username == "many")
        self.root = Folder.get(Folder.root_of == self.user)
        self.folders: list[int] = []
        self.files = 0
        self.blobs: list[tuple[str, str]] = []  # (key, sha256)
        for number in range(contents):
            stored = pcloud.blobs.put([f"content {number}".encode()])
            self.blobs.append((stored.key, stored.sha256))
        with database_proxy.atomic():
            Blob.insert_many(
                [
                    {
                        "sha256": sha256,
                        "store_key": key,
                        "size": len(f"content {n}"),
                        "ref_count": 0,
                    }
                    for n, (key, sha256) in enumerate(self.blobs)
                ]
            ).execute()

    def grow_to(self, count: int) -> None:
        """Add files (and their changes) until the account holds `count`."""
        now = micros(utc_now())
        while self.files < count:
            if self.files % FOLDER_SIZE == 0:
                answer = self.client.post(
                    "/api/v1/folders",
                    headers=self.headers,
                    json={"name": f"Camera {len(self.folders)}"},
                )
                self.folders.append(answer.get_json()["id"])
            folder = self.folders[-1]
            room = FOLDER_SIZE - self.files % FOLDER_SIZE
            batch = min(BATCH, count - self.files, room)
            rows = []
            for number in range(self.files, self.files + batch):
                key, sha256 = self.blobs[number % len(self.blobs)]
                name = f"IMG_{number:08d}.jpg"
                rows.append(
                    {
                        "owner": self.user.id,
                        "folder": folder,
                        "name": name,
                        "sort_key": name_sort_key(name),  # insert_many sets none itself
                        "blob_key": key,
                        "size": len(f"content {number % len(self.blobs)}"),
                        "sha256": sha256,
                        "created_at": now,
                        "modified_at": now,
                    }
                )
            with database_proxy.atomic():
                StoredFile.insert_many(rows).execute()
                ids = list(
                    StoredFile.select(StoredFile.id)
                    .where(
                        StoredFile.folder == folder, StoredFile.name.in_([r["name"] for r in rows])
                    )
                    .tuples()
                )
                Change.insert_many(
                    [
                        {
                            "owner": self.user.id,
                            "kind": "created",
                            "item_type": "file",
                            "item_id": file_id,
                            "parent_id": folder,
                            "name": row["name"],
                            "at": now,
                        }
                        for (file_id,), row in zip(ids, rows, strict=False)
                    ]
                ).execute()
            self.files += batch
        with database_proxy.atomic():
            per_blob = self.files // len(self.blobs)
            Blob.update(ref_count=per_blob).execute()
        # As a database in use would have: statistics, and on PostgreSQL the visibility
        # map that autovacuum keeps (index-only scans read it).
        if isinstance(self.pcloud.database, peewee.PostgresqlDatabase):
            self.pcloud.database.execute_sql("VACUUM ANALYZE")
        else:
            self.pcloud.database.execute_sql("ANALYZE")

    # --- the measures --------------------------------------------------------------------

    def folder_page_ms(self, where: float = 0.5, sort: str = "name") -> float:
        """A page of PAGE from the first folder, starting `where` of the way into it."""
        folder = self.folders[0]
        offset = int((min(FOLDER_SIZE, self.files) - PAGE) * where)

        def page() -> None:
            answer = self.client.get(
                f"/api/v1/folders/{folder}?offset={offset}&limit={PAGE}&sort={sort}",
                headers=self.headers,
            )
            assert answer.status_code == 200 and len(answer.get_json()["entries"]) == PAGE

        return timed(page)

    def upload_check_ms(self) -> float:
        present = [sha256 for _key, sha256 in self.blobs][: CHECKED // 2]
        absent = [hashlib.sha256(f"never {n}".encode()).hexdigest() for n in range(CHECKED)]
        hashes = (present + absent)[:CHECKED]

        def check() -> None:
            answer = self.client.post(
                "/api/v1/upload-check", headers=self.headers, json={"sha256": hashes}
            )
            assert answer.status_code == 200, answer.get_json()

        return timed(check, repeats=3)

    def change_page_ms(self) -> float:
        first = Change.select(Change.id).order_by(Change.id).first().id
        middle = first + self.files // 2

        def page() -> None:
            answer = self.client.get(
                f"/api/v1/changes?cursor={middle}&limit={PAGE}", headers=self.headers
            )
            assert answer.status_code == 200 and len(answer.get_json()["changes"]) == PAGE

        return timed(page)


def measure_at(library: Library, environment: dict[str, str], idle_mb: float) -> dict:
    figures = {
        "files": library.files,
        "folder page ms": library.folder_page_ms(),
        "last folder page ms": library.folder_page_ms(where=1.0),
        "page by size ms": library.folder_page_ms(sort="size"),
        "upload-check ms": library.upload_check_ms(),
        "change page ms": library.change_page_ms(),
    }
    for name, arguments in (
        ("users list", ("users", "list")),
        ("gc --dry-run", ("files", "gc", "--dry-run")),
        ("verify --metadata", ("files", "verify", "--metadata")),
    ):
        seconds, anonymous, rss = command_cost(environment, *arguments)
        figures[f"{name} s"] = seconds
        figures[f"{name} MB above idle"] = anonymous - idle_mb
        figures[f"{name} peak RSS MB (with mmap)"] = rss
    for name, value in figures.items():
        print(f"  {name:28} {value:12,.1f}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--contents", type=int, default=10_000)
    parser.add_argument("--postgresql", action="store_true")
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pcloud-million-"))
    schema = None
    if options.postgresql:
        import psycopg2

        schema = f"million_{uuid.uuid4().hex[:8]}"
        admin = psycopg2.connect(POSTGRES_URL)
        admin.autocommit = True
        admin.cursor().execute(f'CREATE SCHEMA "{schema}"')
        database_url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    else:
        database_url = f"sqlite:///{work / 'pcloud.db'}"
    settings = Settings(
        data_dir=work,
        database_url=database_url,
        upload_folder=work / "files",
        secret_key="bench-secret-key-of-a-sensible-length",
        password_hash="scrypt:1024:8:1",
    )
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PCLOUD_DATA_DIR": str(work),
        "DATABASE_URL": database_url,
        "SECRET_KEY": settings.secret_key,
    }
    pcloud = Pcloud.open(settings)
    try:
        library = Library(pcloud, options.contents)
        _seconds, idle_mb, _rss = command_cost(environment, "init-db")
        print(f"idle pcloud process: {idle_mb:.0f} MB of its own")
        results = {}
        for count in (10_000, options.files):
            started = time.perf_counter()
            library.grow_to(count)
            print(f"{count:,} files (made in {time.perf_counter() - started:.0f} s):", flush=True)
            results[count] = measure_at(library, environment, idle_mb)
        small, large = results[10_000], results[options.files]
        print("targets:")
        verdicts = {
            "folder page < 50 ms": large["folder page ms"] < 50,
            "last folder page < 50 ms": large["last folder page ms"] < 50,
            "upload-check < 5x its time at 10,000 files": large["upload-check ms"]
            < 5 * small["upload-check ms"],
            "gc --dry-run < 2 min": large["gc --dry-run s"] < 120,
            "verify --metadata < 2 min": large["verify --metadata s"] < 120,
            "each command within 200 MB of idle": all(
                large[f"{name} MB above idle"] < 200
                for name in ("users list", "gc --dry-run", "verify --metadata")
            ),
        }
        for name, met in verdicts.items():
            print(f"  {'met' if met else 'NOT MET':8} {name}")
        if options.json:
            options.json.write_text(json.dumps({"results": results, "targets": verdicts}, indent=2))
    finally:
        pcloud.close()
        if schema:
            admin.cursor().execute(f'DROP SCHEMA "{schema}" CASCADE')
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
