"""Google sign-in (POST /login/google) against a fake Google on 127.0.0.1: no network."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from types import SimpleNamespace

import jwt
import pytest

from pcloud.api import create_app
from pcloud.core import Pcloud
from pcloud.models import User
from pcloud.services import google_certificates
from tests.google_idp import CLIENT_ID, GoogleIdP, rsa_key


@pytest.fixture
def idp() -> Iterator[GoogleIdP]:
    provider = GoogleIdP()
    yield provider
    provider.close()


@pytest.fixture
def settings(settings, idp):
    """conftest's settings, with Google sign-in on and pointed at the fake Google."""
    return replace(settings, google_client_id=CLIENT_ID, google_certs_url=idp.url)


@pytest.mark.parametrize("payload", [b"{not json", b"[1, 2]", b'"text"', b"", b"\xff\xfe"])
def test_malformed_json_to_google_sign_in_is_400(client, payload):
    response = client.post("/login/google", data=payload, content_type="application/json")
    assert response.status_code == 400
    assert "error" in response.get_json()


def sign_in(client, token):
    return client.post("/login/google", json={"google_token": token})


def bearer(body: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {body['access_token']}"}


def token_subject(body: dict) -> str:
    """The user id our access token names (its signature is checked by other tests)."""
    return jwt.decode(body["access_token"], options={"verify_signature": False})["sub"]


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- Accounts ---------------------------------------------------------------------------


def test_first_sign_in_creates_an_account_and_returns_working_tokens(client, idp):
    response = sign_in(client, idp.token())
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"message", "access_token", "refresh_token"}
    user = User.get(User.google_sub == "110248495921238986420")
    assert user.email == "ann.smith@gmail.com"
    assert user.password_hash is None
    assert client.get("/files", headers=bearer(body)).status_code == 200
    refreshed = client.post("/token/refresh", json={"refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200


def test_the_username_is_the_email_local_part_lower_cased_without_dots_and_underscores(client, idp):
    assert sign_in(client, idp.token(email="John.Doe_99@gmail.com")).status_code == 200
    assert User.get(User.google_sub == idp.claims()["sub"]).username == "johndoe99"


def test_a_taken_username_gets_the_next_free_number(client, auth, idp):
    auth.register("johndoe", email="john@example.org")
    emails = ["john.doe@gmail.com", "JOHN_DOE@googlemail.com", "j.o.h.n.doe@example.com"]
    for number, email in enumerate(emails):
        assert sign_in(client, idp.token(sub=f"sub-{number}", email=email)).status_code == 200
    names = [User.get(User.google_sub == f"sub-{number}").username for number in range(3)]
    assert names == ["johndoe1", "johndoe2", "johndoe3"]


def test_signing_in_again_with_the_same_subject_returns_the_same_user(client, idp):
    first = sign_in(client, idp.token()).get_json()
    second = sign_in(client, idp.token(email="ann.renamed@gmail.com")).get_json()
    assert User.select().count() == 1
    assert token_subject(first) == token_subject(second) == str(User.get().id)


def test_both_users_see_their_own_files_after_google_sign_in(client, idp):
    ann = bearer(sign_in(client, idp.token(sub="ann", email="ann@gmail.com")).get_json())
    bob = bearer(sign_in(client, idp.token(sub="bob", email="bob@gmail.com")).get_json())
    upload = client.post("/upload", headers=ann, data={"file": (io.BytesIO(b"x"), "a.txt")})
    assert upload.status_code == 201
    assert client.get("/files", headers=bob).get_json() == []
    assert [f["filename"] for f in client.get("/files", headers=ann).get_json()] == ["a.txt"]


def test_an_email_of_a_password_account_is_409_account_exists_with_password(client, auth, idp):
    auth.register("ann", email="ann.smith@gmail.com")
    response = sign_in(client, idp.token(email="Ann.Smith@gmail.com"))
    assert response.status_code == 409
    body = response.get_json()
    assert set(body) == {"error", "message"}
    assert body["error"] == "account_exists_with_password"
    assert "password" in body["message"]
    assert User.get(User.username == "ann").google_sub is None
    assert User.select().count() == 1


# --- Refused tokens ---------------------------------------------------------------------


@pytest.mark.parametrize("body", [{}, {"google_token": ""}, {"google_token": None}])
def test_sign_in_without_a_token_is_400(client, body):
    response = client.post("/login/google", json=body)
    assert response.status_code == 400
    assert "google_token" in response.get_json()["error"]


def test_a_token_that_is_not_a_string_is_400(client):
    assert client.post("/login/google", json={"google_token": ["a.b.c"]}).status_code == 400


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"aud": "someone-else.apps.googleusercontent.com"}, id="wrong-audience"),
        pytest.param({"iss": "https://evil.example.com"}, id="wrong-issuer"),
        pytest.param({"iss": "accounts.google.com.evil.example"}, id="issuer-lookalike"),
        pytest.param({"email_verified": False}, id="email-not-verified"),
        pytest.param({"email_verified": "false"}, id="email-not-verified-text"),
        pytest.param({"sub": ""}, id="no-subject"),
    ],
)
def test_a_token_with_bad_claims_is_401(client, idp, claims):
    response = sign_in(client, idp.token(**claims))
    assert response.status_code == 401
    assert set(response.get_json()) == {"error"}
    assert User.select().count() == 0


def test_an_expired_token_is_401_expired(client, idp):
    now = int(time.time())
    response = sign_in(client, idp.token(iat=now - 7200, exp=now - 3600))
    assert response.status_code == 401
    assert "expired" in response.get_json()["error"]


def test_a_token_signed_by_another_key_under_the_same_kid_is_401(client, idp):
    response = sign_in(client, idp.token(key=rsa_key("attacker")))
    assert response.status_code == 401
    assert User.select().count() == 0


def test_an_unsigned_alg_none_token_is_401(client, idp):
    forged = jwt.encode(idp.claims(), None, algorithm="none", headers={"kid": idp.kid})
    assert sign_in(client, forged).status_code == 401


@pytest.mark.parametrize("guess", ["secret", CLIENT_ID, "key-1"])
def test_an_hs256_token_signed_with_a_guessed_secret_is_401(client, idp, guess):
    forged = jwt.encode(
        idp.claims(), guess.ljust(32, "!"), algorithm="HS256", headers={"kid": idp.kid}
    )
    assert sign_in(client, forged).status_code == 401


def test_an_hs256_token_keyed_with_the_published_certificate_is_401(client, idp):
    # The classic algorithm-confusion attack: HMAC keyed with the public certificate.
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": idp.kid}).encode())
    payload = b64(json.dumps(idp.claims()).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(idp.certs[idp.kid].encode(), signing_input, hashlib.sha256).digest()
    assert sign_in(client, f"{header}.{payload}.{b64(signature)}").status_code == 401


@pytest.mark.parametrize(
    "garbage", ["garbage", "a.b.c", "....", "eyJhbGciOiJSUzI1NiJ9.e30.", "x" * 5000]
)
def test_a_garbage_token_is_401(client, garbage):
    response = client.post("/login/google", json={"google_token": garbage})
    assert response.status_code == 401
    assert set(response.get_json()) == {"error"}


@pytest.mark.parametrize("issuer", ["accounts.google.com", "https://accounts.google.com"])
def test_both_google_issuers_are_accepted(client, idp, issuer):
    assert sign_in(client, idp.token(iss=issuer)).status_code == 200


# --- Google's certificates --------------------------------------------------------------


def test_the_certificates_are_fetched_once_and_kept_for_later_sign_ins(client, idp):
    for number in range(4):
        token = idp.token(sub=f"sub-{number}", email=f"user{number}@gmail.com")
        assert sign_in(client, token).status_code == 200
    assert idp.requests == 1


def test_an_unknown_kid_triggers_at_most_one_refetch(client, idp):
    assert sign_in(client, idp.token()).status_code == 200
    for _ in range(5):
        assert sign_in(client, idp.token(kid="no-such-key")).status_code == 401
    assert idp.requests <= 2


@pytest.fixture
def clock(monkeypatch):
    """Moves the certificate cache's clock (only that one) forward on request."""
    shift = SimpleNamespace(seconds=0.0)
    monkeypatch.setattr(
        google_certificates,
        "time",
        SimpleNamespace(monotonic=lambda: time.monotonic() + shift.seconds),
    )
    return shift


def test_a_rotated_key_is_picked_up_before_the_cache_expires(client, idp, clock):
    assert sign_in(client, idp.token()).status_code == 200
    idp.rotate("key-2", rsa_key("rotated"))
    clock.seconds = google_certificates.MIN_REFETCH_INTERVAL + 1  # well within max-age=3600
    assert sign_in(client, idp.token()).status_code == 200
    assert idp.requests == 2


def test_the_certificates_are_fetched_again_once_max_age_passes(client, idp, clock):
    assert sign_in(client, idp.token()).status_code == 200
    clock.seconds = 3601
    assert sign_in(client, idp.token()).status_code == 200
    assert idp.requests == 2


def test_cached_certificates_keep_working_when_a_refetch_fails(client, idp, clock):
    assert sign_in(client, idp.token()).status_code == 200
    idp.status = 500
    clock.seconds = google_certificates.MIN_REFETCH_INTERVAL + 1
    assert sign_in(client, idp.token(kid="no-such-key")).status_code == 401
    assert sign_in(client, idp.token()).status_code == 200


def test_unknown_kids_refetch_at_most_once_a_minute_even_when_fetching_fails(client, idp, clock):
    assert sign_in(client, idp.token()).status_code == 200
    idp.status = 500
    clock.seconds = google_certificates.MIN_REFETCH_INTERVAL + 1
    for _ in range(5):
        assert sign_in(client, idp.token(kid="no-such-key")).status_code == 401
    assert idp.requests == 2


# --- Not configured, or Google unreachable ----------------------------------------------


@pytest.fixture
def google_off_client(settings):
    instance = Pcloud.open(replace(settings, google_client_id=""))
    yield create_app(pcloud=instance).test_client()
    instance.close()


def test_without_a_client_id_google_sign_in_is_a_403_saying_it_is_not_enabled(
    google_off_client, idp
):
    response = sign_in(google_off_client, idp.token())
    assert response.status_code == 403
    assert set(response.get_json()) == {"error"}
    assert "Google sign-in is not enabled on this server" in response.get_json()["error"]
    assert idp.requests == 0


@pytest.mark.parametrize("body", [{}, {"google_token": ""}, {"google_token": 7}])
def test_without_a_client_id_a_request_without_a_token_is_still_400(google_off_client, body):
    response = google_off_client.post("/login/google", json=body)
    assert response.status_code == 400
    assert "google_token" in response.get_json()["error"]


def test_a_first_google_sign_in_is_refused_while_registration_is_closed(settings, idp):
    instance = Pcloud.open(replace(settings, registration="closed"))
    try:
        client = create_app(pcloud=instance).test_client()
        response = sign_in(client, idp.token(email="new@example.org"))
    finally:
        instance.close()
    assert response.status_code == 403
    assert "Registration is closed" in response.get_json()["error"]
    assert User.select().count() == 0


def test_a_first_google_sign_in_needs_an_email_registration_takes(settings, idp):
    instance = Pcloud.open(replace(settings, registration_emails=("*@family.example",)))
    try:
        client = create_app(pcloud=instance).test_client()
        refused = sign_in(client, idp.token(sub="1", email="stranger@example.org"))
        allowed = sign_in(client, idp.token(sub="2", email="kid@family.example"))
    finally:
        instance.close()
    assert refused.status_code == 403
    assert allowed.status_code == 200, allowed.get_json()
    assert [user.email for user in User.select()] == ["kid@family.example"]


@pytest.fixture
def unreachable_client(settings):
    url = f"http://127.0.0.1:{closed_port()}/oauth2/v1/certs"
    instance = Pcloud.open(replace(settings, google_certs_url=url))
    yield create_app(pcloud=instance).test_client()
    instance.close()


def test_unreachable_certificates_are_a_json_503_not_a_500(unreachable_client, idp):
    response = unreachable_client.post("/login/google", json={"google_token": idp.token()})
    assert response.status_code == 503
    assert response.mimetype == "application/json"
    assert "certificates" in response.get_json()["error"]
    assert User.select().count() == 0


@pytest.mark.parametrize("status", [500, 404])
def test_a_failing_certificate_host_is_a_json_503(client, idp, status):
    idp.status = status
    response = sign_in(client, idp.token())
    assert response.status_code == 503
    assert "error" in response.get_json()


def test_certificates_that_are_not_a_json_object_are_a_json_503(client, idp):
    idp.certs = ["not", "a", "mapping"]  # type: ignore[assignment]
    response = sign_in(client, idp.token())
    assert response.status_code == 503
    assert "error" in response.get_json()


# --- Sessions ---------------------------------------------------------------------------


def test_a_google_sign_in_is_a_session_of_its_own_that_can_be_revoked(client, idp):
    phone = client.post(
        "/login/google", json={"google_token": idp.token(), "device_name": "Pixel 8"}
    ).get_json()
    tablet = sign_in(client, idp.token()).get_json()
    listed = client.get("/sessions", headers=bearer(phone)).get_json()["sessions"]
    assert {entry["method"] for entry in listed} == {"google"}
    assert "Pixel 8" in {entry["device_name"] for entry in listed}
    tablet_id = client.get("/me", headers=bearer(tablet)).get_json()["session_id"]

    assert client.delete(f"/sessions/{tablet_id}", headers=bearer(phone)).status_code == 200
    assert client.get("/files", headers=bearer(tablet)).status_code == 401
    assert client.get("/files", headers=bearer(phone)).status_code == 200


def test_a_google_only_account_has_no_password_to_change(client, idp):
    body = sign_in(client, idp.token()).get_json()
    response = client.post(
        "/password", json={"old_password": "x", "new_password": "y"}, headers=bearer(body)
    )
    assert response.status_code == 400
    assert "Google" in response.get_json()["error"]


def test_a_disabled_google_account_cannot_sign_in(client, idp, runner):
    sign_in(client, idp.token())
    username = User.get(User.google_sub == "110248495921238986420").username
    assert runner.invoke("users", "disable", username).exit_code == 0
    assert sign_in(client, idp.token()).status_code == 403
