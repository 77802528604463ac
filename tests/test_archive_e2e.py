"""A folder's ZIP from a real `pcloud serve`: made as it is sent, in flat memory."""

from __future__ import annotations

import hashlib
import os
import zipfile

import pytest
import requests

pytestmark = pytest.mark.e2e
MIB = 1024 * 1024
SERVER_SETTINGS = {"max_upload_size": 512 * MIB}  # for conftest's `server`


def test_a_large_folder_zip_streams_with_flat_memory(server, tmp_path):
    """Three 96 MiB files: a worker's peak memory grows far less than the archive."""
    headers = server.new_user()
    folder = requests.post(
        f"{server.url}/api/v1/folders", headers=headers, json={"name": "big"}, timeout=10
    ).json()
    block = os.urandom(MIB)
    digests = {}
    for index in range(3):
        path = tmp_path / f"part{index}.bin"
        with path.open("wb") as out:
            for _ in range(96):
                out.write(block[index:] + block[:index])
        digests[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
        with path.open("rb") as body:
            answer = requests.post(
                f"{server.url}/api/v1/folders/{folder['id']}/files",
                headers=headers,
                files={"file": (path.name, body)},
                timeout=120,
            )
        assert answer.status_code == 201, answer.text
        path.unlink()

    idle = server.memory("VmRSS")
    server.peak_memory_reset()
    received = tmp_path / "big.zip"
    with requests.get(
        f"{server.url}/api/v1/folders/{folder['id']}/zip", headers=headers, stream=True, timeout=120
    ) as answer:
        assert answer.status_code == 200
        length = int(answer.headers["Content-Length"])
        with received.open("wb") as out:
            for chunk in answer.iter_content(MIB):
                out.write(chunk)
    peak = server.memory("VmHWM")
    growth = max(peak[pid] - idle[pid] for pid in peak)
    assert received.stat().st_size == length > 288 * MIB
    assert growth < 60 * MIB, f"a worker's peak grew by {growth >> 20} MiB"
    with zipfile.ZipFile(received) as archive:
        for name, digest in digests.items():
            with archive.open(name) as member:
                hashed = hashlib.sha256()
                while piece := member.read(MIB):
                    hashed.update(piece)
            assert hashed.hexdigest() == digest
