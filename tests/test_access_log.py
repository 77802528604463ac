"""The access log: one line per request (time, client, user, method, path, status, bytes,
duration), from a running `pcloud serve`, including what the server refuses itself."""

from __future__ import annotations

import re
import time

import pytest
import requests

from pcloud.server.access_log import AccessLog
from tests.conftest import make_settings
from tests.served import Server, exchange, head_of, start_server, stop_server

LINE = re.compile(
    r"(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (?P<client>\S+) user=(?P<user>\S+) "
    r"(?P<method>\S+) (?P<path>\S+) (?P<code>\d{3}) (?P<bytes>\d+) (?P<ms>[\d.]+)ms"
)


def lines_of(path, count: int) -> list[dict]:
    """The log's lines once it has `count` (a line is written just after its answer)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if text.count("\n") >= count:
            break
        time.sleep(0.05)
    return [LINE.fullmatch(line).groupdict() for line in text.splitlines()]


@pytest.mark.e2e
def test_each_request_is_one_line_with_who_asked_what_and_the_answer(tmp_path, database_url):
    log_path = tmp_path / "access.log"
    settings = make_settings(tmp_path, database_url)
    process, url = start_server(settings, {"ACCESS_LOG": str(log_path)})
    server = Server(process, url, settings)
    try:
        headers = server.new_user()  # register, login: 2 lines
        requests.post(f"{url}/upload", headers=headers, files={"file": ("a.txt", b"hello")})
        requests.get(f"{url}/download/a.txt", headers=headers, timeout=5)
        requests.get(f"{url}/files/%0Aforged%20line", timeout=5)
        exchange(server, head_of("GET /files HTTP/1.1", "No colon here"))  # waitress's 400
        lines = lines_of(log_path, 6)
    finally:
        stop_server(process)
    by_path = {line["path"]: line for line in lines}  # (workers may write out of order)
    assert sorted((line["method"], line["path"], line["code"]) for line in lines) == [
        ("-", "-", "400"),
        ("GET", "/download/a.txt", "200"),
        ("GET", "/files/%0Aforged%20line", "404"),  # one line, whatever the path holds
        ("POST", "/login", "200"),
        ("POST", "/register", "201"),
        ("POST", "/upload", "201"),
    ]
    upload, download = by_path["/upload"], by_path["/download/a.txt"]
    assert upload["user"] != "-" and download["user"] == upload["user"]
    assert download["bytes"] == "5"
    assert by_path["/register"]["user"] == "-" and by_path["/register"]["client"] == "127.0.0.1"


@pytest.mark.e2e
def test_access_log_off_writes_nothing(tmp_path, database_url):
    settings = make_settings(tmp_path, database_url)
    process, url = start_server(settings, {"ACCESS_LOG": "off"}, workers=1)
    try:
        requests.get(f"{url}/", timeout=5)
    finally:
        stop_server(process)
    assert not list(tmp_path.glob("*.log"))


def test_a_line_holds_the_client_the_user_and_the_time_to_answer(tmp_path):
    path = tmp_path / "log"
    log = AccessLog.open(str(path), clock=lambda: 1_800_000_000.0)
    log.record("192.0.2.7", 3, "GET", "/files", "200", 4096, 0.0012)
    log.record("192.0.2.7", None, "GET", "/a b\nc", "404", 0, 0.0)
    log.close()
    assert path.read_text().splitlines() == [
        "2027-01-15T08:00:00Z 192.0.2.7 user=3 GET /files 200 4096 1.2ms",
        "2027-01-15T08:00:00Z 192.0.2.7 user=- GET /a%20b%0Ac 404 0 0.0ms",
    ]
