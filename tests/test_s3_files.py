"""The file routes with STORAGE_URL=s3://...: the same answers as on disk, the bytes in a
real SeaweedFS bucket (tests/seaweedfs.py), and 503 when the store does not answer."""

from __future__ import annotations

import contextlib
import hashlib
import io
import time
from pathlib import Path

import pytest

from pcloud.api import create_app
from pcloud.core import Pcloud
from pcloud.models import Blob, StoredFile
from tests.conftest import AuthActions, make_settings
from tests.seaweedfs import SeaweedFS, credentials_environment

DIGITS = b"0123456789"


@pytest.fixture
def settings(tmp_path: Path, database_url: str, s3_engine: SeaweedFS, s3_bucket: str):
    return make_settings(
        tmp_path,
        database_url,
        storage_url=s3_engine.storage_url(s3_bucket, "pcloud"),
        max_upload_size=64 * 1024 * 1024,
    )


def upload(client, headers, name, content=DIGITS):
    return client.post("/upload", headers=headers, data={"file": (io.BytesIO(content), name)})


def bucket_keys(engine: SeaweedFS, bucket: str) -> list[str]:
    listed = engine.client().list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_an_upload_lands_in_the_bucket_under_a_generated_key(
    client, headers, s3_engine, s3_bucket, settings
):
    assert upload(client, headers, "digits.txt").status_code == 201
    [key] = bucket_keys(s3_engine, s3_bucket)
    stored = StoredFile.get(StoredFile.name == "digits.txt")
    assert key == f"pcloud/blobs/{stored.blob_key}"
    assert stored.sha256 == hashlib.sha256(DIGITS).hexdigest()
    assert not (settings.upload_folder / "blobs").exists() or not any(
        (settings.upload_folder / "blobs").rglob("*")
    )


def test_the_same_bytes_twice_are_kept_once(client, headers, s3_engine, s3_bucket):
    upload(client, headers, "a.txt")
    upload(client, headers, "b.txt")
    assert len(bucket_keys(s3_engine, s3_bucket)) == 1
    assert Blob.select().count() == 1


def test_a_large_upload_goes_up_in_parts_and_comes_back_whole(client, headers):
    content = bytes(range(256)) * (4 * 1024 * 30)  # 30 MiB: several 8 MiB parts
    answer = client.post(
        "/upload", headers=headers, data={"file": (io.BytesIO(content), "big.bin")}
    )
    assert answer.status_code == 201, answer.get_json()
    downloaded = client.get("/download/big.bin", headers=headers)
    assert hashlib.sha256(downloaded.data).digest() == hashlib.sha256(content).digest()


def test_download_sends_the_bytes_with_etag_and_length(client, headers):
    upload(client, headers, "digits.txt")
    response = client.get("/download/digits.txt", headers=headers)
    assert response.status_code == 200
    assert response.data == DIGITS
    assert response.headers["Content-Length"] == "10"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["ETag"] == f'"{hashlib.sha256(DIGITS).hexdigest()}"'
    assert "attachment" in response.headers["Content-Disposition"]


def test_a_range_is_passed_through_to_the_store(client, headers):
    upload(client, headers, "digits.txt")
    response = client.get("/download/digits.txt", headers={**headers, "Range": "bytes=2-5"})
    assert response.status_code == 206
    assert response.data == b"2345"
    assert response.headers["Content-Range"] == "bytes 2-5/10"
    suffix = client.get("/download/digits.txt", headers={**headers, "Range": "bytes=-3"})
    assert (suffix.status_code, suffix.data) == (206, b"789")


def test_an_unsatisfiable_range_is_416(client, headers):
    upload(client, headers, "digits.txt")
    response = client.get("/download/digits.txt", headers={**headers, "Range": "bytes=50-60"})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == "bytes */10"


def test_if_none_match_gives_304_and_a_stale_if_range_the_whole_file(client, headers):
    upload(client, headers, "digits.txt")
    etag = client.get("/download/digits.txt", headers=headers).headers["ETag"]
    again = client.get("/download/digits.txt", headers={**headers, "If-None-Match": etag})
    assert (again.status_code, again.data) == (304, b"")
    stale = client.get(
        "/download/digits.txt", headers={**headers, "Range": "bytes=2-5", "If-Range": '"old"'}
    )
    assert (stale.status_code, stale.data) == (200, DIGITS)
    fresh = client.get(
        "/download/digits.txt", headers={**headers, "Range": "bytes=2-5", "If-Range": etag}
    )
    assert (fresh.status_code, fresh.data) == (206, b"2345")


def test_a_row_whose_object_vanished_is_404_not_500(client, headers, s3_engine, s3_bucket):
    upload(client, headers, "digits.txt")
    [key] = bucket_keys(s3_engine, s3_bucket)
    s3_engine.client().delete_object(Bucket=s3_bucket, Key=key)
    response = client.get("/download/digits.txt", headers=headers)
    assert response.status_code == 404
    assert response.get_json() == {"error": "File not found"}


def test_delete_removes_the_row_and_the_object(client, headers, s3_engine, s3_bucket):
    upload(client, headers, "digits.txt")
    assert client.delete("/delete/digits.txt", headers=headers).status_code == 200
    assert bucket_keys(s3_engine, s3_bucket) == []


def test_redirected_downloads_go_to_a_presigned_url_that_serves_the_bytes(
    tmp_path, database_url, s3_engine, s3_bucket
):
    import requests

    settings = make_settings(
        tmp_path,
        database_url,
        storage_url=s3_engine.storage_url(s3_bucket),
        s3_redirect_downloads=True,
    )
    with opened_client(settings) as (client, headers):
        upload(client, headers, "digits.txt")
        response = client.get("/download/digits.txt", headers=headers)
        assert response.status_code == 302
        location = response.headers["Location"]
        assert location.startswith(s3_engine.endpoint_url)
        fetched = requests.get(location, timeout=10)  # no credentials: the URL is signed
        assert (fetched.status_code, fetched.content) == (200, DIGITS)
        assert "digits.txt" in fetched.headers["Content-Disposition"]
        assert (
            requests.get(location.replace("Signature=", "Signature=0"), timeout=10).status_code
            == 403
        )


@contextlib.contextmanager
def opened_client(settings):
    """A test client of a pcloud on these settings, with ann signed in."""
    pcloud = Pcloud.open(settings)
    try:
        client = create_app(pcloud=pcloud).test_client()
        auth = AuthActions(client)
        yield client, auth.headers()
    finally:
        pcloud.close()


# --- the store down, and back -------------------------------------------------------------


@pytest.fixture
def own_engine(tmp_path_factory, monkeypatch):
    """A SeaweedFS of this test's own, which it may stop and start again."""
    for name, value in credentials_environment().items():
        monkeypatch.setenv(name, value)
    engine = SeaweedFS(tmp_path_factory.mktemp("own-seaweedfs"))
    engine.start()
    yield engine
    engine.stop()


def test_while_the_store_is_down_uploads_and_downloads_are_503_and_it_recovers_by_itself(
    tmp_path, database_url, own_engine
):
    bucket = own_engine.make_bucket()
    settings = make_settings(
        tmp_path, database_url, storage_url=own_engine.storage_url(bucket), s3_timeout=2
    )
    with opened_client(settings) as (client, headers):
        assert upload(client, headers, "before.txt").status_code == 201

        own_engine.stop()
        started = time.monotonic()
        refused = upload(client, headers, "during.txt", b"x" * 100)
        download = client.get("/download/before.txt", headers=headers)
        assert time.monotonic() - started < 30  # bounded: no request hangs
        for answer in (refused, download):
            assert answer.status_code == 503
            assert answer.headers["Retry-After"].isdigit()
            assert "try again" in answer.get_json()["error"]
        # No row points at bytes that were never stored.
        assert [f.name for f in StoredFile.select()] == ["before.txt"]

        own_engine.start()
        assert upload(client, headers, "after.txt", b"y" * 100).status_code == 201
        assert client.get("/download/before.txt", headers=headers).data == DIGITS
        assert client.get("/download/after.txt", headers=headers).data == b"y" * 100
