"""SIGTERM drains a running `pcloud serve`: it stops accepting, lets the requests in
flight finish for up to DRAIN_TIMEOUT, keeps what a cut tus piece delivered, then exits."""

from __future__ import annotations

import base64
import signal
import time

import pytest
import requests

from tests.conftest import make_settings
from tests.served import Server, connect, head_of, parse, read_all, start_server, stop_server

pytestmark = pytest.mark.e2e
MIB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
NAME = "filename " + base64.b64encode(b"cut.bin").decode()


def started(settings, drain: str, workers: int = 2) -> Server:
    process, url = start_server(settings, {"DRAIN_TIMEOUT": drain}, workers=workers)
    return Server(process, url, settings)


def test_an_upload_in_flight_at_sigterm_finishes_then_the_server_exits(tmp_path, database_url):
    server = started(make_settings(tmp_path, database_url), "20s")
    try:
        headers = server.new_user()
        boundary = "drain"
        part = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="late.bin"\r\n\r\n'
        ).encode()
        content = b"z" * (2 * MIB)
        body = part + content + f"\r\n--{boundary}--\r\n".encode()
        with connect(server) as connection:
            connection.sendall(
                head_of(
                    "POST /upload HTTP/1.1",
                    f"Authorization: {headers['Authorization']}",
                    f"Content-Type: multipart/form-data; boundary={boundary}",
                    f"Content-Length: {len(body)}",
                )
                + body[:MIB]
            )
            time.sleep(0.3)
            server.process.send_signal(signal.SIGTERM)
            time.sleep(1.0)  # the server is draining now
            assert _refused_or_unanswered(server)
            connection.sendall(body[MIB:])
            code, answer_headers, answer = parse(read_all(connection))
        assert code == 201 and answer["file"] == "late.bin"
        assert answer_headers["Connection"] == "close"  # no next request while stopping
        server.process.wait(timeout=10)
    finally:
        if server.process.poll() is None:
            stop_server(server.process)
    again = started(server.settings, "20s")
    try:
        listing = requests.get(f"{again.url}/files", headers=_signed_in(again), timeout=10)
        assert listing.status_code == 200
    finally:
        stop_server(again.process)


def _signed_in(server: Server) -> dict:
    return server.new_user()


def _refused_or_unanswered(server: Server) -> bool:
    """A new connection is not served: refused, or accepted by the kernel and never read."""
    try:
        with connect(server) as connection:
            connection.settimeout(0.5)
            connection.sendall(head_of("GET / HTTP/1.1"))
            return connection.recv(100) == b""
    except (TimeoutError, ConnectionRefusedError, ConnectionResetError):
        return True


def test_a_tus_piece_cut_by_the_drain_keeps_what_it_delivered(tmp_path, database_url):
    settings = make_settings(tmp_path, database_url, tus_max_chunk=4 * MIB)
    server = started(settings, "1s", workers=1)
    try:
        headers = {**server.new_user(), **TUS}
        created = requests.post(
            f"{server.url}/tus/",
            headers={**headers, "Upload-Length": str(4 * MIB), "Upload-Metadata": NAME},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        location = created.headers["Location"]
        delivered = 3 * MIB // 2
        with connect(server) as connection:
            connection.sendall(
                head_of(
                    f"PATCH {location} HTTP/1.1",
                    f"Authorization: {headers['Authorization']}",
                    "Tus-Resumable: 1.0.0",
                    "Upload-Offset: 0",
                    "Content-Type: application/offset+octet-stream",
                    f"Content-Length: {4 * MIB}",
                )
                + b"p" * delivered
            )
            time.sleep(0.5)
            cut_at = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            server.process.wait(timeout=10)
            stopped_after = time.monotonic() - cut_at
        assert 0.9 < stopped_after < 6  # DRAIN_TIMEOUT, then the stop
    finally:
        if server.process.poll() is None:
            stop_server(server.process)
    again = started(settings, "1s", workers=1)
    try:
        status = requests.head(f"{again.url}{location}", headers=headers, timeout=10)
        assert status.status_code == 200
        assert int(status.headers["Upload-Offset"]) == delivered
    finally:
        stop_server(again.process)
