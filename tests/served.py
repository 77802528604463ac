"""`pcloud serve` as a real process for the end-to-end tests: start it with a test's
settings on a port the OS picks, make users on it, look at its worker processes, stop
it as a person would. (conftest's `server` fixture starts one per module.)"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.conftest import settings_environment

PASSWORD = "a long enough password"  # passes the default password policy


class Server:
    """A running `pcloud serve` and a way to make users on it."""

    def __init__(self, process: subprocess.Popen, url: str, settings) -> None:
        self.process = process
        self.url = url
        self.settings = settings

    def new_user(self) -> dict[str, str]:
        """Register a fresh user; their Authorization header."""
        name = f"u{uuid.uuid4().hex[:10]}"
        response = requests.post(
            f"{self.url}/register",
            timeout=10,
            json={"username": name, "email": f"{name}@example.org", "password": PASSWORD},
        )
        assert response.status_code == 201, response.text
        login = requests.post(
            f"{self.url}/login", timeout=10, json={"login_identifier": name, "password": PASSWORD}
        )
        return {"Authorization": f"Bearer {login.json()['access_token']}"}

    def worker_pids(self) -> list[int]:
        """The processes that serve requests (the workers, or the server itself)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()] or [self.process.pid]

    def peak_memory_reset(self) -> None:
        for pid in self.worker_pids():
            Path(f"/proc/{pid}/clear_refs").write_text("5")

    def memory(self, field: str) -> dict[int, int]:
        """VmRSS or VmHWM of every worker, in bytes."""
        sizes = {}
        for pid in self.worker_pids():
            status = Path(f"/proc/{pid}/status").read_text()
            sizes[pid] = int(re.search(rf"{field}:\s+(\d+) kB", status).group(1)) * 1024
        return sizes

    def written_bytes(self) -> int:
        """What the workers have written so far (to files and sockets), in bytes."""
        total = 0
        for pid in self.worker_pids():
            io_counts = Path(f"/proc/{pid}/io").read_text()
            total += int(re.search(r"^wchar: (\d+)", io_counts, re.MULTILINE).group(1))
        return total

    def open_files(self) -> list[str]:
        """The files of the store the workers hold open (blobs and uploads being
        written). Not the database's, nor pipes and sockets: the background thumbnailer
        opens and closes a connection and its decoders' pipes as new content comes."""
        held = []
        store = str(self.settings.upload_folder)
        for pid in self.worker_pids():
            for descriptor in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(FileNotFoundError):
                    target = os.readlink(f"/proc/{pid}/fd/{descriptor}")
                    if target.startswith(store):
                        held.append(f"{pid}: {target}")
        return sorted(held)

    def open_files_settle_to(self, expected: list[str], seconds: float = 3) -> list[str]:
        """open_files(), once it equals `expected` or the time is up (a worker finishes
        a request, closing what it held, just after the client has its answer)."""
        deadline = time.monotonic() + seconds
        while (held := self.open_files()) != expected and time.monotonic() < deadline:
            time.sleep(0.05)
        return held

    def partials(self) -> list[Path]:
        return list((self.settings.upload_folder / "partial").iterdir())

    def blobs(self) -> list[Path]:
        return [p for p in (self.settings.upload_folder / "blobs").rglob("*") if p.is_file()]


def start_server(
    settings, extra_env: dict | None = None, port: int = 0, workers: int = 2
) -> tuple[subprocess.Popen, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PCLOUD_")}
    env.update(settings_environment(settings), **(extra_env or {}))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pcloud",
            "--env-file",
            os.devnull,  # read no .env
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--threads",
            "4",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=settings.data_dir,
    )
    deadline = time.monotonic() + 30
    output = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        output.append(line)
        match = re.search(r"serving on (http://[\d.]+:\d+)", line)
        if match:
            process.output = output  # type: ignore[attr-defined]  # what it printed, growing
            threading.Thread(target=output.extend, args=(process.stdout,), daemon=True).start()
            return process, match.group(1)
    process.kill()
    raise AssertionError("pcloud serve did not start:\n" + "".join(output))


def stop_server(process: subprocess.Popen) -> None:
    """Ctrl-C, as a person would; a kill if it has not stopped within 10 s."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def running_server(settings, extra_env: dict | None = None, workers: int = 2) -> Iterator[str]:
    """`pcloud serve` with these settings for the length of a with block; its URL."""
    process, url = start_server(settings, extra_env, workers=workers)
    try:
        yield url
    finally:
        stop_server(process)


def free_port() -> int:
    """A port nobody listens on now (for a test that must name the port itself)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- raw sockets, for what a client's exact bytes must show -------------------------------


def connect(server: Server, source: str = "127.0.0.1") -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10, source_address=(source, 0))


def exchange(server: Server, raw: bytes, source: str = "127.0.0.1") -> tuple[int, dict, dict]:
    """Send `raw`, read until the server closes: the status, headers and JSON body."""
    with connect(server, source) as connection:
        connection.sendall(raw)
        return parse(read_all(connection))


def read_all(connection: socket.socket) -> bytes:
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def parse(answer: bytes) -> tuple[int, dict, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), headers, json.loads(body)


def head_of(request_line: str, *headers: str) -> bytes:
    return ("\r\n".join([request_line, "Host: pcloud", *headers]) + "\r\n\r\n").encode()
