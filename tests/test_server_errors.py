"""Every error a running `pcloud serve` can give, waitress's own included, leaves in the
API's one shape: `{"error": "<a sentence>"}` JSON, sizes written for people, the
connection closed after the server's own refusals. Driven over real sockets."""

from __future__ import annotations

import time

import pytest
import requests

from tests.served import Server, connect, exchange, head_of, parse, read_all

pytestmark = pytest.mark.e2e
LIMIT = 8 * 1024 * 1024
PER_ADDRESS = 3
# conftest's `server`: one worker, so that the per-address limit is one counter.
SERVER_SETTINGS = {"max_upload_size": LIMIT}
SERVER_ENV = {"HEADER_TIMEOUT": "2", "CONNECTIONS_PER_ADDRESS": str(PER_ADDRESS)}
SERVER_WORKERS = 1


def assert_error(answer: tuple[int, dict, dict], status: int, text: str) -> None:
    code, headers, body = answer
    assert (code, body) == (status, {"error": text})
    assert headers["Content-Type"] == "application/json"


def test_every_error_the_server_gives_itself_has_the_apis_shape(server):
    declared = LIMIT + 64 * 1024 + 1
    answers = {
        "413 upload": exchange(
            server,
            head_of(
                "POST /upload HTTP/1.1",
                "Content-Type: multipart/form-data; boundary=x",
                f"Content-Length: {declared}",
            ),
        ),
        "413 tus piece": exchange(
            server,
            head_of(
                "PATCH /tus/abc HTTP/1.1",
                "Tus-Resumable: 1.0.0",
                "Content-Type: application/offset+octet-stream",
                f"Content-Length: {server.settings.tus_max_chunk + 1}",
            ),
        ),
        "413 elsewhere": exchange(
            server, head_of("POST /nowhere HTTP/1.1", f"Content-Length: {declared}")
        ),
        "400": exchange(server, head_of("GET /files HTTP/1.1", "No colon here")),
        "400 length": exchange(server, head_of("GET /files HTTP/1.1", "Content-Length: x")),
        "431": exchange(server, head_of("GET /files HTTP/1.1", "X-Big: " + "a" * 300_000)),
        "501": exchange(server, head_of("POST /upload HTTP/1.1", "Transfer-Encoding: gzip")),
        "401 early": exchange(
            server,
            head_of(
                "POST /upload HTTP/1.1",
                "Content-Type: multipart/form-data; boundary=x",
                "Content-Length: 1000000",
            ),
        ),
    }
    assert_error(
        answers["413 upload"], 413, "Request body is larger than this server accepts (8 MiB)"
    )
    assert_error(
        answers["413 tus piece"],
        413,
        "One request may carry at most 1 MiB of an upload (TUS_MAX_CHUNK): "
        "send it in smaller pieces",
    )
    assert_error(
        answers["413 elsewhere"], 413, "Request body is larger than this server accepts (8 MiB)"
    )
    assert_error(answers["400"], 400, "Malformed request: Invalid header")
    assert_error(answers["400 length"], 400, "Malformed request: Content-Length is invalid")
    assert_error(
        answers["431"], 431, "Request headers are larger than this server accepts (256 KiB)"
    )
    assert_error(
        answers["501"],
        501,
        "Transfer-Encoding is not supported: send Content-Length, or chunked",
    )
    assert_error(answers["401 early"], 401, "Missing Authorization header")
    for name, (_, headers, _) in answers.items():
        assert headers["Connection"] == "close", name


def test_headers_that_do_not_arrive_in_time_are_answered_408(server):
    with connect(server) as connection:
        connection.sendall(b"GET /files HTTP/1.1\r\nHost: pc")
        started = time.monotonic()
        answer = parse(read_all(connection))
        waited = time.monotonic() - started
    assert_error(answer, 408, "The request's headers did not arrive within 2 s")
    assert 1.5 < waited < 5


def test_one_connection_too_many_from_an_address_is_answered_503(server):
    held = [connect(server, "127.0.0.9") for _ in range(PER_ADDRESS)]
    try:
        for connection in held:  # all accepted and kept
            connection.sendall(head_of("GET / HTTP/1.1"))
            assert connection.recv(65536).startswith(b"HTTP/1.1 200")
        with connect(server, "127.0.0.9") as one_more:
            answer = parse(read_all(one_more))
        assert_error(
            answer,
            503,
            f"Too many connections from your address (at most {PER_ADDRESS}): "
            "close some and try again",
        )
        assert requests.get(f"{server.url}/", timeout=5).status_code == 200  # others served
    finally:
        for connection in held:
            connection.close()


def test_an_upload_past_the_quota_is_refused_507_before_its_body(server, tmp_path):
    headers = server.new_user()
    token = headers["Authorization"]
    username = requests.get(f"{server.url}/me", headers=headers, timeout=5).json()["username"]
    _set_quota(server, username, "1MiB")
    answer = exchange(
        server,
        head_of(
            "POST /upload HTTP/1.1",
            f"Authorization: {token}",
            "Content-Type: multipart/form-data; boundary=x",
            "Content-Length: 3000000",
        ),
    )
    code, _, body = answer
    assert code == 507
    assert body["error"] == (  # the view's words: Content-Length less the framing
        "This upload would add 2.8 MiB, bringing your usage to 2.8 MiB, over your quota of "
        "1 MiB: delete files and empty the trash, or ask the admin for more room"
    )
    assert set(body) == {"error", "usage_bytes", "quota_bytes"}  # as the view says it


def _set_quota(server: Server, username: str, size: str) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import settings_environment

    env = {key: value for key, value in os.environ.items() if not key.startswith("PCLOUD_")}
    env.update(settings_environment(server.settings))
    subprocess.run(
        [sys.executable, "-m", "pcloud", "--env-file", os.devnull]
        + ["users", "set-quota", username, size],
        check=True,
        env=env,
        cwd=server.settings.data_dir,
        capture_output=True,
    )
