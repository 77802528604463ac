"""`pcloud files verify`: every blob re-hashed; bit rot and lost bytes reported, exit 1."""

from __future__ import annotations

import io

from pcloud.models import StoredFile


def upload(client, headers, name, content):
    client.post("/upload", headers=headers, data={"file": (io.BytesIO(content), name)})


def blob_path(settings, name):
    stored = StoredFile.get(StoredFile.name == name)
    return settings.upload_folder / "blobs" / stored.blob_key[:2] / stored.blob_key


def test_intact_blobs_pass(runner, client, auth):
    upload(client, auth.headers(), "a.txt", b"fine")
    result = runner.invoke("files", "verify")
    assert result.exit_code == 0, result.output
    assert "All 1 blob(s) match" in result.output


def test_a_flipped_byte_is_reported_with_the_files_that_use_it(runner, client, auth, settings):
    headers = auth.headers()
    upload(client, headers, "a.txt", b"precious")
    upload(client, headers, "b.txt", b"precious")
    upload(client, headers, "c.txt", b"untouched")
    blob_path(settings, "a.txt").write_bytes(b"precioUs")
    result = runner.invoke("files", "verify")
    assert result.exit_code == 1
    assert "1 damaged blob(s)" in result.output
    assert "ann: a.txt" in result.output and "ann: b.txt" in result.output
    assert "ann: c.txt" not in result.output


def test_missing_bytes_are_reported(runner, client, auth, settings):
    upload(client, auth.headers(), "a.txt", b"soon gone")
    blob_path(settings, "a.txt").unlink()
    result = runner.invoke("files", "verify")
    assert result.exit_code == 1
    assert "missing" in result.output


def test_the_metadata_pass_finds_missing_and_resized_blobs_without_reading_bytes(
    runner, client, auth, settings
):
    headers = auth.headers()
    upload(client, headers, "a.txt", b"precious")
    upload(client, headers, "b.txt", b"soon gone")
    upload(client, headers, "c.txt", b"untouched")
    blob_path(settings, "a.txt").write_bytes(b"precioUs!")  # one byte more
    blob_path(settings, "b.txt").unlink()
    flipped = blob_path(settings, "c.txt")
    flipped.write_bytes(b"untoucheD")  # same size: only a full verify can tell
    result = runner.invoke("files", "verify", "--metadata")
    assert result.exit_code == 1, result.output
    assert "2 blob(s) missing or of the wrong size" in result.output
    assert "ann: a.txt" in result.output and "9 bytes" in result.output
    assert "ann: b.txt" in result.output and "missing" in result.output
    assert "ann: c.txt" not in result.output


def test_the_metadata_pass_of_an_intact_store_passes(runner, client, auth):
    upload(client, auth.headers(), "a.txt", b"fine")
    result = runner.invoke("files", "verify", "--metadata")
    assert result.exit_code == 0, result.output
    assert "Every blob is in the store with its size" in result.output
