"""Resumable uploads over tus 1.0.0, through the app (tests/test_tus_e2e.py: over HTTP)."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta, timezone

import pytest

from pcloud.api import tus_headers
from pcloud.models import StoredFile, TusUpload
from tests.tus_helpers import PIECE, TUS, create, metadata, new_upload, patch


@pytest.fixture
def headers(headers) -> dict[str, str]:
    """conftest's headers, speaking tus."""
    return {**headers, **TUS}


def listed(client, headers) -> dict[str, int]:
    files = client.get("/files", headers=headers).get_json()
    return {entry["filename"]: entry["size"] for entry in files}


def test_options_tells_the_version_extensions_and_limits_without_sign_in(client, settings):
    response = client.options("/tus/")
    assert response.status_code == 204
    assert response.headers["Tus-Version"] == "1.0.0"
    assert response.headers["Tus-Resumable"] == "1.0.0"
    extensions = set(response.headers["Tus-Extension"].split(","))
    assert extensions >= {
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "termination",
        "checksum",
        "expiration",
    }
    assert int(response.headers["Tus-Max-Size"]) == settings.max_upload_size
    assert {"sha1", "sha256"} <= set(response.headers["Tus-Checksum-Algorithm"].split(","))


def test_an_upload_in_pieces_becomes_a_file_with_its_hash_and_name(client, headers):
    content = b"0123456789"
    url = new_upload(client, headers)
    assert url.startswith("/tus/")
    first = patch(client, headers, url, 0, content[:4])
    assert first.status_code == 204
    assert first.headers["Upload-Offset"] == "4"
    assert "Upload-Expires" in first.headers
    assert "Pcloud-File" not in first.headers
    head = client.head(url, headers=headers)
    assert head.status_code == 200
    assert head.headers["Upload-Offset"] == "4"
    assert head.headers["Upload-Length"] == "10"
    assert head.headers["Cache-Control"] == "no-store"
    assert head.headers["Upload-Metadata"] == metadata(filename="clip.mp4")
    last = patch(client, headers, url, 4, content[4:])
    assert last.status_code == 204 and last.headers["Upload-Offset"] == "10"
    assert last.headers["Pcloud-File"] == "clip.mp4"
    assert listed(client, headers) == {"clip.mp4": 10}
    download = client.get("/download/clip.mp4", headers=headers)
    assert download.data == content
    assert download.headers["ETag"] == f'"{hashlib.sha256(content).hexdigest()}"'


def test_a_complete_upload_still_answers_head_with_its_full_offset(client, headers):
    url = new_upload(client, headers, length=3)
    patch(client, headers, url, 0, b"abc")
    head = client.head(url, headers=headers)
    assert head.status_code == 200
    assert (head.headers["Upload-Offset"], head.headers["Upload-Length"]) == ("3", "3")
    assert head.headers["Pcloud-File"] == "clip.mp4"
    again = patch(client, headers, url, 3, b"")
    assert again.status_code == 204  # a client that lost the last answer is told it is done
    assert listed(client, headers) == {"clip.mp4": 3}


def test_the_hash_is_right_when_the_pieces_reach_a_process_without_its_state(
    client, headers, pcloud
):
    content = b"resumed in another worker"
    url = new_upload(client, headers, length=len(content))
    patch(client, headers, url, 0, content[:7])
    pcloud.upload_hashes.forget(url.rsplit("/", 1)[1])  # as after a restart
    patch(client, headers, url, 7, content[7:12])
    patch(client, headers, url, 12, content[12:])
    etag = client.get("/download/clip.mp4", headers=headers).headers["ETag"]
    assert etag == f'"{hashlib.sha256(content).hexdigest()}"'


def test_creation_with_upload_stores_the_first_piece(client, headers):
    response = create(client, headers, length=6, body=b"abc")
    assert response.status_code == 201
    assert response.headers["Upload-Offset"] == "3"
    url = response.headers["Location"]
    assert patch(client, headers, url, 3, b"def").headers["Pcloud-File"] == "clip.mp4"
    assert client.get("/download/clip.mp4", headers=headers).data == b"abcdef"


def test_creation_with_the_whole_file_and_an_empty_file_complete_at_once(client, headers):
    whole = create(client, headers, length=4, name="whole.txt", body=b"1234")
    assert whole.headers["Pcloud-File"] == "whole.txt"
    empty = create(client, headers, length=0, name="empty.txt")
    assert empty.status_code == 201 and empty.headers["Upload-Offset"] == "0"
    assert listed(client, headers) == {"empty.txt": 0, "whole.txt": 4}


def test_a_deferred_length_is_given_by_a_later_piece(client, headers):
    url = new_upload(client, headers, length=None)
    head = client.head(url, headers=headers)
    assert head.headers["Upload-Defer-Length"] == "1" and "Upload-Length" not in head.headers
    patch(client, headers, url, 0, b"abc")
    last = patch(client, headers, url, 3, b"de", **{"Upload-Length": "5"})
    assert last.headers["Pcloud-File"] == "clip.mp4"
    assert listed(client, headers) == {"clip.mp4": 5}


def test_a_length_once_known_cannot_change(client, headers):
    url = new_upload(client, headers, length=5)
    response = patch(client, headers, url, 0, b"ab", **{"Upload-Length": "9"})
    assert response.status_code == 400


def test_a_wrong_offset_is_409_and_changes_nothing(client, headers):
    url = new_upload(client, headers)
    patch(client, headers, url, 0, b"abc")
    response = patch(client, headers, url, 1, b"xyz")
    assert response.status_code == 409
    assert response.get_json()["offset"] == 3
    assert client.head(url, headers=headers).headers["Upload-Offset"] == "3"


def test_a_piece_beyond_the_length_is_413_and_discarded(client, headers):
    url = new_upload(client, headers, length=4)
    response = patch(client, headers, url, 0, b"abcdef")
    assert response.status_code == 413
    assert client.head(url, headers=headers).headers["Upload-Offset"] == "0"
    assert patch(client, headers, url, 0, b"abcd").status_code == 204


def test_a_piece_larger_than_tus_max_chunk_is_413(client, headers, pcloud):
    limit = pcloud.settings.tus_max_chunk
    url = new_upload(client, headers, length=limit + 1)
    response = patch(client, headers, url, 0, b"x" * (limit + 1))
    assert response.status_code == 413
    assert "TUS_MAX_CHUNK" in response.get_json()["error"]


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "md5", "sha512"])
def test_a_piece_with_a_matching_checksum_is_kept(client, headers, algorithm):
    url = new_upload(client, headers, length=3)
    digest = base64.b64encode(hashlib.new(algorithm, b"abc").digest()).decode()
    response = patch(
        client, headers, url, 0, b"abc", **{"Upload-Checksum": f"{algorithm} {digest}"}
    )
    assert response.status_code == 204


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_a_checksum_mismatch_is_460_and_the_piece_is_discarded(client, headers, algorithm):
    content = b"abcdef"
    url = new_upload(client, headers, length=6)
    patch(client, headers, url, 0, b"abc")
    wrong = base64.b64encode(hashlib.new(algorithm, b"XYZ").digest()).decode()
    response = patch(client, headers, url, 3, b"def", **{"Upload-Checksum": f"{algorithm} {wrong}"})
    assert response.status_code == 460
    assert response.status == "460 Checksum Mismatch"
    assert "error" in response.get_json()
    assert client.head(url, headers=headers).headers["Upload-Offset"] == "3"
    right = base64.b64encode(hashlib.new(algorithm, b"def").digest()).decode()
    patch(client, headers, url, 3, b"def", **{"Upload-Checksum": f"{algorithm} {right}"})
    download = client.get("/download/clip.mp4", headers=headers)
    assert download.data == content
    assert download.headers["ETag"] == f'"{hashlib.sha256(content).hexdigest()}"'


def test_an_unknown_checksum_algorithm_is_400(client, headers):
    url = new_upload(client, headers)
    response = patch(client, headers, url, 0, b"a", **{"Upload-Checksum": "crc32 AAAA"})
    assert response.status_code == 400


def test_a_missing_or_wrong_tus_version_is_412_with_the_supported_version(client, auth):
    signed_in = auth.headers()
    response = client.post("/tus/", headers={**signed_in, "Upload-Length": "1"})
    assert response.status_code == 412
    assert response.headers["Tus-Version"] == "1.0.0"
    response = client.post("/tus/", headers={**signed_in, "Tus-Resumable": "0.2.2"})
    assert response.status_code == 412


def test_every_tus_answer_carries_tus_resumable_and_errors_are_json(client, headers):
    response = client.head("/tus/nonexistent-upload-id-0000", headers=headers)
    assert response.status_code == 404
    assert response.headers["Tus-Resumable"] == "1.0.0"
    response = client.patch(
        "/tus/nonexistent-upload-id-0000", headers={**PIECE, **headers, "Upload-Offset": "0"}
    )
    assert response.status_code == 404
    assert response.get_json() == {"error": "Upload not found"}


def test_tus_routes_need_a_bearer_token(client):
    response = client.post("/tus/", headers={**TUS, "Upload-Length": "1"})
    assert response.status_code == 401
    assert "error" in response.get_json()


def test_a_patch_must_be_an_offset_stream(client, headers):
    url = new_upload(client, headers)
    response = client.patch(
        url, headers={**headers, "Upload-Offset": "0", "Content-Type": "text/plain"}, data=b"a"
    )
    assert response.status_code == 415


def test_one_users_upload_is_404_to_another(client, auth):
    ann = {**auth.headers("ann"), **TUS}
    bob = {**auth.headers("bob"), **TUS}
    url = new_upload(client, ann)
    assert client.head(url, headers=bob).status_code == 404
    assert patch(client, bob, url, 0, b"abc").status_code == 404
    assert client.delete(url, headers=bob).status_code == 404
    assert client.head(url, headers=ann).headers["Upload-Offset"] == "0"


def test_termination_removes_the_upload_and_its_bytes(client, headers, settings):
    url = new_upload(client, headers)
    patch(client, headers, url, 0, b"abc")
    assert client.delete(url, headers=headers).status_code == 204
    assert client.head(url, headers=headers).status_code == 404
    assert list((settings.upload_folder / "resumable").iterdir()) == []
    assert TusUpload.select().count() == 0


def test_a_patch_while_another_writes_the_upload_is_423_and_nothing_mixes(client, headers, pcloud):
    url = new_upload(client, headers)
    upload_id = url.rsplit("/", 1)[1]
    with pcloud.blobs.open_resumable(upload_id):  # another request's hold
        assert patch(client, headers, url, 0, b"abc").status_code == 423
        assert client.delete(url, headers=headers).status_code == 423
    assert client.head(url, headers=headers).headers["Upload-Offset"] == "0"
    assert patch(client, headers, url, 0, b"abc").status_code == 204


def test_bytes_a_dead_writer_left_beyond_the_offset_are_discarded(client, headers, pcloud):
    url = new_upload(client, headers, length=6)
    upload_id = url.rsplit("/", 1)[1]
    patch(client, headers, url, 0, b"abc")
    with pcloud.blobs.open_resumable(upload_id) as write:
        write.append(3, [b"garbage that never got committed"])
    patch(client, headers, url, 3, b"def")
    assert client.get("/download/clip.mp4", headers=headers).data == b"abcdef"


def test_method_override_lets_post_stand_in_for_patch_and_head(client, headers):
    url = new_upload(client, headers, length=3)
    response = client.post(
        url,
        headers={**headers, **PIECE, "Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH"},
        data=b"abc",
    )
    assert response.status_code == 204 and response.headers["Upload-Offset"] == "3"
    head = client.post(url, headers={**headers, "X-HTTP-Method-Override": "HEAD"})
    assert head.status_code == 200 and head.headers["Upload-Offset"] == "3"


def test_an_expired_upload_is_410(client, headers):
    url = new_upload(client, headers)
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    TusUpload.update(expires_at=past).execute()
    assert client.head(url, headers=headers).status_code == 410
    assert patch(client, headers, url, 0, b"abc").status_code == 410


def test_the_name_follows_the_plain_upload_rules(client, headers):
    client.post(
        "/upload", headers=headers, data={"file": (__import__("io").BytesIO(b"x"), "a.txt")}
    )
    response = create(client, headers, length=1, name="photos/a.txt", body=b"y")
    assert response.headers["Pcloud-File"] == "a_1.txt"  # directory dropped, name taken
    assert create(client, headers, name="..").status_code == 400
    assert create(client, headers, name="bad\x01name").status_code == 400


def test_uppy_metadata_name_and_last_modified_are_understood(client, headers):
    moment = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)
    millis = str(int(moment.timestamp() * 1000))
    response = client.post(
        "/tus/",
        headers={
            **headers,
            **PIECE,
            "Upload-Length": "2",
            "Upload-Metadata": metadata(
                name="uppy.jpg", lastModified=millis, filetype="image/jpeg"
            ),
        },
        data=b"hi",
    )
    assert response.headers["Pcloud-File"] == "uppy.jpg"
    [entry] = client.get("/files", headers=headers).get_json()
    assert entry["modified_at"] == "2024-05-01T12:30:00Z"


def test_an_iso_modification_time_is_understood(client, headers):
    response = client.post(
        "/tus/",
        headers={
            **headers,
            "Upload-Length": "0",
            "Upload-Metadata": metadata(
                filename="old.txt", modified_at="2020-01-02T03:04:05+01:00"
            ),
        },
    )
    assert response.status_code == 201
    stored = StoredFile.get(StoredFile.name == "old.txt")
    assert stored.modified_at == datetime(2020, 1, 2, 2, 4, 5, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "header",
    [
        "",
        metadata(folder="/"),
        "filename not-base64!",
        metadata(filename="a.txt", folder="Photos"),
        metadata(filename="a.txt", modified_at="yesterday"),
        metadata(filename="a.txt") + "," + metadata(filename="b.txt"),
    ],
)
def test_bad_metadata_is_400(client, headers, header):
    response = client.post(
        "/tus/", headers={**headers, "Upload-Length": "1", "Upload-Metadata": header}
    )
    assert response.status_code == 400, header


def test_the_root_folder_is_accepted(client, headers):
    for folder in ("", "/"):
        response = client.post(
            "/tus/",
            headers={
                **headers,
                "Upload-Length": "1",
                "Upload-Metadata": metadata(filename="a", folder=folder),
            },
        )
        assert response.status_code == 201


def test_an_upload_longer_than_the_upload_limit_is_413(client, headers, settings):
    refused = create(client, headers, length=settings.max_upload_size + 1)
    assert refused.status_code == 413
    assert refused.get_json()["error"] == (
        "Upload-Length 8388609 is larger than this server's limit of 8 MiB (8388608 bytes)"
    )
    url = new_upload(client, headers, length=None)
    response = patch(
        client, headers, url, 0, b"", **{"Upload-Length": str(settings.max_upload_size + 1)}
    )
    assert response.status_code == 413


def test_parse_metadata_reads_keys_without_values():
    assert tus_headers.parse_metadata("a YQ==, flag ,b Yg==") == {
        "a": "a",
        "flag": "",
        "b": "b",
    }
