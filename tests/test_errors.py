"""Every error leaves the server as `{"error": ...}` JSON, never an HTML page."""

from __future__ import annotations

import io

import pytest

from pcloud.api import create_app


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/no-such-route", 404),
        ("get", "/download", 404),
        ("delete", "/", 405),
        ("get", "/upload", 405),
        ("post", "/files", 405),
        ("get", "/rename", 405),
    ],
)
def test_framework_errors_are_json(client, method, path, status):
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert response.is_json
    assert set(response.get_json()) == {"error"}


def test_405_says_which_methods_are_allowed(client):
    assert "GET" in client.delete("/files").headers["Allow"]


def test_an_upload_over_the_size_limit_is_413_json_and_stores_nothing(client, auth, settings):
    headers = auth.headers()
    too_big = io.BytesIO(b"x" * (settings.max_upload_size + 1))
    response = client.post("/upload", headers=headers, data={"file": (too_big, "big.bin")})
    assert response.status_code == 413
    assert "error" in response.get_json()
    assert client.get("/files", headers=headers).get_json() == []
    assert not any((settings.upload_folder / "blobs").rglob("*.*"))
    assert list((settings.upload_folder / "partial").iterdir()) == []


def test_an_unexpected_exception_is_a_500_that_reveals_nothing(pcloud, caplog):
    app = create_app(pcloud=pcloud)

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internal detail /etc/shadow")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert response.get_json() == {"error": "Internal server error"}
    assert "secret internal detail" in caplog.text  # the log has the traceback
