"""The sync API's measurements (issue 3), beside nginx's JSON autoindex.

    python bench/sync.py [--files 10000] [--dedup-files 1000] [--json results.json]

    S1  nginx: JSON autoindex of a folder of N files, ms (the yardstick)
    S2  pcloud: GET /api/v1/folders/<id>?limit=N of a folder of N files, ms
    S3  pcloud: GET /api/v1/changes of N changes in one page, ms
    S4  pcloud: POST /api/v1/upload-check of N hashes (half present), ms
    S5  pcloud: M new files of 256 KiB as a phone sends them: hash them, one upload-check
        (all absent), then upload each (8 clients), s
    S6  pcloud: the same M files when the user has them already: hash them, one
        upload-check (all present), then POST /api/v1/files/from-content/batch, s

Each ms figure is the median of 7 runs through curl. Reuses bench/run.py's servers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (bench/ is not a package)

API = "/api/v1"
REPEATS = 7
CLIENTS = 8
DEDUP_SIZE = 256 * 1024
BATCH = 1000  # files per POST /api/v1/files/from-content/batch


def median_ms(url: str, *args: str, headers: dict[str, str] | None = None) -> float:
    runs = [bench.curl(url, *args, headers=headers).seconds for _ in range(REPEATS)]
    return statistics.median(runs) * 1000


def fill_pcloud_folder(server, headers, folder_id: int, count: int) -> None:
    def share(first: int) -> None:
        with requests.Session() as session:
            for number in range(first, count, CLIENTS):
                answer = session.post(
                    f"{server.url}{API}/folders/{folder_id}/files",
                    headers=headers,
                    files={"file": (bench.listing_name(number), b"%05d" % number)},
                    timeout=60,
                )
                answer.raise_for_status()

    with ThreadPoolExecutor(CLIENTS) as pool:
        for future in [pool.submit(share, first) for first in range(CLIENTS)]:
            future.result()


def check(server, headers, contents: list[bytes]) -> list[dict]:
    hashes = [hashlib.sha256(content).hexdigest() for content in contents]
    answer = requests.post(
        f"{server.url}{API}/upload-check", headers=headers, json={"sha256": hashes}, timeout=60
    )
    answer.raise_for_status()
    return answer.json()["results"]


def uploads(server, headers, contents: list[bytes]) -> float:
    def share(first: int) -> None:
        with requests.Session() as session:
            for number in range(first, len(contents), CLIENTS):
                answer = session.post(
                    f"{server.url}{API}/folders/root/files",
                    headers=headers,
                    params={"on_conflict": "rename"},
                    files={"file": (f"new-{number}.jpg", contents[number])},
                    timeout=60,
                )
                answer.raise_for_status()

    started = time.perf_counter()
    assert {r["status"] for r in check(server, headers, contents)} == {"absent"}
    with ThreadPoolExecutor(CLIENTS) as pool:
        for future in [pool.submit(share, first) for first in range(CLIENTS)]:
            future.result()
    return time.perf_counter() - started


def dedup_hits(server, headers, contents: list[bytes]) -> float:
    """What a phone does for files it may have sent before: hash, ask, link."""
    started = time.perf_counter()
    present = [r["sha256"] for r in check(server, headers, contents) if r["status"] == "present"]
    assert len(present) == len(contents), "every file should be known"

    for start in range(0, len(present), BATCH):
        answer = requests.post(
            f"{server.url}{API}/files/from-content/batch",
            headers=headers,
            params={"on_conflict": "rename"},
            json={
                "files": [
                    {"sha256": sha256, "name": f"again-{start + number}.jpg"}
                    for number, sha256 in enumerate(present[start : start + BATCH])
                ]
            },
            timeout=60,
        )
        answer.raise_for_status()
        assert {r["status"] for r in answer.json()["results"]} == {201}
    return time.perf_counter() - started


def measure(work: Path, files: int, dedup_files: int) -> dict[str, float]:
    options = bench.Options(0, 1, 0, [], [], None)
    servers = [bench.launch_pcloud(work, options), bench.launch_nginx(work, options)]
    try:
        pcloud, nginx = servers
        for server in servers:
            bench.wait_until_ready(server)
        headers = bench.pcloud_login(pcloud, "syncer")
        folder = requests.post(
            f"{pcloud.url}{API}/folders", headers=headers, json={"name": "list"}, timeout=30
        ).json()
        print(f"uploading {files} files to pcloud...", flush=True)
        fill_pcloud_folder(pcloud, headers, folder["id"], files)
        listed = nginx.files_dir / "list"
        listed.mkdir()
        for number in range(files):
            (listed / bench.listing_name(number)).write_bytes(b"%05d" % number)
        results = {
            "S1_nginx_listing_ms": median_ms(f"{nginx.url}/list/"),
            "S2_folder_listing_ms": median_ms(
                f"{pcloud.url}{API}/folders/{folder['id']}?limit={files}", headers=headers
            ),
            "S3_change_feed_ms": median_ms(
                f"{pcloud.url}{API}/changes?cursor=0&limit={files}", headers=headers
            ),
        }
        hashes = [hashlib.sha256(b"%05d" % n).hexdigest() for n in range(files // 2)]
        hashes += [f"{n:064x}" for n in range(files - len(hashes))]
        body = work / "check.json"
        body.write_text(json.dumps({"sha256": hashes}))
        results["S4_upload_check_ms"] = median_ms(
            f"{pcloud.url}{API}/upload-check",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            f"@{body}",
            headers=headers,
        )
        contents = [os.urandom(DEDUP_SIZE) for _ in range(dedup_files)]
        print(f"uploading {dedup_files} files of 256 KiB, then again as dedup hits...", flush=True)
        results["S5_new_uploads_s"] = uploads(pcloud, headers, contents)
        results["S6_dedup_hits_s"] = dedup_hits(pcloud, headers, contents)
        return results
    finally:
        for server in servers:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=bench.LISTING_FILES)
    parser.add_argument("--dedup-files", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pcloud-sync-bench-") as work:
        results = measure(Path(work), arguments.files, arguments.dedup_files)
    ratios = {
        "folder listing / nginx": results["S2_folder_listing_ms"] / results["S1_nginx_listing_ms"],
        "change feed / nginx": results["S3_change_feed_ms"] / results["S1_nginx_listing_ms"],
        "upload-check / folder listing": results["S4_upload_check_ms"]
        / results["S2_folder_listing_ms"],
        "new uploads / dedup hits": results["S5_new_uploads_s"] / results["S6_dedup_hits_s"],
    }
    for name, value in {**results, **ratios}.items():
        print(f"{name:34} {value:10.2f}")
    if arguments.json:
        arguments.json.write_text(json.dumps({"results": results, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
