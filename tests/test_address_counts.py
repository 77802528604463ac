"""limits.AddressCounts: connections per client address, counted by all workers together.
(The running server's limit is tested in test_hostile_clients.py.)"""

from __future__ import annotations

from pcloud.server.limits import AddressCounts


def addresses(count: int) -> list[str]:
    return [f"10.{n // 65536}.{n // 256 % 256}.{n % 256}" for n in range(count)]


def test_a_thousand_addresses_are_each_counted_as_themselves():
    """One table of 65,536 buckets counted colliding addresses as one client: in CI two
    of 100 addresses shared a bucket, 35 + 35 connections read 70 against a limit of
    64, and six were refused. A thousand addresses collide in one table almost surely."""
    counts = AddressCounts(workers=2)
    everyone = addresses(1000)
    counts.become_worker(1)
    for address in everyone:
        counts.add(counts.bucket(address), 35)
    assert {address: counts.held(counts.bucket(address)) for address in everyone} == {
        address: 35 for address in everyone
    }


def test_an_address_is_never_counted_below_what_it_holds():
    """Tables so small that every bucket is shared still bound each address (the count
    is over, never under)."""
    counts = AddressCounts(workers=2, buckets=8)
    held = {address: number % 7 + 1 for number, address in enumerate(addresses(50))}
    for slot in (0, 1):
        counts.become_worker(slot)
        for address, number in held.items():
            counts.add(counts.bucket(address), number)
    for address, number in held.items():
        assert counts.held(counts.bucket(address)) >= 2 * number


def test_all_workers_rows_are_summed_and_a_new_worker_starts_its_row_at_zero():
    counts = AddressCounts(workers=3)
    bucket = counts.bucket("192.0.2.7")
    for slot in (0, 1, 2):
        counts.become_worker(slot)
        counts.add(bucket, 10)
    assert counts.held(bucket) == 30
    counts.add(bucket, -4)  # closed in the worker of slot 2
    assert counts.held(bucket) == 26
    counts.become_worker(1)  # its worker died; the replacement starts afresh
    assert counts.held(bucket) == 16
