"""A full disk, for real: `pcloud serve` (SQLite) with its data folder on a tmpfs of a few
MiB. Every kind of write answers 507 with a retryable JSON error and one log line, loses
nothing it acknowledged, and works again once room is made."""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import make_settings
from tests.served import Server, start_server, stop_server

pytestmark = pytest.mark.e2e
MIB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
PIECE = {**TUS, "Content-Type": "application/offset+octet-stream"}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted for the test (needs root, or the right to mount)."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip() or 'refused'}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def full_disk_server(small_disk: Path) -> Iterator[Server]:
    settings = make_settings(
        small_disk,
        f"sqlite:///{small_disk / 'pcloud.db'}",
        max_upload_size=2 * MIB,
        tus_max_chunk=MIB,
    )
    process, url = start_server(settings, workers=1)
    try:
        yield Server(process, url, settings)
    finally:
        stop_server(process)


def fill(folder: Path) -> Path:
    """Write a file until the disk is full; the file (delete it to make room again)."""
    filler = folder / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (64 * 1024, 4096, 512, 1):  # then the last bytes that fit
            try:
                while True:
                    os.write(descriptor, b"\0" * size)
            except OSError as error:
                assert error.errno == errno.ENOSPC
    finally:
        os.close(descriptor)
    return filler


def upload(server: Server, headers: dict, name: str, content: bytes) -> requests.Response:
    return requests.post(
        f"{server.url}/upload", headers=headers, files={"file": (name, content)}, timeout=30
    )


def make_folder(
    server: Server, headers: dict, name: str, client: requests.Session | None = None
) -> requests.Response:
    return (client or requests).post(
        f"{server.url}/api/v1/folders", headers=headers, json={"name": name}, timeout=30
    )


def new_tus_upload(server: Server, headers: dict, length: int, name: str) -> str:
    created = requests.post(
        f"{server.url}/tus/",
        headers={
            **headers,
            **TUS,
            "Upload-Length": str(length),
            "Upload-Metadata": "filename " + base64.b64encode(name.encode()).decode(),
        },
        timeout=30,
    )
    assert created.status_code == 201, created.text
    return server.url + created.headers["Location"]


def patch(url: str, headers: dict, offset: int, data: bytes) -> requests.Response:
    return requests.patch(
        url, headers={**headers, **PIECE, "Upload-Offset": str(offset)}, data=data, timeout=30
    )


def offset_of(url: str, headers: dict) -> int:
    return int(requests.head(url, headers={**headers, **TUS}, timeout=30).headers["Upload-Offset"])


def assert_storage_full(response: requests.Response) -> None:
    assert response.status_code == 507, (response.status_code, response.text)
    assert response.headers["Retry-After"] == "60"
    body = response.json()
    assert "out of storage space" in body["error"] and body["retry_after"] == 60


def log_lines(server: Server, text: str) -> list[str]:
    time.sleep(0.2)  # the server's output reaches us through a pipe
    return [line for line in server.process.output if text in line]


def test_a_full_disk_is_507_for_every_write_loses_nothing_and_passes(full_disk_server):
    server = full_disk_server
    headers = server.new_user()
    kept = os.urandom(200_000)
    assert upload(server, headers, "kept.bin", kept).status_code == 201
    assert make_folder(server, headers, "Before").status_code == 201
    piece = os.urandom(300_000)
    tus_url = new_tus_upload(server, headers, 2 * len(piece), "resumed.bin")
    assert patch(tus_url, headers, 0, piece).status_code == 204

    filler = fill(server.settings.data_dir)

    assert_storage_full(upload(server, headers, "refused.bin", os.urandom(300_000)))
    assert_storage_full(patch(tus_url, headers, len(piece), piece))
    # A database write: SQLite fills its WAL first (and a checkpoint makes room in it now
    # and then): every answer is 201 or 507, never a 500.
    # One connection for all of them: a hundred answers kept, each holding its own
    # connection open, would meet the per-address connection limit instead.
    with requests.Session() as client:
        statuses = {
            f"Full {n}": make_folder(server, headers, f"Full {n}", client) for n in range(100)
        }
    codes = {answer.status_code for answer in statuses.values()}
    assert codes <= {201, 507} and 507 in codes
    for answer in statuses.values():
        if answer.status_code == 507:
            assert_storage_full(answer)
    refused = sum(answer.status_code == 507 for answer in statuses.values())
    full_lines = log_lines(server, "Out of storage space")
    assert len(full_lines) == refused + 2  # one line per refusal, and no traceback
    assert not log_lines(server, "Traceback")

    filler.unlink()

    # Nothing acknowledged was lost; nothing refused was half kept.
    listed = requests.get(f"{server.url}/files", headers=headers, timeout=30).json()
    assert [entry["filename"] for entry in listed] == ["kept.bin"]
    downloaded = requests.get(f"{server.url}/download/kept.bin", headers=headers, timeout=30)
    assert hashlib.sha256(downloaded.content).digest() == hashlib.sha256(kept).digest()
    assert offset_of(tus_url, headers) == len(piece)
    root = requests.get(f"{server.url}/api/v1/folders/root", headers=headers, timeout=30).json()
    folders = {entry["name"] for entry in root["entries"] if entry["type"] == "folder"}
    made = {name for name, answer in statuses.items() if answer.status_code == 201}
    assert folders == {"Before"} | made

    # And it works again, by itself.
    again = os.urandom(300_000)
    assert upload(server, headers, "again.bin", again).status_code == 201
    assert make_folder(server, headers, "After").status_code == 201
    assert patch(tus_url, headers, len(piece), piece).status_code == 204
    resumed = requests.get(f"{server.url}/download/resumed.bin", headers=headers, timeout=30)
    assert resumed.content == piece + piece


def test_a_new_resumable_upload_on_a_full_disk_is_507_then_works(full_disk_server):
    server = full_disk_server
    headers = server.new_user()
    filler = fill(server.settings.data_dir)
    statuses = []
    for _ in range(200):  # until the database has no room left either
        created = requests.post(
            f"{server.url}/tus/",
            headers={
                **headers,
                **TUS,
                "Upload-Length": "10",
                "Upload-Metadata": "filename " + base64.b64encode(b"a.bin").decode(),
            },
            timeout=30,
        )
        statuses.append(created.status_code)
        if created.status_code == 507:
            assert_storage_full(created)
            break
    assert set(statuses) <= {201, 507} and statuses[-1] == 507, statuses
    filler.unlink()
    url = new_tus_upload(server, headers, 10, "b.bin")
    assert patch(url, headers, 0, b"0123456789").status_code == 204
