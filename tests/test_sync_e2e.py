"""Concurrent moves, renames and uploads against `pcloud serve` (2 workers x 4 threads):
no file is ever lost, and no folder ever holds two entries of one name. Runs on SQLite
and on PostgreSQL (PCLOUD_TEST_DATABASE)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

pytestmark = pytest.mark.e2e
API = "/api/v1"
CLIENTS = 12


def at_once(function, arguments):
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        return list(pool.map(function, arguments))


def listing(server, headers, folder="root") -> list[dict]:
    response = requests.get(
        f"{server.url}{API}/folders/{folder}", headers=headers, timeout=30, params={"limit": 10000}
    )
    assert response.status_code == 200, response.text
    return response.json()["entries"]


def upload(server, headers, name, content, folder="root", policy="rename"):
    return requests.post(
        f"{server.url}{API}/folders/{folder}/files",
        headers=headers,
        params={"on_conflict": policy},
        files={"file": (name, content)},
        timeout=30,
    )


def new_folder(server, headers, name, parent_id=None):
    response = requests.post(
        f"{server.url}{API}/folders",
        headers=headers,
        json={"name": name, "parent_id": parent_id},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()


def assert_unique(entries):
    names = [entry["name"] for entry in entries]
    assert len(names) == len(set(names)), names


def test_concurrent_uploads_of_one_name_all_land_under_distinct_names(server):
    headers = server.new_user()
    answers = at_once(
        lambda n: upload(server, headers, "photo.jpg", os.urandom(2000) + bytes([n])),
        range(CLIENTS * 2),
    )
    assert {answer.status_code for answer in answers} == {201}
    entries = listing(server, headers)
    assert len(entries) == CLIENTS * 2
    assert_unique(entries)


def test_concurrent_uploads_that_refuse_renaming_let_exactly_one_in(server):
    headers = server.new_user()
    answers = at_once(
        lambda n: upload(server, headers, "one.txt", b"%d" % n, policy="fail"), range(CLIENTS)
    )
    assert sorted(answer.status_code for answer in answers) == [201] + [409] * (CLIENTS - 1)
    assert [entry["name"] for entry in listing(server, headers)] == ["one.txt"]


def test_concurrent_renames_to_one_name_let_exactly_one_win(server):
    headers = server.new_user()
    ids = [upload(server, headers, f"f{n}.txt", b"%d" % n).json()["id"] for n in range(CLIENTS)]

    def rename(file_id):
        return requests.patch(
            f"{server.url}{API}/files/{file_id}",
            headers=headers,
            json={"name": "x.txt"},
            timeout=30,
        ).status_code

    assert sorted(at_once(rename, ids)) == [200] + [409] * (CLIENTS - 1)
    entries = listing(server, headers)
    assert len(entries) == CLIENTS
    assert_unique(entries)


def test_concurrent_moves_into_one_folder_lose_nothing(server):
    headers = server.new_user()
    target = new_folder(server, headers, "target")
    sources = [new_folder(server, headers, f"src{n}") for n in range(CLIENTS)]
    ids = [
        upload(server, headers, "same.jpg", os.urandom(500), folder=s["id"]).json()["id"]
        for s in sources
    ]

    def move(file_id):
        return requests.patch(
            f"{server.url}{API}/files/{file_id}",
            headers=headers,
            params={"on_conflict": "rename"},
            json={"folder_id": target["id"]},
            timeout=30,
        ).status_code

    assert set(at_once(move, ids)) == {200}
    entries = listing(server, headers, target["id"])
    assert len(entries) == CLIENTS
    assert_unique(entries)
    assert all(listing(server, headers, s["id"]) == [] for s in sources)


def test_crossed_folder_moves_never_make_a_cycle(server):
    headers = server.new_user()
    pairs = [
        (new_folder(server, headers, f"a{n}"), new_folder(server, headers, f"b{n}"))
        for n in range(4)
    ]

    def move(args):
        folder, into = args
        return requests.patch(
            f"{server.url}{API}/folders/{folder['id']}",
            headers=headers,
            json={"parent_id": into["id"]},
            timeout=30,
        ).status_code

    jobs = [job for a, b in pairs for job in ((a, b), (b, a))]
    results = at_once(move, jobs)
    for index in range(len(pairs)):
        assert sorted(results[2 * index : 2 * index + 2]) == [200, 400]
    # Every folder is still reachable from the root: 4 at the top, each holding one.
    top = listing(server, headers)
    assert len(top) == 4
    for entry in top:
        assert len(listing(server, headers, entry["id"])) == 1
