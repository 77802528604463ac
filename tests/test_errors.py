"""Every error leaves the server as `{"error": ...}` JSON, never an HTML page."""

from __future__ import annotations

import io

import pytest
from werkzeug.test import EnvironBuilder, run_wsgi_app

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
    assert response.get_json()["error"] == "File is larger than this server's limit of 8 MiB"
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


def test_an_upload_cut_short_leaves_no_file_no_row_and_no_partial(client, auth, settings):
    """A body shorter than its Content-Length (the client went away) stores nothing."""
    headers = auth.headers()
    body = (
        b'--cut\r\nContent-Disposition: form-data; name="file"; filename="half.bin"\r\n\r\n'
        + b"x" * 300_000
    )
    response = client.post(
        "/upload",
        input_stream=io.BytesIO(body),
        headers={
            **headers,
            "Content-Type": "multipart/form-data; boundary=cut",
            "Content-Length": str(len(body) + 500_000),
        },
    )
    assert response.status_code == 400
    assert "error" in response.get_json()
    assert client.get("/files", headers=headers).get_json() == []
    assert not [p for p in (settings.upload_folder / "blobs").rglob("*") if p.is_file()]
    assert list((settings.upload_folder / "partial").iterdir()) == []


def test_a_json_body_of_unknown_length_is_still_bounded(app):
    body = (
        b'{"username": "ann", "email": "ann@example.org", "password": "long enough pw", "pad": "'
        + b"a" * 1_000_000
        + b'"}'
    )
    environ = EnvironBuilder(
        method="POST",
        path="/register",
        input_stream=io.BytesIO(body),
        content_type="application/json",
    ).get_environ()
    del environ["CONTENT_LENGTH"]  # as a chunked request arrives from some servers
    environ["wsgi.input_terminated"] = True
    app_iter, status, _headers = run_wsgi_app(app, environ)  # the test client adds a length
    # Read no further than the JSON limit: what fits in it is not a whole JSON object.
    assert status[:3] == "400", status
    assert b'"error"' in b"".join(app_iter)
