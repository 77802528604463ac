"""Several pcloud nodes on one PostgreSQL database and one bucket (issue 19): they start
together safely, and what one node did is seen by the others at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.conftest import TEST_DATABASE

postgresql_only = pytest.mark.skipif(
    TEST_DATABASE != "postgresql", reason="several nodes share a PostgreSQL database"
)

START_TOGETHER = """
import sys, time
from pcloud.db import open_database
from pcloud.schema import upgrade_schema
database = open_database(sys.argv[1])
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # every node starts at this moment
upgrade_schema(database)
"""


@postgresql_only
def test_nodes_starting_together_on_a_new_database_all_come_up(database_url):
    start_at = time.time() + 2.0
    nodes = [
        subprocess.Popen(
            [sys.executable, "-c", START_TOGETHER, database_url, str(start_at)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    failures = [node.communicate(timeout=60)[1] for node in nodes if node.wait(60) != 0]
    assert failures == []


# --- two `pcloud serve` nodes, one PostgreSQL database, one bucket -----------------------


@pytest.fixture
def two_nodes(tmp_path, s3_engine, s3_bucket):
    """Two `pcloud serve` processes, each with its own empty data folder (standing in for
    two machines), sharing one database, one bucket and one SECRET_KEY."""
    from tests.conftest import fresh_database_url, make_settings
    from tests.served import start_server, stop_server

    with fresh_database_url(tmp_path) as database_url:
        storage_url = s3_engine.storage_url(s3_bucket, "shared")
        nodes, processes = [], []
        starting = []
        for name in ("node-a", "node-b"):
            folder = tmp_path / name
            folder.mkdir()
            settings = make_settings(
                folder,
                database_url,
                max_upload_size=64 * 1024 * 1024,
                tus_max_chunk=16 * 1024 * 1024,
            )
            starting.append((settings, {"STORAGE_URL": storage_url}))
        try:
            for settings, extra in starting:
                process, url = start_server(settings, extra, workers=1)
                processes.append(process)
                nodes.append(Node(url, settings, extra))
            yield nodes
        finally:
            for process in processes:
                stop_server(process)


class Node:
    def __init__(self, url: str, settings, extra_env: dict[str, str]) -> None:
        self.url = url
        self.settings = settings
        self.extra_env = extra_env

    def cli(self, *arguments: str) -> subprocess.CompletedProcess[str]:

        from tests.conftest import settings_environment

        env = {key: value for key, value in os.environ.items() if not key.startswith("PCLOUD_")}
        env.update(settings_environment(self.settings), **self.extra_env)
        return subprocess.run(
            [sys.executable, "-m", "pcloud", "--env-file", os.devnull, *arguments],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )


def sign_in(node: Node, username: str = "ann") -> dict:
    import requests

    password = "correct horse battery"
    requests.post(
        f"{node.url}/register",
        json={"username": username, "email": f"{username}@example.org", "password": password},
        timeout=10,
    )
    answer = requests.post(
        f"{node.url}/login",
        json={"login_identifier": username, "password": password},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def bearer(tokens: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


@postgresql_only
def test_what_one_node_stored_the_other_serves_at_once(two_nodes):
    import requests

    first, second = two_nodes
    headers = bearer(sign_in(first))
    content = b"household photo " * 100_000  # 1.6 MB
    answer = requests.post(
        f"{first.url}/upload", headers=headers, files={"file": ("a.jpg", content)}, timeout=30
    )
    assert answer.status_code == 201
    listed = requests.get(f"{second.url}/files", headers=headers, timeout=10).json()
    assert [entry["filename"] for entry in listed] == ["a.jpg"]
    downloaded = requests.get(f"{second.url}/download/a.jpg", headers=headers, timeout=30)
    assert downloaded.content == content
    ranged = requests.get(
        f"{second.url}/download/a.jpg", headers={**headers, "Range": "bytes=16-31"}, timeout=10
    )
    assert (ranged.status_code, ranged.content) == (206, content[16:32])


@postgresql_only
def test_a_session_revoked_on_one_node_is_refused_on_the_other(two_nodes):
    import requests

    first, second = two_nodes
    phone, laptop = sign_in(first), sign_in(second)
    assert requests.get(f"{first.url}/files", headers=bearer(phone), timeout=10).ok
    sessions = requests.get(f"{second.url}/sessions", headers=bearer(laptop), timeout=10).json()
    [phone_session] = [s for s in sessions["sessions"] if not s["current"]]
    revoked = requests.delete(
        f"{second.url}/sessions/{phone_session['id']}", headers=bearer(laptop), timeout=10
    )
    assert revoked.status_code == 200
    assert requests.get(f"{first.url}/files", headers=bearer(phone), timeout=10).status_code == 401


@postgresql_only
def test_the_sign_in_throttle_counts_failures_on_every_node(two_nodes):
    import requests

    first, second = two_nodes
    sign_in(first)
    answers = []
    for attempt in range(6):  # five free failures for one account from one address
        node = (first, second)[attempt % 2]
        answers.append(
            requests.post(
                f"{node.url}/login",
                json={"login_identifier": "ann", "password": "wrong"},
                timeout=10,
            ).status_code
        )
    assert answers == [401] * 6
    # Each node saw three failures; together six: the next try is held off on both.
    for node in two_nodes:
        refused = requests.post(
            f"{node.url}/login", json={"login_identifier": "ann", "password": "wrong"}, timeout=10
        )
        assert refused.status_code == 429
        assert refused.headers["Retry-After"].isdigit()


@postgresql_only
def test_gc_on_one_node_while_the_other_uploads_removes_nothing_in_flight(two_nodes):
    import threading

    import requests

    first, second = two_nodes
    headers = bearer(sign_in(first))
    half_sent, go_on = threading.Event(), threading.Event()
    piece = b"z" * (1024 * 1024)

    def body():
        for number in range(20):  # 20 MiB: the first 8 MiB parts are in the bucket early
            if number == 12:
                half_sent.set()
                go_on.wait(60)
            yield piece

    result = {}

    def send() -> None:
        result["answer"] = requests.post(
            f"{first.url}/upload",
            headers={**headers, "Content-Type": "multipart/form-data; boundary=b0und"},
            data=multipart_pieces("big.bin", body()),
            timeout=120,
        )

    sender = threading.Thread(target=send)
    sender.start()
    assert half_sent.wait(30)
    time.sleep(0.5)  # the first part reaches the bucket
    collected = second.cli("files", "gc")
    go_on.set()
    sender.join(120)
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert result["answer"].status_code == 201, result["answer"].text
    downloaded = requests.get(f"{second.url}/download/big.bin", headers=headers, timeout=60)
    assert downloaded.content == piece * 20


def multipart_pieces(name: str, pieces):
    yield (
        f'--b0und\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    yield from pieces
    yield b"\r\n--b0und--\r\n"


# --- resumable (tus) uploads across nodes ----------------------------------------------

MiB = 1024 * 1024


def tus_upload(node: Node, headers: dict, length: int) -> str:
    """A new tus upload made on `node`; its URL on any node is the path."""
    import base64

    import requests

    answer = requests.post(
        f"{node.url}/tus/",
        headers={
            **headers,
            "Tus-Resumable": "1.0.0",
            "Upload-Length": str(length),
            "Upload-Metadata": "filename " + base64.b64encode(b"film.mp4").decode(),
        },
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    return answer.headers["Location"]


def tus_patch(node: Node, headers: dict, path: str, offset: int, data: bytes):
    import requests

    return requests.patch(
        f"{node.url}{path}",
        headers={
            **headers,
            "Tus-Resumable": "1.0.0",
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": str(offset),
        },
        data=data,
        timeout=60,
    )


@postgresql_only
def test_a_tus_upload_takes_each_piece_on_whichever_node_it_reaches(two_nodes):
    import hashlib

    import requests

    first, second = two_nodes
    headers = bearer(sign_in(first))
    content = os.urandom(12 * MiB)
    path = tus_upload(first, headers, len(content))
    offset = 0
    for node, size in ((first, 5 * MiB), (second, 5 * MiB), (first, 2 * MiB)):
        answer = tus_patch(node, headers, path, offset, content[offset : offset + size])
        assert answer.status_code == 204, answer.text
        offset += size
    downloaded = requests.get(f"{second.url}/download/film.mp4", headers=headers, timeout=60)
    assert downloaded.content == content
    assert downloaded.headers["ETag"] == f'"{hashlib.sha256(content).hexdigest()}"'


@postgresql_only
def test_a_piece_sent_to_the_other_node_while_one_node_writes_the_upload_is_refused(two_nodes):
    import http.client
    from urllib.parse import urlsplit

    first, second = two_nodes
    headers = bearer(sign_in(first))
    content = os.urandom(4 * MiB)
    path = tus_upload(first, headers, len(content))
    address = urlsplit(first.url)
    slow = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    slow.putrequest("PATCH", path)
    for name, value in {
        **headers,
        "Tus-Resumable": "1.0.0",
        "Content-Type": "application/offset+octet-stream",
        "Upload-Offset": "0",
        "Content-Length": str(len(content)),
    }.items():
        slow.putheader(name, value)
    slow.endheaders()
    slow.send(content[:MiB])  # the first node holds the upload now, mid-piece
    time.sleep(1.0)
    rival = tus_patch(second, headers, path, 0, content)
    assert rival.status_code in (423, 409), rival.text
    slow.send(content[MiB:])
    answer = slow.getresponse()
    assert answer.status == 204
    assert answer.getheader("Upload-Offset") == str(len(content))
    slow.close()
