"""Resumable (tus) uploads with STORAGE_URL=s3://...: every test of tests/test_tus.py
again, through the app, with the bytes in a real SeaweedFS bucket and the upload's state
in the database; then what is S3's own: no object left behind, pieces in sizes S3 does
not take as parts, the store down. (Two nodes: tests/test_nodes.py.)"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.conftest import make_settings
from tests.seaweedfs import SeaweedFS
from tests.test_tus import *  # noqa: F403 (the same tests, on S3)
from tests.tus_helpers import TUS, new_upload, patch

MiB = 1024 * 1024


def _fixtures():  # (from the modules that declare them, for this module's tests)
    from tests.test_s3_files import own_engine
    from tests.test_tus import headers

    return headers, own_engine


headers, own_engine = _fixtures()


@pytest.fixture
def settings(tmp_path: Path, database_url: str, s3_engine: SeaweedFS, s3_bucket: str):
    return make_settings(
        tmp_path,
        database_url,
        storage_url=s3_engine.storage_url(s3_bucket, "pcloud"),
        max_upload_size=64 * MiB,
        tus_max_chunk=16 * MiB,
    )


# On disk, these look into the upload folder, and the limit they check is conftest's.
test_termination_removes_the_upload_and_its_bytes = None
test_an_upload_longer_than_the_upload_limit_is_413 = None


def bucket_state(engine: SeaweedFS, bucket: str) -> tuple[list[str], int]:
    """The bucket's objects, and how many multipart uploads are unfinished in it."""
    client = engine.client()
    objects = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return sorted(item["Key"] for item in objects), len(uploads)


def test_the_upload_hash_state_can_be_saved_and_continued():
    from pcloud.services.uploads.hashes import ResumableSha256

    # OpenSSL's SHA256_* (deprecated, still exported): should they go, this fails first.
    assert ResumableSha256.available()
    first = ResumableSha256()
    first.update(b"hello ")
    second = ResumableSha256(first.state())
    second.update(b"world")
    assert second.hexdigest() == hashlib.sha256(b"hello world").hexdigest()


def test_pieces_of_sizes_s3_takes_no_part_of_become_one_blob_with_its_hash(
    client, headers, s3_engine, s3_bucket, pcloud
):
    from pcloud.models import S3Resumable, StoredFile

    content = os.urandom(20 * MiB)
    url = new_upload(client, headers, length=len(content))
    offset = 0
    for size in (3 * MiB, 7 * MiB, 1 * MiB, 9 * MiB):
        pcloud.upload_hashes.forget(url.rsplit("/", 1)[1])  # as on another node
        assert (
            patch(client, headers, url, offset, content[offset : offset + size]).status_code == 204
        )
        offset += size
    stored = StoredFile.get(StoredFile.name == "clip.mp4")
    assert stored.sha256 == hashlib.sha256(content).hexdigest()
    assert client.get("/download/clip.mp4", headers=headers).data == content
    assert bucket_state(s3_engine, s3_bucket) == ([f"pcloud/blobs/{stored.blob_key}"], 0)
    assert S3Resumable.select().count() == 0


def test_a_checksum_mismatch_after_parts_went_out_keeps_the_upload_at_its_offset(client, headers):
    import base64

    content = os.urandom(13 * MiB)
    url = new_upload(client, headers, length=len(content))
    assert patch(client, headers, url, 0, content[: 3 * MiB]).status_code == 204
    wrong = {"Upload-Checksum": "sha1 " + base64.b64encode(b"x" * 20).decode()}
    assert patch(client, headers, url, 3 * MiB, content[3 * MiB :], **wrong).status_code == 460
    assert client.head(url, headers=headers).headers["Upload-Offset"] == str(3 * MiB)
    assert patch(client, headers, url, 3 * MiB, content[3 * MiB :]).status_code == 204
    assert client.get("/download/clip.mp4", headers=headers).data == content


def test_termination_leaves_no_object_and_no_unfinished_upload(
    client, headers, s3_engine, s3_bucket
):
    url = new_upload(client, headers, length=12 * MiB)
    patch(client, headers, url, 0, b"x" * (9 * MiB))  # a part is out
    assert bucket_state(s3_engine, s3_bucket)[1] == 1
    assert client.delete(url, headers=headers).status_code == 204
    assert bucket_state(s3_engine, s3_bucket) == ([], 0)


def test_gc_removes_an_expired_upload_and_its_unfinished_s3_upload(
    runner, client, headers, s3_engine, s3_bucket
):
    from tests.test_gc import expire, gc_command

    url = new_upload(client, headers, length=12 * MiB)
    patch(client, headers, url, 0, b"x" * (9 * MiB))
    expire(url.rsplit("/", 1)[1])
    assert "1 resumable upload(s)" in gc_command(runner).output
    assert bucket_state(s3_engine, s3_bucket) == ([], 0)


def test_a_piece_while_the_store_is_down_is_503_and_the_upload_goes_on_after(
    tmp_path, database_url, own_engine
):
    from tests.test_s3_files import opened_client

    bucket = own_engine.make_bucket()
    settings = make_settings(
        tmp_path,
        database_url,
        storage_url=own_engine.storage_url(bucket),
        s3_timeout=2,
        max_upload_size=64 * MiB,
        tus_max_chunk=16 * MiB,
    )
    content = os.urandom(12 * MiB)
    with opened_client(settings) as (client, signed_in):
        headers = {**signed_in, **TUS}
        url = new_upload(client, headers, length=len(content))
        assert patch(client, headers, url, 0, content[: 2 * MiB]).status_code == 204
        own_engine.stop()
        refused = patch(client, headers, url, 2 * MiB, content[2 * MiB :])
        assert refused.status_code == 503 and refused.headers["Retry-After"].isdigit()
        own_engine.start()
        assert client.head(url, headers=headers).headers["Upload-Offset"] == str(2 * MiB)
        assert patch(client, headers, url, 2 * MiB, content[2 * MiB :]).status_code == 204
        assert client.get("/download/clip.mp4", headers=headers).data == content
