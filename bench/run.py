#!/usr/bin/env python3
"""Benchmark pcloud beside nginx (the physical limit) and copyparty (the fastest Python peer).

Run it in the venv where pcloud is installed (`pip install -e .`):

    python bench/run.py                        # 1 GiB files, 3 rounds, 10 s loads (~6 min)
    python bench/run.py --quick                # 256 MiB files, 1 round, 3 s loads (~1.5 min)
    python bench/run.py --only W3,W4 --rounds 5 --json results.json
    python bench/run.py --only W3 --profile prof/   # then py-spy pcloud under each load
    python bench/run.py --pcloud-args "--workers 1 --threads 8"

It starts the three servers on 127.0.0.1, each over a folder of its own in a temporary
directory, and measures:

    W1  one big download (1 GiB), MB/s                          curl
    W2  one big upload (1 GiB), MB/s, with the server's CPU     curl: pcloud multipart POST,
        seconds and its peak memory above idle                  the peers PUT
    W3  4 KiB uploads per second from 8 concurrent clients      wrk + wrk_upload.lua
    W4  4 KiB downloads per second over 8 keep-alive            wrk; pcloud's carry a Bearer
        connections, with p99 latency                           token, the peers have no auth
    W5  one listing of 10,000 files, ms (lower is better)       curl: pcloud GET /files of an
                                                                account holding 10,000 files;
                                                                nginx JSON autoindex; copyparty ?ls
    W6  pcloud only: the big file through tus in 8 MiB pieces,  http.client (keep-alive)
        MB/s, against W2's plain upload; then another cut off
        at 50% and resumed: the bytes sent twice

Each workload runs on the three servers in turn, round after round, the order rotating,
and the median over rounds is reported with the ratios pcloud/nginx and pcloud/copyparty,
then the targets of issue 2 and anything odd seen (non-2xx answers, errors, crashes,
memory growth). Only 2xx answers count as done. MB is 10^6 bytes.

It installs what it lacks (nginx and wrk with apt-get, copyparty and py-spy with pip
into this venv) and stops every server it started when it ends, however it ends.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import http.client
import importlib.metadata
import importlib.util
import json
import os
import platform
import pwd
import re
import shlex
import shutil
import signal
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import unquote

import requests

HERE = Path(__file__).resolve().parent
SERVERS = ("pcloud", "nginx", "copyparty")
BASELINE = "baseline"  # pcloud built from an older commit (--baseline REF), when asked
WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6")
PCLOUD_ONLY = {"W6"}  # the peers have no resumable uploads (the --baseline build has)
MB = 1_000_000
MIB = 1 << 20
SMALL = 4096  # bytes: W3's uploads, W4's download, W5's files
CONNECTIONS = 8
WRK_THREADS = 2
LISTING_FILES = 10_000
LISTING_REPEATS = 7  # W5's listings per measurement (the median counts)
DOWNLOAD_REPEATS = 3  # W1's downloads per measurement (the median counts)
START_SECONDS = 30
WARM_UP_SECONDS = 1  # an unrecorded wrk load before W3's and W4's rounds (W2, W6: one upload)
PASSWORD = "bench password 1234"
TUS_PIECE = 8 * MIB  # W6's piece size, as README advises for phones
TUS_HEADERS = {"Tus-Resumable": "1.0.0"}


@dataclass
class Options:
    big_size: int  # bytes, W1 and W2
    rounds: int
    load_seconds: float  # each wrk run, W3 and W4
    only: list[str]
    pcloud_args: list[str]
    profile_dir: Path | None
    baseline: str | None = None  # a git ref of pcloud to measure beside this checkout
    baseline_env: dict[str, str] = field(default_factory=dict)  # settings of that build only


# --- tools -----------------------------------------------------------------------------------


def tool_path(name: str) -> str | None:
    """A command from this venv, the PATH, or /usr/sbin (nginx, for users without it)."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def ensure_tools(need_py_spy: bool) -> None:
    """Install nginx, wrk, curl, copyparty (and py-spy) when missing; pcloud must be there."""
    missing = [name for name in ("nginx", "wrk", "curl") if tool_path(name) is None]
    if missing:
        apt_install(missing)
    if importlib.util.find_spec("copyparty") is None:
        pip_install("copyparty")
    if need_py_spy and tool_path("py-spy") is None:
        pip_install("py-spy")
    if tool_path("pcloud") is None:
        sys.exit(f"pcloud is not installed: {sys.executable} -m pip install -e . (repo root)")


def apt_install(packages: list[str]) -> None:
    how = f"apt-get update && apt-get install -y {' '.join(packages)}"
    if os.geteuid() != 0:
        sys.exit(f"{', '.join(packages)} missing; install as root first: {how}")
    print(f"installing {' '.join(packages)} (apt-get)...", flush=True)
    try:
        subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", *packages],
            check=True,
            timeout=600,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    except (subprocess.SubprocessError, OSError) as error:
        sys.exit(f"could not install {' '.join(packages)} ({error}); try: {how}")


def pip_install(package: str) -> None:
    print(f"installing {package} (pip, into {sys.prefix})...", flush=True)
    command = [sys.executable, "-m", "pip", "install", "-q", package]
    try:
        subprocess.run(command, check=True, timeout=600)
    except (subprocess.SubprocessError, OSError) as error:
        sys.exit(f"could not install {package} ({error}); try: {shlex.join(command)}")


def versions() -> dict[str, str]:
    def output(*command: str) -> str:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        return (done.stdout + done.stderr).strip().splitlines()[0]

    return {
        "pcloud": output(tool_path("pcloud"), "--version"),
        "nginx": output(tool_path("nginx"), "-v"),
        "copyparty": importlib.metadata.version("copyparty"),
        "wrk": output(tool_path("wrk"), "-v"),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpus": str(os.cpu_count()),
    }


# --- processes: the tree of a server, its CPU time and memory ---------------------------------


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (nginx's workers, pcloud's forked workers)."""
    found, pending = [], [pid]
    while pending and len(found) < 1000:
        current = pending.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                pending.extend(int(child) for child in (task / "children").read_text().split())
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes, all threads, so far."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def memory_kib(pids: list[int], field_name: str) -> dict[int, int]:
    """A /proc/PID/status size (VmRSS, VmHWM) of each process, in KiB."""
    sizes = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{pid}/status").read_text()
            match = re.search(rf"^{field_name}:\s+(\d+) kB", status, re.MULTILINE)
            if match:
                sizes[pid] = int(match.group(1))
    return sizes


def reset_peak_memory(pids: list[int]) -> None:
    """Restart each process's VmHWM (peak RSS) from its RSS now."""
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")


@contextlib.contextmanager
def resource_use(pid: int) -> Iterator[dict[str, float]]:
    """Measure a server's CPU seconds and peak memory above idle over a `with` block."""
    pids = process_tree(pid)
    idle = memory_kib(pids, "VmRSS")
    reset_peak_memory(pids)
    cpu_before = cpu_seconds(pids)
    use: dict[str, float] = {}
    yield use
    pids = process_tree(pid)
    use["cpu_s"] = cpu_seconds(pids) - cpu_before
    peaks = memory_kib(pids, "VmHWM")
    above_idle_kib = sum(max(0, peak - idle.get(each, 0)) for each, peak in peaks.items())
    use["peak_mb"] = above_idle_kib * 1024 / MB


def rss_mb(pid: int) -> float:
    return sum(memory_kib(process_tree(pid), "VmRSS").values()) * 1024 / MB


def die_with_parent() -> None:
    """In a child before exec: get SIGTERM should this script die without cleaning up."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def raise_on_termination() -> None:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so that every server gets stopped."""

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)


# --- servers ---------------------------------------------------------------------------------


class ServerDied(RuntimeError):
    pass


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen
    log: Path
    files_dir: Path | None = None  # a peer's folder, filled directly for W5
    headers: dict[str, str] = field(default_factory=dict)  # pcloud: the bench user's token
    listing_headers: dict[str, str] = field(default_factory=dict)  # pcloud: the W5 user's
    stored: dict[str, str] = field(default_factory=dict)  # our name -> the name it stored

    @property
    def is_pcloud(self) -> bool:
        """pcloud, or the baseline build of it (--baseline): the same API."""
        return self.name in ("pcloud", BASELINE)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def upload_url(self, name: str) -> str:
        return f"{self.url}/upload" if self.is_pcloud else f"{self.url}/{name}"

    def download_path(self, name: str) -> str:
        stored = self.stored.get(name, name)
        return f"/download/{stored}" if self.is_pcloud else f"/{stored}"

    def listing_url(self) -> str:
        if self.is_pcloud:
            return self.url + "/files"
        return self.url + {"nginx": "/list10k/", "copyparty": "/list10k/?ls"}[self.name]

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise ServerDied(
                f"{self.name} exited with {self.process.returncode}:\n{log_tail(self.log)}"
            )

    def stop(self) -> None:
        """SIGTERM the server's process group, SIGKILL it if still there after 10 s."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        with contextlib.suppress(ProcessLookupError):  # workers a parent left behind
            os.killpg(self.process.pid, signal.SIGKILL)


def log_tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(name: str, command: list[str], work: Path, port: int, **popen: object) -> Server:
    log = work / f"{name}.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group of its own: stop() reaches its workers
            preexec_fn=die_with_parent,
            **popen,
        )
    return Server(name, port, process, log)


def launch_pcloud(
    work: Path,
    options: Options,
    name: str = "pcloud",
    executable: str | None = None,
    settings: dict[str, str] | None = None,
) -> Server:
    port = free_port()
    # Only these settings: none of the caller's (DATABASE_URL, PCLOUD_WORKERS...) leak in.
    env = {
        **{name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ},
        "PCLOUD_DATA_DIR": str(work / f"{name}-data"),
        "SECRET_KEY": "bench-secret-key-of-a-sensible-length",
        "MAX_UPLOAD_SIZE": "8GiB",
        **(settings or {}),
    }
    command = [executable or tool_path("pcloud"), "--env-file", os.devnull, "serve"]  # no .env
    command += ["--host", "127.0.0.1", "--port", str(port), *options.pcloud_args]
    return launch(name, command, work, port, env=env, cwd=work)


def launch_baseline(work: Path, options: Options) -> Server:
    """pcloud as it was at git ref --baseline, built into a venv of its own."""
    source, venv = work / "baseline-source", work / "baseline-venv"
    source.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(HERE.parent), "archive", options.baseline],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(source)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    executable = str(venv / "bin" / "pcloud")
    return launch_pcloud(work, options, BASELINE, executable, options.baseline_env)


def launch_nginx(work: Path, _options: Options) -> Server:
    port = free_port()
    root = work / "nginx-files"
    root.mkdir()
    (work / "nginx-body").mkdir()
    conf = work / "nginx.conf"
    conf.write_text(nginx_config(work, root, port))
    command = [tool_path("nginx"), "-p", f"{work}/", "-c", str(conf)]
    command += ["-e", str(work / "nginx-error.log"), "-g", "daemon off;"]
    server = launch("nginx", command, work, port)
    server.files_dir = root
    return server


def nginx_config(work: Path, root: Path, port: int) -> str:
    template = string.Template((HERE / "nginx.conf.template").read_text())
    user = pwd.getpwuid(os.geteuid()).pw_name
    return template.substitute(
        work=work,
        root=root,
        port=port,
        # As root, workers would otherwise run as nobody and could not write our folders.
        user_line=f"user {user};" if os.geteuid() == 0 else "",
    )


def launch_copyparty(work: Path, _options: Options) -> Server:
    port = free_port()
    root = work / "copyparty-files"
    root.mkdir()
    command = [sys.executable, "-m", "copyparty", "-i", "127.0.0.1", "-p", str(port)]
    command += [
        *("-v", f"{root}::rw"),  # anonymous read and write
        "-q",  # no access log
        "--http-only",
        "--no-crt",
        "--no-thumb",  # no thumbnailer; the up2k index (-e2d) is off by default
        *("--hist", str(work / "copyparty-hist")),
    ]
    env = {**os.environ, "XDG_CONFIG_HOME": str(work / "copyparty-config")}
    server = launch("copyparty", command, work, port, env=env)
    server.files_dir = root
    return server


LAUNCHERS: dict[str, Callable[[Path, Options], Server]] = {
    "pcloud": launch_pcloud,
    "nginx": launch_nginx,
    "copyparty": launch_copyparty,
}


def start_servers(work: Path, options: Options, servers: list[Server]) -> None:
    """Start the servers, each appended to `servers` (to be stopped) once it runs."""
    for name in SERVERS:
        servers.append(LAUNCHERS[name](work, options))
    if options.baseline:
        print(f"building the baseline, pcloud at {options.baseline}...", flush=True)
        servers.append(launch_baseline(work, options))
    for server in servers:
        wait_until_ready(server)
        if server.is_pcloud:
            server.headers = pcloud_login(server, "bench")
            server.listing_headers = pcloud_login(server, "lister")


def wait_until_ready(server: Server) -> None:
    """Until GET / answers (pcloud: with 200), at most START_SECONDS."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        server.check_alive()
        with contextlib.suppress(requests.RequestException):
            answer = requests.get(server.url + "/", timeout=2)
            if answer.status_code == 200 or (not server.is_pcloud and answer.ok):
                return
        time.sleep(0.1)
    raise ServerDied(
        f"{server.name} not answering after {START_SECONDS} s:\n{log_tail(server.log)}"
    )


def pcloud_login(server: Server, username: str) -> dict[str, str]:
    """Register a pcloud user and sign in; the Authorization header for its requests."""
    account = {"username": username, "email": f"{username}@example.org", "password": PASSWORD}
    registered = requests.post(f"{server.url}/register", json=account, timeout=30)
    if registered.status_code != 201:
        raise RuntimeError(f"pcloud POST /register: {registered.status_code} {registered.text}")
    login = requests.post(
        f"{server.url}/login",
        json={"login_identifier": username, "password": PASSWORD},
        timeout=30,
    )
    if login.status_code != 200:
        raise RuntimeError(f"pcloud POST /login: {login.status_code} {login.text}")
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


# --- clients: curl and wrk -------------------------------------------------------------------


@dataclass
class CurlResult:
    status: int
    speed_download: float  # bytes/s
    speed_upload: float
    size_download: int
    seconds: float
    body: str


CURL_WRITE_OUT = "%{http_code} %{speed_download} %{speed_upload} %{size_download} %{time_total}"


def curl(
    url: str, *args: str, headers: dict[str, str] | None = None, keep_body: bool = True
) -> CurlResult:
    """One request with curl; raises on a non-2xx answer. Without keep_body, the body (a big
    download) goes to /dev/null."""
    with tempfile.NamedTemporaryFile() as body_file:
        command = [tool_path("curl"), "-sS", "--max-time", "900", "-H", "Expect:"]
        for key, value in (headers or {}).items():
            command += ["-H", f"{key}: {value}"]
        command += ["-o", body_file.name if keep_body else "/dev/null", "-w", CURL_WRITE_OUT]
        done = subprocess.run(
            [*command, *args, url],
            capture_output=True,
            text=True,
            timeout=960,
            preexec_fn=die_with_parent,
        )
        if done.returncode != 0:
            raise RuntimeError(f"curl {url}: {done.stderr.strip()}")
        body = Path(body_file.name).read_bytes()[:100_000].decode(errors="replace")
    status, down, up, size, seconds = done.stdout.split()
    result = CurlResult(int(status), float(down), float(up), int(size), float(seconds), body)
    if not 200 <= result.status < 300:
        raise RuntimeError(f"{url} answered {result.status}: {body[:200]}")
    return result


def upload(server: Server, path: Path, name: str) -> tuple[CurlResult, str]:
    """Upload a file as a client of this server would; the result and the stored name."""
    if server.is_pcloud:
        result = curl(
            server.upload_url(name), "-F", f"file=@{path};filename={name}", headers=server.headers
        )
        return result, json.loads(result.body)["file"]
    return curl(server.upload_url(name), "-T", str(path)), name


def remove(server: Server, stored_name: str) -> None:
    """Delete an uploaded file (W2's), so that big files do not pile up on disk."""
    if server.is_pcloud:
        requests.delete(
            f"{server.url}/delete/{stored_name}", headers=server.headers, timeout=60
        ).raise_for_status()
    else:
        (server.files_dir / stored_name).unlink()


def tus_upload(server: Server, path: Path, name: str, cut_at: int | None = None) -> tuple[str, int]:
    """Upload a file to pcloud over tus in TUS_PIECE pieces on one keep-alive connection,
    as a phone's tus client would; the stored name and the body bytes sent in all.

    The client costs what curl costs in W2: each piece is read into one reused buffer and
    sent from it (a new 8 MiB bytes object per piece cost this client more CPU than the
    server spent on the piece, and W6 measured the client).

    With cut_at, the first piece to go past that offset breaks off halfway (its
    connection closes); the upload then resumes from the offset HEAD reports.
    """
    size = path.stat().st_size
    metadata = "filename " + base64.b64encode(name.encode()).decode()
    headers = {**server.headers, **TUS_HEADERS}
    buffer = memoryview(bytearray(TUS_PIECE))
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)

    def call(method: str, target: str, body=None, **extra: str) -> http.client.HTTPResponse:
        connection.request(method, target, body=body, headers={**headers, **extra})
        answer = connection.getresponse()
        answer.read()
        return answer

    sent = 0
    try:
        created = call("POST", "/tus/", **{"Upload-Length": str(size), "Upload-Metadata": metadata})
        if created.status != 201:
            raise RuntimeError(f"pcloud POST /tus/: {created.status}")
        target = created.headers["Location"]
        offset, stored = 0, None
        with path.open("rb", buffering=0) as source:
            while offset < size:
                source.seek(offset)
                piece = buffer[: source.readinto(buffer[: min(TUS_PIECE, size - offset)])]
                if cut_at is not None and offset + len(piece) > cut_at:
                    sent += cut_off_patch(server, server.url + target, offset, piece)
                    cut_at = None
                    offset = int(call("HEAD", target).headers["Upload-Offset"])
                    continue
                answer = call(
                    "PATCH",
                    target,
                    body=piece,
                    **{
                        "Upload-Offset": str(offset),
                        "Content-Type": "application/offset+octet-stream",
                        "Content-Length": str(len(piece)),
                    },
                )
                sent += len(piece)
                if answer.status != 204:
                    raise RuntimeError(f"pcloud PATCH: {answer.status}")
                offset = int(answer.headers["Upload-Offset"])
                stored = answer.headers.get("Pcloud-File", stored)
    finally:
        connection.close()
    if stored is None:
        raise RuntimeError("pcloud's tus upload completed without naming its file")
    return unquote(stored), sent


def cut_off_patch(server: Server, url: str, offset: int, piece: memoryview) -> int:
    """Send half of a PATCH, then drop the connection; the bytes that went out."""
    half = piece[: len(piece) // 2]
    head = "".join(
        f"{key}: {value}\r\n"
        for key, value in {
            **server.headers,
            **TUS_HEADERS,
            "Host": f"127.0.0.1:{server.port}",
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
            "Content-Length": str(len(piece)),
        }.items()
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as connection:
        connection.sendall(f"PATCH {url.removeprefix(server.url)} HTTP/1.1\r\n{head}\r\n".encode())
        connection.sendall(half)
    time.sleep(0.2)  # the server notices the closed connection and keeps what arrived
    return len(half)


@dataclass
class WrkResult:
    requests: int  # answered
    rate: float  # requests/s, all answers
    ok_rate: float  # 2xx (and 3xx) answers/s
    p99_ms: float
    non_2xx: int
    socket_errors: int
    statuses: dict[str, int]


def wrk(
    server: Server,
    seconds: float,
    path: str = "/",
    headers: dict[str, str] | None = None,
    script_args: list[str] | None = None,
) -> WrkResult:
    """wrk over CONNECTIONS connections; with script_args, through wrk_upload.lua."""
    command = [tool_path("wrk"), "-c", str(CONNECTIONS), "-t", str(WRK_THREADS)]
    duration = f"{max(1, round(seconds))}s"  # wrk takes whole seconds only
    command += ["-d", duration, "--timeout", "10s", "--latency"]
    for key, value in (headers or {}).items():
        command += ["-H", f"{key}: {value}"]
    if script_args is not None:
        command += ["-s", str(HERE / "wrk_upload.lua")]
    command.append(server.url + path)
    if script_args is not None:
        command += ["--", *script_args]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        preexec_fn=die_with_parent,
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    return parse_wrk(done.stdout)


def parse_wrk(out: str) -> WrkResult:
    requests_done = int(re.search(r"(\d+) requests in", out).group(1))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    non_2xx_count = int(non_2xx.group(1)) if non_2xx else 0
    socket_errors = re.search(r"Socket errors:(.*)", out)
    errors = sum(map(int, re.findall(r"\d+", socket_errors.group(1)))) if socket_errors else 0
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    ok_share = (requests_done - non_2xx_count) / requests_done if requests_done else 0.0
    return WrkResult(
        requests=requests_done,
        rate=rate,
        ok_rate=rate * ok_share,
        p99_ms=p99_ms,
        non_2xx=non_2xx_count,
        socket_errors=errors,
        statuses={code: int(n) for code, n in re.findall(r"^status (\d+) (\d+)$", out, re.M)},
    )


# --- workloads -------------------------------------------------------------------------------


class Workloads:
    """W1-W5, each a method measuring one server once; prepare() and prepare_listing() first."""

    def __init__(self, work: Path, options: Options) -> None:
        self.work = work
        self.options = options
        self.big = work / "big.bin"
        self.small = work / "small.bin"
        self.names_given = 0

    def prepare(self, servers: list[Server]) -> None:
        """Write the test files; give every server the big and the small one."""
        with self.big.open("wb") as big:
            for _ in range(self.options.big_size // MIB):
                big.write(os.urandom(MIB))
        self.small.write_bytes(os.urandom(SMALL))
        for server in servers:
            for path in (self.big, self.small):
                _, server.stored[path.name] = upload(server, path, path.name)

    def fresh_name(self, kind: str) -> str:
        """A name no earlier upload of this run (or another run's) has had."""
        self.names_given += 1
        return f"{kind}-{os.getpid()}-{self.names_given}"

    def measure(self, workload: str, server: Server) -> dict[str, float]:
        return getattr(self, workload.lower())(server)

    def w1(self, server: Server) -> dict[str, float]:
        """The median of DOWNLOAD_REPEATS downloads: one takes well under a second."""
        url = server.url + server.download_path("big.bin")
        speeds = []
        for _ in range(DOWNLOAD_REPEATS):
            result = curl(url, headers=server.headers, keep_body=False)
            if result.size_download != self.options.big_size:
                size = result.size_download
                raise RuntimeError(f"W1 got {size} bytes, not {self.options.big_size}")
            speeds.append(result.speed_download / MB)
        return {"value": statistics.median(speeds)}

    def w2(self, server: Server) -> dict[str, float]:
        name = self.fresh_name("w2") + ".bin"
        with resource_use(server.pid) as use:
            result, stored = upload(server, self.big, name)
        remove(server, stored)
        return {"value": result.speed_upload / MB, **use}

    def warm_up(self, workload: str, server: Server) -> None:
        """A short, unrecorded load first: the first one after start-up runs slower (for
        a big upload, up to 3x slower: the server's and the kernel's memory is new)."""
        if workload == "W3":
            self.w3(server, seconds=WARM_UP_SECONDS)
        elif workload == "W4":
            self.w4(server, seconds=WARM_UP_SECONDS)
        elif workload in ("W2", "W6"):
            self.measure(workload, server)

    def w3(self, server: Server, seconds: float | None = None) -> dict[str, float]:
        prefix = self.fresh_name("w3")
        if server.is_pcloud:  # its answers by status too: any non-2xx is a bug
            script_args = ["multipart", prefix, str(SMALL), "statuses"]
        else:
            script_args = ["put", prefix, str(SMALL)]
        seconds = seconds or self.options.load_seconds
        with resource_use(server.pid) as use:
            result = wrk(server, seconds, headers=server.headers, script_args=script_args)
        return wrk_measures(result, use["cpu_s"])

    def w4(self, server: Server, seconds: float | None = None) -> dict[str, float]:
        path = server.download_path("small.bin")
        seconds = seconds or self.options.load_seconds
        with resource_use(server.pid) as use:
            result = wrk(server, seconds, path=path, headers=server.headers)
        return wrk_measures(result, use["cpu_s"])

    def w6(self, server: Server) -> dict[str, float]:
        """The big file through tus, then the cost of a cut at 50%: bytes sent twice."""
        name = self.fresh_name("w6") + ".bin"
        with resource_use(server.pid) as use:
            started = time.monotonic()
            stored, _sent = tus_upload(server, self.big, name)
            seconds = time.monotonic() - started
        remove(server, stored)
        stored, sent = tus_upload(server, self.big, name, cut_at=self.options.big_size // 2)
        remove(server, stored)
        return {
            "value": self.options.big_size / seconds / MB,
            **use,
            "resent_mb": (sent - self.options.big_size) / MB,
        }

    def w5(self, server: Server) -> dict[str, float]:
        times = [
            curl(server.listing_url(), headers=server.listing_headers).seconds
            for _ in range(LISTING_REPEATS)
        ]
        return {"value": statistics.median(times) * 1000}

    def prepare_listing(self, server: Server) -> None:
        """Give the server 10,000 files to list: peers on disk, pcloud through its API."""
        if server.files_dir is not None:
            folder = server.files_dir / "list10k"
            folder.mkdir()
            for number in range(LISTING_FILES):
                (folder / listing_name(number)).write_bytes(b"x" * SMALL)
        else:
            upload_listing_files(server)
        count = listing_count(server)
        if count != LISTING_FILES:
            raise RuntimeError(f"{server.name} lists {count} files, not {LISTING_FILES}")


def wrk_measures(result: WrkResult, cpu_s: float) -> dict[str, float]:
    """What W3 and W4 report of a wrk run, with the server's CPU time per request."""
    return {
        "value": result.ok_rate,
        "cpu_ms": 1000 * cpu_s / max(result.requests, 1),
        "p99_ms": result.p99_ms,
        "non_2xx": result.non_2xx,
        "socket_errors": result.socket_errors,
        "statuses": result.statuses,
    }


def listing_name(number: int) -> str:
    return f"photo-{number:05d}.jpg"


def upload_listing_files(server: Server) -> None:
    """10,000 uploads by 8 threads to pcloud's listing user, as phones would send them."""

    def upload_share(first: int) -> None:
        with requests.Session() as session:
            for number in range(first, LISTING_FILES, CONNECTIONS):
                answer = session.post(
                    server.upload_url(""),
                    headers=server.listing_headers,
                    files={"file": (listing_name(number), b"x" * SMALL)},
                    timeout=60,
                )
                if answer.status_code != 201:
                    raise RuntimeError(f"pcloud upload: {answer.status_code} {answer.text[:200]}")

    with ThreadPoolExecutor(CONNECTIONS) as pool:
        for share in [pool.submit(upload_share, first) for first in range(CONNECTIONS)]:
            share.result()


def listing_count(server: Server) -> int:
    listing = requests.get(server.listing_url(), headers=server.listing_headers, timeout=60)
    listing.raise_for_status()
    body = listing.json()
    return len(body["files"]) if server.name == "copyparty" else len(body)


# --- running ---------------------------------------------------------------------------------

Samples = dict[str, dict[str, list[dict]]]  # workload -> server -> one dict per round
# What a failed measurement raises: recorded, and the run goes on.
MEASUREMENT_ERRORS = (
    RuntimeError,
    OSError,
    ValueError,
    subprocess.SubprocessError,
    requests.RequestException,
)
UNITS = {
    "W1": "MB/s",
    "W2": "MB/s",
    "W3": "uploads/s",
    "W4": "downloads/s",
    "W5": "ms",
    "W6": "MB/s",
}


def rotated(servers: list[Server], turn: int) -> list[Server]:
    """Round robin: each round starts with the next server."""
    shift = turn % len(servers) if servers else 0
    return servers[shift:] + servers[:shift]


def run_rounds(workloads: Workloads, servers: list[Server], options: Options) -> Samples:
    samples: Samples = {w: {s.name: [] for s in servers} for w in options.only}
    for workload in options.only:
        ready = [
            server
            for server in servers
            if (server.is_pcloud or workload not in PCLOUD_ONLY)
            and prepare(workloads, workload, server, samples)
        ]
        for turn in range(options.rounds):
            for server in rotated(ready, turn):
                sample = measure_once(workloads, workload, server)
                samples[workload][server.name].append(sample)
    return samples


def prepare(workloads: Workloads, workload: str, server: Server, samples: Samples) -> bool:
    """W5's files, or a warm-up; False (and an error recorded) if that failed."""
    try:
        if workload == "W5":
            print(f"  W5: giving {server.name} {LISTING_FILES:,} files...", flush=True)
            workloads.prepare_listing(server)
        workloads.warm_up(workload, server)
    except MEASUREMENT_ERRORS as error:
        print(f"  {workload} {server.name:9s} not measured: {error}", flush=True)
        samples[workload][server.name].append({"error": f"preparing: {error}"[:500]})
        return False
    return True


def measure_once(workloads: Workloads, workload: str, server: Server) -> dict:
    """One measurement; a failure is recorded (and printed) rather than ending the run."""
    os.sync()  # the last one's writes go to disk now, not during this one
    try:
        sample = workloads.measure(workload, server)
    except MEASUREMENT_ERRORS as error:
        sample = {"error": str(error)[:500]}
    server.check_alive()  # a server that died ends the run: the numbers would mean nothing
    sample["rss_mb"] = rss_mb(server.pid)
    print(f"  {workload} {server.name:9s} {describe(workload, sample)}", flush=True)
    return sample


def describe(workload: str, sample: dict) -> str:
    if "error" in sample:
        return f"ERROR {sample['error']}"
    text = f"{sample['value']:10.1f} {UNITS[workload]}"
    if "cpu_s" in sample:
        text += f"  cpu {sample['cpu_s']:.1f} s  peak +{sample['peak_mb']:.1f} MB"
    if "resent_mb" in sample:
        text += f"  after a cut at 50%: {sample['resent_mb']:.1f} MB sent twice"
    if "p99_ms" in sample:
        text += f"  p99 {sample['p99_ms']:.1f} ms  cpu {sample['cpu_ms']:.2f} ms/request"
    if sample.get("non_2xx") or sample.get("socket_errors"):
        text += f"  non-2xx {sample['non_2xx']} {sample['statuses']}"
        text += f"  socket errors {sample['socket_errors']}"
    return text


def profile(workloads: Workloads, pcloud: Server, options: Options) -> dict[str, list[str]]:
    """Run each workload once more on pcloud under py-spy; the hottest frames of each."""
    options.profile_dir.mkdir(parents=True, exist_ok=True)
    print("\nprofiling pcloud with py-spy (which slows it: these are not measurements)...")
    summaries = {}
    for workload in options.only:
        raw = options.profile_dir / f"pcloud-{workload}.txt"
        command = [tool_path("py-spy"), "record", "--pid", str(pcloud.pid), "--subprocesses"]
        command += ["--nonblocking", "--rate", "200", "--format", "raw", "-o", str(raw)]
        spy = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=die_with_parent,
        )
        try:
            time.sleep(1)  # attach first
            sample = measure_once(workloads, workload, pcloud)
        finally:
            spy.send_signal(signal.SIGINT)
            _, spy_errors = spy.communicate(timeout=60)
        if not raw.exists():
            print(f"  py-spy wrote nothing: {spy_errors.decode(errors='replace')[-500:]}")
            continue
        summaries[workload] = summarize_profile(raw)
        print(f"\nprofile of pcloud during {workload} ({describe(workload, sample).strip()}),")
        print(f"collapsed stacks in {raw}:")
        print("\n".join(summaries[workload]))
    return summaries


def summarize_profile(raw: Path, top: int = 12) -> list[str]:
    """From py-spy's collapsed stacks: where the samples fall by library, the functions
    most often on top of the stack, and pcloud's own functions with what they call."""
    own, by_library, pcloud_total = Counter(), Counter(), Counter()
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = [parse_frame(text) for text in stack.split(";")]
        frames = [frame for frame in frames if frame is not None]
        if not count_text.isdigit() or not frames:
            continue
        count = int(count_text)
        samples += count
        function, library = frames[-1]
        own[f"{function} ({library})"] += count
        by_library[library] += count
        for function, library in set(frames[serving_from(frames) :]):
            if library == "pcloud":
                pcloud_total[function] += count
    if not samples:
        return ["  no samples"]

    def shares(counter: Counter) -> list[str]:
        return [f"    {100 * n / samples:5.1f}%  {what}" for what, n in counter.most_common(top)]

    return [
        f"  {samples} samples of busy threads (200/s per thread, all of pcloud's processes)",
        "  by library, of the innermost Python frame:",
        *shares(by_library),
        "  functions on top of the stack (self time; waits show as the frame that waits):",
        *shares(own),
        "  pcloud's own functions serving requests, with all they call (total time):",
        *shares(pcloud_total),
    ]


def serving_from(frames: list[tuple[str, str]]) -> int:
    """Where a stack starts serving: its first waitress or threading frame (what comes
    before only starts the server: the CLI, the forked worker)."""
    libraries = [library for _, library in frames]
    return next((at for at, lib in enumerate(libraries) if lib in ("waitress", "threading")), 0)


def parse_frame(text: str) -> tuple[str, str] | None:
    """'send (waitress/wasyncore.py:451)' -> ('send', 'waitress'); py-spy's process and
    thread pseudo-frames -> None."""
    if text.startswith(("process ", "thread ")):
        return None
    match = re.match(r"(.*) \((.*?)(?::\d+)?\)$", text)
    if not match:
        return text, "?"
    function, path = match.groups()
    library = Path(path).parts[0].removesuffix(".py") if path else "?"
    return function, library


# --- reporting -------------------------------------------------------------------------------


@dataclass
class Metric:
    workload: str
    key: str
    label: str
    better: str  # "higher" or "lower"
    counts: bool = False  # a count of failures: summed over rounds, no ratio
    ratio: bool = True  # whether pcloud / peer means anything


def metrics(big_size: int) -> list[Metric]:
    big = f"{big_size / MIB / 1024:g} GiB" if big_size >= 1 << 30 else f"{big_size // MIB} MiB"
    return [
        Metric("W1", "value", f"W1 {big} download, MB/s", "higher"),
        Metric("W2", "value", f"W2 {big} upload, MB/s", "higher"),
        Metric("W2", "cpu_s", "   server CPU seconds", "lower"),
        Metric("W2", "peak_mb", "   peak memory above idle, MB", "lower", ratio=False),
        Metric("W3", "value", "W3 4 KiB uploads/s, 8 clients", "higher"),
        Metric("W3", "cpu_ms", "   server CPU ms per upload", "lower"),
        Metric("W3", "failed", "   non-2xx + socket errors, all rounds", "lower", counts=True),
        Metric("W4", "value", "W4 4 KiB downloads/s, 8 connections", "higher"),
        Metric("W4", "p99_ms", "   p99 latency, ms", "lower"),
        Metric("W4", "cpu_ms", "   server CPU ms per download", "lower"),
        Metric("W4", "failed", "   non-2xx + socket errors, all rounds", "lower", counts=True),
        Metric("W5", "value", f"W5 list {LISTING_FILES:,} files, ms", "lower"),
        # (Ratios against the --baseline build only: the peers have no tus.)
        Metric("W6", "value", f"W6 {big} tus upload, 8 MiB pieces, MB/s", "higher"),
        Metric("W6", "cpu_s", "   server CPU seconds", "lower"),
        Metric("W6", "peak_mb", "   peak memory above idle, MB", "lower", ratio=False),
        Metric("W6", "resent_mb", "   MB sent twice after a cut at 50%", "lower", ratio=False),
    ]


def aggregate(samples: list[dict], metric: Metric) -> float | None:
    if metric.counts:
        counted = [s.get("non_2xx", 0) + s.get("socket_errors", 0) for s in samples]
        return sum(counted) if counted else None
    values = [sample[metric.key] for sample in samples if metric.key in sample]
    return statistics.median(values) if values else None


def summarize(samples: Samples, options: Options) -> list[dict]:
    rows = []
    for metric in metrics(options.big_size):
        if metric.workload not in samples:
            continue
        by_workload = samples[metric.workload]
        by_server = {name: aggregate(by_workload[name], metric) for name in by_workload}
        row = {**asdict(metric), **by_server}
        for peer in [name for name in by_server if name != "pcloud"]:
            ours, theirs = by_server["pcloud"], by_server[peer]
            usable = ours is not None and theirs and metric.ratio and not metric.counts
            row[f"pcloud/{peer}"] = ours / theirs if usable else None
        rows.append(row)
    if "W6" in samples and "W2" in samples:  # tus against pcloud's own plain upload
        tus = aggregate(samples["W6"]["pcloud"], Metric("W6", "value", "", "higher"))
        plain = aggregate(samples["W2"]["pcloud"], Metric("W2", "value", "", "higher"))
        rows.append(
            {
                **asdict(Metric("W6", "vs_w2", "   tus / plain (pcloud's W2)", "higher")),
                "pcloud": tus / plain if tus and plain else None,
                **{name: None for name in SERVERS[1:]},
                "pcloud/nginx": None,
                "pcloud/copyparty": None,
            }
        )
    return rows


def print_table(rows: list[dict]) -> None:
    names = [*SERVERS, BASELINE] if any(BASELINE in row for row in rows) else list(SERVERS)
    columns = names + [f"pcloud/{name}" for name in names[1:]]
    servers = len(names)
    width = max(len(row["label"]) for row in rows)
    print(f"\n{'':{width}}  better " + " ".join(f"{c:>10}" for c in columns[:servers]), end="")
    print(" " + " ".join(f"{c:>16}" for c in columns[servers:]))
    for row in rows:
        cells = [number(row.get(c)) for c in columns[:servers]]
        ratios = [f"{row[c]:.2f}x" if row.get(c) is not None else "" for c in columns[servers:]]
        print(
            f"{row['label']:{width}}  {row['better']:6s} " + " ".join(f"{c:>10}" for c in cells),
            end="",
        )
        print(" " + " ".join(f"{r:>16}" for r in ratios))
    print("\nratios are pcloud / peer: above 1 is better for pcloud where higher is better,")
    print("below 1 is better where lower is better (CPU, memory, latency, W5's time).")


def number(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    decimals = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
    return f"{value:,.{decimals}f}"


@dataclass
class Target:
    text: str
    workload: str
    key: str
    column: str  # a row's column: a ratio, or pcloud's own figure
    at_least: float | None = None
    at_most: float | None = None
    unit: str = "MB"  # how pcloud's own figure is shown (ratio columns show "x")

    def verdict(self, figure: float | None) -> bool:
        if figure is None:
            return False
        if self.at_least is not None:
            return figure >= self.at_least
        return figure <= self.at_most


TARGETS = [
    Target("W1 download >= 0.9x nginx", "W1", "value", "pcloud/nginx", at_least=0.9),
    Target("W2 upload >= 0.7x copyparty", "W2", "value", "pcloud/copyparty", at_least=0.7),
    Target("W2 peak memory within 100 MB of idle", "W2", "peak_mb", "pcloud", at_most=100),
    Target("W3 small uploads >= 0.7x copyparty", "W3", "value", "pcloud/copyparty", at_least=0.7),
    Target("W4 small downloads >= 0.7x copyparty", "W4", "value", "pcloud/copyparty", at_least=0.7),
    Target(
        "W4 with the per-request session check >= 0.9x the --baseline build (issue 5)",
        "W4",
        "value",
        f"pcloud/{BASELINE}",
        at_least=0.9,
    ),
    Target(
        "W5 listing no slower than copyparty (time ratio <= 1)",
        "W5",
        "value",
        "pcloud/copyparty",
        at_most=1.0,
    ),
    Target("W6 tus upload >= 0.8x pcloud's W2", "W6", "vs_w2", "pcloud", at_least=0.8, unit="x"),
    Target("W6 peak memory within 100 MB of idle", "W6", "peak_mb", "pcloud", at_most=100),
    Target(
        "W6 a cut at 50% re-sends less than one 8 MiB piece",
        "W6",
        "resent_mb",
        "pcloud",
        at_most=TUS_PIECE / MB,
    ),
]


def check_targets(rows: list[dict]) -> list[dict]:
    """Issue 2's targets for pcloud; prints and returns one verdict per target measured."""
    print("\nTargets:")
    by_metric = {(row["workload"], row["key"]): row for row in rows}
    verdicts = []
    for target in TARGETS:
        row = by_metric.get((target.workload, target.key))
        if row is None or target.column not in row:
            continue
        figure = row[target.column]
        met = target.verdict(figure)
        if figure is None:
            shown = "no figure"
        else:
            ratio = "/" in target.column or target.unit == "x"
            shown = f"{figure:.2f}x" if ratio else f"{figure:.1f} {target.unit}"
        print(f"  {'met ' if met else 'MISS'}  {target.text}: {shown}")
        verdicts.append({"target": target.text, "figure": figure, "met": met})
    return verdicts


ALARMING_LOG_LINES = re.compile(r"Traceback|ERROR|CRITICAL|stopped unexpectedly|Exception")


def find_anomalies(
    samples: Samples, rss: dict[str, dict[str, float]], pcloud_log: Path
) -> list[str]:
    """What a reader should not miss: failures, pcloud's non-2xx answers, its log, memory."""
    found = []
    for workload, by_server in samples.items():
        for name, runs in by_server.items():
            for turn, sample in enumerate(runs, 1):
                if "error" in sample:
                    found.append(f"{workload} {name} round {turn} failed: {sample['error']}")
                if sample.get("non_2xx"):
                    found.append(
                        f"{workload} {name} round {turn}: {sample['non_2xx']} non-2xx answers,"
                        f" by status {sample['statuses']}"
                    )
                if sample.get("socket_errors"):
                    found.append(
                        f"{workload} {name} round {turn}: {sample['socket_errors']} socket errors"
                    )
    log_lines = pcloud_log.read_text(errors="replace").splitlines()
    alarming = [line for line in log_lines if ALARMING_LOG_LINES.search(line)]
    if alarming:
        found.append(f"pcloud's log has {len(alarming)} alarming lines, e.g.:")
        found += [f"    {line[:200]}" for line in alarming[:10]]
    for name in rss:
        start, end = rss[name]["start"], rss[name]["end"]
        if end - start > 100:
            found.append(f"{name}'s memory grew over the run: {start:.0f} MB -> {end:.0f} MB")
    return found


def print_memory(rss: dict[str, dict[str, float]]) -> None:
    print("\nResident memory, all processes of each server, MB (after setup -> at the end):")
    print("  " + "   ".join(f"{n} {rss[n]['start']:.0f} -> {rss[n]['end']:.0f}" for n in rss))


# --- main ------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark pcloud beside nginx and copyparty on loopback (see the top of "
        "this file, or bench/README.md).",
    )
    parser.add_argument("--quick", action="store_true", help="256 MiB files, 1 round, 3 s loads")
    parser.add_argument("--rounds", type=int, help="rounds per workload (default 3; quick 1)")
    parser.add_argument("--only", default=",".join(WORKLOADS), help="workloads, e.g. W1,W4")
    parser.add_argument("--seconds", type=float, help="each wrk load (default 10; quick 3)")
    parser.add_argument("--size-mib", type=int, help="W1/W2 file size (default 1024; quick 256)")
    parser.add_argument(
        "--pcloud-args",
        default="",
        help='extra `pcloud serve` options, e.g. "--workers 1 --threads 8" (default: none, '
        "pcloud's own defaults)",
    )
    parser.add_argument("--profile", type=Path, metavar="DIR", help="then py-spy pcloud, into DIR")
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also measure pcloud as built from this git commit (e.g. to see what a change "
        "cost), with a pcloud/baseline ratio",
    )
    parser.add_argument(
        "--baseline-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the --baseline build only (repeatable): with --baseline HEAD, "
        "what one setting costs, e.g. --baseline-env ACCESS_LOG=off",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")
    parser.add_argument(
        "--tmp", type=Path, help="where the temporary folder goes (default: TMPDIR)"
    )
    return parser.parse_args()


def options_from(args: argparse.Namespace) -> Options:
    only = [name.strip().upper() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(WORKLOADS))
    if unknown or not only:
        sys.exit(f"--only: unknown workloads {unknown}; choose from {','.join(WORKLOADS)}")
    baseline_env = dict(pair.partition("=")[::2] for pair in args.baseline_env)
    if any(not name for name in baseline_env) or (baseline_env and not args.baseline):
        sys.exit("--baseline-env: NAME=VALUE, and only with --baseline")
    rounds = args.rounds or (1 if args.quick else 3)
    size_mib = args.size_mib or (256 if args.quick else 1024)
    seconds = args.seconds or (3 if args.quick else 10)
    if not (1 <= rounds <= 20 and 16 <= size_mib <= 8192 and 1 <= seconds <= 120):
        sys.exit("--rounds: 1 to 20; --size-mib: 16 to 8192; --seconds: 1 to 120")
    return Options(
        big_size=size_mib * MIB,
        rounds=rounds,
        load_seconds=seconds,
        only=[w for w in WORKLOADS if w in only],
        pcloud_args=shlex.split(args.pcloud_args),
        profile_dir=args.profile,
        baseline=args.baseline,
        baseline_env=baseline_env,
    )


def check_disk(work: Path, options: Options) -> None:
    """The big file, one copy per server, and an upload in flight (twice, for pcloud)."""
    needed = options.big_size * 7 + LISTING_FILES * SMALL * 4
    free = shutil.disk_usage(work).free
    if free < needed:
        sys.exit(f"{work}: {free / 1e9:.1f} GB free, the bench needs {needed / 1e9:.1f} GB")


def benchmark(work: Path, options: Options) -> dict:
    """Start the servers, measure, stop them; the samples and what else was seen."""
    servers: list[Server] = []
    try:
        start_servers(work, options, servers)
        pcloud = servers[0]
        workloads = Workloads(work, options)
        print("preparing files...", flush=True)
        workloads.prepare(servers)
        rss = {s.name: {"start": rss_mb(s.pid)} for s in servers}
        samples = run_rounds(workloads, servers, options)
        for server in servers:
            rss[server.name]["end"] = rss_mb(server.pid)
        profiles = profile(workloads, pcloud, options) if options.profile_dir else {}
        anomalies = find_anomalies(samples, rss, pcloud.log)
    finally:
        for server in servers:
            server.stop()
    return {"samples": samples, "rss": rss, "profiles": profiles, "anomalies": anomalies}


def report(outcome: dict, options: Options) -> dict:
    rows = summarize(outcome["samples"], options)
    print_table(rows)
    print_memory(outcome["rss"])
    verdicts = check_targets(rows)
    print("\nAnything odd:" if outcome["anomalies"] else "\nAnything odd: nothing seen.")
    for line in outcome["anomalies"]:
        print(f"  {line}")
    return {"rows": rows, "targets": verdicts}


def main() -> None:
    args = parse_args()
    options = options_from(args)
    ensure_tools(need_py_spy=options.profile_dir is not None)
    raise_on_termination()
    about = versions()
    print(", ".join(f"{key} {value}" for key, value in about.items()))
    print(
        f"{options.big_size // MIB} MiB files, {options.rounds} round(s), "
        f"{options.load_seconds:g} s loads, {' '.join(options.only)}; "
        f"pcloud serve {shlex.join(options.pcloud_args) or '(defaults)'}",
        flush=True,
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pcloud-bench-", dir=args.tmp) as folder:
        check_disk(Path(folder), options)
        try:
            outcome = benchmark(Path(folder), options)
        except ServerDied as error:
            sys.exit(f"\nstopped: {error}")
    summary = report(outcome, options)
    print(f"\n({time.monotonic() - started:.0f} s)")
    if args.json:
        settings = {**asdict(options), "profile_dir": str(options.profile_dir or "")}
        document = {"versions": about, "settings": settings, **outcome, **summary}
        args.json.write_text(json.dumps(document, indent=2, default=str))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("\ninterrupted; the servers were stopped")
