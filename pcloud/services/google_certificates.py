"""Google's signing certificates for ID tokens, fetched once and kept for as long as
Google's Cache-Control allows (refetched early, at most once a minute, when a token names
a key we do not have: Google rotates its keys).

A module of its own, with no imports of the rest of pcloud's domain: every Pcloud (each CLI
command's too) holds one, and the sign-in code (pcloud.services.google) is only imported
where a token is checked.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pcloud.errors import ServiceUnavailable

if TYPE_CHECKING:
    import requests

DEFAULT_MAX_AGE = 3600
MIN_REFETCH_INTERVAL = 60


class GoogleCertificates:
    """Google's signing certificates (key id -> PEM), cached per Cache-Control max-age."""

    def __init__(self, url: str, session: requests.Session | None = None) -> None:
        self.url = url
        self._session = session
        self._lock = threading.Lock()
        self._certs: dict[str, str] = {}
        self._expires = 0.0
        self._fetched = -MIN_REFETCH_INTERVAL * 2.0
        self.fetch_count = 0

    def for_key(self, key_id: str | None) -> Mapping[str, str]:
        with self._lock:
            now = time.monotonic()
            stale = now >= self._expires
            unknown_key = key_id not in self._certs and now - self._fetched > MIN_REFETCH_INTERVAL
            if stale or unknown_key:
                self._fetch(now)
            return dict(self._certs)

    def _fetch(self, now: float) -> None:
        import requests

        self._fetched = now  # a failed fetch counts too: never hammer a host that is down
        if self._session is None:
            self._session = requests.Session()
        try:
            response = self._session.get(self.url, timeout=10)
            response.raise_for_status()
            certs = response.json()
        except (requests.RequestException, ValueError) as error:
            if self._certs and now < self._expires:
                return
            raise ServiceUnavailable(
                f"Cannot fetch Google's sign-in certificates: {type(error).__name__}"
            ) from None
        if not isinstance(certs, dict):
            raise ServiceUnavailable("Google's sign-in certificates are not a JSON object")
        self._certs = {str(kid): str(pem) for kid, pem in certs.items()}
        self._expires = now + _max_age(response.headers.get("Cache-Control", ""))
        self.fetch_count += 1


def _max_age(cache_control: str) -> int:
    match = re.search(r"max-age=(\d+)", cache_control)
    return int(match.group(1)) if match else DEFAULT_MAX_AGE
