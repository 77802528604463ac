"""WebDAV under `pcloud serve`, driven by the clients people use: litmus (the protocol's
conformance suites), rclone (sync, vendor owncloud) and cadaver; and a large PUT,
streamed into the store with flat memory. One server for the whole module."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import fresh_database_url, make_settings
from tests.served import Server, start_server, stop_server
from tests.test_e2e import SERVER_LIMIT

pytestmark = pytest.mark.e2e
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("dav-served")
    with fresh_database_url(folder) as database_url:
        settings = make_settings(folder, database_url, max_upload_size=SERVER_LIMIT)
        process, url = start_server(settings)
        try:
            yield Server(process, url, settings)
        finally:
            stop_server(process)


class DavUser:
    def __init__(self, server: Server, name: str) -> None:
        self.name = name
        requests.post(
            f"{server.url}/register",
            json={"username": name, "email": f"{name}@example.org", "password": PASSWORD},
            timeout=10,
        ).raise_for_status()
        login = requests.post(
            f"{server.url}/login",
            json={"login_identifier": name, "password": PASSWORD},
            timeout=10,
        )
        self.bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
        made = requests.post(
            f"{server.url}/api/v1/app-passwords",
            headers=self.bearer,
            json={"device_name": "test client"},
            timeout=10,
        )
        assert made.status_code == 201, made.text
        self.app_password = made.json()["password"]
        self.dav_url = f"{server.url}/dav/"


def need(program: str) -> None:
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not installed (.ci/run installs it)")


def test_litmus_passes_every_suite_without_failures_or_warnings(server, tmp_path):
    need("litmus")
    user = DavUser(server, "litmus")
    run = subprocess.run(
        ["litmus", "-k", user.dav_url, user.name, user.app_password],
        cwd=tmp_path,  # litmus writes its debug.log where it runs
        capture_output=True,
        text=True,
        timeout=300,
        errors="replace",
    )
    summaries = re.findall(
        r"summary for `(\w+)': of (\d+) tests run: (\d+) passed, (\d+) failed", run.stdout
    )
    assert {suite for suite, *_ in summaries} == {"basic", "copymove", "props", "locks", "http"}
    assert all(failed == "0" for *_, failed in summaries), run.stdout
    assert "WARNING" not in run.stdout and "SKIPPED" not in run.stdout, run.stdout


def _rclone(user: DavUser, config: Path, *args: str) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "RCLONE_CONFIG": str(config),
        "RCLONE_CONFIG_PC_TYPE": "webdav",
        "RCLONE_CONFIG_PC_URL": user.dav_url,
        "RCLONE_CONFIG_PC_VENDOR": "owncloud",
        "RCLONE_CONFIG_PC_USER": user.name,
    }
    obscured = subprocess.run(
        ["rclone", "obscure", user.app_password], capture_output=True, text=True, check=True
    ).stdout.strip()
    environment["RCLONE_CONFIG_PC_PASS"] = obscured
    return subprocess.run(
        ["rclone", *args], capture_output=True, text=True, timeout=600, env=environment
    )


def _tree_of_files(root: Path, count: int) -> dict[str, int]:
    """`count` small files in nested folders with Unicode names; their mtimes (seconds)."""
    generator = random.Random(15)
    mtimes = {}
    for number in range(count):
        folder = (
            root / f"ordner-{number % 10}" / f"sous-dossier é{number % 7}" / f"写真{number % 3}"
        )
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"fichier {number} ✓ ümlaut.txt"
        path.write_bytes(f"content {number}\n".encode() * generator.randint(1, 20))
        mtime = 1_500_000_000 + generator.randint(0, 200_000_000)
        os.utime(path, (mtime, mtime))
        mtimes[str(path.relative_to(root))] = mtime
    return mtimes


def test_rclone_syncs_a_thousand_files_both_ways_keeping_mtimes(server, tmp_path):
    need("rclone")
    user = DavUser(server, "rclone")
    config = tmp_path / "rclone.conf"
    local = tmp_path / "local"
    mtimes = _tree_of_files(local, 1000)

    first = _rclone(user, config, "sync", "--transfers", "8", str(local), "pc:backup")
    assert first.returncode == 0, first.stderr
    check = _rclone(user, config, "check", str(local), "pc:backup")
    assert check.returncode == 0 and "0 differences found" in check.stderr, check.stderr

    again = _rclone(user, config, "sync", "-v", str(local), "pc:backup")
    assert again.returncode == 0, again.stderr
    assert "There was nothing to transfer" in again.stderr, again.stderr

    listed = _rclone(user, config, "lsjson", "-R", "--files-only", "pc:backup")
    remote = {entry["Path"]: entry["ModTime"] for entry in json.loads(listed.stdout)}
    assert len(remote) == 1000
    from datetime import datetime

    for path, mtime in mtimes.items():
        assert datetime.fromisoformat(remote[path].replace("Z", "+00:00")).timestamp() == mtime

    # A change made through the API (the phone) comes back down.
    changed_path = next(iter(mtimes))
    _replace_through_the_api(server, user, f"backup/{changed_path}", b"changed on the phone\n")
    down = _rclone(user, config, "sync", "pc:backup", str(local))
    assert down.returncode == 0, down.stderr
    assert (local / changed_path).read_bytes() == b"changed on the phone\n"


def _replace_through_the_api(server: Server, user: DavUser, path: str, content: bytes) -> None:
    *folders, name = path.split("/")
    folder = "root"
    for part in folders:
        listing = requests.get(
            f"{server.url}/api/v1/folders/{folder}?limit=10000", headers=user.bearer, timeout=10
        ).json()
        folder = next(e["id"] for e in listing["entries"] if e["name"] == part)
    answer = requests.post(
        f"{server.url}/api/v1/folders/{folder}/files?on_conflict=replace",
        headers=user.bearer,
        files={"file": (name, content)},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text


def test_cadaver_puts_gets_makes_moves_and_locks(server, tmp_path):
    need("cadaver")
    user = DavUser(server, "cadaver")
    home = tmp_path / "home"
    home.mkdir()
    host = server.url.split("//")[1].split(":")[0]
    netrc = home / ".netrc"
    netrc.write_text(f"machine {host}\nlogin {user.name}\npassword {user.app_password}\n")
    netrc.chmod(0o600)
    (tmp_path / "local.txt").write_text("hello from cadaver\n")
    script = (
        "mkcol inbox\nput local.txt inbox/a.txt\nget inbox/a.txt back.txt\n"
        "move inbox/a.txt inbox/b.txt\nlock inbox/b.txt\nunlock inbox/b.txt\nls inbox\nquit\n"
    )
    run = subprocess.run(
        ["cadaver", user.dav_url],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "HOME": str(home)},
    )
    out = run.stdout + run.stderr
    for step in (
        "Creating `inbox': succeeded",
        "Uploading",
        "Downloading",
        "Moving",
        "Locking",
        "Unlocking",
    ):
        assert step in out, out
    assert "failed" not in out, out
    assert (tmp_path / "back.txt").read_text() == "hello from cadaver\n"
    listing = requests.get(f"{server.url}/api/v1/folders/root", headers=user.bearer, timeout=10)
    inbox = next(e for e in listing.json()["entries"] if e["name"] == "inbox")
    inside = requests.get(
        f"{server.url}/api/v1/folders/{inbox['id']}", headers=user.bearer, timeout=10
    )
    assert [e["name"] for e in inside.json()["entries"]] == ["b.txt"]


class RepeatedPiece:
    """A body of `size` bytes, one piece over and over, read as a file (a known length:
    requests then sends Content-Length, not chunks)."""

    def __init__(self, piece: bytes, size: int) -> None:
        self.piece, self.left = piece, size

    def __len__(self) -> int:
        return self.left

    def read(self, _amount: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        chunk = self.piece[: self.left]
        self.left -= len(chunk)
        return chunk


def test_a_large_put_streams_into_the_store_with_flat_memory(server):
    user = DavUser(server, "big")
    size = 256 * 1024 * 1024
    piece = os.urandom(1024 * 1024)
    digest = hashlib.sha256()
    for _ in range(size // len(piece)):
        digest.update(piece)
    server.peak_memory_reset()
    idle = max(server.memory("VmRSS").values())
    written_before = server.written_bytes()

    answer = requests.put(
        f"{user.dav_url}big.bin",
        data=RepeatedPiece(piece, size),
        auth=(user.name, user.app_password),
        timeout=120,
    )
    assert answer.status_code == 201, answer.text
    peak = max(server.memory("VmHWM").values())
    assert peak - idle < 64 * 1024 * 1024, f"peak {peak - idle} bytes above idle"
    # Written once, into the store (not spooled to a temporary file first).
    assert server.written_bytes() - written_before < size * 1.2
    head = requests.head(f"{user.dav_url}big.bin", auth=(user.name, user.app_password), timeout=10)
    assert head.headers["ETag"].strip('"') == digest.hexdigest()


def test_a_put_past_the_quota_stores_nothing_while_it_arrives(server):
    user = DavUser(server, "tight")
    from pcloud.core import Pcloud
    from pcloud.services import quota

    app = Pcloud.open(server.settings, create_tables=False)
    try:
        quota.set_quota(user.name, "1MiB")
    finally:
        app.close()
    auth = (user.name, user.app_password)
    assert requests.request("PROPFIND", user.dav_url, auth=auth, headers={"Depth": "0"}).ok
    size = 64 * 1024 * 1024
    blobs_before = len(server.blobs())
    written_before = server.written_bytes()
    answer = requests.put(f"{user.dav_url}too-big.bin", data=b"\0" * size, auth=auth, timeout=60)
    assert answer.status_code == 507
    assert server.written_bytes() - written_before < 1024 * 1024  # dropped, not stored
    assert len(server.blobs()) == blobs_before and server.partials() == []


def test_an_anonymous_put_is_refused_before_its_body_is_read(server):
    written_before = server.written_bytes()
    answer = requests.put(
        f"{server.url}/dav/anonymous.bin",
        data=RepeatedPiece(b"\0" * 1024 * 1024, 32 * 1024 * 1024),
        timeout=60,
    )
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith('Basic realm="pcloud"')
    assert server.written_bytes() - written_before < 1024 * 1024
