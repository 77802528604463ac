"""Device sessions: listing, revoking, signing out everywhere, password changes, refresh
rotation, disabled accounts, and the admin's `pcloud users sessions/revoke/disable`."""

from __future__ import annotations

import pytest

from pcloud.cli.common import USING
from pcloud.models import DeviceSession, RefreshToken, User
from pcloud.services import sessions

PASSWORD = "correct horse battery"


def sign_in(client, username="ann", device_name=None, user_agent="pytest-phone/1.0"):
    body = {"login_identifier": username, "password": PASSWORD}
    if device_name is not None:
        body["device_name"] = device_name
    response = client.post(
        "/login",
        json=body,
        headers={"User-Agent": user_agent},
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def bearer(tokens: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


@pytest.fixture
def ann(auth):
    auth.register("ann", password=PASSWORD)
    return "ann"


def test_each_sign_in_is_a_session_with_its_device_and_the_current_one_is_marked(client, ann):
    phone = sign_in(client, device_name="Pixel 8", user_agent="okhttp/4.12")
    laptop = sign_in(client, device_name="Laptop")

    response = client.get("/sessions", headers=bearer(phone))

    assert response.status_code == 200
    listed = response.get_json()["sessions"]
    assert [entry["device_name"] for entry in listed].count("Pixel 8") == 1
    by_device = {entry["device_name"]: entry for entry in listed}
    assert set(by_device) == {"Pixel 8", "Laptop"}
    assert by_device["Pixel 8"]["current"] is True
    assert by_device["Laptop"]["current"] is False
    assert by_device["Pixel 8"]["user_agent"] == "okhttp/4.12"
    assert by_device["Pixel 8"]["ip_address"] == "192.0.2.7"
    assert by_device["Pixel 8"]["method"] == "password"
    assert by_device["Pixel 8"]["created_at"].endswith("Z")
    assert (
        client.get("/me", headers=bearer(laptop)).get_json()["session_id"]
        == (by_device["Laptop"]["id"])
    )


def test_a_revoked_session_is_refused_on_its_very_next_request(client, ann):
    phone, laptop = sign_in(client, device_name="phone"), sign_in(client, device_name="laptop")
    assert client.get("/files", headers=bearer(phone)).status_code == 200  # token cached
    phone_id = client.get("/me", headers=bearer(phone)).get_json()["session_id"]

    response = client.delete(f"/sessions/{phone_id}", headers=bearer(laptop))

    assert response.status_code == 200
    refused = client.get("/files", headers=bearer(phone))
    assert refused.status_code == 401
    assert "revoked" in refused.get_json()["error"]
    refresh = client.post("/token/refresh", json={"refresh_token": phone["refresh_token"]})
    assert refresh.status_code == 401
    assert client.get("/files", headers=bearer(laptop)).status_code == 200


def test_revoking_all_sessions_can_keep_the_current_one(client, ann):
    first, second, third = (sign_in(client) for _ in range(3))

    response = client.post(
        "/sessions/revoke-all", json={"keep_current": True}, headers=bearer(first)
    )

    assert response.get_json()["revoked"] == 2
    assert client.get("/files", headers=bearer(first)).status_code == 200
    assert client.get("/files", headers=bearer(second)).status_code == 401
    assert client.get("/files", headers=bearer(third)).status_code == 401


def test_signing_out_everywhere_ends_the_current_session_too(client, ann):
    first, second = sign_in(client), sign_in(client)
    response = client.post("/sessions/revoke-all", json={}, headers=bearer(first))
    assert response.get_json()["revoked"] == 2
    assert client.get("/files", headers=bearer(first)).status_code == 401
    assert client.get("/files", headers=bearer(second)).status_code == 401


def test_logout_ends_the_session_of_its_refresh_token(client, ann):
    phone = sign_in(client)
    assert client.post("/logout", json={"refresh_token": phone["refresh_token"]}).status_code == 200
    assert client.get("/files", headers=bearer(phone)).status_code == 401


@pytest.mark.parametrize("session_id", ["nope", "0", "../../etc", "x" * 500, "%00"])
def test_revoking_an_unknown_or_malformed_session_is_404(client, ann, session_id):
    response = client.delete(f"/sessions/{session_id}", headers=bearer(sign_in(client)))
    assert response.status_code == 404
    assert "not found" in response.get_json()["error"].lower()


def test_another_users_session_cannot_be_seen_or_revoked(client, auth, ann):
    auth.register("bob", password=PASSWORD)
    bob = sign_in(client, "bob")
    bob_session = client.get("/me", headers=bearer(bob)).get_json()["session_id"]
    mallory = sign_in(client, "ann")

    listed = client.get("/sessions", headers=bearer(mallory)).get_json()["sessions"]
    response = client.delete(f"/sessions/{bob_session}", headers=bearer(mallory))

    assert bob_session not in {entry["id"] for entry in listed}
    assert response.status_code == 404
    assert client.get("/files", headers=bearer(bob)).status_code == 200


@pytest.mark.parametrize("route", ["/sessions", "/me"])
def test_session_routes_need_a_token(client, route):
    assert client.get(route).status_code == 401


@pytest.mark.parametrize(
    "body",
    [{"keep_current": "yes"}, {"keep_current": 1}, [], "text"],
)
def test_revoke_all_with_a_bad_body_is_400(client, ann, body):
    response = client.post("/sessions/revoke-all", json=body, headers=bearer(sign_in(client)))
    assert response.status_code == 400


@pytest.mark.parametrize("device_name", [5, ["phone"], "a\x07b", "x" * 101])
def test_a_bad_device_name_is_400(client, ann, device_name):
    response = client.post(
        "/login",
        json={"login_identifier": "ann", "password": PASSWORD, "device_name": device_name},
    )
    assert response.status_code == 400
    assert "device_name" in response.get_json()["error"]


# --- Password change ------------------------------------------------------------------


def test_changing_the_password_ends_every_other_session_and_keeps_this_one(client, ann):
    this, other = sign_in(client), sign_in(client)

    response = client.post(
        "/password",
        json={"old_password": PASSWORD, "new_password": "a new and better one"},
        headers=bearer(this),
    )

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["sessions_revoked"] == 1
    assert client.get("/files", headers=bearer(this)).status_code == 200
    assert client.get("/files", headers=bearer(other)).status_code == 401
    refreshed = client.post("/token/refresh", json={"refresh_token": this["refresh_token"]})
    assert refreshed.status_code == 200
    old = client.post("/login", json={"login_identifier": "ann", "password": PASSWORD})
    assert old.status_code == 401
    new = client.post(
        "/login", json={"login_identifier": "ann", "password": "a new and better one"}
    )
    assert new.status_code == 200


def test_changing_the_password_needs_the_old_one(client, ann):
    this, other = sign_in(client), sign_in(client)
    response = client.post(
        "/password",
        json={"old_password": "guess", "new_password": "whatever"},
        headers=bearer(this),
    )
    assert response.status_code == 401
    assert client.get("/files", headers=bearer(other)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"new_password": "x"},
        {"old_password": PASSWORD},
        {"old_password": PASSWORD, "new_password": 7},
        {"old_password": ["x"], "new_password": "y"},
    ],
)
def test_a_password_change_with_missing_or_bad_fields_is_400(client, ann, body):
    response = client.post("/password", json=body, headers=bearer(sign_in(client)))
    assert response.status_code == 400


# --- Refresh-token rotation ------------------------------------------------------------


def test_refresh_without_rotation_answers_as_the_contract_says(client, ann):
    phone = sign_in(client)
    response = client.post("/token/refresh", json={"refresh_token": phone["refresh_token"]})
    assert response.status_code == 200
    assert set(response.get_json()) == {"access_token"}
    assert response.headers["Cache-Control"] == "no-store"
    again = client.post("/token/refresh", json={"refresh_token": phone["refresh_token"]})
    assert again.status_code == 200


def test_rotation_gives_a_new_refresh_token_and_spends_the_old_one(client, ann):
    phone = sign_in(client)
    response = client.post(
        "/token/refresh", json={"refresh_token": phone["refresh_token"], "rotate": True}
    )
    assert response.status_code == 200
    rotated = response.get_json()
    assert set(rotated) == {"access_token", "refresh_token"}
    assert rotated["refresh_token"] != phone["refresh_token"]
    assert client.get("/files", headers=bearer(rotated)).status_code == 200
    next_one = client.post(
        "/token/refresh", json={"refresh_token": rotated["refresh_token"], "rotate": True}
    )
    assert next_one.status_code == 200


def test_a_rotated_out_refresh_token_presented_again_ends_the_whole_session(client, ann):
    phone = sign_in(client)
    rotated = client.post(
        "/token/refresh", json={"refresh_token": phone["refresh_token"], "rotate": True}
    ).get_json()

    # The thief replays the token it stole before the rotation.
    replay = client.post("/token/refresh", json={"refresh_token": phone["refresh_token"]})

    assert replay.status_code == 401
    assert "already used" in replay.get_json()["error"]
    assert client.get("/files", headers=bearer(rotated)).status_code == 401
    legit = client.post("/token/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert legit.status_code == 401
    session = DeviceSession.get()
    assert session.revoked_reason == "refresh token reused"


@pytest.mark.parametrize("rotate", ["true", 1, None, {}])
def test_rotate_must_be_a_boolean(client, ann, rotate):
    phone = sign_in(client)
    response = client.post(
        "/token/refresh", json={"refresh_token": phone["refresh_token"], "rotate": rotate}
    )
    assert response.status_code == 400


# --- Disabled accounts and the admin's commands -----------------------------------------


def test_a_disabled_users_tokens_stop_at_once_and_sign_in_is_refused(client, runner, ann):
    phone = sign_in(client)
    assert client.get("/files", headers=bearer(phone)).status_code == 200

    result = runner.invoke("users", "disable", "ann")

    assert result.exit_code == 0, result.output
    assert client.get("/files", headers=bearer(phone)).status_code == 401
    refresh = client.post("/token/refresh", json={"refresh_token": phone["refresh_token"]})
    assert refresh.status_code == 401
    refused = client.post("/login", json={"login_identifier": "ann", "password": PASSWORD})
    assert refused.status_code == 403
    assert "disabled" in refused.get_json()["error"]
    wrong = client.post("/login", json={"login_identifier": "ann", "password": "nope"})
    assert wrong.status_code == 401  # no hint to someone without the password

    assert runner.invoke("users", "enable", "ann").exit_code == 0
    assert client.get("/files", headers=bearer(phone)).status_code == 401  # stays ended
    assert client.get("/files", headers=bearer(sign_in(client))).status_code == 200


def test_admin_lists_and_revokes_one_session(client, runner, ann):
    phone, laptop = sign_in(client, device_name="Pixel 8"), sign_in(client, device_name="Laptop")
    phone_id = client.get("/me", headers=bearer(phone)).get_json()["session_id"]

    listed = runner.invoke("users", "sessions", "ann", env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert phone_id in listed.output and "Pixel 8" in listed.output and "Laptop" in listed.output

    revoked = runner.invoke("users", "revoke", "ann", "--session", phone_id)
    assert revoked.exit_code == 0, revoked.output
    assert client.get("/files", headers=bearer(phone)).status_code == 401
    assert client.get("/files", headers=bearer(laptop)).status_code == 200

    ended = runner.invoke("users", "sessions", "ann", "--all", env={"COLUMNS": "200"})
    assert "revoked" in ended.output


def test_admin_revokes_every_session(client, runner, ann):
    phone, laptop = sign_in(client), sign_in(client)
    result = runner.invoke("users", "revoke", "ann", "--all")
    assert result.exit_code == 0, result.output
    assert "2 session(s)" in result.output
    assert client.get("/files", headers=bearer(phone)).status_code == 401
    assert client.get("/files", headers=bearer(laptop)).status_code == 401


@pytest.mark.parametrize(
    "args",
    [
        ("users", "revoke", "ann"),
        ("users", "revoke", "ann", "--all", "--session", "x"),
    ],
)
def test_admin_revoke_needs_exactly_one_of_session_and_all(runner, ann, args):
    result = runner.invoke(*args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ("users", "revoke", "ann", "--session", "nope"),
        ("users", "revoke", "nobody", "--all"),
        ("users", "sessions", "nobody"),
        ("users", "disable", "nobody"),
    ],
)
def test_admin_session_commands_on_unknown_things_fail_in_one_line(runner, ann, args):
    result = runner.invoke(*args)
    assert result.exit_code == 1, result.output
    assert len(result.stderr.strip().splitlines()) == 2, result.output  # used ..., Error: ...
    assert result.stderr.startswith(USING), result.output


def test_admin_password_reset_ends_every_session(client, runner, ann):
    phone = sign_in(client)
    result = runner.invoke("users", "passwd", "ann", "--password", "reset by admin")
    assert result.exit_code == 0, result.output
    assert client.get("/files", headers=bearer(phone)).status_code == 401


# --- Upgrading a database from before sessions -------------------------------------------


def test_a_refresh_token_from_before_sessions_keeps_working_after_the_upgrade(
    client, pcloud, settings, ann
):
    import jwt

    from pcloud import schema
    from pcloud.models import utc_now

    user = User.get(User.username == "ann")
    legacy = RefreshToken.create(
        token_id="f" * 32, user=user.id, expires_at=utc_now().replace(year=utc_now().year + 1)
    )
    legacy_token = jwt.encode(
        {"sub": str(user.id), "typ": "refresh", "jti": legacy.token_id, "iat": 0, "exp": 2**40},
        settings.secret_key,
        algorithm="HS256",
    )
    schema.SchemaMigration.delete().execute()  # as if this database predated sessions

    schema.upgrade_schema(pcloud.database)

    assert RefreshToken.get_by_id(legacy.id).session is not None
    response = client.post("/token/refresh", json={"refresh_token": legacy_token})
    assert response.status_code == 200, response.get_json()
    assert client.get("/files", headers=bearer(response.get_json())).status_code == 200
    legacy_access = jwt.encode(
        {"sub": str(user.id), "typ": "access", "iat": 0, "exp": 2**40},
        settings.secret_key,
        algorithm="HS256",
    )
    refused = client.get("/files", headers={"Authorization": f"Bearer {legacy_access}"})
    assert refused.status_code == 401
    assert "refresh it" in refused.get_json()["error"]


def test_sessions_service_lists_only_live_sessions_unless_asked(client, ann):
    sign_in(client)
    gone = sign_in(client)
    client.post("/logout", json={"refresh_token": gone["refresh_token"]})
    user_id = User.get(User.username == "ann").id
    assert len(sessions.list_sessions(user_id)) == 1
    assert len(sessions.list_sessions(user_id, include_ended=True)) == 2


# --- The audit log --------------------------------------------------------------------


def test_pcloud_audit_shows_sign_ins_revocations_deletions_and_admin_actions(client, runner, ann):
    import io

    phone = sign_in(client, device_name="phone")
    client.post("/upload", headers=bearer(phone), data={"file": (io.BytesIO(b"x"), "gone.txt")})
    client.delete("/delete/gone.txt", headers=bearer(phone))
    client.post("/login", json={"login_identifier": "ann", "password": "nope"})
    runner.invoke("users", "revoke", "ann", "--all")
    runner.invoke("users", "disable", "ann")

    result = runner.invoke("audit", "--user", "ann", env={"COLUMNS": "250"})

    assert result.exit_code == 0, result.output
    for action in (
        "user-created",
        "sign-in",
        "file-deleted",
        "sign-in-failed",
        "sessions-revoked",
        "user-disabled",
    ):
        assert action in result.output, action
    assert "gone.txt" in result.output and "192.0.2.7" in result.output
    assert "admin" in result.output


def test_pcloud_audit_filters_by_time(client, runner, ann):
    sign_in(client)
    assert "sign-in" in runner.invoke("audit", "--since", "1h", env={"COLUMNS": "250"}).output
    future = runner.invoke("audit", "--since", "2999-01-01", env={"COLUMNS": "250"})
    assert future.exit_code == 0
    assert "0 event(s)" in future.output


@pytest.mark.parametrize(
    "args, code",
    [(("audit", "--since", "yesterday"), 2), (("audit", "--user", "nobody"), 1)],
)
def test_pcloud_audit_with_bad_options_fails_cleanly(runner, args, code):
    result = runner.invoke(*args)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output


def test_the_audit_log_outlives_the_deleted_user(client, runner, ann):
    sign_in(client)
    assert runner.invoke("users", "delete", "ann", "--yes").exit_code == 0
    result = runner.invoke("audit", env={"COLUMNS": "250"})
    assert "user-deleted" in result.output and "ann" in result.output


@pytest.mark.parametrize("route", ["/password", "/sessions/revoke-all"])
@pytest.mark.parametrize("payload", [b"{not json", b"[1, 2]", b'"text"', b"", b"\xff\xfe"])
def test_malformed_json_is_400_on_the_session_routes(client, ann, route, payload):
    response = client.post(
        route, data=payload, content_type="application/json", headers=bearer(sign_in(client))
    )
    assert response.status_code == 400
    assert "error" in response.get_json()
