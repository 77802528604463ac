#!/usr/bin/env python3
"""Benchmark `pcloud backup` beside `cp -a` and `rsync -a`, and uploads that keep versions.

Run it in the venv where pcloud is installed:

    python bench/backup.py                  # 10,000 files, 1 GiB; 3 rounds (~3 min)
    python bench/backup.py --files 2000 --total-mib 256 --rounds 1   # quick look

It fills a data folder (SQLite) in a temporary directory, then measures, in one run:

    B1  `pcloud backup` of it to an empty folder, seconds, beside `cp -a` and `rsync -a`
        of the same data folder (and `cp -a` + `sync`, since a backup syncs and cp does
        not). Target: within 1.5x of cp -a.
    B2  a second `pcloud backup` after 100 new files, against B1. Target: under 10%.
    B3  uploading a 100 MiB file over an existing one (?on_conflict=replace: the old
        content is kept as a version) against uploading it under a new name, MB/s over
        a real `pcloud serve` and curl. Target: at least 0.9x.

Every figure is the median over the rounds, the contenders interleaved within each round.
The page cache is warm for all of them alike (nothing is dropped: the machine is shared).
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pcloud
from pcloud.config import Settings
from pcloud.core import Pcloud
from pcloud.services import backup, files, users

BENCH_PASSWORD_HASH = "scrypt:1024:8:1"


def settings_for(folder: Path) -> Settings:
    return Settings(
        data_dir=folder,
        database_url=f"sqlite:///{folder / 'pcloud.db'}",
        upload_folder=folder / "files",
        secret_key="bench-secret-key-that-is-long-enough",
        password_hash=BENCH_PASSWORD_HASH,
        max_upload_size=1024**3,
    )


def environment(settings: Settings) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PCLOUD_")}
    env.update(
        PCLOUD_DATA_DIR=str(settings.data_dir),
        DATABASE_URL=settings.database_url,
        UPLOAD_FOLDER=str(settings.upload_folder),
        SECRET_KEY=settings.secret_key,
        PASSWORD_HASH=settings.password_hash,
        MAX_UPLOAD_SIZE=str(settings.max_upload_size),
    )
    return env


def fill(settings: Settings, count: int, total: int, prefix: str) -> None:
    """`count` files of random bytes, `total` bytes in all, sizes spread 1x..3x."""
    pcloud = Pcloud.open(settings)
    try:
        user = users.User.get_or_none(users.User.username == "bench")
        if user is None:
            user = users.User.create(username="bench", email="bench@example.org")
        weights = [1 + 2 * (i % 97) / 96 for i in range(count)]
        scale = total / sum(weights)
        for number, weight in enumerate(weights):
            blob = pcloud.blobs.put([os.urandom(max(1, int(weight * scale)))])
            files.add_file(pcloud.blobs, user.id, f"{prefix}{number:05d}.bin", blob)
    finally:
        pcloud.close()


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {result.stdout}{result.stderr}")
    return elapsed, result.stdout


def pcloud_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pcloud", "--env-file", os.devnull, *args]


def backup_round(work: Path, settings: Settings, files_added: int) -> dict[str, float]:
    data = settings.data_dir
    figures: dict[str, float] = {}
    for name in ("cp", "cp_sync", "rsync", "backup"):
        target = work / f"copy-{name}"
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run(["sync"], check=True)  # each starts with nothing dirty
        if name == "cp":
            figures[name], _ = timed(["cp", "-a", str(data), str(target)])
        elif name == "cp_sync":
            figures[name], _ = timed(["sh", "-c", f"cp -a '{data}' '{target}' && sync"])
        elif name == "rsync":
            figures[name], _ = timed(["rsync", "-a", f"{data}/", str(target)])
        else:
            figures[name], output = timed(pcloud_cli("backup", str(target)), environment(settings))
            assert "copied now" in output, output
    subprocess.run(["sync"], check=True)
    figures["backup_in_process"] = in_process_backup(settings, work / "copy-in-process")
    fill(settings, files_added, files_added * 100_000, f"new-{time.monotonic_ns()}-")
    subprocess.run(["sync"], check=True)
    figures["incremental"], output = timed(
        pcloud_cli("backup", str(work / "copy-backup")), environment(settings)
    )
    copied = int(re.search(r"copied now (\d+) ", output).group(1))
    assert copied == files_added, output
    fill(settings, files_added, files_added * 100_000, f"new-{time.monotonic_ns()}-")
    subprocess.run(["sync"], check=True)
    figures["incremental_in_process"] = in_process_backup(settings, work / "copy-in-process")
    for name in ("cp", "cp_sync", "rsync", "backup", "in-process"):
        shutil.rmtree(work / f"copy-{name}", ignore_errors=True)
    return figures


def in_process_backup(settings: Settings, target: Path) -> float:
    """backup.backup() in this process: the run without the interpreter's start-up and
    imports (about a second of CPU on a quiet machine, several on a busy one)."""
    pcloud = Pcloud.open(settings, create_tables=False)
    try:
        start = time.perf_counter()
        backup.backup(pcloud.settings, pcloud.blobs, target)
        return time.perf_counter() - start
    finally:
        pcloud.close()


def start_server(settings: Settings) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        pcloud_cli("serve", "--host", "127.0.0.1", "--port", "0", "--workers", "1"),
        env=environment(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        match = re.search(r"serving on (http://[\d.]+:\d+)", line)
        if match:
            return process, match.group(1)
    process.kill()
    raise SystemExit("pcloud serve did not start")


def token(url: str) -> str:
    import requests

    body = {"username": "uploader", "email": "up@example.org", "password": "pw pw pw pw"}
    requests.post(f"{url}/register", json=body, timeout=30)
    login = requests.post(
        f"{url}/login", json={"login_identifier": "uploader", "password": "pw pw pw pw"}, timeout=30
    )
    return login.json()["access_token"]


def curl_upload(url: str, access: str, path: Path, name: str, replace: bool) -> float:
    policy = "replace" if replace else "fail"
    command = [
        "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}",
        "-H", f"Authorization: Bearer {access}",
        "-F", f"file=@{path};filename={name}",
        f"{url}/api/v1/folders/root/files?on_conflict={policy}",
    ]  # fmt: skip
    status, seconds = subprocess.run(
        command, capture_output=True, text=True, check=True
    ).stdout.split()
    if status != "201":
        raise SystemExit(f"upload answered {status}")
    return path.stat().st_size / float(seconds) / 1e6


def version_rounds(work: Path, rounds: int) -> dict[str, float]:
    folder = work / "serve"
    folder.mkdir()
    settings = settings_for(folder)
    big = work / "big.bin"
    with open(big, "wb") as out:
        for _ in range(100):
            out.write(os.urandom(1024 * 1024))
    process, url = start_server(settings)
    try:
        access = token(url)
        curl_upload(url, access, big, "target.bin", replace=False)  # the file to replace
        plain, replacing = [], []
        for number in range(rounds * 2):
            with open(big, "r+b") as out:  # new content each time: no dedup shortcut
                out.write(os.urandom(64))
            if number % 2:
                plain.append(curl_upload(url, access, big, f"new-{number}.bin", replace=False))
            else:
                replacing.append(curl_upload(url, access, big, "target.bin", replace=True))
    finally:
        process.terminate()
        process.wait()
    print("B3 MB/s, plain:", [round(x) for x in plain], "replace:", [round(x) for x in replacing])
    return {"plain": statistics.median(plain), "replace": statistics.median(replacing)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--total-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--added", type=int, default=100)
    options = parser.parse_args()
    # As pip does on install: with PYTHONDONTWRITEBYTECODE=1 set (as it is on some
    # machines), an editable install would compile every module at each CLI start.
    compileall.compile_dir(Path(pcloud.__file__).parent, quiet=1)
    with tempfile.TemporaryDirectory(prefix="pcloud-bench-backup-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        data = work / "data"
        data.mkdir()
        settings = settings_for(data)
        print(f"Filling {options.files} files, {options.total_mib} MiB ...", flush=True)
        fill(settings, options.files, options.total_mib * 1024 * 1024, "file-")
        rounds = []
        for number in range(options.rounds):
            rounds.append(backup_round(work, settings, options.added))
            print(
                f"round {number + 1}: " + ", ".join(f"{k} {v:.2f}s" for k, v in rounds[-1].items())
            )
        median = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        upload = version_rounds(work, max(3, options.rounds))
    print()
    print(f"| B1/B2 ({options.files} files, {options.total_mib} MiB) | seconds | ratio |")
    print("|---|---|---|")
    rows = (
        ("cp", "cp -a", "cp"),
        ("cp_sync", "cp -a && sync", "cp"),
        ("rsync", "rsync -a", "cp"),
        ("backup", "pcloud backup (CLI, empty folder)", "cp"),
        ("backup_in_process", "backup() in process (no start-up), empty folder", "cp"),
        ("incremental", f"pcloud backup (CLI) after {options.added} new files", "backup"),
        ("incremental_in_process", f"in process, after {options.added} more", "backup_in_process"),
    )
    for key, label, against in rows:
        ratio = median[key] / median[against]
        print(f"| {label} | {median[key]:.2f} | {ratio:.2f}x {against} |")
    print()
    print("| B3 (100 MiB) | MB/s |")
    print("|---|---|")
    print(f"| plain upload | {upload['plain']:.0f} |")
    ratio = upload["replace"] / upload["plain"]
    print(f"| replace, old content kept as a version | {upload['replace']:.0f} ({ratio:.2f}x) |")
    print()
    for key, limit, base, text in (
        ("backup", 1.5, "cp", "CLI backup within 1.5x of cp -a"),
        ("backup", 1.5, "rsync", "CLI backup within 1.5x of rsync -a"),
        ("backup_in_process", 1.5, "cp", "in-process backup within 1.5x of cp -a"),
        ("backup_in_process", 1.5, "rsync", "in-process backup within 1.5x of rsync -a"),
        ("incremental", 0.1, "backup", "CLI incremental under 10% of the first"),
        ("incremental_in_process", 0.1, "backup_in_process", "in-process incremental < 10%"),
    ):
        verdict = "met" if median[key] <= limit * median[base] else "NOT met"
        print(f"Target: {text}: {verdict} ({median[key] / median[base]:.2f}x)")
    verdict = "met" if upload["replace"] >= 0.9 * upload["plain"] else "NOT met"
    print(f"Target: replace at least 0.9x of a plain upload: {verdict}")


if __name__ == "__main__":
    main()
