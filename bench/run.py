#!/usr/bin/env python3
"""pcloud beside nginx (the physical limit) and copyparty (the fastest Python peer).

    python bench/run.py            # full run: 1 GiB files, 3 rounds (~5 minutes)
    python bench/run.py --quick    # 256 MiB files, 1 round, shorter loads
    python bench/run.py --only W3,W4 --rounds 5 --json results.json

Everything runs on loopback. Each workload is measured on the three servers in turn,
round after round, and the median is reported, since these machines are noisy:

    W1  1 GiB download, MB/s (curl)
    W2  1 GiB upload, MB/s (curl), with the server's CPU seconds and its memory growth
    W3  4 KiB uploads per second from 8 concurrent clients (wrk)
    W4  4 KiB downloads per second over 8 keep-alive connections (wrk), with p99 latency;
        pcloud's are authenticated, the peers have no accounts
    W5  listing a folder (pcloud: an account) of 10,000 files, ms

Needs nginx and wrk (Debian packages) and copyparty (PyPI), and installs what is
missing. Run it in the venv where pcloud is installed. MB here is 10^6 bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
SERVERS = ("pcloud", "nginx", "copyparty")
WORKLOADS = ("W1", "W2", "W3", "W4", "W5")
SMALL = 4096
LISTING_FILES = 10_000
MB = 1_000_000


# --- tools ---------------------------------------------------------------------------------


def ensure_tools() -> None:
    """Install nginx, wrk and copyparty when they are missing."""
    missing = [tool for tool in ("nginx", "wrk") if not shutil.which(tool)]
    if missing:
        print(f"installing {' '.join(missing)} (apt-get)...", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", *missing], check=True, stdout=subprocess.DEVNULL
        )
    try:
        import copyparty  # noqa: F401
    except ImportError:
        print("installing copyparty (pip)...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "copyparty"], check=True)
    if not shutil.which("pcloud"):
        sys.exit("pcloud is not installed here: pip install -e . (in this venv) first")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {seconds} s")


# --- the process tree of a server: CPU and memory ------------------------------------------


def process_tree(pid: int) -> list[int]:
    pids, pending = [], [pid]
    while pending:
        current = pending.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(FileNotFoundError):
                pending.extend(int(child) for child in (task / "children").read_text().split())
    return pids


def cpu_seconds(pid: int) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for each in process_tree(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / ticks


def memory_kib(pid: int, field_name: str) -> dict[int, int]:
    sizes = {}
    for each in process_tree(pid):
        try:
            status = Path(f"/proc/{each}/status").read_text()
        except FileNotFoundError:
            continue
        match = re.search(rf"^{field_name}:\s+(\d+) kB", status, re.MULTILINE)
        if match:
            sizes[each] = int(match.group(1))
    return sizes


def reset_peak_memory(pid: int) -> None:
    for each in process_tree(pid):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            Path(f"/proc/{each}/clear_refs").write_text("5")


# --- servers -------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen
    files_dir: Path | None = None  # where a peer keeps files (to fill it directly)
    headers: dict[str, str] = field(default_factory=dict)  # pcloud's Authorization
    listing_headers: dict[str, str] = field(default_factory=dict)

    def upload_url(self, name: str) -> str:
        return f"{self.url}/upload" if self.name == "pcloud" else f"{self.url}/{name}"

    def download_url(self, name: str) -> str:
        return f"{self.url}/download/{name}" if self.name == "pcloud" else f"{self.url}/{name}"

    def listing_url(self) -> str:
        return {
            "pcloud": f"{self.url}/files",
            "nginx": f"{self.url}/list10k/",
            "copyparty": f"{self.url}/list10k/?ls",
        }[self.name]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_pcloud(work: Path) -> Server:
    port = free_port()
    env = {
        **os.environ,
        "PCLOUD_DATA_DIR": str(work / "pcloud-data"),
        "SECRET_KEY": "bench-secret-key-of-a-sensible-length",
        "MAX_UPLOAD_SIZE": "8GiB",
    }
    log = (work / "pcloud.log").open("w")
    process = subprocess.Popen(
        [
            "pcloud",
            "--env-file",
            "/nonexistent",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        cwd=work,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Server("pcloud", f"http://127.0.0.1:{port}", process)
    try:
        wait_for(server.url + "/")
    except RuntimeError:
        server.stop()
        sys.exit("pcloud did not start:\n" + (work / "pcloud.log").read_text())
    server.headers = pcloud_user(server.url, "bench")
    server.listing_headers = pcloud_user(server.url, "lister")
    return server


def pcloud_user(url: str, name: str) -> dict[str, str]:
    requests.post(
        f"{url}/register",
        timeout=30,
        json={"username": name, "email": f"{name}@example.org", "password": "bench password"},
    )
    login = requests.post(
        f"{url}/login", timeout=30, json={"login_identifier": name, "password": "bench password"}
    )
    login.raise_for_status()
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


NGINX_CONF = """
worker_processes auto;
user root;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {work}/nginx-body;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{
            dav_methods PUT;
            create_full_put_path on;
            client_max_body_size 0;
            autoindex on;
            autoindex_format json;
        }}
    }}
}}
"""


def start_nginx(work: Path) -> Server:
    port = free_port()
    root = work / "nginx-files"
    root.mkdir()
    (work / "nginx-body").mkdir()
    conf = work / "nginx.conf"
    conf.write_text(NGINX_CONF.format(work=work, port=port, root=root))
    process = subprocess.Popen(
        ["nginx", "-p", str(work), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = Server("nginx", f"http://127.0.0.1:{port}", process, files_dir=root)
    wait_for(server.url + "/")
    return server


def start_copyparty(work: Path) -> Server:
    port = free_port()
    root = work / "copyparty-files"
    root.mkdir()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "copyparty",
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "-q",
            "-v",
            f"{root}::rw",
            "--no-thumb",
            "--hist",
            str(work / "copyparty-hist"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = Server("copyparty", f"http://127.0.0.1:{port}", process, files_dir=root)
    wait_for(server.url + "/")
    return server


# --- client helpers ------------------------------------------------------------------------


def curl(*args: str) -> dict[str, float]:
    """Run curl; returns the numbers its --write-out named."""
    fmt = "%{http_code} %{speed_download} %{speed_upload} %{time_total}"
    out = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", fmt, *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    status, down, up, total = int(out[0]), float(out[1]), float(out[2]), float(out[3])
    if not 200 <= status < 300:
        raise RuntimeError(f"curl {' '.join(args)} answered {status}")
    return {"download": down, "upload": up, "time": total}


def header_args(headers: dict[str, str]) -> list[str]:
    return [arg for key, value in headers.items() for arg in ("-H", f"{key}: {value}")]


def upload_file(server: Server, path: Path, name: str) -> dict[str, float]:
    if server.name == "pcloud":
        return curl(
            *header_args(server.headers),
            "-F",
            f"file=@{path};filename={name}",
            server.upload_url(name),
        )
    return curl("-T", str(path), server.upload_url(name))


WRK_UPLOAD_LUA = """
local counter = 0
local boundary = "benchboundary"
local payload = string.rep("x", {size})
setup = function(thread) thread:set("tid", tostring(math.random(1, 1e9))) end
request = function()
  counter = counter + 1
  local name = "w-" .. tid .. "-" .. counter .. ".bin"
  if {multipart} then
    local body = "--" .. boundary .. "\\r\\nContent-Disposition: form-data; name=\\"file\\"; " ..
      "filename=\\"" .. name .. "\\"\\r\\n\\r\\n" .. payload .. "\\r\\n--" .. boundary .. "--\\r\\n"
    local headers = {{["Content-Type"] = "multipart/form-data; boundary=" .. boundary}}
    {auth_line}
    return wrk.format("POST", "/upload", headers, body)
  end
  return wrk.format("PUT", "/" .. name, {{}}, payload)
end
"""


def wrk(
    server: Server,
    seconds: float,
    script: str | None = None,
    path: str = "/",
    headers: dict[str, str] | None = None,
) -> dict[str, float]:
    """Run wrk (8 connections, 2 threads); requests/s, non-2xx count and p99 in ms."""
    args = ["wrk", "-c", "8", "-t", "2", "-d", f"{seconds}s", "--latency"]
    for key, value in (headers or {}).items():
        args += ["-H", f"{key}: {value}"]
    if script:
        args += ["-s", script]
    out = subprocess.run(
        [*args, server.url + path], capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors:.*", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)] if p99 else 0
    return {
        "rate": rate,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(0) if socket_errors else "",
        "p99_ms": p99_ms,
    }


def upload_script(work: Path, server: Server) -> str:
    auth_line = "".join(f'headers["{k}"] = "{v}"' for k, v in server.headers.items())
    script = work / f"upload-{server.name}.lua"
    script.write_text(
        WRK_UPLOAD_LUA.format(
            size=SMALL, multipart=str(server.name == "pcloud").lower(), auth_line=auth_line
        )
    )
    return str(script)


# --- workloads -----------------------------------------------------------------------------


class Bench:
    def __init__(self, work: Path, big_size: int, load_seconds: float) -> None:
        self.work = work
        self.big_size = big_size
        self.load_seconds = load_seconds
        self.big = work / "big.bin"
        self.small = work / "small.bin"
        self.uploads = 0

    def prepare(self, servers: list[Server]) -> None:
        with self.big.open("wb") as big:
            block = os.urandom(MB)
            for _ in range(self.big_size // MB):
                big.write(block)
        self.small.write_bytes(os.urandom(SMALL))
        for server in servers:
            upload_file(server, self.big, "big.bin")
            upload_file(server, self.small, "small.bin")

    def w1(self, server: Server) -> dict:
        result = curl(*header_args(server.headers), server.download_url("big.bin"))
        return {"value": result["download"] / MB}

    def w2(self, server: Server) -> dict:
        pid = server.process.pid
        idle = memory_kib(pid, "VmRSS")
        reset_peak_memory(pid)  # each process's peak restarts from its size now
        cpu_before = cpu_seconds(pid)
        self.uploads += 1
        result = upload_file(server, self.big, f"upload-{self.uploads}.bin")
        cpu = cpu_seconds(pid) - cpu_before
        peak = memory_kib(pid, "VmHWM")
        # Summed over the server's processes: what the upload made them grow, at most.
        growth_kib = sum(max(0, peak[each] - idle.get(each, 0)) for each in peak)
        return {
            "value": result["upload"] / MB,
            "cpu_s": cpu,
            "peak_growth_mb": growth_kib * 1024 / MB,
        }

    def w3(self, server: Server) -> dict:
        result = wrk(server, self.load_seconds, upload_script(self.work, server))
        return {
            "value": result["rate"],
            "errors": result["non_2xx"],
            "socket_errors": result["socket_errors"],
        }

    def w4(self, server: Server) -> dict:
        result = wrk(
            server,
            self.load_seconds,
            path=server.download_url("small.bin").removeprefix(server.url),
            headers=server.headers,
        )
        return {"value": result["rate"], "p99_ms": result["p99_ms"], "errors": result["non_2xx"]}

    def prepare_listing(self, server: Server) -> None:
        if server.files_dir is not None:
            folder = server.files_dir / "list10k"
            folder.mkdir(exist_ok=True)
            for number in range(LISTING_FILES):
                (folder / f"photo-{number:05d}.jpg").write_bytes(b"x" * SMALL)
            return

        # pcloud: through its own API, as a phone would, with a user of its own.
        def upload_share(first: int) -> None:
            with requests.Session() as session:
                for number in range(first, LISTING_FILES, 8):
                    session.post(
                        server.upload_url(""),
                        headers=server.listing_headers,
                        files={"file": (f"photo-{number:05d}.jpg", b"x" * SMALL)},
                        timeout=60,
                    ).raise_for_status()

        threads = [threading.Thread(target=upload_share, args=(first,)) for first in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        count = len(
            requests.get(server.listing_url(), headers=server.listing_headers, timeout=60).json()
        )
        if count != LISTING_FILES:
            raise RuntimeError(f"pcloud listing user holds {count} files, not {LISTING_FILES}")

    def w5(self, server: Server) -> dict:
        times = [
            curl(*header_args(server.listing_headers), server.listing_url())["time"]
            for _ in range(7)
        ]
        return {"value": statistics.median(times) * 1000}


# --- running and reporting -----------------------------------------------------------------

UNITS = {"W1": "MB/s", "W2": "MB/s", "W3": "uploads/s", "W4": "req/s", "W5": "ms"}
TITLES = {
    "W1": "1 GiB download",
    "W2": "1 GiB upload",
    "W3": "4 KiB uploads, 8 clients",
    "W4": "4 KiB auth. downloads, 8 conns",
    "W5": "list 10,000 files",
}


def run(only: list[str], rounds: int, bench: Bench, servers: list[Server]) -> dict:
    results: dict[str, dict[str, list[dict]]] = {w: {s.name: [] for s in servers} for w in only}
    if "W5" in only:
        for server in servers:
            print(f"  preparing W5 on {server.name}...", flush=True)
            bench.prepare_listing(server)
    measures: dict[str, Callable[[Server], dict]] = {
        "W1": bench.w1,
        "W2": bench.w2,
        "W3": bench.w3,
        "W4": bench.w4,
        "W5": bench.w5,
    }
    for round_number in range(1, rounds + 1):
        for workload in only:
            order = servers if round_number % 2 else list(reversed(servers))
            for server in order:
                result = measures[workload](server)
                results[workload][server.name].append(result)
                print(
                    f"  round {round_number} {workload} {server.name:9s} "
                    f"{result['value']:10.1f} {UNITS[workload]}",
                    flush=True,
                )
    return results


def median_of(samples: list[dict], key: str = "value") -> float:
    return statistics.median(sample[key] for sample in samples if key in sample)


def report(results: dict) -> dict:
    summary = {}
    print()
    print(
        f"{'workload':38s} {'pcloud':>10s} {'nginx':>10s} {'copyparty':>10s}"
        f" {'÷nginx':>8s} {'÷copyparty':>10s}"
    )
    for workload, by_server in results.items():
        values = {name: median_of(samples) for name, samples in by_server.items()}
        lower_is_better = workload == "W5"
        ratio = (lambda a, b: b / a) if lower_is_better else (lambda a, b: a / b)
        summary[workload] = {
            "median": values,
            "vs_nginx": ratio(values["pcloud"], values["nginx"]),
            "vs_copyparty": ratio(values["pcloud"], values["copyparty"]),
        }
        print(
            f"{workload} {TITLES[workload] + ' (' + UNITS[workload] + ')':35s}"
            f" {values['pcloud']:10.1f} {values['nginx']:10.1f} {values['copyparty']:10.1f}"
            f" {summary[workload]['vs_nginx']:7.2f}x {summary[workload]['vs_copyparty']:9.2f}x"
        )
        extras = [
            ("cpu_s", "server CPU s"),
            ("peak_growth_mb", "peak memory growth MB"),
            ("p99_ms", "p99 latency ms"),
            ("errors", "non-2xx answers"),
        ]
        for key, label in extras:
            if any(key in sample for samples in by_server.values() for sample in samples):
                numbers = {name: median_of(samples, key) for name, samples in by_server.items()}
                summary[workload][key] = numbers
                print(f"   {label:35s}" + "".join(f" {numbers[n]:10.1f}" for n in SERVERS))
    print("\n(ratios: higher is better for pcloud; W5 is a time, so its ratio is inverted)")
    return summary


TARGETS = [
    ("W1", "vs_nginx", 0.9, "W1 download >= 0.9x nginx"),
    ("W2", "vs_copyparty", 0.7, "W2 upload >= 0.7x copyparty"),
    ("W3", "vs_copyparty", 0.7, "W3 small uploads >= 0.7x copyparty"),
    ("W4", "vs_copyparty", 0.7, "W4 small downloads >= 0.7x copyparty"),
    ("W5", "vs_copyparty", 1.0, "W5 listing no slower than copyparty"),
]


def check_targets(summary: dict) -> None:
    print("\nTargets (issue 2):")
    for workload, key, goal, text in TARGETS:
        if workload in summary:
            value = summary[workload][key]
            print(f"  {'met ' if value >= goal else 'MISS'}  {text}: {value:.2f}x")
    if "W2" in summary:
        growth = summary["W2"]["peak_growth_mb"]["pcloud"]
        print(
            f"  {'met ' if growth <= 100 else 'MISS'}  W2 peak memory within 100 MB of idle:"
            f" {growth:.0f} MB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="256 MiB files, 1 round, short loads")
    parser.add_argument("--rounds", type=int, help="rounds per workload (default 3, quick 1)")
    parser.add_argument("--only", default=",".join(WORKLOADS), help="e.g. W1,W4")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    only = [w.strip().upper() for w in args.only.split(",") if w.strip()]
    rounds = args.rounds or (1 if args.quick else 3)
    ensure_tools()
    with tempfile.TemporaryDirectory(prefix="pcloud-bench-") as folder:
        work = Path(folder)
        bench = Bench(
            work, (256 if args.quick else 1024) * 1024 * 1024, load_seconds=3 if args.quick else 8
        )
        servers: list[Server] = []
        try:
            for start in (start_pcloud, start_nginx, start_copyparty):
                servers.append(start(work))
            print("preparing files...", flush=True)
            bench.prepare(servers)
            results = run(only, rounds, bench, servers)
        finally:
            for server in servers:
                server.stop()
    summary = report(results)
    check_targets(summary)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
