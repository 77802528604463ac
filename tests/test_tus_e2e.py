"""Resumable uploads against a real `pcloud serve`, driven by tuspy (a tus client nobody
here wrote) and by raw sockets where a client's exact bytes matter."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError, TusUploadFailed
from tusclient.storage.filestorage import FileStorage

from tests.conftest import fresh_database_url, make_settings, settings_environment
from tests.served import Server, free_port, start_server
from tests.served import stop_server as stop

pytestmark = pytest.mark.e2e
MIB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
SERVER_SETTINGS = {"max_upload_size": 512 * MIB, "tus_max_chunk": 32 * MIB}  # conftest's server


def content_file(tmp_path: Path, size: int, name: str = "video.mp4") -> tuple[Path, str]:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def uploader(server: Server, headers: dict, path: Path, **options):
    client = tus_client.TusClient(f"{server.url}/tus/", headers=headers)
    return client.uploader(
        file_path=str(path), metadata={"filename": path.name}, chunk_size=256 * 1024, **options
    )


def downloaded_sha256(server: Server, headers: dict, name: str) -> str:
    response = requests.get(f"{server.url}/download/{name}", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == f'"{hashlib.sha256(response.content).hexdigest()}"'
    return hashlib.sha256(response.content).hexdigest()


def head_offset(server: Server, headers: dict, url: str) -> int:
    response = requests.head(url, headers={**headers, **TUS}, timeout=10)
    assert response.status_code == 200, response.status_code
    return int(response.headers["Upload-Offset"])


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def read_answer(connection: socket.socket) -> bytes:
    """One answer's head (and body, if its Content-Length says so)."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(65536)
        if not chunk:
            break
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
            while len(body) < length:
                body += connection.recv(65536)
    return head + b"\r\n\r\n" + body


def test_tuspy_uploads_a_file_in_pieces_with_checksums(server, tmp_path):
    headers = server.new_user()
    path, sha256 = content_file(tmp_path, 3 * MIB + 12345)
    tus = uploader(server, headers, path, upload_checksum=True)
    tus.upload()
    assert tus.url.startswith(f"{server.url}/tus/")
    [entry] = requests.get(f"{server.url}/files", headers=headers, timeout=10).json()
    assert (entry["filename"], entry["size"]) == ("video.mp4", path.stat().st_size)
    assert downloaded_sha256(server, headers, "video.mp4") == sha256
    assert server.partials() == []
    assert list((server.settings.upload_folder / "resumable").iterdir()) == []


def test_what_arrived_of_a_piece_cut_off_midway_is_kept_and_tuspy_resumes_after_it(
    server, tmp_path
):
    headers = server.new_user()
    path, sha256 = content_file(tmp_path, 2 * MIB)
    storage = FileStorage(str(tmp_path / "tus-urls.json"))  # as an app keeps its URLs
    first = uploader(server, headers, path, store_url=True, url_storage=storage)
    first.upload(stop_at=MIB)
    url = first.url
    assert head_offset(server, headers, url) == MIB
    # The network drops in the middle of the next piece, half of it sent.
    piece = path.read_bytes()[MIB : MIB + 512 * 1024]
    with connect(server.url) as connection:
        connection.sendall(_patch_head(url, headers, MIB, len(piece)) + piece[: len(piece) // 2])
    assert _offset_once_settled(server, headers, url) == MIB + len(piece) // 2
    # The app starts again: a new uploader finds the URL it kept, asks for the offset and
    # sends only what never arrived.
    second = uploader(server, headers, path, store_url=True, url_storage=storage)
    assert second.url == url and second.offset == MIB + len(piece) // 2
    second.upload()
    assert downloaded_sha256(server, headers, "video.mp4") == sha256


def test_a_checksum_mismatch_is_460_and_tuspy_can_send_the_piece_again(server, tmp_path):
    headers = server.new_user()
    path, sha256 = content_file(tmp_path, MIB)

    class CorruptingUploader(tus_client.Uploader):
        # As if a bit flipped on the way: the digest sent is not that of the bytes.
        CHECKSUM_ALGORITHM_PAIR = ("sha1", lambda data: hashlib.sha1(data + b"!"))

    client = tus_client.TusClient(f"{server.url}/tus/", headers=headers)
    corrupt = CorruptingUploader(
        file_path=str(path),
        client=client,
        metadata={"filename": path.name},
        chunk_size=256 * 1024,
        upload_checksum=True,
    )
    with pytest.raises(TusUploadFailed) as failure:
        corrupt.upload()
    assert failure.value.status_code == 460
    assert head_offset(server, headers, corrupt.url) == 0  # the piece was discarded
    honest = uploader(server, headers, path, url=corrupt.url, upload_checksum=True)
    honest.upload()
    assert downloaded_sha256(server, headers, "video.mp4") == sha256


def test_an_upload_resumes_after_the_server_restarts(tmp_path):
    path, sha256 = content_file(tmp_path, 3 * MIB)
    port = free_port()
    with fresh_database_url(tmp_path) as database_url:
        settings = make_settings(tmp_path, database_url, max_upload_size=64 * MIB)
        process, url = start_server(settings, port=port)
        try:
            headers = Server(process, url, settings).new_user()
            first = uploader(Server(process, url, settings), headers, path)
            first.upload(stop_at=MIB + 256 * 1024)
        finally:
            stop(process)
        process, url = start_server(settings, port=port)
        try:
            server = Server(process, url, settings)
            assert head_offset(server, headers, first.url) == MIB + 256 * 1024
            resumed = uploader(server, headers, path, url=first.url)
            assert resumed.offset == MIB + 256 * 1024
            resumed.upload()
            assert downloaded_sha256(server, headers, "video.mp4") == sha256
        finally:
            stop(process)


def test_an_expired_upload_is_refused_and_gc_reclaims_its_bytes(tmp_path):
    path, _ = content_file(tmp_path, MIB)
    with fresh_database_url(tmp_path) as database_url:
        settings = make_settings(tmp_path, database_url, tus_expiration=2)
        process, url = start_server(settings)
        try:
            server = Server(process, url, settings)
            headers = server.new_user()
            first = uploader(server, headers, path)
            first.upload(stop_at=512 * 1024)
            resumable = settings.upload_folder / "resumable" / first.url.rsplit("/", 1)[1]
            assert resumable.stat().st_size == 512 * 1024
            time.sleep(2.5)
            with pytest.raises(TusCommunicationError) as failure:
                uploader(server, headers, path, url=first.url)
            assert failure.value.status_code == 410
            env = {key: value for key, value in os.environ.items() if key.startswith("PATH")}
            gc = subprocess.run(
                [sys.executable, "-m", "pcloud", "--env-file", os.devnull] + ["files", "gc"],
                env={**env, **settings_environment(settings), "COLUMNS": "120"},
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert gc.returncode == 0, gc.stdout + gc.stderr
            assert "1 resumable upload(s)" in gc.stdout
            assert not resumable.exists()
            head = requests.head(first.url, headers={**headers, **TUS}, timeout=10)
            assert head.status_code == 404
        finally:
            stop(process)


def test_a_chunked_patch_with_expect_100_continue_is_stored(server):
    """As the official Android and Java clients send it."""
    headers = server.new_user()
    content = os.urandom(300_000)
    created = requests.post(
        f"{server.url}/tus/",
        headers={
            **headers,
            **TUS,
            "Upload-Length": str(len(content)),
            "Upload-Metadata": "filename YW5kcm9pZC5tcDQ=",  # android.mp4
        },
        timeout=10,
    )
    path = created.headers["Location"]
    with connect(server.url) as connection:
        connection.sendall(
            (
                f"PATCH {path} HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: {headers['Authorization']}\r\nTus-Resumable: 1.0.0\r\n"
                "Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
                "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
            ).encode()
        )
        interim = connection.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        for start in range(0, len(content), 65536):
            piece = content[start : start + 65536]
            connection.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        connection.sendall(b"0\r\n\r\n")
        answer = read_answer(connection)
    assert answer.startswith(b"HTTP/1.1 204"), answer
    assert f"Upload-Offset: {len(content)}".encode() in answer
    assert b"Pcloud-File: android.mp4" in answer
    assert downloaded_sha256(server, headers, "android.mp4") == hashlib.sha256(content).hexdigest()


def test_post_with_method_override_stands_in_for_patch(server):
    headers = server.new_user()
    created = requests.post(
        f"{server.url}/tus/",
        headers={**headers, **TUS, "Upload-Length": "5", "Upload-Metadata": "filename YS50eHQ="},
        timeout=10,
    )
    response = requests.post(
        server.url + created.headers["Location"],
        headers={
            **headers,
            **TUS,
            "X-HTTP-Method-Override": "PATCH",
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        },
        data=b"hello",
        timeout=10,
    )
    assert response.status_code == 204 and response.headers["Pcloud-File"] == "a.txt"


def test_a_piece_declared_over_tus_max_chunk_is_refused_before_its_body_is_read(server):
    headers = server.new_user()
    created = requests.post(
        f"{server.url}/tus/",
        headers={**headers, **TUS, "Upload-Length": str(100 * MIB), "Upload-Metadata": ""},
        timeout=10,
    )
    assert created.status_code == 400  # no file name: nothing created
    created = requests.post(
        f"{server.url}/tus/",
        headers={
            **headers,
            **TUS,
            "Upload-Length": str(100 * MIB),
            "Upload-Metadata": "filename YS50eHQ=",
        },
        timeout=10,
    )
    with connect(server.url) as connection:
        connection.sendall(
            (
                f"PATCH {created.headers['Location']} HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: {headers['Authorization']}\r\nTus-Resumable: 1.0.0\r\n"
                "Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
                f"Content-Length: {server.settings.tus_max_chunk + 1}\r\n\r\n"
            ).encode()
        )
        answer = read_answer(connection)  # no byte of the body was sent
    assert answer.startswith(b"HTTP/1.1 413")
    assert answer.endswith(
        b'{"error":"One request may carry at most 32 MiB of an upload (TUS_MAX_CHUNK): '
        b'send it in smaller pieces"}'
    )


def test_a_patch_while_another_writes_the_upload_is_423_and_bytes_never_mix(server):
    headers = server.new_user()
    size = 2 * MIB
    url = _create(server, headers, size, b"c.bin")
    first, second = b"A" * size, b"B" * size
    with connect(url) as connection:
        connection.sendall(_patch_head(url, headers, 0, size) + first[:MIB])
        deadline = time.monotonic() + 5  # until the first piece's bytes are going in
        while _stored_size(server, url) < MIB and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _patch(url, headers, 0, second).status_code == 423  # the first holds it
        connection.sendall(first[MIB:])
        assert read_answer(connection).startswith(b"HTTP/1.1 204")
    assert _patch(url, headers, 0, second).status_code == 409  # the offset moved on
    download = requests.get(f"{server.url}/download/c.bin", headers=headers, timeout=30)
    assert download.content == first


def test_one_users_upload_url_is_404_to_another(server):
    ann, bob = server.new_user(), server.new_user()
    created = requests.post(
        f"{server.url}/tus/",
        headers={**ann, **TUS, "Upload-Length": "5", "Upload-Metadata": "filename YS50eHQ="},
        timeout=10,
    )
    url = server.url + created.headers["Location"]
    assert requests.head(url, headers={**bob, **TUS}, timeout=10).status_code == 404
    assert requests.delete(url, headers={**bob, **TUS}, timeout=10).status_code == 404
    assert requests.head(url, headers={**ann, **TUS}, timeout=10).status_code == 200


def _create(server: Server, headers: dict, size: int, name: bytes = b"p.bin") -> str:
    created = requests.post(
        f"{server.url}/tus/",
        headers={
            **headers,
            **TUS,
            "Upload-Length": str(size),
            "Upload-Metadata": "filename " + base64.b64encode(name).decode(),
        },
        timeout=10,
    )
    assert created.status_code == 201, created.text
    return server.url + created.headers["Location"]


def _patch(
    url: str, headers: dict, offset: int, piece: bytes, version: str = "1.0.0"
) -> requests.Response:
    return requests.patch(
        url,
        headers={
            **headers,
            "Tus-Resumable": version,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        },
        data=piece,
        timeout=30,
    )


def _stored_size(server: Server, url: str) -> int:
    """The size of the upload's resumable file on disk."""
    return (server.settings.upload_folder / "resumable" / url.rsplit("/", 1)[1]).stat().st_size


def test_a_piece_is_written_to_disk_once(server):
    """Each PATCH body goes straight into the upload's file as it arrives, not first
    into a temporary file of waitress's, and the finished file is linked, not copied."""
    headers = server.new_user()
    content = os.urandom(8 * MIB)
    url = _create(server, headers, len(content), b"once.bin")
    before = server.written_bytes()
    for offset in range(0, len(content), 4 * MIB):
        answer = _patch(url, headers, offset, content[offset : offset + 4 * MIB])
        assert answer.status_code == 204, answer.text
    written = server.written_bytes() - before
    assert len(content) <= written < 1.2 * len(content), written
    assert downloaded_sha256(server, headers, "once.bin") == hashlib.sha256(content).hexdigest()


def _patch_head(url: str, headers: dict, offset: int, length: int, **more: str) -> bytes:
    """A PATCH's request line and headers, to send over a raw socket with (part of) its
    body. `more` adds headers (`Upload_Checksum="sha1 ..."`) or, set to "", drops one."""
    fields = {
        "Host": "x",
        **headers,
        "Tus-Resumable": "1.0.0",
        "Upload-Offset": str(offset),
        "Content-Type": "application/offset+octet-stream",
        "Content-Length": str(length),
    }
    fields.update({name.replace("_", "-"): value for name, value in more.items()})
    lines = "".join(f"{name}: {value}\r\n" for name, value in fields.items() if value)
    path = "/" + url.split("//", 1)[1].split("/", 1)[1]
    return f"PATCH {path} HTTP/1.1\r\n{lines}\r\n".encode()


def _offset_once_settled(server: Server, headers: dict, url: str) -> int:
    """HEAD's offset once the server has dealt with a connection that broke off: the
    upload's file then holds exactly that many bytes (kept, or undone back to it)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        offset = head_offset(server, headers, url)
        if _stored_size(server, url) == offset:
            return offset
        time.sleep(0.02)
    raise AssertionError(f"stored {_stored_size(server, url)} bytes, offset {offset}")


def _upload_half_sent(server: Server, headers: dict, name: bytes) -> tuple[str, bytes]:
    """A 2 MiB upload of random bytes whose first MiB has arrived: its URL, its bytes."""
    content = os.urandom(2 * MIB)
    url = _create(server, headers, len(content), name)
    assert _patch(url, headers, 0, content[:MIB]).status_code == 204
    return url, content


def test_what_arrived_of_a_piece_cut_off_midway_is_kept_and_the_upload_goes_on(server):
    headers = server.new_user()
    url, content = _upload_half_sent(server, headers, b"cut.bin")
    with connect(url) as connection:
        connection.sendall(_patch_head(url, headers, MIB, MIB) + content[MIB : MIB + 300_000])
        deadline = time.monotonic() + 5
        while _stored_size(server, url) < MIB + 300_000 and time.monotonic() < deadline:
            time.sleep(0.02)  # the bytes are in the upload's file as they arrive
        assert _stored_size(server, url) == MIB + 300_000
        assert head_offset(server, headers, url) == MIB  # not yet: the piece may go on
    assert _offset_once_settled(server, headers, url) == MIB + 300_000
    answer = _patch(url, headers, MIB, content[MIB:])  # from the old offset: refused
    assert answer.status_code == 409, answer.text
    rest = _patch(url, headers, MIB + 300_000, content[MIB + 300_000 :])  # not 423
    assert rest.status_code == 204, rest.text
    assert downloaded_sha256(server, headers, "cut.bin") == hashlib.sha256(content).hexdigest()


def test_a_piece_cut_off_midway_is_undone_when_it_would_not_have_been_let_in(server):
    ann, bob = server.new_user(), server.new_user()
    url, content = _upload_half_sent(server, ann, b"guarded.bin")
    half = b"\xff" * (MIB // 2)
    sha1_of_garbage = "sha1 " + base64.b64encode(hashlib.sha1(half + half).digest()).decode()
    cut_pieces = {
        "a forged token": _patch_head(url, {"Authorization": "Bearer forged"}, MIB, MIB),
        "no token": _patch_head(url, {}, MIB, MIB),
        "another user's token": _patch_head(url, bob, MIB, MIB),
        "no Tus-Resumable": _patch_head(url, ann, MIB, MIB, Tus_Resumable=""),
        "a checksum, which half a piece cannot meet": _patch_head(
            url, ann, MIB, MIB, Upload_Checksum=sha1_of_garbage
        ),
        "an Upload-Length": _patch_head(url, ann, MIB, MIB, Upload_Length=str(2 * MIB)),
    }
    for reason, head in cut_pieces.items():
        with connect(url) as connection:
            connection.sendall(head + half)
        assert _offset_once_settled(server, ann, url) == MIB, reason
    # A cut piece that would end the upload: only a whole request makes the file.
    with connect(url) as connection:
        connection.sendall(_patch_head(url, ann, MIB, MIB + 1) + content[MIB:])
    assert _offset_once_settled(server, ann, url) == MIB
    assert _patch(url, ann, MIB, content[MIB:]).status_code == 204
    assert downloaded_sha256(server, ann, "guarded.bin") == hashlib.sha256(content).hexdigest()


def test_a_piece_refused_leaves_the_upload_as_it_was(server):
    ann, bob = server.new_user(), server.new_user()
    url, content = _upload_half_sent(server, ann, b"kept.bin")
    garbage = b"\xff" * MIB
    refusals = [
        (lambda: _patch(url, {"Authorization": "Bearer forged"}, MIB, garbage), 401),
        (lambda: _patch(url, bob, MIB, garbage), 404),
        (lambda: _patch(url, ann, MIB, garbage, version="0.2.2"), 412),
        (lambda: _patch(url, ann, MIB, garbage + garbage), 413),  # beyond the length
        (lambda: _patch(url, ann, MIB + 1, garbage[1:]), 409),
    ]
    for send, status in refusals:
        answer = send()
        assert answer.status_code == status, (answer.status_code, answer.text)
        # Undone before the answer went out: a client may send again at once.
        assert _stored_size(server, url) == MIB
    assert head_offset(server, ann, url) == MIB
    assert _patch(url, ann, MIB, content[MIB:]).status_code == 204
    assert downloaded_sha256(server, ann, "kept.bin") == hashlib.sha256(content).hexdigest()
