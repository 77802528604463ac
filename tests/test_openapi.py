"""The OpenAPI document stays true: every route in it and nothing else, real answers match
its schemas, and schemathesis finds no server error in a running `pcloud serve`."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema_rs
import pytest

from pcloud.api import openapi
from tests.conftest import fresh_database_url, make_settings
from tests.google_idp import CLIENT_ID, GoogleIdP

ROOT = Path(__file__).resolve().parent.parent

AUTOMATIC = {"HEAD", "OPTIONS"}  # Flask adds these to every route by itself


def documented_operations(document: dict) -> set[tuple[str, str]]:
    return {
        (path, method.upper())
        for path, operations in document["paths"].items()
        for method in operations
    }


def app_operations(app) -> set[tuple[str, str]]:
    operations = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", r"{\1}", rule.rule)
        explicit = set(rule.methods) - AUTOMATIC
        # tus declares HEAD and OPTIONS itself (also under a file drop link)
        if rule.endpoint.startswith(("tus.", "share_pages.drop_")):
            explicit = set(rule.methods) - (
                {"OPTIONS"} if not rule.endpoint.endswith("discover") else set()
            )
            explicit -= {"HEAD"} if not rule.endpoint.endswith("status") else set()
        operations |= {(path, method) for method in explicit}
    return operations


def test_every_route_is_documented_and_every_documented_route_exists(client, app):
    document = client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    assert documented_operations(document) == app_operations(app)


def test_metrics_are_documented_only_when_they_are_on():
    assert "/metrics" not in openapi.document()["paths"]
    assert "/metrics" in openapi.document(metrics=True)["paths"]


def answer_schema(document: dict, path: str, method: str, status: int) -> dict:
    answer = document["paths"][path][method]["responses"][str(status)]
    schema = answer["content"]["application/json"]["schema"]
    return {**schema, "components": document["components"]}


def assert_matches(document: dict, path: str, method: str, response) -> None:
    schema = answer_schema(document, path, method, response.status_code)
    jsonschema_rs.validator_for(schema).validate(response.get_json())


def test_real_answers_match_the_documented_schemas(client, auth):
    document = openapi.document()
    auth.register("ann")
    signed_in = auth.login("ann")
    assert_matches(document, "/login", "post", signed_in)
    tokens = signed_in.get_json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    upload = client.post("/upload", headers=headers, data={"file": (io.BytesIO(b"hello"), "a.txt")})
    checks = [
        ("/upload", "post", upload),
        ("/files", "get", client.get("/files", headers=headers)),
        ("/me", "get", client.get("/me", headers=headers)),
        ("/sessions", "get", client.get("/sessions", headers=headers)),
        (
            "/token/refresh",
            "post",
            client.post(
                "/token/refresh", json={"refresh_token": tokens["refresh_token"], "rotate": True}
            ),
        ),
        (
            "/rename",
            "put",
            client.put(
                "/rename", headers=headers, json={"old_filename": "a.txt", "new_filename": "b.txt"}
            ),
        ),
        ("/download/{filename}", "get", client.get("/download/nope", headers=headers)),
        ("/delete/{filename}", "delete", client.delete("/delete/b.txt", headers=headers)),
        ("/files", "get", client.get("/files")),
        ("/login", "post", auth.login("ann", "wrong")),
        ("/register", "post", auth.register("ann")),
    ]
    for path, method, response in checks:
        documented = document["paths"][path][method]["responses"]
        assert str(response.status_code) in documented, (path, response.status_code)
        assert_matches(document, path, method, response)


@pytest.mark.e2e
def test_schemathesis_finds_no_server_error_no_looser_schema_and_follows_links(tmp_path):
    import requests

    from tests.served import running_server

    schemathesis = Path(sys.executable).with_name("schemathesis")
    idp = GoogleIdP()  # so that /login/google answers 401s, not "not configured"
    with fresh_database_url(tmp_path) as database_url:
        settings = make_settings(
            tmp_path, database_url, google_client_id=CLIENT_ID, google_certs_url=idp.url
        )
        with running_server(settings) as url:
            requests.post(
                f"{url}/register",
                json={"username": "fuzz", "email": "fuzz@example.org", "password": "fuzzpass"},
                timeout=10,
            )
            login = requests.post(
                f"{url}/login",
                json={"login_identifier": "fuzz", "password": "fuzzpass"},
                timeout=10,
            ).json()
            result = subprocess.run(
                [
                    str(schemathesis),
                    "--config-file",  # fails on a validation mismatch; the stateful budget
                    str(ROOT / "tests" / "schemathesis.toml"),
                    "run",
                    f"{url}/openapi.json",
                    "--checks",
                    "not_a_server_error,status_code_conformance,content_type_conformance,"
                    "response_schema_conformance",
                    "--header",
                    f"Authorization: Bearer {login['access_token']}",
                    # These end the fuzzer's own session (it finds its id in /me) or
                    # slow it down on purpose. Share links' public routes (/s/...) take
                    # a 192-bit token that no fuzzer guesses: every case would be the
                    # same 404 (tests/test_shares.py sends them bad input instead).
                    "--exclude-path-regex",
                    "^/(sessions/.+|logout|password|s/.+)$",
                    "--phases",
                    "examples,coverage,fuzzing,stateful",
                    "--max-examples",
                    "100",
                    "--workers",
                    "1",  # CPython 3.11's ast.parse is not thread-safe; hypothesis uses it
                    "--request-timeout",
                    "20",
                    "--seed",
                    "1",
                ],
                capture_output=True,
                text=True,
                timeout=600,
                cwd=ROOT,
                env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks"},
            )
            still_signed_in = requests.get(
                f"{url}/me",
                headers={"Authorization": f"Bearer {login['access_token']}"},
                timeout=10,
            )
    idp.close()
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    # The stateful phase followed the document's links: create a folder, upload into
    # it, rename, copy, trash and restore, share, resume a tus upload (from 9 to 32 of
    # the 90 in a run here; none before the document had links).
    links = re.search(r"API Links:\s+(\d+) covered", result.stdout)
    assert links and int(links.group(1)) >= 5, result.stdout[-3000:]
    # The fuzzer stayed signed in: its requests reached the routes, not just the 401.
    assert still_signed_in.status_code == 200, still_signed_in.text


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("get", "/api/v1/files/14622112985425512448/content", 404),
        ("delete", "/api/v1/folders/446530944815802399850496", 405),
        ("post", "/api/v1/files/20032260249259209654272/copy", 404),
        ("post", "/api/v1/trash/file/99999999999999999999/restore", 404),
    ],
)
def test_an_id_too_large_for_the_database_is_refused_not_a_500(client, auth, method, path, status):
    # Found by schemathesis: werkzeug's int converter takes numbers of any length. No
    # route matches such an id now (404; 405 where only GET /folders/<ref> has the path).
    response = getattr(client, method)(path, headers=auth.headers(), json={})
    assert response.status_code == status
    assert "error" in response.get_json()


@pytest.mark.parametrize(
    "path, body",
    [
        ("/api/v1/folders", {"name": "x", "parent_id": 105629360843257593856}),
        ("/api/v1/folders", {"name": "x", "parent_id": -1}),
        (
            "/api/v1/files/from-content",
            {"sha256": "0" * 64, "name": "x", "folder_id": 2**64},
        ),
    ],
)
def test_an_id_too_large_in_a_json_body_is_400_not_500(client, auth, path, body):
    # Found by schemathesis, as above, in a JSON field.
    response = client.post(path, headers=auth.headers(), json=body)
    assert response.status_code == 400
    assert "error" in response.get_json()
