"""STORAGE_URL: which store holds the bytes, and the settings S3 storage needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pcloud.config import load_settings
from pcloud.errors import ConfigError
from pcloud.storage import LocalBlobStore
from pcloud.storage.s3 import S3BlobStore, S3Location
from pcloud.storage.urls import open_store

S3_URL = "s3://pcloud-files/household?endpoint_url=http://127.0.0.1:8333&region=us-east-1"


def settings_from(tmp_path: Path, **environ: str):
    return load_settings(environ={"PCLOUD_DATA_DIR": str(tmp_path), **environ}, env_file=None)


def test_without_storage_url_files_stay_in_the_upload_folder(tmp_path):
    settings = settings_from(tmp_path)
    assert settings.blob_store_url == f"file://{tmp_path / 'files'}"
    store = open_store(settings.blob_store_url)
    assert isinstance(store, LocalBlobStore) and store.root == tmp_path / "files"


def test_an_s3_url_names_bucket_prefix_endpoint_and_region():
    location = S3Location.parse(S3_URL)
    assert location == S3Location(
        bucket="pcloud-files",
        prefix="household/",
        endpoint_url="http://127.0.0.1:8333",
        region="us-east-1",
    )
    assert S3Location.parse("s3://just-a-bucket").prefix == ""
    assert isinstance(open_store(S3_URL), S3BlobStore)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://host/files", "expected file:///absolute/folder or s3://"),
        ("file://relative/files", "absolute folder"),
        ("s3://key:secret@bucket?endpoint_url=http://h:1", "credentials do not belong"),
        ("s3://bucket?endpoint=http://h:1", "unknown option 'endpoint'"),
        ("s3://bucket?endpoint_url=h:1", "must start with http"),
    ],
)
def test_a_bad_storage_url_is_refused_naming_the_setting_and_the_fix(tmp_path, url, says):
    with pytest.raises(ConfigError) as refused:
        settings_from(tmp_path, STORAGE_URL=url, SECRET_KEY="shared-secret")
    assert "STORAGE_URL" in refused.value.message and says in refused.value.message
    assert "secret" not in refused.value.message.replace("shared-secret", "")


def test_s3_storage_with_a_node_local_generated_secret_key_is_refused(tmp_path):
    with pytest.raises(ConfigError) as refused:
        settings_from(tmp_path, STORAGE_URL=S3_URL)
    assert "SECRET_KEY" in refused.value.message
    assert "every node" in refused.value.message
    assert not (tmp_path / "secret_key").exists()  # nothing generated to be shared by mistake


def test_s3_storage_with_a_shared_secret_key_starts(tmp_path):
    settings = settings_from(tmp_path, STORAGE_URL=S3_URL, SECRET_KEY="shared-secret")
    assert settings.blob_store_url == S3_URL
