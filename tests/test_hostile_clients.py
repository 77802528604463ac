"""Hostile and anonymous clients get bounded resources from a running `pcloud serve`: no
disk for an unauthenticated body, no connection held by trickling headers or idling, no
address taking every connection, and others still served with thousands held open."""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from tests.served import Server, connect, head_of, parse, read_all

pytestmark = pytest.mark.e2e
MIB = 1024 * 1024
BIG = 200 * 1000 * 1000  # the 200 MB
SERVER_SETTINGS = {"max_upload_size": 512 * MIB}  # for conftest's `server`
SERVER_ENV = {"HEADER_TIMEOUT": "3", "KEEPALIVE_TIMEOUT": "2"}


def disk_used(server: Server) -> int:
    """Bytes under the data folder (files, partial uploads, temporary files)."""
    return sum(
        path.stat().st_size for path in server.settings.data_dir.rglob("*") if path.is_file()
    )


def upload_head(token: str | None, length: int, path: str = "/upload") -> bytes:
    lines = ["Content-Type: multipart/form-data; boundary=x", f"Content-Length: {length}"]
    if token:
        lines.append(f"Authorization: {token}")
    return head_of(f"POST {path} HTTP/1.1", *lines)


def test_an_anonymous_200_mb_upload_is_answered_from_its_headers_and_stores_nothing(server):
    before = disk_used(server)
    with connect(server) as connection:
        connection.sendall(upload_head(None, BIG))
        code, headers, body = parse(read_all(connection))  # no byte of the body was sent
    assert code == 401 and body == {"error": "Missing Authorization header"}
    assert headers["Connection"] == "close"
    assert disk_used(server) - before < 64 * 1024  # the database's few pages, at most


def test_an_anonymous_upload_that_sends_its_body_anyway_fills_no_disk(server):
    """A client that does not wait for an answer (curl without Expect): the server
    answers, closes, and what the client pushed goes nowhere."""
    before = disk_used(server)
    with connect(server) as connection:
        connection.sendall(upload_head("Bearer not-a-token", BIG))
        sent = 0
        piece = b"x" * MIB
        try:
            while sent < BIG:
                connection.sendall(piece)
                sent += len(piece)
        except OSError as error:
            assert error.errno in (errno.ECONNRESET, errno.EPIPE)
        answer = read_all(connection)
    assert sent < 64 * MIB  # cut off long before the 200 MB
    assert answer == b"" or answer.startswith(b"HTTP/1.1 401")
    assert disk_used(server) - before < 64 * 1024


def test_a_tus_piece_without_a_valid_sign_in_is_refused_before_its_body(server):
    with connect(server) as connection:
        connection.sendall(
            head_of(
                "PATCH /tus/0123456789abcdef HTTP/1.1",
                "Tus-Resumable: 1.0.0",
                "Upload-Offset: 0",
                "Content-Type: application/offset+octet-stream",
                f"Content-Length: {server.settings.tus_max_chunk}",
                "Authorization: Bearer forged",
            )
        )
        code, headers, body = parse(read_all(connection))
    assert code == 401 and set(body) == {"error"}
    assert headers["Tus-Resumable"] == "1.0.0"


def test_a_signed_in_upload_still_goes_through(server):
    headers = server.new_user()
    response = requests.post(
        f"{server.url}/upload", headers=headers, files={"file": ("a.txt", b"hello")}, timeout=10
    )
    assert response.status_code == 201


def test_a_client_trickling_its_headers_is_cut_off(server):
    with connect(server) as connection:
        started = time.monotonic()
        request = b"GET /files HTTP/1.1\r\nHost: pcloud\r\nX-Slow: " + b"a" * 100
        try:
            for byte in request:  # one byte every 0.25 s: waitress alone never cuts this
                connection.sendall(bytes([byte]))
                time.sleep(0.25)
        except OSError:
            pass
        answer = read_all(connection)
    assert answer.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - started < 8


def test_an_idle_keep_alive_connection_is_closed(server):
    with connect(server) as connection:
        connection.sendall(head_of("GET / HTTP/1.1"))
        assert connection.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert read_all(connection) == b""  # closed by the server
    assert 1.5 < time.monotonic() - started < 5


def test_others_are_served_while_thousands_of_hostile_connections_are_open(server):
    """5,000 connections from 100 other addresses (127.0.0.2-101: within the per-address
    limit), half idle, half sending a header byte now and then: 127.0.0.1 is answered
    within a second."""
    hostile: list[socket.socket] = []
    host, port = server.url.removeprefix("http://").split(":")
    stop = threading.Event()
    try:
        for number in range(5000):
            source = f"127.0.0.{2 + number % 100}"
            connection = socket.socket()
            connection.bind((source, 0))
            connection.settimeout(10)
            connection.connect((host, int(port)))
            if number % 2:
                connection.sendall(b"GET /files HTTP/1.1\r\n")
            hostile.append(connection)
        _wait_until_held(server, len(hostile))

        def trickle() -> None:
            while not stop.is_set():
                for connection in hostile[1::2]:
                    with contextlib.suppress(OSError):
                        connection.send(b"X")
                stop.wait(1)

        threading.Thread(target=trickle, daemon=True).start()
        for _ in range(5):
            started = time.monotonic()
            assert requests.get(f"{server.url}/", timeout=10).status_code == 200
            assert time.monotonic() - started < 1.0
    finally:
        stop.set()
        for connection in hostile:
            connection.close()


def _wait_until_held(server: Server, count: int) -> None:
    """Until the workers hold `count` client connections (or 90 s have passed: a loaded
    machine accepts slowly)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        sockets = 0
        for pid in server.worker_pids():
            sockets += sum(1 for _ in _socket_descriptors(pid))
        if sockets >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"the server holds {sockets} of {count} connections")


def _socket_descriptors(pid: int) -> Iterator[str]:
    import os

    for descriptor in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{descriptor}").startswith("socket:"):
                yield descriptor
        except FileNotFoundError:
            continue
