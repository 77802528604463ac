#!/usr/bin/env python3
"""WebDAV (/dav/) beside pcloud's own API and copyparty's WebDAV, in one run.

    python bench/dav.py                 # 1 GiB file, 3 rounds
    python bench/dav.py --quick         # 256 MiB, 1 round
    python bench/dav.py --json dav.json

Measures, round after round (medians reported, with ratios):

    D1  PROPFIND Depth 1 of a folder of 10,000 files, ms: pcloud /dav/, copyparty's WebDAV,
        and pcloud's JSON listing of the same folder (GET /api/v1/folders/<id>)
    D2  GET of the big file, MB/s: /dav/ against W1 (GET /download/<name>)
    D3  PUT of the big file, MB/s and the server's peak memory above idle: /dav/ against
        W2 (multipart POST /upload)
    D4  rclone copy of 1,000 files of 4 KiB (--transfers 8), s: pcloud /dav/ against
        copyparty's WebDAV, the same run (vendor other); and pcloud with vendor owncloud
        (mtimes kept), which makes rclone send more requests

It reuses bench/run.py's servers and clients (curl, the same launch options).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run  # noqa: E402  (bench/run.py: the servers and clients of the main bench)

PASSWORD = run.PASSWORD
FILES = 10_000
SMALL_FILES = 1000


def basic(server: run.Server) -> list[str]:
    return ["-u", f"bench:{PASSWORD}"] if server.is_pcloud else []


def propfind_ms(url: str, auth: list[str]) -> float:
    result = run.curl(url, "-X", "PROPFIND", "-H", "Depth: 1", *auth, keep_body=False)
    if result.status != 207:
        raise RuntimeError(f"PROPFIND {url}: {result.status}")
    return result.seconds * 1000


def fill_listing(pcloud: run.Server, copyparty: run.Server) -> int:
    """10,000 files of 4 KiB in a folder `list10k`: pcloud through its API, copyparty on
    disk. Returns pcloud's folder id."""
    folder = requests.post(
        f"{pcloud.url}/api/v1/folders", headers=pcloud.headers, json={"name": "list10k"}, timeout=30
    ).json()["id"]
    body = b"x" * run.SMALL
    from concurrent.futures import ThreadPoolExecutor

    def share(first: int) -> None:
        with requests.Session() as session:
            for number in range(first, FILES, 8):
                answer = session.post(
                    f"{pcloud.url}/api/v1/folders/{folder}/files",
                    headers=pcloud.headers,
                    files={"file": (run.listing_name(number), body)},
                    timeout=60,
                )
                answer.raise_for_status()

    with ThreadPoolExecutor(8) as pool:
        for done in [pool.submit(share, first) for first in range(8)]:
            done.result()
    target = copyparty.files_dir / "list10k"
    target.mkdir()
    for number in range(FILES):
        (target / run.listing_name(number)).write_bytes(body)
    return folder


def rclone_copy_seconds(
    server: run.Server, source: Path, remote_path: str, vendor: str = "other"
) -> float:
    """rclone copy of the small files; vendor "owncloud" (pcloud only) also sets mtimes
    (X-OC-Mtime) and reads them back, which costs rclone requests of its own."""
    environment = {
        **os.environ,
        "RCLONE_CONFIG": str(source.parent / "rclone.conf"),
        "RCLONE_CONFIG_R_TYPE": "webdav",
        "RCLONE_CONFIG_R_URL": f"{server.url}/dav/" if server.is_pcloud else f"{server.url}/",
        "RCLONE_CONFIG_R_VENDOR": vendor,
    }
    if server.is_pcloud:
        obscured = subprocess.run(
            ["rclone", "obscure", PASSWORD], capture_output=True, text=True, check=True
        ).stdout.strip()
        environment.update(RCLONE_CONFIG_R_USER="bench", RCLONE_CONFIG_R_PASS=obscured)
    started = time.monotonic()
    done = subprocess.run(
        ["rclone", "copy", "--transfers", "8", str(source), f"r:{remote_path}"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(f"rclone to {server.name}: {done.stderr[-500:]}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description="WebDAV beside the API and copyparty")
    parser.add_argument("--quick", action="store_true", help="256 MiB, one round")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the medians here")
    arguments = parser.parse_args()
    big_size = (256 if arguments.quick else 1024) * run.MIB
    rounds = arguments.rounds or (1 if arguments.quick else 3)
    if importlib.util.find_spec("copyparty") is None:
        run.pip_install("copyparty")
    if shutil.which("rclone") is None:
        raise SystemExit("rclone is needed (apt-get install rclone)")
    options = run.Options(big_size, rounds, 3, [], [], None)
    samples: dict[str, list[float]] = {}

    def note(key: str, value: float) -> None:
        samples.setdefault(key, []).append(value)
        print(f"  {key}: {value:.1f}", flush=True)

    with tempfile.TemporaryDirectory(prefix="pcloud-dav-bench-") as folder:
        work = Path(folder)
        servers: list[run.Server] = []
        try:
            servers.append(run.launch_pcloud(work, options))
            servers.append(run.launch_copyparty(work, options))
            for server in servers:
                run.wait_until_ready(server)
            pcloud, copyparty = servers
            pcloud.headers = run.pcloud_login(pcloud, "bench")
            print("filling the 10,000-file folders...", flush=True)
            folder_id = fill_listing(pcloud, copyparty)
            big = work / "big.bin"
            with big.open("wb") as out:
                for _ in range(big_size // run.MIB):
                    out.write(os.urandom(run.MIB))
            _, stored = run.upload(pcloud, big, "big.bin")
            run.curl(f"{pcloud.url}/dav/big-dav.bin", "-T", str(big), *basic(pcloud))
            small = work / "small-files"
            for number in range(SMALL_FILES):
                (small / f"d{number % 10}").mkdir(parents=True, exist_ok=True)
                (small / f"d{number % 10}" / f"f{number}.bin").write_bytes(os.urandom(run.SMALL))
            json_url = f"{pcloud.url}/api/v1/folders/{folder_id}?limit=10000"
            for round_number in range(rounds):
                print(f"round {round_number + 1} of {rounds}", flush=True)
                note(
                    "D1 pcloud /dav/ ms",
                    statistics.median(
                        propfind_ms(f"{pcloud.url}/dav/list10k/", basic(pcloud)) for _ in range(5)
                    ),
                )
                note(
                    "D1 copyparty ms",
                    statistics.median(
                        propfind_ms(f"{copyparty.url}/list10k/", []) for _ in range(5)
                    ),
                )
                note("D1 pcloud JSON ms", statistics.median(
                    run.curl(json_url, headers=pcloud.headers, keep_body=False).seconds * 1000
                    for _ in range(5)))  # fmt: skip
                note(
                    "D2 W1 GET /download MB/s",
                    statistics.median(
                        run.curl(
                            f"{pcloud.url}/download/{stored}",
                            headers=pcloud.headers,
                            keep_body=False,
                        ).speed_download
                        / run.MB
                        for _ in range(3)
                    ),
                )
                note("D2 GET /dav/ MB/s", statistics.median(
                    run.curl(f"{pcloud.url}/dav/big-dav.bin", *basic(pcloud),
                             keep_body=False).speed_download / run.MB
                    for _ in range(3)))  # fmt: skip
                with run.resource_use(pcloud.pid) as w2_use:
                    w2, w2_name = run.upload(pcloud, big, f"w2-{round_number}.bin")
                run.remove(pcloud, w2_name)
                note("D3 W2 POST /upload MB/s", w2.speed_upload / run.MB)
                note("D3 W2 peak MB above idle", w2_use["peak_mb"])
                with run.resource_use(pcloud.pid) as put_use:
                    put = run.curl(f"{pcloud.url}/dav/put-{round_number}.bin", "-T", str(big),
                                   *basic(pcloud))  # fmt: skip
                note("D3 PUT /dav/ MB/s", put.speed_upload / run.MB)
                note("D3 PUT peak MB above idle", put_use["peak_mb"])
                run.curl(f"{pcloud.url}/dav/put-{round_number}.bin", "-X", "DELETE", *basic(pcloud))
                note(
                    "D4 rclone pcloud s", rclone_copy_seconds(pcloud, small, f"small{round_number}")
                )
                note("D4 rclone copyparty s",
                     rclone_copy_seconds(copyparty, small, f"small{round_number}"))  # fmt: skip
                owncloud = rclone_copy_seconds(pcloud, small, f"oc{round_number}", "owncloud")
                note("D4 rclone pcloud owncloud s", owncloud)
        finally:
            for server in servers:
                server.stop()
    medians = {key: statistics.median(values) for key, values in samples.items()}
    print("\nmedians over rounds:")
    for key, value in medians.items():
        print(f"  {key:32} {value:10.1f}")
    m = medians
    ratios = {
        "D1 /dav/ vs copyparty (time, <= 1)": m["D1 pcloud /dav/ ms"] / m["D1 copyparty ms"],
        "D1 /dav/ vs JSON (time, <= 3)": m["D1 pcloud /dav/ ms"] / m["D1 pcloud JSON ms"],
        "D2 GET /dav/ vs W1 (>= 0.9)": m["D2 GET /dav/ MB/s"] / m["D2 W1 GET /download MB/s"],
        "D3 PUT /dav/ vs W2 (>= 0.9)": m["D3 PUT /dav/ MB/s"] / m["D3 W2 POST /upload MB/s"],
        "D4 rclone pcloud vs copyparty (time)": m["D4 rclone pcloud s"]
        / m["D4 rclone copyparty s"],
        "D4 rclone pcloud owncloud vs copyparty": m["D4 rclone pcloud owncloud s"]
        / m["D4 rclone copyparty s"],
    }
    print("ratios:")
    for key, value in ratios.items():
        print(f"  {key:40} {value:6.2f}")
    if arguments.json:
        arguments.json.write_text(json.dumps({"medians": medians, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
