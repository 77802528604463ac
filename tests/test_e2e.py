"""`pcloud serve` as a real process, under real waitress, driven over real HTTP."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import threading
import time

import pytest
import requests

pytestmark = pytest.mark.e2e
PASSWORD = "a long enough password"
SERVER_LIMIT = 512 * 1024 * 1024
SERVER_SETTINGS = {"max_upload_size": SERVER_LIMIT}  # for conftest's `server`


def test_the_contract_flow_over_http(server):
    headers = server.new_user()
    content = os.urandom(300_000)
    upload = requests.post(
        f"{server.url}/upload", headers=headers, timeout=10, files={"file": ("clip.mp4", content)}
    )
    assert upload.status_code == 201 and upload.json()["file"] == "clip.mp4"
    [entry] = requests.get(f"{server.url}/files", headers=headers, timeout=10).json()
    assert entry["filename"] == "clip.mp4" and entry["size"] == len(content)
    assert entry["file_type"] == "video"
    download = requests.get(f"{server.url}/download/clip.mp4", headers=headers, timeout=10)
    assert download.content == content
    part = requests.get(
        f"{server.url}/download/clip.mp4",
        timeout=10,
        headers={**headers, "Range": "bytes=1000-1999"},
    )
    assert part.status_code == 206 and part.content == content[1000:2000]
    rename = requests.put(
        f"{server.url}/rename",
        headers=headers,
        timeout=10,
        json={"old_filename": "clip.mp4", "new_filename": "holiday.mp4"},
    )
    assert rename.status_code == 200
    delete = requests.delete(f"{server.url}/delete/holiday.mp4", headers=headers, timeout=10)
    assert delete.status_code == 200
    assert requests.get(f"{server.url}/files", headers=headers, timeout=10).json() == []


def test_a_chunked_upload_without_content_length_is_stored(server):
    headers = server.new_user()
    boundary = "chunkyboundary"
    content = os.urandom(1_000_000)
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="chunked.bin"\r\n\r\n'
    ).encode()
    body += content + f"\r\n--{boundary}--\r\n".encode()

    def pieces():
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    response = requests.post(
        f"{server.url}/upload",
        data=pieces(),
        timeout=30,
        headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 201, response.text
    download = requests.get(f"{server.url}/download/chunked.bin", headers=headers, timeout=10)
    assert hashlib.sha256(download.content).digest() == hashlib.sha256(content).digest()


def _raw_request_head(server, headers: dict, content_length: int, boundary="cutoff") -> bytes:
    host = server.url.removeprefix("http://")
    lines = [
        "POST /upload HTTP/1.1",
        f"Host: {host}",
        f"Content-Type: multipart/form-data; boundary={boundary}",
        f"Content-Length: {content_length}",
        *(f"{key}: {value}" for key, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_answer(connection: socket.socket) -> str:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received.decode()


def _connect(server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def test_an_upload_that_disconnects_halfway_leaves_no_file_and_no_row(server):
    headers = server.new_user()
    part_head = (
        b'--cutoff\r\nContent-Disposition: form-data; name="file"; filename="half.bin"\r\n\r\n'
    )
    declared = len(part_head) + 4_000_000 + len(b"\r\n--cutoff--\r\n")
    requests.get(f"{server.url}/files", headers=headers, timeout=10)  # connections opened
    open_before = server.open_files()
    with _connect(server) as connection:
        connection.sendall(_raw_request_head(server, headers, declared) + part_head)
        connection.sendall(os.urandom(2_000_000))
    time.sleep(0.3)
    assert requests.get(f"{server.url}/files", headers=headers, timeout=10).json() == []
    assert server.partials() == []
    assert requests.get(f"{server.url}/", timeout=10).status_code == 200
    # The half-received file (an anonymous one, which no listing shows) was closed too.
    assert server.open_files_settle_to(open_before) == open_before


def _multipart(name: str, content: bytes, boundary: str = "b0und") -> tuple[bytes, dict]:
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    body += content + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_an_uploaded_file_is_written_to_disk_once(server):
    """Waitress would spool the body to a temporary file, which the view then copied into
    the store; the body goes straight into the store as it arrives instead."""
    headers = server.new_user()
    content = os.urandom(8 * 1024 * 1024)
    body, content_type = _multipart("once.bin", content)
    before = server.written_bytes()
    response = requests.post(
        f"{server.url}/upload", headers={**headers, **content_type}, data=body, timeout=30
    )
    assert response.status_code == 201, response.text
    written = server.written_bytes() - before
    assert len(content) <= written < 1.2 * len(content), written
    download = requests.get(f"{server.url}/download/once.bin", headers=headers, timeout=30)
    assert download.content == content


def test_an_upload_refused_before_its_view_runs_leaves_nothing_open(server):
    headers = server.new_user()
    body, content_type = _multipart("refused.bin", os.urandom(2 * 1024 * 1024))
    requests.get(f"{server.url}/files", headers=headers, timeout=10)  # connections opened
    open_before = server.open_files()
    for forged in ("Bearer not-a-token", "Basic YW5uOnB3"):
        response = requests.post(
            f"{server.url}/upload",
            headers={"Authorization": forged, **content_type},
            data=body,
            timeout=30,
        )
        assert response.status_code == 401
    stranger = requests.post(
        f"{server.url}/api/v1/folders/999999/files",
        headers={**headers, **content_type},
        data=body,
        timeout=30,
    )
    assert stranger.status_code == 404
    assert server.open_files_settle_to(open_before) == open_before
    assert server.partials() == []
    assert requests.get(f"{server.url}/files", headers=headers, timeout=10).json() == []


def test_a_malformed_upload_received_as_it_arrives_is_a_clear_400(server):
    headers = server.new_user()
    body, content_type = _multipart("dir/..", b"x" * 1000)  # no name left to keep
    response = requests.post(
        f"{server.url}/upload", headers={**headers, **content_type}, data=body, timeout=30
    )
    assert response.status_code == 400
    assert "error" in response.json()
    cut, content_type = _multipart("cut.bin", b"y" * 100_000)
    response = requests.post(
        f"{server.url}/upload",
        headers={**headers, **content_type},
        data=cut[: len(cut) // 2],  # ends (by its Content-Length) inside the file part
        timeout=30,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "Malformed multipart body"
    assert requests.get(f"{server.url}/files", headers=headers, timeout=10).json() == []


def test_an_upload_declared_over_the_limit_is_refused_before_its_body_is_read(server):
    headers = server.new_user()
    with _connect(server) as connection:
        connection.sendall(_raw_request_head(server, headers, SERVER_LIMIT + 10 * 1024 * 1024))
        answer = _read_answer(connection)
    assert answer.startswith("HTTP/1.1 413")
    assert "application/json" in answer
    assert answer.endswith('{"error":"Request body is larger than this server accepts (512 MiB)"}')
    assert requests.get(f"{server.url}/files", headers=headers, timeout=10).json() == []


def test_concurrent_uploads_of_one_name_are_all_kept_under_distinct_names(server):
    headers = server.new_user()
    contents = [f"upload number {number}".encode() for number in range(24)]
    results: list = [None] * len(contents)

    def send(number: int) -> None:
        results[number] = requests.post(
            f"{server.url}/upload",
            headers=headers,
            timeout=30,
            files={"file": ("same.txt", contents[number])},
        )

    threads = [threading.Thread(target=send, args=(number,)) for number in range(len(contents))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [response.status_code for response in results] == [201] * len(contents)
    stored_names = [response.json()["file"] for response in results]
    assert len(set(stored_names)) == len(contents)
    assert set(stored_names) == {"same.txt", *(f"same_{n}.txt" for n in range(1, len(contents)))}
    for name, content in zip(stored_names, contents, strict=True):
        download = requests.get(f"{server.url}/download/{name}", headers=headers, timeout=10)
        assert download.content == content


def test_many_concurrent_writers_never_hit_database_is_locked(server):
    users = [server.new_user() for _ in range(4)]
    failures: list = []

    def upload_many(headers: dict, worker: int) -> None:
        with requests.Session() as session:
            for number in range(25):
                response = session.post(
                    f"{server.url}/upload",
                    headers=headers,
                    timeout=30,
                    files={"file": (f"w{worker}-{number}.txt", b"x" * 4096)},
                )
                if response.status_code != 201:
                    failures.append(response.text)

    threads = [threading.Thread(target=upload_many, args=(users[n % 4], n)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert (
        sum(len(requests.get(f"{server.url}/files", headers=h, timeout=10).json()) for h in users)
        == 200
    )


def test_a_large_upload_streams_with_flat_memory(server, tmp_path):
    """The bytes never sit in memory: peak RSS grows far less than the upload's size."""
    headers = server.new_user()
    size = 256 * 1024 * 1024
    boundary = "bigboundary"
    body_path = tmp_path / "body"
    expected = hashlib.sha256()
    with body_path.open("wb") as body:
        body.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="big.bin"\r\n\r\n'.encode()
        )
        block = os.urandom(1024 * 1024)
        for _ in range(size // len(block)):
            body.write(block)
            expected.update(block)
        body.write(f"\r\n--{boundary}--\r\n".encode())

    idle = server.memory("VmRSS")
    server.peak_memory_reset()
    with body_path.open("rb") as body:  # requests streams an open file with its length
        response = requests.post(
            f"{server.url}/upload",
            data=body,
            timeout=120,
            headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    assert response.status_code == 201, response.text
    peak = server.memory("VmHWM")
    growth = max(peak[pid] - idle[pid] for pid in peak)
    assert growth < 100 * 1024 * 1024, f"a worker's peak grew by {growth >> 20} MiB"
    [entry] = requests.get(f"{server.url}/files", headers=headers, timeout=10).json()
    assert entry["size"] == size
    download = requests.get(
        f"{server.url}/download/big.bin", headers=headers, timeout=120, stream=True
    )
    received = hashlib.sha256()
    for chunk in download.iter_content(1024 * 1024):
        received.update(chunk)
    assert received.hexdigest() == expected.hexdigest()
    assert server.partials() == []


def test_waitress_errors_are_json_too(server):
    with _connect(server) as connection:
        connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
        answer = _read_answer(connection)
    assert answer.startswith("HTTP/1.1 400")
    assert "application/json" in answer


@pytest.fixture(scope="module")
def video(server) -> tuple[dict, bytes]:
    """A user holding clip.mp4; their headers and its bytes."""
    headers = server.new_user()
    content = os.urandom(1_000_000)
    response = requests.post(
        f"{server.url}/upload", headers=headers, timeout=10, files={"file": ("clip.mp4", content)}
    )
    assert response.status_code == 201
    return headers, content


def test_a_player_can_seek_a_download_with_single_ranges(server, video):
    headers, content = video
    url = f"{server.url}/download/clip.mp4"
    whole = requests.get(url, headers=headers, timeout=10)
    assert whole.headers["Content-Type"] == "video/mp4"
    assert whole.headers["Accept-Ranges"] == "bytes"
    for asked, start, end in [("500000-", 500000, 999999), ("-100", 999900, 999999)]:
        part = requests.get(url, headers={**headers, "Range": f"bytes={asked}"}, timeout=10)
        assert part.status_code == 206
        assert part.headers["Content-Range"] == f"bytes {start}-{end}/1000000"
        assert part.headers["Content-Type"] == "video/mp4"
        assert part.content == content[start : end + 1]


def test_an_unsatisfiable_range_is_416_with_the_length(server, video):
    headers, _ = video
    response = requests.get(
        f"{server.url}/download/clip.mp4",
        headers={**headers, "Range": "bytes=2000000-"},
        timeout=10,
    )
    assert response.status_code == 416
    assert response.headers["Content-Range"] == "bytes */1000000"
    assert "error" in response.json()


def test_etag_if_none_match_and_if_range_over_http(server, video):
    headers, content = video
    url = f"{server.url}/download/clip.mp4"
    etag = requests.get(url, headers=headers, timeout=10).headers["ETag"]
    assert etag == f'"{hashlib.sha256(content).hexdigest()}"'
    unchanged = requests.get(url, headers={**headers, "If-None-Match": etag}, timeout=10)
    assert unchanged.status_code == 304
    same = requests.get(
        url, headers={**headers, "Range": "bytes=10-19", "If-Range": etag}, timeout=10
    )
    assert same.status_code == 206 and same.content == content[10:20]
    stale = requests.get(
        url, headers={**headers, "Range": "bytes=10-19", "If-Range": '"old"'}, timeout=10
    )
    assert stale.status_code == 200 and stale.content == content


def test_curl_resumes_a_download_where_it_stopped(server, video, tmp_path):
    import shutil

    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    headers, content = video
    target = tmp_path / "clip.mp4"
    target.write_bytes(content[:300_000])  # a download that broke off
    subprocess.run(
        [
            curl,
            "-sSf",
            "-C",
            "-",
            "-o",
            str(target),
            "-H",
            f"Authorization: {headers['Authorization']}",
        ]
        + [f"{server.url}/download/clip.mp4"],
        check=True,
        timeout=30,
    )
    assert target.read_bytes() == content


def test_answers_without_a_body_keep_the_connection_open(server):
    """A 304 (and a tus 204) needs no length to end: waitress closed the connection after
    each, costing every conditional download and every tus piece a new handshake."""
    import http.client

    headers = server.new_user()
    requests.post(
        f"{server.url}/upload",
        headers=headers,
        files={"file": ("same.txt", b"unchanged")},
        timeout=10,
    ).raise_for_status()
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", "/download/same.txt", headers=headers)
        first = connection.getresponse()
        first.read()
        etag = first.getheader("ETag")
        local_port = connection.sock.getsockname()[1]
        for _ in range(3):
            connection.request(
                "GET", "/download/same.txt", headers={**headers, "If-None-Match": etag}
            )
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 304
            assert answer.getheader("Connection") != "close"
        assert connection.sock is not None
        assert connection.sock.getsockname()[1] == local_port  # one connection throughout
    finally:
        connection.close()


def test_a_large_download_leaves_the_connection_uncorked(server):
    """A large file goes out with TCP_CORK set (pcloud.server.connection.CORK_FROM). Left
    corked after the file, the kernel would hold the file's last bytes, and every answer
    after it on the connection, for its 200 ms cork timeout: 20 downloads, each followed
    by a listing, would then take over 4 s; uncorked, they take a fraction of that."""
    import http.client

    headers = server.new_user()
    content = os.urandom(1024 * 1024 + 12_345)  # over CORK_FROM, with a short last segment
    requests.post(
        f"{server.url}/upload", headers=headers, files={"file": ("big.bin", content)}, timeout=10
    ).raise_for_status()
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        started = time.monotonic()
        for _ in range(20):
            connection.request("GET", "/download/big.bin", headers=headers)
            download = connection.getresponse()
            assert download.read() == content
            connection.request("GET", "/files", headers=headers)
            listing = connection.getresponse()
            assert listing.status == 200 and b"big.bin" in listing.read()
        elapsed = time.monotonic() - started
    finally:
        connection.close()
    assert elapsed < 2.5, f"{elapsed:.1f} s: the kernel held answers back"
