"""Where `pcloud serve` runs a request: quick views in the worker's event loop, the rest
in its threads, so that a slow request holds up no other connection."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from flask import Blueprint, Response

from pcloud import server as pcloud_server
from pcloud.api import create_app
from pcloud.api.bodies import RequestPreviews
from pcloud.api.context import quick
from pcloud.api.files import STREAM_CHUNK
from pcloud.server.build import OUTBUF_HIGH_WATERMARK
from pcloud.server.loop import StopSignals
from pcloud.serving import ServedApp
from tests.conftest import make_settings
from tests.google_idp import CLIENT_ID, GoogleIdP
from tests.served import running_server

WATERMARK = OUTBUF_HIGH_WATERMARK
STREAMED = 4 * WATERMARK  # the body of /_thread/stream


def _thread_blueprint() -> Blueprint:
    """Two views that tell which thread served them."""
    blueprint = Blueprint("threads", __name__)

    @blueprint.get("/_thread/quick")
    @quick
    def quick_view():
        return {"thread": threading.get_ident()}

    @blueprint.get("/_thread/other")
    def other_view():
        return {"thread": threading.get_ident()}

    @blueprint.get("/_thread/stream")
    def streamed_view():  # as a download from S3 is: chunks of STREAM_CHUNK
        chunk = b"s" * STREAM_CHUNK
        chunks = (chunk for _ in range(STREAMED // STREAM_CHUNK))
        return Response(chunks, headers={"Content-Length": str(STREAMED)})

    return blueprint


@pytest.fixture
def settings(tmp_path, database_url):
    return make_settings(tmp_path, database_url, max_upload_size=4 * WATERMARK)


@pytest.fixture
def served(pcloud, settings) -> Iterator[tuple[str, int]]:
    """The real app under pcloud's waitress server, in this process: (URL, the loop's thread)."""
    app = create_app(pcloud=pcloud)
    app.register_blueprint(_thread_blueprint())
    sock = pcloud_server.listen("127.0.0.1", 0)
    served = ServedApp(app, RequestPreviews(app), lambda: None)
    server = pcloud_server.build_server(served, settings, sock, threads=2)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            server.event_loop.wait(0.05)
            server.access_log.flush()
        server.close_everything()

    loop = threading.Thread(target=run, daemon=True)
    loop.start()
    try:
        yield pcloud_server.url_of(sock), loop.ident
    finally:
        stop.set()
        loop.join(timeout=5)


def test_a_quick_view_runs_in_the_event_loop_and_another_in_a_thread(served):
    url, loop_thread = served
    assert requests.get(f"{url}/_thread/quick", timeout=5).json()["thread"] == loop_thread
    assert requests.get(f"{url}/_thread/other", timeout=5).json()["thread"] != loop_thread


def test_pipelined_downloads_larger_than_the_write_buffer_all_arrive(served, auth, client):
    """The loop serves the second request while the first answer is still far from sent:
    it must not wait for itself to send it (a worker thread would)."""
    url, _ = served
    headers = auth.headers()
    content = bytes(range(256)) * (3 * WATERMARK // 256)  # far past the watermark
    upload = client.post("/upload", headers=headers, data={"file": (_stream(content), "big.bin")})
    assert upload.status_code == 201
    host, port = url.removeprefix("http://").split(":")
    request = (
        f"GET /download/big.bin HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: {headers['Authorization']}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=20) as connection:
        connection.sendall(request * 2)
        time.sleep(0.5)  # both are in before the first answer is read
        received = _read_answers(connection, count=2, body_size=len(content))
    assert [status for status, _ in received] == [200, 200]
    assert all(body == content for _, body in received)


def test_a_streamed_answer_waits_in_memory_not_in_a_temporary_file(served, monkeypatch):
    """A worker writes a streamed download ahead of a slow client up to the high
    watermark; what waits stays in memory. (Waitress's default spilled each 1 MiB into a
    temporary file, written and read back: half the rate of a download from S3.)"""
    import tempfile

    made = []
    temporary_file = tempfile.TemporaryFile

    def counted(*args, **kwargs):
        made.append(args)
        return temporary_file(*args, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", counted)
    url, _ = served
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as connection:
        connection.sendall(f"GET /_thread/stream HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        time.sleep(0.5)  # the worker fills the buffers up to the watermark and waits
        [(status, body)] = _read_answers(connection, count=1, body_size=STREAMED)
    assert status == 200
    assert len(body) == STREAMED
    assert made == []


def test_a_slow_google_sign_in_holds_up_no_quick_request(settings, auth):
    """A sign-in waits seconds for Google's certificates in a thread of the only worker;
    meanwhile the worker's event loop answers other connections at once."""
    idp = GoogleIdP()
    idp.delay = 3.0
    try:
        settings = settings.__class__(
            **{**settings.__dict__, "google_client_id": CLIENT_ID, "google_certs_url": idp.url}
        )
        with running_server(settings, workers=1) as url, ThreadPoolExecutor(1) as pool:
            sign_in = pool.submit(
                requests.post, f"{url}/login/google", json={"google_token": idp.token()}, timeout=30
            )
            while idp.requests == 0:  # the sign-in is waiting on "Google" now
                time.sleep(0.01)
            started = time.monotonic()
            assert requests.get(f"{url}/", timeout=10).status_code == 200
            waited = time.monotonic() - started
            assert not sign_in.done()
            assert sign_in.result().status_code == 200
        assert waited < 1.0, f"GET / waited {waited:.1f} s for the sign-in"
    finally:
        idp.close()


def test_a_first_stop_signal_asks_for_a_drain_and_a_later_second_stops_at_once():
    now = [100.0]
    signals = StopSignals(clock=lambda: now[0])
    signals.handle(None, None)  # noted: the loop drains, then ends
    assert signals.asked
    now[0] += 0.1
    signals.handle(None, None)  # the same stop, from the supervisor too: still draining
    now[0] += 1.0
    with pytest.raises(KeyboardInterrupt):
        signals.handle(None, None)


def _stream(content: bytes):
    import io

    return io.BytesIO(content)


def _read_answers(connection: socket.socket, count: int, body_size: int):
    """`count` HTTP answers of Content-Length bodies, read slowly at first."""
    buffer = b""
    answers = []
    while len(answers) < count:
        while b"\r\n\r\n" not in buffer:
            buffer += _receive(connection)
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        status = int(head.split(b" ", 2)[1])
        length = int(
            next(
                line.split(b":", 1)[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
        )
        assert length == body_size
        while len(buffer) < length:
            buffer += _receive(connection)
        answers.append((status, buffer[:length]))
        buffer = buffer[length:]
    return answers


def _receive(connection: socket.socket) -> bytes:
    data = connection.recv(1 << 20)
    if not data:
        raise AssertionError("the server closed the connection")
    return data
