#!/usr/bin/env python3
"""W4 while hostile connections are held open: is pcloud still serving others?

    python bench/hostile.py [--rounds 3] [--seconds 10] [--idle 5000] [--slow 1000]

Starts one `pcloud serve` (its defaults, as bench/run.py does), then, round after round:
W4 (4 KiB downloads over 8 keep-alive connections, wrk) alone; and W4 again while
`--idle` connections that never send a byte and `--slow` connections that send a
request's headers one byte a second are held open, from the source addresses
127.0.0.2 onward (within CONNECTIONS_PER_ADDRESS each, so that the per-address limit
does not simply refuse them: the loop has to carry them). The hostile connections are
opened afresh for each round (HEADER_TIMEOUT would close them after 30 s). Prints each
round's figures, the medians and the ratio with/without (target: at least 0.8x).
"""

from __future__ import annotations

import argparse
import resource
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

import run  # noqa: E402  (bench/run.py: its servers, wrk and W4)

PER_ADDRESS = 25  # below CONNECTIONS_PER_ADDRESS's default (64, shared by the workers)


class Hostile:
    """Idle and slow-header connections to a server, held until close()."""

    def __init__(self, port: int, idle: int, slow: int) -> None:
        self.port = port
        self.idle: list[socket.socket] = []
        self.slow: list[socket.socket] = []
        self._stop = threading.Event()
        for number in range(idle + slow):
            connection = self._connect(number)
            (self.slow if number >= idle else self.idle).append(connection)
        self._trickler = threading.Thread(target=self._trickle, daemon=True)
        self._trickler.start()

    def _connect(self, number: int) -> socket.socket:
        source = f"127.0.{2 + number // PER_ADDRESS // 250}.{2 + number // PER_ADDRESS % 250}"
        connection = socket.socket()
        connection.bind((source, 0))
        connection.settimeout(30)
        connection.connect(("127.0.0.1", self.port))
        return connection

    def _trickle(self) -> None:
        header = b"GET / HTTP/1.1\r\nHost: pcloud\r\nX-Slow: " + b"a" * 10_000
        position = 0
        while not self._stop.wait(1.0):
            byte = header[position % len(header) : position % len(header) + 1]
            position += 1
            for connection in self.slow:
                with contextlib.suppress(OSError):
                    connection.send(byte)

    def close(self) -> None:
        self._stop.set()
        self._trickler.join(timeout=5)
        for connection in self.idle + self.slow:
            connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--idle", type=int, default=5000)
    parser.add_argument("--slow", type=int, default=1000)
    parser.add_argument("--pcloud-args", default="")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.idle + args.slow + 100:
        sys.exit(f"this process may open {hard} files: too few for the hostile connections")
    run.ensure_tools(need_py_spy=False)
    options = run.Options(
        big_size=16 * run.MIB,
        rounds=args.rounds,
        load_seconds=args.seconds,
        only=["W4"],
        pcloud_args=args.pcloud_args.split(),
        profile_dir=None,
    )
    with tempfile.TemporaryDirectory(prefix="pcloud-hostile-") as folder:
        work = Path(folder)
        server = run.launch_pcloud(work, options)
        try:
            run.wait_until_ready(server)
            server.headers = run.pcloud_login(server, "bench")
            workloads = run.Workloads(work, options)
            workloads.prepare([server])
            workloads.warm_up("W4", server)
            plain, hostile = [], []
            for number in range(args.rounds):
                alone = workloads.w4(server)
                started = time.monotonic()
                held = Hostile(server.port, args.idle, args.slow)
                opened = time.monotonic() - started
                try:
                    time.sleep(1)  # every connection accepted
                    server.check_alive()
                    beside = workloads.w4(server)
                finally:
                    held.close()
                plain.append(alone["value"])
                hostile.append(beside["value"])
                print(
                    f"round {number + 1}: W4 alone {alone['value']:.0f}/s (p99 "
                    f"{alone['p99_ms']:.1f} ms); with {args.idle} idle + {args.slow} "
                    f"slow-header connections (opened in {opened:.1f} s) "
                    f"{beside['value']:.0f}/s (p99 {beside['p99_ms']:.1f} ms, "
                    f"non-2xx {beside['non_2xx']}, socket errors {beside['socket_errors']})",
                    flush=True,
                )
        finally:
            server.stop()
    ratio = statistics.median(hostile) / statistics.median(plain)
    print(
        f"\nW4 median: alone {statistics.median(plain):.0f}/s "
        f"(spread {min(plain):.0f}-{max(plain):.0f}), with hostile connections "
        f"{statistics.median(hostile):.0f}/s (spread {min(hostile):.0f}-{max(hostile):.0f}); "
        f"ratio {ratio:.2f} (target >= 0.8: {'met' if ratio >= 0.8 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
