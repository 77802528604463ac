"""`pcloud backup` as a real process beside a real `pcloud serve` taking uploads, renames
and deletes; `pcloud restore` into a fresh folder, and the restored server serving it all;
`pcloud backup` killed with SIGKILL at random points, then run again."""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from pcloud.config import load_settings
from tests.conftest import fresh_database_url, make_settings, settings_environment
from tests.served import start_server, stop_server
from tests.test_backup import empty_database

pytestmark = pytest.mark.e2e


def pcloud_command(settings, *args: str, **popen) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PCLOUD_")}
    env.update(settings_environment(settings))
    return subprocess.Popen(
        [sys.executable, "-m", "pcloud", "--env-file", os.devnull, *args],
        env=env,
        cwd=settings.data_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def run_pcloud(settings, *args: str) -> tuple[int, str]:
    process = pcloud_command(settings, *args)
    output, _ = process.communicate(timeout=300)
    return process.returncode, output


def sign_up(url: str) -> dict[str, str]:
    body = {"username": "ann", "email": "ann@example.org", "password": "a long enough password"}
    assert requests.post(f"{url}/register", json=body, timeout=10).status_code == 201
    login = requests.post(
        f"{url}/login",
        json={"login_identifier": "ann", "password": "a long enough password"},
        timeout=10,
    )
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def upload(url: str, headers: dict, name: str, content: bytes, replace: bool = False) -> None:
    response = requests.post(
        f"{url}/api/v1/folders/root/files",
        headers=headers,
        files={"file": (name, content)},
        params={"on_conflict": "replace" if replace else "fail"},
        timeout=30,
    )
    assert response.status_code == 201, response.text


def blob_list(snapshot: Path) -> set[str]:
    return {line.split()[0] for line in (snapshot / "blobs.txt").read_text().splitlines()}


def latest(dest: Path) -> Path:
    return max(s for s in (dest / "snapshots").iterdir() if (s / "COMPLETE").is_file())


class ChangeStream(threading.Thread):
    """Uploads, replaces, renames and deletes (for good) its own files until stopped,
    noting when each file was acknowledged and when it was first touched again."""

    def __init__(self, url: str, headers: dict) -> None:
        super().__init__(daemon=True)
        self.url, self.headers = url, headers
        self.acknowledged: dict[str, tuple[str, float]] = {}  # name -> (sha256, when)
        self.touched: dict[str, float] = {}  # name -> when a rename or delete began
        self.stop = threading.Event()
        self.operations = 0
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            number, live = 0, []
            while not self.stop.is_set():
                number += 1
                name = f"stream-{number}.bin"
                content = os.urandom(random.randint(1, 40_000))
                upload(self.url, self.headers, name, content)
                self.acknowledged[name] = (hashlib.sha256(content).hexdigest(), time.time())
                live.append(name)
                if number % 4 == 0 and len(live) > 2:
                    self._rename(live.pop(random.randrange(len(live))), live)
                if number % 5 == 0 and len(live) > 2:
                    self._delete_for_good(live.pop(random.randrange(len(live))))
                if number % 6 == 0:
                    self.touched.setdefault(live[-1], time.time())
                    upload(self.url, self.headers, live[-1], b"replaced", replace=True)
                    # What a later rename of it carries is the new content.
                    replaced = hashlib.sha256(b"replaced").hexdigest()
                    self.acknowledged[live[-1]] = (replaced, time.time())
                self.operations += 1
        except BaseException as error:  # noqa: BLE001 (reported by the test)
            self.failure = error

    def _rename(self, old: str, live: list[str]) -> None:
        self.touched.setdefault(old, time.time())
        new = f"renamed-{old}"
        body = {"old_filename": old, "new_filename": new}
        assert requests.put(f"{self.url}/rename", headers=self.headers, json=body).ok
        self.acknowledged[new] = (self.acknowledged[old][0], time.time())
        live.append(new)

    def _delete_for_good(self, name: str) -> None:
        self.touched.setdefault(name, time.time())
        assert requests.delete(f"{self.url}/delete/{name}", headers=self.headers).ok


def test_a_backup_during_uploads_renames_and_deletes_restores_all_acknowledged(tmp_path):
    live_folder, dest, new = tmp_path / "live", tmp_path / "backup", tmp_path / "restored"
    live_folder.mkdir()
    with fresh_database_url(live_folder) as database_url, empty_database() as restore_url:
        settings = make_settings(live_folder, database_url)
        process, url = start_server(settings)
        try:
            headers = sign_up(url)
            before: dict[str, str] = {}
            for number in range(150):
                content = os.urandom(random.randint(1, 200_000))
                upload(url, headers, f"before-{number}.bin", content)
                before[f"before-{number}.bin"] = hashlib.sha256(content).hexdigest()
            stream = ChangeStream(url, headers)
            stream.start()
            time.sleep(1)
            backup_began = time.time()
            code, output = run_pcloud(settings, "backup", str(dest))
            assert code == 0, output
            time.sleep(0.5)
            stream.stop.set()
            stream.join(60)
            assert stream.failure is None, stream.failure
            assert stream.operations > 20, stream.operations
            first = blob_list(latest(dest))
            code, output = run_pcloud(settings, "backup", str(dest))
            assert code == 0, output
            copied = int(re.search(r"copied now (\d+) ", output).group(1))
            assert copied == len(blob_list(latest(dest)) - first)
        finally:
            stop_server(process)
        args = ["restore", str(dest), "--data-dir", str(new)]
        code, output = run_pcloud(
            settings, *args, *(["--database-url", restore_url] * bool(restore_url))
        )
        assert code == 0, output
        restored = load_settings(environ={}, env_file=new / "pcloud.env")
        code, output = run_pcloud(restored, "files", "verify")
        assert code == 0, output
        process, url = start_server(restored)
        try:
            listing = requests.get(
                f"{url}/api/v1/folders/root", headers=headers, params={"limit": 10000}, timeout=30
            )
            assert listing.status_code == 200, listing.text  # the old token still works
            found = {entry["name"]: entry for entry in listing.json()["entries"]}
            expected = dict(before)
            for name, (sha256, when) in stream.acknowledged.items():
                if when < backup_began and name not in stream.touched:
                    expected[name] = sha256
            assert len(expected) > 150
            for name, sha256 in expected.items():
                assert found[name]["sha256"] == sha256, name
                content = requests.get(
                    f"{url}/api/v1/files/{found[name]['id']}/content", headers=headers, timeout=30
                ).content
                assert hashlib.sha256(content).hexdigest() == sha256, name
        finally:
            stop_server(process)


def test_a_backup_killed_at_random_points_completes_and_verifies_when_run_again(
    tmp_path, settings, client, auth
):
    headers = auth.headers()
    for number in range(300):
        content = os.urandom(random.randint(50_000, 300_000))
        response = client.post(
            "/upload",
            headers=headers,
            data={"file": (io.BytesIO(content), f"f{number}")},
        )
        assert response.status_code == 201
    dest = tmp_path / "backup"
    killed_midway = 0
    delay = random.uniform(0.3, 2.0)
    for _attempt in range(8):
        process = pcloud_command(settings, "backup", str(dest))
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        if process.returncode == -signal.SIGKILL:
            killed_midway += 1
        else:  # it ended first (a quick machine): strike earlier next time
            delay /= 2
    assert killed_midway  # at least one run died before it ended
    code, output = run_pcloud(settings, "backup", str(dest))
    assert code == 0, output
    code, output = run_pcloud(settings, "backup", "verify", str(dest))
    assert code == 0, output
    assert len(list((dest / "snapshots").iterdir())) == 1
    assert not list((dest / "blobs").glob("*/.*.tmp"))
