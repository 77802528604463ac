"""The BlobStore contract. Every backend runs these same tests (add it to BACKENDS).

The S3 backend runs them against a real SeaweedFS (tests/seaweedfs.py), a bucket per test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from pcloud.errors import PayloadTooLarge
from pcloud.storage import BlobStore, LocalBlobStore


def s3_store(request, tmp_path) -> BlobStore:
    """An S3 store; its resumable writes keep their state in a test database."""
    from pcloud.db import open_database
    from pcloud.schema import upgrade_schema
    from pcloud.storage.s3 import S3BlobStore

    upgrade_schema(open_database(request.getfixturevalue("database_url")))
    engine = request.getfixturevalue("s3_engine")
    return S3BlobStore(engine.storage_url(request.getfixturevalue("s3_bucket"), "pcloud"))


BACKENDS = {
    "local": lambda request, tmp_path: LocalBlobStore(tmp_path / "store"),
    # Where a filesystem has no O_TMPFILE: named partial files, renamed at commit.
    "local-named": lambda request, tmp_path: LocalBlobStore(
        tmp_path / "store", anonymous_writes=False
    ),
    "s3": s3_store,
}


def leaves_named_partials(store: BlobStore) -> bool:
    return not getattr(store, "anonymous_writes", False)


def unfinished_bytes(store: BlobStore) -> bytes:
    """Enough bytes for an unfinished write to show as a partial."""
    return b"abc" * max(1, -(-store.partial_from // 3))


@pytest.fixture(params=sorted(BACKENDS))
def store(request, tmp_path) -> Iterator[BlobStore]:
    opened = BACKENDS[request.param](request, tmp_path)
    yield opened
    opened.close()


def test_put_returns_key_size_and_sha256(store):
    blob = store.put([b"hello ", b"world"])
    assert blob.size == 11
    assert blob.sha256 == hashlib.sha256(b"hello world").hexdigest()
    with store.open(blob.key) as stored:
        assert stored.read() == b"hello world"


def test_every_blob_gets_a_new_key(store):
    assert store.put([b"same"]).key != store.put([b"same"]).key


def test_nothing_is_visible_before_commit_and_nothing_stays_after_abort(store):
    writer = store.writer()
    writer.write(b"partial bytes")
    assert [entry.key for entry in store.scan()] == []
    writer.abort()
    writer.abort()  # safe twice
    assert list(store.scan()) == []
    assert list(store.scan_partials()) == []


def test_a_write_over_max_size_raises_and_leaves_nothing(store):
    writer = store.writer(max_size=10)
    writer.write(b"x" * 10)
    with pytest.raises(PayloadTooLarge):
        writer.write(b"y")
    assert list(store.scan()) == [] and list(store.scan_partials()) == []


def test_an_unfinished_write_is_a_partial_until_commit(store):
    if not leaves_named_partials(store):
        pytest.skip("anonymous writes have no name until commit")
    writer = store.writer()
    written = unfinished_bytes(store)
    writer.write(written)
    [partial] = store.scan_partials()
    # What the store holds of it so far: all of it on disk; the parts sent so far on S3.
    assert partial.size == len(written) if store.local else partial.size <= len(written)
    blob = writer.commit()
    assert list(store.scan_partials()) == []
    assert [(entry.key, entry.size) for entry in store.scan()] == [(blob.key, len(written))]


def test_delete_reports_whether_there_was_a_blob(store):
    blob = store.put([b"bytes"])
    assert store.delete(blob.key) is True
    assert store.delete(blob.key) is False
    with pytest.raises(FileNotFoundError):
        store.open(blob.key)


def test_exists_tells_whether_a_blob_is_held(store):
    blob = store.put([b"held"])
    assert store.exists(blob.key)
    store.delete(blob.key)
    assert not store.exists(blob.key)


def test_the_default_exists_agrees_with_the_backends_own(store):
    blob = store.put([b"held"])
    assert BlobStore.exists(store, blob.key)
    store.delete(blob.key)
    assert not BlobStore.exists(store, blob.key)


def test_delete_partial_removes_an_unfinished_write(store):
    if not leaves_named_partials(store):
        pytest.skip("anonymous writes have no name until commit")
    writer = store.writer()
    writer.write(unfinished_bytes(store))
    [partial] = store.scan_partials()
    assert store.delete_partial(partial.key) is True
    assert list(store.scan_partials()) == []


@pytest.mark.parametrize("key", ["../../etc/passwd", "", "a" * 32 + "/x", "ZZ" * 16, "."])
def test_a_key_the_store_did_not_make_is_refused(store, key):
    with pytest.raises((ValueError, FileNotFoundError)):
        store.open(key)
    with pytest.raises(ValueError):
        store.delete_partial(key + "/../x.part")


def test_local_blobs_live_under_generated_names_in_shard_folders(tmp_path):
    store = LocalBlobStore(tmp_path)
    blob = store.put([b"x"])
    assert store.local_path(blob.key) == tmp_path / "blobs" / blob.key[:2] / blob.key


def test_local_writes_are_anonymous_until_commit_where_the_filesystem_allows(tmp_path):
    store = LocalBlobStore(tmp_path)
    assert store.anonymous_writes  # Linux ext4/tmpfs/xfs/btrfs all have O_TMPFILE
    writer = store.writer()
    writer.write(b"abc")
    assert list((tmp_path / "partial").iterdir()) == []  # nothing a crash could leave
    assert list(tmp_path.joinpath("blobs").iterdir()) == []  # the probe left nothing either
    blob = writer.commit()
    assert store.local_path(blob.key).read_bytes() == b"abc"
    assert store.local_path(blob.key).stat().st_mode & 0o777 == 0o600


def test_an_abandoned_anonymous_write_leaves_nothing_when_its_process_dies(tmp_path):
    import subprocess
    import sys

    code = (
        "import os, sys; from pcloud.storage import LocalBlobStore\n"
        "writer = LocalBlobStore(sys.argv[1]).writer(); writer.write(b'x' * 100000)\n"
        "os._exit(9)"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False)
    store = LocalBlobStore(tmp_path)
    assert list(store.scan()) == [] and list(store.scan_partials()) == []
    assert list((tmp_path / "partial").iterdir()) == []


# --- resumable writes (tus uploads) ------------------------------------------------------

UPLOAD_ID = "resumable_upload-0123456789"


def test_a_resumable_write_grows_by_appends_and_finishes_into_a_blob(store):
    store.create_resumable(UPLOAD_ID)
    with store.open_resumable(UPLOAD_ID) as write:
        assert write.size == 0
        assert write.append(0, [b"hello "]) == 6
        assert write.append(6, [b"wor", b"ld"]) == 11
        blob = write.finish(hashlib.sha256(b"hello world").hexdigest())
    assert (blob.size, blob.sha256) == (11, hashlib.sha256(b"hello world").hexdigest())
    with store.open(blob.key) as stored:
        assert stored.read() == b"hello world"
    assert [entry.key for entry in store.scan()] == [blob.key]
    assert store.delete_resumable(UPLOAD_ID) is True
    with store.open(blob.key) as stored:  # the blob outlives its resumable write
        assert stored.read() == b"hello world"


def test_a_resumable_write_survives_its_writer_and_reopens_at_its_size(store):
    store.create_resumable(UPLOAD_ID)
    with store.open_resumable(UPLOAD_ID) as write:
        write.append(0, [b"abc"])
    with store.open_resumable(UPLOAD_ID) as write:
        assert write.size == 3
        with write.read() as stored:
            assert stored.read() == b"abc"


def test_an_append_discards_what_lies_beyond_its_offset(store):
    store.create_resumable(UPLOAD_ID)
    with store.open_resumable(UPLOAD_ID) as write:
        write.append(0, [b"abcdef"])
        assert write.append(3, [b"XY"]) == 5
        write.truncate(4)
        with write.read() as stored:
            assert stored.read() == b"abcX"
        with pytest.raises(ValueError):
            write.append(10, [b"gap"])


def test_only_one_writer_holds_a_resumable_write_at_a_time(store):
    from pcloud.storage import ResumableBusy

    store.create_resumable(UPLOAD_ID)
    first = store.open_resumable(UPLOAD_ID)
    with pytest.raises(ResumableBusy):
        store.open_resumable(UPLOAD_ID)
    first.close()
    first.close()  # safe twice
    store.open_resumable(UPLOAD_ID).close()


def test_resumable_writes_are_listed_for_gc_and_deleted(store):
    store.create_resumable(UPLOAD_ID)
    with store.open_resumable(UPLOAD_ID) as write:
        write.append(0, [b"12345"])
    assert [(entry.key, entry.size) for entry in store.scan_resumables()] == [(UPLOAD_ID, 5)]
    assert list(store.scan()) == [] and list(store.scan_partials()) == []
    assert store.delete_resumable(UPLOAD_ID) is True
    assert store.delete_resumable(UPLOAD_ID) is False
    assert list(store.scan_resumables()) == []
    with pytest.raises(FileNotFoundError):
        store.open_resumable(UPLOAD_ID)


def test_a_resumable_id_is_new_and_never_a_path(store):
    store.create_resumable(UPLOAD_ID)
    with pytest.raises(FileExistsError):
        store.create_resumable(UPLOAD_ID)
    for bad in ["../../etc/passwd", "short", "a" * 20 + "/x", "", "x" * 65]:
        with pytest.raises(ValueError):
            store.create_resumable(bad)
        with pytest.raises(ValueError):
            store.open_resumable(bad)


MiB = 1024 * 1024


def test_a_resumable_write_of_several_parts_in_odd_pieces_finishes_into_its_bytes(store):
    import os

    data = os.urandom(15 * MiB)
    store.create_resumable(UPLOAD_ID)
    for start, end in [(0, 5 * MiB), (5 * MiB, 12 * MiB), (12 * MiB, 15 * MiB)]:
        with store.open_resumable(UPLOAD_ID) as write:  # each piece a hold of its own
            assert write.size == start
            write.append(start, [data[start:end]])
            write.persist()
    with store.open_resumable(UPLOAD_ID) as write:
        blob = write.finish(hashlib.sha256(data).hexdigest())
    assert blob.size == len(data)
    with store.open(blob.key) as stored:
        assert hashlib.sha256(stored.read()).hexdigest() == hashlib.sha256(data).hexdigest()
    store.delete_resumable(UPLOAD_ID)
    assert list(store.scan_partials()) == []


def test_a_piece_is_undone_back_to_its_offset_even_after_parts_of_it_went_out(store):
    import os

    first, undone, second = os.urandom(3 * MiB), os.urandom(10 * MiB), os.urandom(6 * MiB)
    store.create_resumable(UPLOAD_ID)
    with store.open_resumable(UPLOAD_ID) as write:
        write.append(0, [first])
    with store.open_resumable(UPLOAD_ID) as write:
        write.append(len(first), [undone])  # a part of the first's tail and this one's
        write.truncate(len(first))  # (its checksum failed, say)
        assert write.size == len(first)
    with store.open_resumable(UPLOAD_ID) as write:
        assert write.size == len(first)
        write.append(len(first), [second])
        blob = write.finish(hashlib.sha256(first + second).hexdigest())
    with store.open(blob.key) as stored:
        assert stored.read() == first + second


def test_a_deleted_resumable_write_leaves_no_object_and_no_partial(store):
    store.create_resumable(UPLOAD_ID)
    with store.open_resumable(UPLOAD_ID) as write:
        write.append(0, [b"x" * (9 * MiB)])  # a part is out
    assert list(store.scan_partials()) == []  # a resumable write is not a partial
    assert [entry.size for entry in store.scan_resumables()] == [9 * MiB]
    assert store.delete_resumable(UPLOAD_ID) is True
    assert list(store.scan()) == [] and list(store.scan_partials()) == []
    client = getattr(store, "client", None)
    if client is not None:  # nothing at all left in the bucket
        assert client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []
        assert client.list_objects_v2(Bucket=store.bucket).get("KeyCount") == 0


def test_a_finished_write_cut_back_keeps_no_more_than_the_store_can_give_again(store):
    store.create_resumable(UPLOAD_ID)
    with store.open_resumable(UPLOAD_ID) as write:
        write.append(0, [b"x" * (9 * MiB)])
    with store.open_resumable(UPLOAD_ID) as write:
        write.append(9 * MiB, [b"y"])
        blob = write.finish(hashlib.sha256(b"x" * (9 * MiB) + b"y").hexdigest())
        store.delete(blob.key)  # (its file could not be recorded)
        write.truncate(9 * MiB)
        kept = write.size
    with store.open_resumable(UPLOAD_ID) as write:
        # On disk all of it; on S3 nothing, since its parts became the blob.
        assert write.size == kept and kept in (0, 9 * MiB)
        write.append(kept, [b"z" * 3])
        again = write.finish("")
    with store.open(again.key) as stored:
        assert stored.read()[-3:] == b"zzz"
