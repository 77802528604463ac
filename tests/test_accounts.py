"""Accounts and tokens: /register, /login, /token/refresh, /logout and the Bearer check."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import jwt
import pytest

from pcloud.models import User
from pcloud.services import sessions, tokens

JSON_ROUTES = ["/register", "/login", "/login/google", "/token/refresh", "/logout", "/rename"]
MALFORMED_JSON = [b"{not json", b"[1, 2]", b'"text"', b"", b"\xff\xfe"]


def test_root_says_the_server_is_running(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert "running" in response.get_data(as_text=True)


def test_register_creates_the_user(auth):
    response = auth.register("ann")
    assert response.status_code == 201
    assert response.get_json() == {"message": "User 'ann' created successfully."}
    assert User.get(User.username == "ann").email == "ann@example.org"


@pytest.mark.parametrize("missing", ["username", "email", "password"])
def test_register_without_a_field_is_400(client, missing):
    body = {"username": "ann", "email": "ann@example.org", "password": "long enough pw"}
    del body[missing]
    response = client.post("/register", json=body)
    assert response.status_code == 400
    assert missing in response.get_json()["error"]


def test_register_with_a_taken_username_is_409(auth):
    auth.register("ann", email="one@example.org")
    response = auth.register("ann", email="two@example.org")
    assert response.status_code == 409
    assert "Username" in response.get_json()["error"]


def test_register_with_a_taken_email_is_409_whatever_its_case(auth):
    auth.register("ann", email="ann@example.org")
    response = auth.register("bob", email="ANN@Example.org")
    assert response.status_code == 409
    assert "Email" in response.get_json()["error"]


@pytest.mark.parametrize(
    "body",
    [
        {"username": 5, "email": "a@example.org", "password": "long enough pw"},
        {"username": "ann", "email": ["a@example.org"], "password": "long enough pw"},
        {"username": "ann", "email": "a@example.org", "password": {"x": 1}},
        {"username": "ann", "email": "not-an-email", "password": "long enough pw"},
        {"username": "a/b", "email": "a@example.org", "password": "long enough pw"},
        {"username": "a\x00b", "email": "a@example.org", "password": "long enough pw"},
        {"username": "x" * 151, "email": "a@example.org", "password": "long enough pw"},
    ],
)
def test_register_with_a_wrong_type_or_shape_is_400(client, body):
    response = client.post("/register", json=body)
    assert response.status_code == 400
    assert "error" in response.get_json()
    assert User.select().count() == 0


# (/login/google: in test_google.py, where Google sign-in is on.)
@pytest.mark.parametrize("route", [route for route in JSON_ROUTES if route != "/login/google"])
@pytest.mark.parametrize("payload", MALFORMED_JSON)
def test_malformed_json_is_400_on_every_json_route(client, auth, route, payload):
    method = client.put if route == "/rename" else client.post
    response = method(
        route,
        data=payload,
        content_type="application/json",
        headers=auth.headers() if route == "/rename" else {},
    )
    assert response.status_code == 400
    assert "error" in response.get_json()


def test_a_huge_json_body_is_refused_with_413(client):
    body = '{"username": "' + "a" * 100_000 + '"}'
    response = client.post("/register", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"] == "JSON body is larger than 64 KiB"
    assert "error" in response.get_json()


def test_login_with_username_or_email_returns_both_tokens(auth):
    auth.register("ann", email="ann@example.org")
    for identifier in ("ann", "ann@example.org", "ANN@example.org"):
        response = auth.login(identifier)
        assert response.status_code == 200
        body = response.get_json()
        assert set(body) == {"message", "access_token", "refresh_token"}
        assert body["access_token"] != body["refresh_token"]


@pytest.mark.parametrize(
    ("identifier", "password"),
    [("ann", "wrong"), ("nobody", "correct horse battery"), ("ANN", "correct horse battery")],
)
def test_login_with_bad_credentials_is_401_invalid_credentials(auth, identifier, password):
    auth.register("ann")
    response = auth.login(identifier, password)
    assert response.status_code == 401
    assert response.get_json() == {"error": "Invalid credentials"}


@pytest.mark.parametrize("missing", ["login_identifier", "password"])
def test_login_without_a_field_is_400(client, missing):
    body = {"login_identifier": "ann", "password": "pw"}
    del body[missing]
    assert client.post("/login", json=body).status_code == 400


def test_login_with_non_string_fields_is_400(client):
    response = client.post("/login", json={"login_identifier": ["ann"], "password": 1})
    assert response.status_code == 400


def test_passwords_are_hashed_and_never_truncated(auth):
    long_password = "p" * 100 + "A"
    auth.register("ann", password=long_password)
    stored = User.get(User.username == "ann").password_hash
    assert long_password not in stored and stored.startswith("scrypt:")
    assert auth.login("ann", long_password).status_code == 200
    assert auth.login("ann", "p" * 100 + "B").status_code == 401
    assert auth.login("ann", "p" * 72).status_code == 401


def test_refresh_token_gives_a_new_access_token(client, auth):
    refresh_token = auth.tokens()["refresh_token"]
    response = client.post("/token/refresh", json={"refresh_token": refresh_token})
    assert response.status_code == 200
    access_token = response.get_json()["access_token"]
    assert set(response.get_json()) == {"access_token"}
    files = client.get("/files", headers={"Authorization": f"Bearer {access_token}"})
    assert files.status_code == 200


def test_refresh_without_token_is_400(client):
    assert client.post("/token/refresh", json={}).status_code == 400


def test_access_token_is_refused_as_refresh_token(client, auth):
    access_token = auth.tokens()["access_token"]
    response = client.post("/token/refresh", json={"refresh_token": access_token})
    assert response.status_code == 401


def test_refresh_token_is_refused_as_access_token(client, auth):
    refresh_token = auth.tokens()["refresh_token"]
    response = client.get("/files", headers={"Authorization": f"Bearer {refresh_token}"})
    assert response.status_code == 401


def test_expired_refresh_token_is_401(client, auth, settings, monkeypatch):
    auth.register()
    short = replace(settings, refresh_token_lifetime=-10)
    user = User.get(User.username == "ann")
    pair = sessions.start(short, user, "password", sessions.Client())
    response = client.post("/token/refresh", json={"refresh_token": pair.refresh_token})
    assert response.status_code == 401
    assert "expired" in response.get_json()["error"]


def test_refresh_for_a_deleted_user_is_401(client, auth, pcloud):
    refresh_token = auth.tokens()["refresh_token"]
    User.delete().where(User.username == "ann").execute()
    response = client.post("/token/refresh", json={"refresh_token": refresh_token})
    assert response.status_code == 401


def test_logout_revokes_the_refresh_token(client, auth):
    refresh_token = auth.tokens()["refresh_token"]
    assert client.post("/logout", json={"refresh_token": refresh_token}).status_code == 200
    response = client.post("/token/refresh", json={"refresh_token": refresh_token})
    assert response.status_code == 401
    assert "revoked" in response.get_json()["error"]
    assert client.post("/logout", json={"refresh_token": refresh_token}).status_code == 401


def test_logout_with_an_unknown_refresh_token_is_401(client, settings):
    forged = jwt.encode(
        {"sub": "1", "typ": "refresh", "jti": "0" * 32, "iat": 0, "exp": 2**40},
        settings.secret_key,
        algorithm="HS256",
    )
    assert client.post("/logout", json={"refresh_token": forged}).status_code == 401


# --- The Bearer check on authenticated routes -------------------------------------------


def _claims(**overrides):
    now = datetime.now(timezone.utc)
    return {"sub": "1", "typ": "access", "iat": now, "exp": now + timedelta(hours=1), **overrides}


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic YW5uOnB3",
        "Bearer not.a.jwt",
        "Bearer a b",
    ],
)
def test_missing_or_malformed_authorization_is_401_json(client, header):
    headers = {} if header is None else {"Authorization": header}
    response = client.get("/files", headers=headers)
    assert response.status_code == 401
    assert set(response.get_json()) == {"error"}


def test_a_valid_token_under_another_scheme_is_401(client, auth):
    access_token = auth.tokens()["access_token"]
    for scheme in ("Token", "JWT", "Basic"):
        response = client.get("/files", headers={"Authorization": f"{scheme} {access_token}"})
        assert response.status_code == 401


def test_expired_access_token_is_401(client, auth, settings):
    auth.register()
    expired = jwt.encode(
        _claims(exp=datetime.now(timezone.utc) - timedelta(seconds=5)),
        settings.secret_key,
        algorithm="HS256",
    )
    response = client.get("/files", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert "expired" in response.get_json()["error"]


def test_token_signed_with_another_key_is_401(client, auth):
    auth.register()
    forged = jwt.encode(_claims(), "some-other-key-of-sufficient-length", algorithm="HS256")
    assert client.get("/files", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_unsigned_alg_none_token_is_401(client, auth):
    auth.register()
    forged = jwt.encode(_claims(), None, algorithm="none")
    assert client.get("/files", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_token_of_a_deleted_user_is_401(client, auth):
    headers = auth.headers()
    User.delete().where(User.username == "ann").execute()
    response = client.get("/files", headers=headers)
    assert response.status_code == 401
    assert "no longer exists" in response.get_json()["error"]


def test_access_tokens_live_as_configured(auth, settings):
    access_token = auth.tokens()["access_token"]
    claims = jwt.decode(access_token, settings.secret_key, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == settings.access_token_lifetime


def test_every_user_sees_only_their_own_files(client, auth):
    ann = auth.headers("ann")
    bob = auth.headers("bob")
    client.post("/upload", headers=ann, data={"file": (__import__("io").BytesIO(b"x"), "a.txt")})
    assert client.get("/files", headers=bob).get_json() == []
    assert client.get("/download/a.txt", headers=bob).status_code == 404
    assert client.delete("/delete/a.txt", headers=bob).status_code == 404
    rename = client.put(
        "/rename", headers=bob, json={"old_filename": "a.txt", "new_filename": "b.txt"}
    )
    assert rename.status_code == 404
    assert [f["filename"] for f in client.get("/files", headers=ann).get_json()] == ["a.txt"]


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/login", {"login_identifier": "ann\x00", "password": "pw"}),
        ("/login", {"login_identifier": "ann", "password": "p\x00w"}),
        (
            "/register",
            {"username": "bob", "email": "b\x00b@example.org", "password": "long enough pw"},
        ),
        ("/token/refresh", {"refresh_token": "x\x00y"}),
    ],
)
def test_nul_characters_in_json_fields_are_400_not_500(client, auth, route, body):
    auth.register()
    response = client.post(route, json=body)
    assert response.status_code == 400
    assert "NUL" in response.get_json()["error"]


def test_a_cached_access_token_is_still_refused_once_it_expires(
    client, auth, settings, monkeypatch
):
    auth.register()
    user = User.get(User.username == "ann")
    short = replace(settings, access_token_lifetime=60)
    token = sessions.start(short, user, "password", sessions.Client()).access_token
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/files", headers=headers).status_code == 200  # now verified and cached
    later = __import__("time").time() + 120
    monkeypatch.setattr(tokens.time, "time", lambda: later)
    monkeypatch.setattr(jwt.api_jwt, "datetime", _FrozenDatetime(later))
    response = client.get("/files", headers=headers)
    assert response.status_code == 401
    assert "expired" in response.get_json()["error"]


class _FrozenDatetime:
    """Stands in for the datetime module inside PyJWT, so its clock reads `at`."""

    def __init__(self, at: float) -> None:
        self._at = at

    def __getattr__(self, name):
        return getattr(datetime, name)

    def now(self, tz=None):
        return datetime.fromtimestamp(self._at, tz)


@pytest.mark.parametrize(
    ("method", "route", "field", "others"),
    [
        ("post", "/register", "username", {"email": "a@example.org", "password": "long enough pw"}),
        ("post", "/login", "login_identifier", {"password": "pw"}),
        ("post", "/token/refresh", "refresh_token", {}),
        ("post", "/logout", "refresh_token", {}),
        ("put", "/rename", "old_filename", {"new_filename": "b.txt"}),
        ("put", "/rename", "new_filename", {"old_filename": "a.txt"}),
    ],
)
@pytest.mark.parametrize("wrong", [42, 1.5, True, ["text"], {"text": 1}])
def test_a_field_of_the_wrong_type_is_400_on_every_json_route(
    client, auth, method, route, field, others, wrong
):
    headers = auth.headers() if route == "/rename" else {}
    response = getattr(client, method)(route, headers=headers, json={**others, field: wrong})
    assert response.status_code == 400
    assert field in response.get_json()["error"]


def test_a_sign_in_for_no_account_costs_a_hash_made_as_accounts_are(client, settings, monkeypatch):
    """No account of that name: the password is still checked, against a hash of the
    settings' PASSWORD_HASH, so the time taken tells nothing (a cheaper or dearer dummy
    than the accounts' hashes would tell which names exist)."""
    from werkzeug.security import generate_password_hash

    from pcloud.services import users

    checked = []
    check = users.check_password_hash
    monkeypatch.setattr(
        users,
        "check_password_hash",
        lambda hashed, given: checked.append(hashed) or check(hashed, given),
    )
    answer = client.post("/login", json={"login_identifier": "nobody", "password": "any password"})
    assert answer.status_code == 401
    accounts_method = generate_password_hash("x", method=settings.password_hash).split("$")[0]
    assert [hashed.split("$")[0] for hashed in checked] == [accounts_method]
