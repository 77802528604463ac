"""A folder's listing in order, page by page, however many files it holds: the database
reads each page in order (by name from an index), and every way a name is written keeps
the order (upload, rename, move, copy, restore, and files from before the sort key)."""

from __future__ import annotations

import logging

import peewee
import pytest

from pcloud import schema
from pcloud.models import MediaInfo, StoredFile
from tests.sync_helpers import API, listing, make_folder, put_file

# Case-insensitive, with exact ties broken by the name itself, and beyond ASCII: "ß"
# folds to "ss", "Ä" sorts with "ä".
NAMES = ["b.txt", "A.txt", "a.txt", "Äpfel.jpg", "äb.jpg", "Straße.txt", "strasse.md", "Z.txt"]


def python_order(names: list[str]) -> list[str]:
    return sorted(names, key=lambda name: (name.casefold(), name))


def all_pages(client, headers, folder="root", limit=3, **query) -> list[str]:
    names, offset = [], 0
    while offset is not None:
        page = listing(client, headers, folder, limit=limit, offset=offset, **query)
        names += [entry["name"] for entry in page["entries"]]
        offset = page["next_offset"]
    return names


def test_pages_follow_case_insensitive_name_order_after_the_folders(client, headers):
    for number, name in enumerate(NAMES):
        put_file(client, headers, name, b"x" * number)
    make_folder(client, headers, "zz-folder")
    make_folder(client, headers, "Album")
    expected = ["Album", "zz-folder", *python_order(NAMES)]
    assert all_pages(client, headers) == expected
    folders_then_files = ["zz-folder", "Album", *reversed(python_order(NAMES))]
    assert all_pages(client, headers, order="desc") == folders_then_files
    assert listing(client, headers, limit=3, offset=1)["entries"][1]["name"] == expected[2]


def test_size_and_time_sorts_break_ties_by_name(client, headers):
    for name in ("b", "C", "a"):
        put_file(client, headers, name, b"same size", modified_at="1714564800000")
    put_file(client, headers, "big", b"much more than the others", modified_at="1614564800000")
    assert all_pages(client, headers, sort="size") == ["a", "b", "C", "big"]
    assert all_pages(client, headers, sort="size", order="desc") == ["big", "C", "b", "a"]
    assert all_pages(client, headers, sort="modified_at") == ["big", "a", "b", "C"]


def test_files_without_a_capture_time_come_last_either_way(client, headers, pcloud):
    entries = {name: put_file(client, headers, name, name.encode()).get_json() for name in "wxyz"}
    with pcloud.database.connection_context():
        for name, taken in (("x", 2_000_000), ("z", 1_000_000)):
            MediaInfo.create(sha256=entries[name]["sha256"], status="image", taken_at=taken)
    assert all_pages(client, headers, sort="taken_at") == ["z", "x", "w", "y"]
    assert all_pages(client, headers, sort="taken_at", order="desc") == ["x", "z", "y", "w"]


def test_every_page_is_its_slice_of_the_whole_listing_whichever_end_it_is_read_from(
    client, headers, pcloud
):
    """A page past the middle is read from the other end and turned round: for every
    sort, order, page size and offset it must be exactly that slice of the listing,
    ties, missing capture times and folders included."""
    for number, name in enumerate(NAMES):
        put_file(
            client, headers, name, b"x" * (number % 3), modified_at=str(1714564800000 + number % 2)
        )
    contents = {entry["sha256"] for entry in listing(client, headers, limit=100)["entries"]}
    with pcloud.database.connection_context():
        for sha256 in sorted(contents)[:2]:  # some files with a capture time, some without
            MediaInfo.create(sha256=sha256, status="image", taken_at=1_000_000)
    make_folder(client, headers, "Album")
    for sort in ("name", "size", "modified_at", "taken_at"):
        for order in ("asc", "desc"):
            whole = [
                e["id"]
                for e in listing(client, headers, limit=100, sort=sort, order=order)["entries"]
            ]
            assert len(whole) == len(NAMES) + 1
            for limit in (1, 2, 3, 5):
                for offset in range(len(whole) + 1):
                    page = listing(
                        client, headers, limit=limit, offset=offset, sort=sort, order=order
                    )["entries"]
                    assert [e["id"] for e in page] == whole[offset : offset + limit], (
                        sort,
                        order,
                        limit,
                        offset,
                    )


def test_a_renamed_moved_copied_or_restored_file_takes_its_new_place(client, headers):
    for name in ("b", "d", "f"):
        put_file(client, headers, name)
    entry = put_file(client, headers, "a").get_json()
    other = make_folder(client, headers, "other").get_json()
    url = f"{API}/files/{entry['id']}"
    client.patch(url, headers=headers, json={"name": "e"})
    assert all_pages(client, headers) == ["other", "b", "d", "e", "f"]
    client.patch(url, headers=headers, json={"folder_id": other["id"], "name": "Zed"})
    put_file(client, headers, "c", folder=other["id"])
    assert all_pages(client, headers, other["id"]) == ["c", "Zed"]
    client.delete(url, headers=headers)
    put_file(client, headers, "Zed", b"taken meanwhile", folder=other["id"])
    restored = client.post(f"{API}/trash/file/{entry['id']}/restore", headers=headers)
    assert restored.get_json()["name"] == "Zed_1"
    assert all_pages(client, headers, other["id"]) == ["c", "Zed", "Zed_1"]


def test_files_from_before_the_sort_key_get_theirs_on_upgrade(client, headers, pcloud):
    for name in ("b", "A", "c"):
        put_file(client, headers, name)
    with pcloud.database.connection_context():
        StoredFile.update(sort_key=None).execute()
        schema.SchemaMigration.delete().where(
            schema.SchemaMigration.name == "listing-sort-keys"
        ).execute()
    assert schema.upgrade_schema(pcloud.database) == ["ran data migration listing-sort-keys"]
    with pcloud.database.connection_context():
        assert StoredFile.select().where(StoredFile.sort_key.is_null()).count() == 0
    assert all_pages(client, headers) == ["A", "b", "c"]


def test_a_page_by_name_is_read_in_order_from_the_index(client, headers, pcloud, caplog):
    """Not every file of the folder sorted for one page: SQLite's plan walks the
    (folder, sort_key, id) index, either way, with no sort of its own."""
    if not isinstance(pcloud.database, peewee.SqliteDatabase):
        pytest.skip("the query plan checked is SQLite's")
    for name in ("b", "a"):
        put_file(client, headers, name)
    for order in ("asc", "desc"):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="peewee"):
            listing(client, headers, limit=1, offset=1, order=order)
        [(sql, params)] = [
            record.msg
            for record in caplog.records
            if record.name == "peewee" and "ORDER BY" in str(record.msg[0])
        ]
        with pcloud.database.connection_context():
            plan = " | ".join(
                row[-1] for row in pcloud.database.execute_sql(f"EXPLAIN QUERY PLAN {sql}", params)
            )
        assert "stored_file_folder_id_sort_key_id" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
