"""Security headers, CORS, the client IP behind a trusted proxy, and /metrics."""

from __future__ import annotations

import io
import re
from dataclasses import replace

import pytest
import requests

from pcloud.api import create_app
from pcloud.core import Pcloud
from tests.conftest import fresh_database_url, make_settings

PASSWORD = "correct horse battery"
METRICS_TOKEN = "metrics-token-for-tests"


@pytest.fixture
def app_with(settings):
    """Build an app like the `app` fixture, with some settings changed."""
    opened = []

    def build(**changes):
        instance = Pcloud.open(replace(settings, **changes))
        opened.append(instance)
        application = create_app(pcloud=instance)
        application.config["TESTING"] = True
        return application.test_client()

    yield build
    for instance in opened:
        instance.close()


def sign_in(client, **request_options):
    client.post(
        "/register",
        json={"username": "ann", "email": "ann@example.org", "password": PASSWORD},
    )
    response = client.post(
        "/login", json={"login_identifier": "ann", "password": PASSWORD}, **request_options
    )
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['access_token']}"}


@pytest.mark.parametrize("path, status", [("/", 200), ("/files", 401), ("/nowhere", 404)])
def test_every_answer_carries_the_security_headers(client, path, status):
    response = client.get(path)
    assert response.status_code == status
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP


def test_a_downloaded_html_file_cannot_run_script(client, auth):
    headers = auth.headers()
    page = b"<script>alert(document.cookie)</script>"
    client.post("/upload", headers=headers, data={"file": (io.BytesIO(page), "x.html")})
    response = client.get("/download/x.html", headers=headers)
    assert response.status_code == 200
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert response.headers["Content-Disposition"].startswith("attachment")


def test_token_answers_are_never_cached(client, auth):
    auth.register()
    assert auth.login().headers["Cache-Control"] == "no-store"


# --- CORS -----------------------------------------------------------------------------


def test_no_origin_is_allowed_by_default(client):
    response = client.get("/", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = client.options(
        "/files",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_an_allowed_origin_gets_cors_headers_and_others_do_not(app_with):
    client = app_with(cors_origins=("https://files.example.org",))
    preflight = client.options(
        "/files",
        headers={
            "Origin": "https://files.example.org",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://files.example.org"
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Credentials" not in preflight.headers
    other = client.get("/", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_a_malformed_cors_origin_is_a_config_error(tmp_path):
    from pcloud.config import load_settings
    from pcloud.errors import ConfigError

    with pytest.raises(ConfigError, match="CORS_ORIGINS"):
        load_settings({"CORS_ORIGINS": "files.example.org/path"}, env_file=None)


# --- The client's address -------------------------------------------------------------


def test_x_forwarded_for_is_ignored_without_a_trusted_proxy(client):
    headers = sign_in(
        client,
        headers={"X-Forwarded-For": "198.51.100.99"},
        environ_base={"REMOTE_ADDR": "192.0.2.1"},
    )
    [session] = client.get("/sessions", headers=headers).get_json()["sessions"]
    assert session["ip_address"] == "192.0.2.1"


def test_behind_a_trusted_proxy_the_forwarded_client_address_and_scheme_count(app_with):
    client = app_with(trusted_proxies=1)
    forwarded = {"X-Forwarded-For": "198.51.100.99", "X-Forwarded-Proto": "https"}
    headers = sign_in(client, headers=forwarded, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    response = client.get("/sessions", headers={**headers, **forwarded})
    [session] = response.get_json()["sessions"]
    assert session["ip_address"] == "198.51.100.99"
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


# --- /metrics -------------------------------------------------------------------------


def test_metrics_are_off_unless_a_token_is_set(client):
    assert client.get("/metrics").status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {METRICS_TOKEN}", "Bearer "])
def test_metrics_need_the_metrics_token(app_with, header):
    client = app_with(metrics_token=METRICS_TOKEN)
    headers = {"Authorization": header} if header else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert "error" in response.get_json()


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus's text format (0 when absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and ",".join(sorted((match.group(1) or "").split(","))) == wanted:
            total += float(match.group(2))
    return total


def scrape(client) -> str:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return response.get_data(as_text=True)


def test_metrics_count_requests_bytes_and_failed_sign_ins(app_with):
    client = app_with(metrics_token=METRICS_TOKEN)
    before = scrape(client)
    headers = sign_in(client)
    client.post("/upload", headers=headers, data={"file": (io.BytesIO(b"x" * 1000), "a.bin")})
    client.get("/download/a.bin", headers=headers)
    client.get("/files", headers=headers)
    client.get("/nowhere")
    client.post("/login", json={"login_identifier": "ann", "password": "wrong"})
    after = scrape(client)

    def grew(name, **labels):
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert grew("pcloud_http_requests_total", method="GET", route="/files", status="200") == 1
    assert grew("pcloud_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert grew("pcloud_uploaded_bytes_total") == 1000
    assert grew("pcloud_downloaded_bytes_total") == 1000
    assert grew("pcloud_sign_in_failures_total") == 1
    assert grew("pcloud_http_request_duration_seconds_count", method="GET", route="/files") == 1
    assert "pcloud_uploads_in_progress" in after


@pytest.mark.e2e
def test_metrics_add_up_every_worker_of_pcloud_serve(tmp_path):
    from tests.served import running_server

    with fresh_database_url(tmp_path) as database_url:
        settings = make_settings(tmp_path, database_url)
        extra = {"METRICS_TOKEN": METRICS_TOKEN, "TRUSTED_PROXIES": "1"}
        with running_server(settings, extra) as url, requests.Session() as http:
            for _ in range(40):  # new connections: spread over both workers
                requests.get(f"{url}/", timeout=10)
            auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
            scrapes = [
                requests.get(f"{url}/metrics", headers=auth, timeout=10).text for _ in range(4)
            ]
            http.post(
                f"{url}/register",
                json={
                    "username": "ann",
                    "email": "a@example.org",
                    "password": "a long enough password",
                },
                timeout=10,
            )
            login = http.post(
                f"{url}/login",
                json={"login_identifier": "ann", "password": "a long enough password"},
                headers={"X-Forwarded-For": "198.51.100.99"},
                timeout=10,
            ).json()
            sessions = http.get(
                f"{url}/sessions",
                headers={"Authorization": f"Bearer {login['access_token']}"},
                timeout=10,
            ).json()["sessions"]
    # Whichever worker answered a scrape, it counted every worker's requests.
    for text in scrapes:
        assert (
            metric(text, "pcloud_http_requests_total", method="GET", route="/", status="200") == 40
        )
    # Through waitress too, a trusted proxy's X-Forwarded-For names the client.
    assert sessions[0]["ip_address"] == "198.51.100.99"


def test_metrics_count_the_bytes_of_resumable_uploads(app_with):
    from tests.tus_helpers import TUS, new_upload, patch

    client = app_with(metrics_token=METRICS_TOKEN)
    headers = {**sign_in(client), **TUS}
    before = scrape(client)
    url = new_upload(client, headers, length=3000)
    assert patch(client, headers, url, 0, b"x" * 1000).status_code == 204
    assert patch(client, headers, url, 1000, b"y" * 2000).status_code == 204
    after = scrape(client)
    uploaded = metric(after, "pcloud_uploaded_bytes_total")
    assert uploaded - metric(before, "pcloud_uploaded_bytes_total") == 3000
    assert (
        metric(
            after,
            "pcloud_http_requests_total",
            method="PATCH",
            route="/tus/<upload_id>",
            status="204",
        )
        >= 2
    )


def test_a_browser_tus_client_from_an_allowed_origin_may_send_and_read_tus_headers(app_with):
    client = app_with(cors_origins=("https://files.example.org",))
    preflight = client.options(
        "/tus/",
        headers={
            "Origin": "https://files.example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, tus-resumable, upload-length",
        },
    )
    allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "tus-resumable" in allowed and "upload-length" in allowed
    answer = client.get("/", headers={"Origin": "https://files.example.org"})
    assert "upload-offset" in answer.headers["Access-Control-Expose-Headers"].lower()
    assert "location" in answer.headers["Access-Control-Expose-Headers"].lower()
