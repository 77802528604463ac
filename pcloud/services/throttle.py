"""Slowing down password guessing, per account and per client IP.

Failures are counted in the database, so the limits hold across restarts and across every
`pcloud serve` process. Three counters see each failed sign-in:

- account-ip: one account from one address. The guesser's own counter: after a few free
  failures each further one locks that pair for a time that doubles, up to 15 minutes.
- ip: every account from one address (credential stuffing): more free failures, the
  same growth.
- account: one account from anywhere (a guesser with many addresses). Its delay is
  capped at a minute, so that an attacker can slow the owner down, signing in from
  their own address, but never lock them out.

An unknown account is counted exactly like a real one: the answers (401, then 429 with
Retry-After) never tell whether the account exists. A successful sign-in clears the
account's counters; a counter with no failure for an hour starts again from zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import reduce
from operator import or_

import peewee

from pcloud.errors import TooManyRequests
from pcloud.models import SignInThrottle, User, database_proxy, micros, utc_now

ACCOUNT_IP = "account-ip"
IP = "ip"
ACCOUNT = "account"
MAX_KEY_LENGTH = 400


@dataclass(frozen=True)
class Rule:
    free_failures: int
    max_delay: int  # seconds
    forget_after: int = 3600  # seconds without a failure after which counting restarts

    def delay(self, failures: int) -> int:
        """Seconds locked after this many failures in a row."""
        if failures <= self.free_failures:
            return 0
        return int(min(2 ** min(failures - self.free_failures - 1, 30), self.max_delay))


RULES = {
    ACCOUNT_IP: Rule(free_failures=5, max_delay=15 * 60),
    IP: Rule(free_failures=20, max_delay=15 * 60),
    ACCOUNT: Rule(free_failures=20, max_delay=60),
}

Key = tuple[str, str]


def account_key(user: User | None, login_identifier: str) -> str:
    """One key per account whichever identifier names it; the identifier itself if none."""
    if user is not None:
        return f"user:{user.id}"
    return f"name:{login_identifier.strip().casefold()}"[:MAX_KEY_LENGTH]


def keys_for(account: str, ip_address: str | None) -> list[Key]:
    keys = [(ACCOUNT, account)]
    if ip_address:
        keys += [(ACCOUNT_IP, f"{account}|{ip_address}"[:MAX_KEY_LENGTH]), (IP, ip_address)]
    return keys


def _matching(keys: list[Key]) -> peewee.Expression:
    return reduce(
        or_, ((SignInThrottle.scope == scope) & (SignInThrottle.key == key) for scope, key in keys)
    )


def check(keys: list[Key], now: datetime | None = None) -> None:
    """Raise TooManyRequests (429, with Retry-After) while any of the keys is locked."""
    now = now or utc_now()
    locked_until = (
        SignInThrottle.select(peewee.fn.MAX(SignInThrottle.locked_until).coerce(False))
        .where(_matching(keys))
        .scalar()
    )
    now_micros = micros(now)
    if locked_until is not None and locked_until > now_micros:
        retry_after = max(1, math.ceil((locked_until - now_micros) / 1_000_000))
        raise TooManyRequests(
            f"Too many failed sign-ins: try again in {retry_after} seconds",
            retry_after=retry_after,
        )


def record_failure(keys: list[Key], now: datetime | None = None) -> None:
    """Count one failed sign-in against every key (call inside a transaction)."""
    now = now or utc_now()
    for scope, key in keys:
        rule = RULES[scope]
        forget_before = now - timedelta(seconds=rule.forget_after)
        # One statement, so that concurrent failures in several processes all count.
        SignInThrottle.insert(
            scope=scope, key=key, failures=1, last_failure_at=now, locked_until=None
        ).on_conflict(
            conflict_target=[SignInThrottle.scope, SignInThrottle.key],
            update={
                SignInThrottle.failures: peewee.Case(
                    None,
                    [(SignInThrottle.last_failure_at < micros(forget_before), 1)],
                    SignInThrottle.failures + 1,
                ),
                SignInThrottle.last_failure_at: micros(now),
            },
        ).execute()
        failures = (
            SignInThrottle.select(SignInThrottle.failures)
            .where((SignInThrottle.scope == scope) & (SignInThrottle.key == key))
            .scalar()
        )
        delay = rule.delay(failures)
        if delay:
            SignInThrottle.update(locked_until=now + timedelta(seconds=delay)).where(
                (SignInThrottle.scope == scope) & (SignInThrottle.key == key)
            ).execute()


def clear_account(keys: list[Key]) -> None:
    """Forget the failures counted against an account, after its owner signed in."""
    account_keys = [(scope, key) for scope, key in keys if scope != IP]
    with database_proxy.atomic():
        SignInThrottle.delete().where(_matching(account_keys)).execute()


def purge_stale(now: datetime | None = None) -> int:
    """Drop counters whose failures are forgotten and whose lock has ended (for gc)."""
    now = now or utc_now()
    longest = max(rule.forget_after for rule in RULES.values())
    cutoff = now - timedelta(seconds=longest)
    return int(
        SignInThrottle.delete()
        .where(
            (SignInThrottle.last_failure_at < cutoff)
            & (SignInThrottle.locked_until.is_null() | (SignInThrottle.locked_until < now))
        )
        .execute()
    )
