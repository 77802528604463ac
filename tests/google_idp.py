"""A fake Google identity provider: signing keys, their certificates served over HTTP, ID tokens.

pcloud fetches the certificates from `GoogleIdP.url` exactly as it fetches Google's, so
Google sign-in is tested end to end without the network.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

CLIENT_ID = "test-client.apps.googleusercontent.com"
ISSUER = "https://accounts.google.com"


@functools.cache
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    """One RSA key per name for the whole run: generating keys is the slow part."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def certificate_pem(key: rsa.RSAPrivateKey) -> str:
    """A self-signed X.509 certificate for key, in PEM, as Google publishes them."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-google-idp")])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


class GoogleIdP:
    """Serves {kid: PEM certificate} on 127.0.0.1 and mints ID tokens signed by those keys."""

    def __init__(self, cache_control: str = "public, max-age=3600") -> None:
        self.kid = "key-1"
        self.key = rsa_key("google")
        self.certs = {self.kid: certificate_pem(self.key)}
        self.cache_control = cache_control
        self.status = 200  # set to e.g. 500 to make the next fetches fail
        self.delay = 0.0  # seconds each answer waits, as a slow network would
        self.requests = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/oauth2/v1/certs"
        # A short poll interval: shutdown() waits for the next poll.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        idp = self

        class CertsHandler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with idp._lock:
                    idp.requests += 1
                time.sleep(idp.delay)
                body = json.dumps(idp.certs).encode()
                self.send_response(idp.status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Cache-Control", idp.cache_control)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args) -> None:  # quiet
                pass

        return CertsHandler

    def rotate(self, kid: str, key: rsa.RSAPrivateKey) -> None:
        """Publish a new signing key in place of the old one, as Google does."""
        self.kid, self.key = kid, key
        self.certs = {kid: certificate_pem(key)}

    def claims(self, **overrides) -> dict:
        now = int(time.time())
        return {
            "iss": ISSUER,
            "aud": CLIENT_ID,
            "sub": "110248495921238986420",
            "email": "ann.smith@gmail.com",
            "email_verified": True,
            "iat": now,
            "exp": now + 3600,
            **overrides,
        }

    def token(self, key=None, kid: str | None = None, algorithm: str = "RS256", **claims) -> str:
        """An ID token with these claims (over the defaults), signed by key (ours by default)."""
        key = self.key if key is None else key
        return jwt.encode(
            self.claims(**claims),
            key,
            algorithm=algorithm,
            headers={"kid": self.kid if kid is None else kid},
        )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
