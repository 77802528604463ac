"""`pcloud files migrate-storage --to URL`: every blob copied under its key, resumable,
checked by hash; then STORAGE_URL switches and every file downloads as before."""

from __future__ import annotations

import dataclasses
import io

import pytest

from pcloud.api import create_app
from pcloud.core import Pcloud
from pcloud.models import Blob
from tests.conftest import AuthActions

FILES = {f"file-{number}.txt": f"content {number} ".encode() * (number + 1) for number in range(5)}


@pytest.fixture
def uploaded(client, auth):
    headers = auth.headers()
    for name, content in FILES.items():
        answer = client.post("/upload", headers=headers, data={"file": (io.BytesIO(content), name)})
        assert answer.status_code == 201
    return headers


def bucket_objects(engine, bucket) -> dict[str, bytes]:
    client = engine.client()
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {
        item["Key"]: client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        for item in listed
    }


def test_blobs_are_copied_to_s3_under_their_keys_and_serve_after_the_switch(
    uploaded, runner, settings, s3_engine, s3_bucket
):
    url = s3_engine.storage_url(s3_bucket, "moved")
    result = runner.invoke("files", "migrate-storage", "--to", url)
    assert result.exit_code == 0, result.output
    assert "Copied 5 blob(s)" in result.output
    keys = {row.store_key: row.sha256 for row in Blob.select()}
    stored = bucket_objects(s3_engine, s3_bucket)
    assert set(stored) == {f"moved/blobs/{key}" for key in keys}
    assert sorted(stored.values()) == sorted(FILES.values())

    switched = dataclasses.replace(settings, storage_url=url)
    pcloud = Pcloud.open(switched)
    try:
        client = create_app(pcloud=pcloud).test_client()
        headers = AuthActions(client).headers()
        for name, content in FILES.items():
            assert client.get(f"/download/{name}", headers=headers).data == content
    finally:
        pcloud.close()


def test_a_second_run_goes_on_where_the_first_stopped(uploaded, runner, s3_engine, s3_bucket):
    url = s3_engine.storage_url(s3_bucket)
    assert runner.invoke("files", "migrate-storage", "--to", url).exit_code == 0
    client = s3_engine.client()
    lost = sorted(bucket_objects(s3_engine, s3_bucket))[:2]  # as if cut off before these
    for key in lost:
        client.delete_object(Bucket=s3_bucket, Key=key)
    again = runner.invoke("files", "migrate-storage", "--to", url)
    assert again.exit_code == 0, again.output
    assert "Copied 2 blob(s)" in again.output and "3 were there already" in again.output
    assert len(bucket_objects(s3_engine, s3_bucket)) == 5


def test_a_blob_whose_bytes_changed_is_reported_and_not_copied(
    uploaded, runner, settings, s3_engine, s3_bucket
):
    damaged = Blob.select().order_by(Blob.id).first()
    path = settings.upload_folder / "blobs" / damaged.store_key[:2] / damaged.store_key
    path.write_bytes(b"bit rot")
    result = runner.invoke("files", "migrate-storage", "--to", s3_engine.storage_url(s3_bucket))
    assert result.exit_code == 1
    assert damaged.store_key in result.output and "differ" in result.output
    assert len(bucket_objects(s3_engine, s3_bucket)) == 4


def test_blobs_come_back_from_s3_to_a_folder(
    uploaded, runner, settings, tmp_path, s3_engine, s3_bucket
):
    url = s3_engine.storage_url(s3_bucket)
    assert runner.invoke("files", "migrate-storage", "--to", url).exit_code == 0
    back = tmp_path / "back"
    result = runner.invoke(
        "files", "migrate-storage", "--to", f"file://{back}", env={"STORAGE_URL": url}
    )
    assert result.exit_code == 0, result.output
    copied = sorted(path.read_bytes() for path in (back / "blobs").rglob("*") if path.is_file())
    assert copied == sorted(FILES.values())


@pytest.mark.parametrize(
    ("target", "says"),
    [("ftp://nowhere", "expected file:///"), ("s3://b?endpoint=x", "unknown option")],
)
def test_a_bad_target_is_one_clear_line(runner, target, says):
    result = runner.invoke("files", "migrate-storage", "--to", target)
    assert result.exit_code == 3
    assert says in result.output


def test_the_current_store_as_target_is_refused(runner, settings):
    result = runner.invoke("files", "migrate-storage", "--to", settings.blob_store_url)
    assert result.exit_code == 3 and "nothing to do" in result.output
