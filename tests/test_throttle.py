"""Brute-force protection: failed sign-ins throttled per account and per client IP."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pcloud.api import create_app
from pcloud.core import Pcloud
from pcloud.models import AuditEvent, utc_now
from pcloud.services import throttle

PASSWORD = "correct horse battery"
ATTACKER = "203.0.113.66"
OWNER = "198.51.100.10"


def attempt(client, identifier="ann", password="wrong", ip=ATTACKER):
    return client.post(
        "/login",
        json={"login_identifier": identifier, "password": password},
        environ_base={"REMOTE_ADDR": ip},
    )


@pytest.fixture
def ann(auth):
    auth.register("ann", password=PASSWORD)


def test_fifty_wrong_passwords_from_one_ip_get_429_with_retry_after(client, ann):
    statuses = []
    for _ in range(50):
        response = attempt(client)
        statuses.append(response.status_code)
        if response.status_code == 429:
            retry_after = int(response.headers["Retry-After"])
            assert 1 <= retry_after <= 15 * 60
            assert response.get_json()["retry_after"] == retry_after
    assert set(statuses) == {401, 429}
    assert statuses[:5] == [401] * 5
    assert statuses[-1] == 429
    # Throttled attempts are refused before the password is looked at.
    assert attempt(client, password=PASSWORD).status_code == 429


def test_the_owner_on_another_ip_still_gets_in_during_an_attack(client, ann):
    for _ in range(50):
        attempt(client)
    response = attempt(client, password=PASSWORD, ip=OWNER)
    assert response.status_code == 200, response.get_json()


def test_the_throttle_survives_a_restart(client, ann, settings):
    for _ in range(10):
        attempt(client)
    restarted = Pcloud.open(settings)
    try:
        fresh_client = create_app(pcloud=restarted).test_client()
        response = attempt(fresh_client, password=PASSWORD)
        assert response.status_code == 429
    finally:
        restarted.close()


def test_an_unknown_account_is_answered_exactly_like_a_real_one(client, ann):
    real = [attempt(client, "ann").status_code for _ in range(12)]
    unknown = [attempt(client, "nobody", ip="203.0.113.99").status_code for _ in range(12)]
    assert real == unknown
    assert 429 in real


def test_a_successful_sign_in_clears_the_accounts_failures(client, ann):
    for _ in range(4):
        assert attempt(client).status_code == 401
    assert attempt(client, password=PASSWORD).status_code == 200
    for _ in range(5):
        assert attempt(client).status_code == 401


def test_the_delay_grows_with_failures_and_is_capped():
    rule = throttle.RULES[throttle.ACCOUNT_IP]
    delays = [rule.delay(failures) for failures in range(1, 40)]
    assert delays[: rule.free_failures] == [0] * rule.free_failures
    assert delays[rule.free_failures : rule.free_failures + 4] == [1, 2, 4, 8]
    assert delays == sorted(delays)
    assert max(delays) == rule.max_delay


def test_failures_from_many_addresses_delay_the_account_by_a_bounded_time(pcloud):
    now = utc_now()
    account = throttle.account_key(None, "ann")
    with pcloud.database.connection_context():
        for number in range(60):
            throttle.record_failure(throttle.keys_for(account, f"192.0.2.{number}"), now)
        with pytest.raises(Exception) as refused:
            throttle.check(throttle.keys_for(account, OWNER), now)
        assert refused.value.status == 429
        assert refused.value.retry_after <= throttle.RULES[throttle.ACCOUNT].max_delay
        # ... and that time passes.
        later = now + timedelta(seconds=throttle.RULES[throttle.ACCOUNT].max_delay + 1)
        throttle.check(throttle.keys_for(account, OWNER), later)


def test_failures_are_forgotten_after_a_quiet_hour(pcloud):
    now = utc_now()
    keys = throttle.keys_for(throttle.account_key(None, "ann"), ATTACKER)
    with pcloud.database.connection_context():
        for _ in range(8):
            throttle.record_failure(keys, now)
        later = now + timedelta(hours=2)
        throttle.record_failure(keys, later)
        throttle.check(keys, later)  # one failure after the quiet hour: not locked


def test_failed_and_successful_sign_ins_are_audited_with_the_ip(client, ann):
    attempt(client)
    attempt(client, "nobody")
    attempt(client, password=PASSWORD, ip=OWNER)
    events = list(AuditEvent.select().order_by(AuditEvent.id))
    failed = [event for event in events if event.action == "sign-in-failed"]
    assert [(event.username, event.ip_address) for event in failed] == [
        ("ann", ATTACKER),
        ("nobody", ATTACKER),
    ]
    assert failed[1].user_id is None
    signed_in = [event for event in events if event.action == "sign-in"]
    assert [(event.username, event.ip_address) for event in signed_in] == [("ann", OWNER)]


def test_wrong_old_passwords_in_a_password_change_are_throttled_too(client, ann):
    tokens = attempt(client, password=PASSWORD, ip=OWNER).get_json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    statuses = [
        client.post(
            "/password",
            json={"old_password": "guess", "new_password": "a new long password"},
            headers=headers,
            environ_base={"REMOTE_ADDR": ATTACKER},
        ).status_code
        for _ in range(10)
    ]
    assert statuses[0] == 401
    assert statuses[-1] == 429
