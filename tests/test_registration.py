"""Who may make an account (REGISTRATION, REGISTRATION_EMAILS) and which passwords are
taken (PASSWORD_MIN_LENGTH, never the username or email), over the API."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pcloud import __version__
from pcloud.api import create_app
from pcloud.core import Pcloud
from pcloud.models import AuditEvent, User

GOOD_PASSWORD = "correct horse battery"


@pytest.fixture
def client_with(settings):
    """A test client of an app with these settings changed."""
    opened: list[Pcloud] = []

    def make(**changes):
        instance = Pcloud.open(replace(settings, **changes))
        opened.append(instance)
        return create_app(pcloud=instance).test_client()

    yield make
    for instance in opened:
        instance.close()


def register(client, username="ann", email="ann@example.org", password=GOOD_PASSWORD):
    return client.post(
        "/register", json={"username": username, "email": email, "password": password}
    )


# --- REGISTRATION -----------------------------------------------------------------------


def test_registration_is_open_by_default(client):
    assert register(client).status_code == 201


def test_closed_registration_refuses_with_403_and_makes_no_account(client_with):
    client = client_with(registration="closed")
    response = register(client)
    assert response.status_code == 403
    assert response.get_json() == {
        "error": "Registration is closed on this server: ask its admin for an account"
    }
    assert User.select().count() == 0
    assert AuditEvent.select().count() == 0


def test_the_server_tells_anyone_whether_registration_is_open(client, client_with):
    """GET /api/v1/server, signed out: what the web app's sign-in page asks before it
    shows its sign-up link."""
    answer = client.get("/api/v1/server")
    assert answer.status_code == 200
    assert answer.get_json()["registration"] is True
    assert answer.get_json()["google_sign_in"] is False
    closed = client_with(registration="closed", google_client_id="id.apps.example")
    assert closed.get("/api/v1/server").get_json() == {
        "name": "pcloud",
        "version": __version__,
        "registration": False,
        "google_sign_in": True,
    }


def test_closed_registration_still_validates_the_request_first(client_with):
    client = client_with(registration="closed")
    response = client.post("/register", json={"username": "ann"})
    assert response.status_code == 400


@pytest.mark.parametrize("email", ["kid@family.example", "KID@Family.Example", "gran@mail.example"])
def test_registration_emails_let_matching_addresses_register(client_with, email):
    client = client_with(registration_emails=("*@family.example", "gran@mail.example"))
    assert register(client, email=email).status_code == 201


@pytest.mark.parametrize(
    "email", ["stranger@example.org", "kid@family.example.evil.org", "gran2@mail.example"]
)
def test_registration_emails_refuse_every_other_address(client_with, email):
    client = client_with(registration_emails=("*@family.example", "gran@mail.example"))
    response = register(client, email=email)
    assert response.status_code == 403
    assert "email" in response.get_json()["error"]
    assert User.select().count() == 0


def test_the_contracts_409s_are_unchanged_while_registration_is_limited(client_with):
    client = client_with(registration_emails=("*@family.example",))
    assert register(client, "ann", "ann@family.example").status_code == 201
    taken_name = register(client, "ann", "other@family.example")
    assert taken_name.status_code == 409
    assert taken_name.get_json() == {"error": "Username already exists"}
    taken_email = register(client, "bob", "ann@family.example")
    assert taken_email.status_code == 409
    assert taken_email.get_json() == {"error": "Email already registered"}


# --- The password policy ----------------------------------------------------------------


@pytest.mark.parametrize("password", ["a", "1234567", "seven77"])
def test_register_refuses_a_password_under_8_characters(client, password):
    response = register(client, password=password)
    assert response.status_code == 400
    assert "at least 8 characters" in response.get_json()["error"]
    assert User.select().count() == 0


def test_eight_characters_are_enough(client):
    assert register(client, password="8chars!!").status_code == 201


def test_password_min_length_is_configurable(client_with):
    client = client_with(password_min_length=12)
    assert register(client, password="eleven char").status_code == 400
    assert register(client, password="twelve chars").status_code == 201


@pytest.mark.parametrize("password", ["annabelle", "ANNABELLE", "annabelle@example.org"])
def test_the_password_may_not_be_the_username_or_the_email(client, password):
    response = register(client, "annabelle", "annabelle@example.org", password)
    assert response.status_code == 400
    assert "username" in response.get_json()["error"]


def test_a_password_change_follows_the_policy(client, auth):
    tokens = auth.tokens("ann")
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    for new_password, status in (
        ("short", 400),
        ("ann@example.org", 400),
        ("long enough now", 200),
    ):
        response = client.post(
            "/password",
            json={"old_password": "correct horse battery", "new_password": new_password},
            headers=headers,
        )
        assert response.status_code == status, response.get_json()
        if status == 400:
            assert "new_password" in response.get_json()["error"]
