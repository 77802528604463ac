"""The web app's server side: its pages and their policy, `GET /` for browsers, the
cookie-held session, and the cookie-authenticated reads (pcloud.web)."""

from __future__ import annotations

import gzip
import io
import zipfile

import pytest

from pcloud.web import pages

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
WEB = {"Pcloud-Web": "1"}
PASSWORD = "correct horse battery"


def web_sign_in(client, auth, username="ann"):
    auth.register(username)
    return client.post(
        "/api/v1/web/session",
        headers=WEB,
        json={"login_identifier": username, "password": PASSWORD},
    )


def cookie_header(response, name: str) -> str:
    [header] = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(f"{name}=")]
    return header


def test_a_browser_asking_for_the_root_is_sent_to_the_app(client):
    answer = client.get("/", headers={"Accept": BROWSER_ACCEPT})
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/app/"
    assert "Accept" in answer.headers["Vary"]


@pytest.mark.parametrize("accept", [None, "*/*", "text/plain", "application/json"])
def test_every_other_client_still_gets_the_contracts_plain_text(client, accept):
    answer = client.get("/", headers={"Accept": accept} if accept else {})
    assert answer.status_code == 200
    assert answer.data == b"pcloud server is running.\n"
    assert answer.mimetype == "text/plain"


def test_the_app_page_has_its_own_strict_policy_without_unsafe_inline(client):
    answer = client.get("/app/")
    assert answer.status_code == 200 and answer.mimetype == "text/html"
    policy = answer.headers.getlist("Content-Security-Policy")
    assert policy == [pages.APP_CSP]  # one policy: the API's `sandbox` one is not added
    assert "unsafe-inline" not in policy[0] and "unsafe-eval" not in policy[0]
    assert "script-src 'self'" in policy[0] and "frame-ancestors 'none'" in policy[0]
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert b"<script" not in answer.data.replace(b'<script type="module" src=', b"")


def test_the_api_keeps_its_sandbox_policy(client):
    assert client.get("/openapi.json").headers.getlist("Content-Security-Policy") == [
        "default-src 'none'; frame-ancestors 'none'; sandbox"
    ]


def test_no_page_file_holds_inline_script_or_style():
    for path in pages.STATIC_FOLDER.rglob("*.html"):
        text = path.read_text()
        assert " style=" not in text and "onclick=" not in text and "<style" not in text
        assert "<script>" not in text


def test_the_app_files_are_compressed_for_browsers_that_ask_and_revalidated(client):
    plain = client.get("/app/js/app.js")
    packed = client.get("/app/js/app.js", headers={"Accept-Encoding": "gzip, br"})
    assert packed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed.data) == plain.data
    assert plain.mimetype == "text/javascript"
    again = client.get("/app/js/app.js", headers={"If-None-Match": plain.headers["ETag"]})
    assert again.status_code == 304


@pytest.mark.parametrize("name", ["../pyproject.toml", "..%2f__init__.py", "nothing.js", "js"])
def test_only_the_apps_own_files_are_served(client, name):
    answer = client.get(f"/app/{name}")
    assert answer.status_code == 404
    assert "error" in answer.get_json()


def test_signing_in_puts_the_refresh_token_in_a_strict_httponly_cookie_for_its_route(client, auth):
    answer = web_sign_in(client, auth)
    assert answer.status_code == 200
    body = answer.get_json()
    assert "refresh_token" not in body and body["access_token"]
    assert answer.headers["Cache-Control"] == "no-store"
    refresh = cookie_header(answer, "pcloud_refresh")
    assert "HttpOnly" in refresh and "SameSite=Strict" in refresh
    assert "Path=/api/v1/web/session" in refresh
    content = cookie_header(answer, "pcloud_content")
    assert "HttpOnly" in content and "Path=/api/v1/web/content" in content


def test_the_cookie_gets_a_new_access_token_that_works(client, auth):
    web_sign_in(client, auth)
    answer = client.post("/api/v1/web/session/refresh", headers=WEB)
    assert answer.status_code == 200
    token = answer.get_json()["access_token"]
    assert client.get("/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_without_the_cookie_refresh_is_401(client):
    answer = client.post("/api/v1/web/session/refresh", headers=WEB)
    assert answer.status_code == 401 and "error" in answer.get_json()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Pcloud-Web": "0"},
        {**WEB, "Origin": "https://evil.example"},
        {**WEB, "Origin": "http://localhost.evil.example"},
        {**WEB, "Origin": "null"},
    ],
    ids=["no header", "wrong header", "other origin", "lookalike origin", "opaque origin"],
)
def test_a_cross_site_request_cannot_use_the_session(client, auth, headers):
    web_sign_in(client, auth)
    answer = client.post("/api/v1/web/session/refresh", headers=headers)
    assert answer.status_code == 403
    signed_in = client.post(
        "/api/v1/web/session",
        headers=headers,
        json={"login_identifier": "ann", "password": PASSWORD},
    )
    assert signed_in.status_code == 403


@pytest.mark.parametrize("origin", ["http://localhost", "https://localhost"])
def test_the_same_origin_is_let_in_also_through_a_tls_proxy(client, auth, origin):
    web_sign_in(client, auth)
    answer = client.post("/api/v1/web/session/refresh", headers={**WEB, "Origin": origin})
    assert answer.status_code == 200


def test_web_sign_in_is_throttled_like_login(client, auth):
    auth.register("ann")
    answers = [
        client.post(
            "/api/v1/web/session", headers=WEB, json={"login_identifier": "ann", "password": "no"}
        ).status_code
        for _ in range(12)
    ]
    assert answers[0] == 401 and 429 in answers
    assert auth.login("ann").status_code == 429  # one throttle for both doors


def test_signing_out_ends_the_session_and_clears_the_cookies(client, auth):
    web_sign_in(client, auth)
    answer = client.delete("/api/v1/web/session", headers=WEB)
    assert answer.status_code == 200
    for name in ("pcloud_refresh", "pcloud_content"):
        assert "Max-Age=0" in cookie_header(answer, name) or "Expires=Thu, 01 Jan 1970" in (
            cookie_header(answer, name)
        )
    assert client.post("/api/v1/web/session/refresh", headers=WEB).status_code == 401


def test_an_ended_sessions_cookie_refreshes_nothing(client, auth):
    signed_in = web_sign_in(client, auth).get_json()
    headers = {"Authorization": f"Bearer {signed_in['access_token']}"}
    client.post("/sessions/revoke-all", headers=headers, json={})
    assert client.post("/api/v1/web/session/refresh", headers=WEB).status_code == 401
    assert client.get("/api/v1/web/content/folders/root/zip").status_code == 401


def test_content_is_read_with_the_cookie_and_seeks(client, auth):
    token = web_sign_in(client, auth).get_json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    content = bytes(range(256)) * 40
    made = client.post(
        "/api/v1/folders/root/files",
        headers=headers,
        data={"file": (io.BytesIO(content), "clip.mp4")},
    ).get_json()
    whole = client.get(f"/api/v1/web/content/files/{made['id']}")
    assert whole.status_code == 200 and whole.data == content
    part = client.get(f"/api/v1/web/content/files/{made['id']}", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.data == content[100:200]


def test_content_without_the_cookie_is_401(client, auth):
    headers = auth.headers()
    made = client.post(
        "/api/v1/folders/root/files", headers=headers, data={"file": (io.BytesIO(b"x"), "a.txt")}
    ).get_json()
    assert client.get(f"/api/v1/web/content/files/{made['id']}").status_code == 401
    # A bearer token is not what these routes take either.
    assert client.get(f"/api/v1/web/content/files/{made['id']}", headers=headers).status_code == 401


def _tree(client, headers):
    def folder(parent_id, name):
        return client.post(
            "/api/v1/folders", headers=headers, json={"parent_id": parent_id, "name": name}
        ).get_json()["id"]

    def upload(folder_ref, name, data):
        client.post(
            f"/api/v1/folders/{folder_ref}/files",
            headers=headers,
            data={"file": (io.BytesIO(data), name)},
        )

    holiday = folder(None, "Holiday")
    beach = folder(holiday, "beach")
    folder(holiday, "empty")
    upload(holiday, "a.jpg", b"A" * 3000)
    upload(beach, "sand.jpg", b"S" * 5000)
    upload(beach, "日本語.txt", b"kana")
    upload("root", "top.txt", b"top")
    return holiday


def test_a_folder_downloads_as_a_zip_of_everything_below_it(client, auth):
    headers = auth.headers()
    holiday = _tree(client, headers)
    answer = client.get(f"/api/v1/folders/{holiday}/zip", headers=headers)
    assert answer.status_code == 200 and answer.mimetype == "application/zip"
    assert "filename=Holiday.zip" in answer.headers["Content-Disposition"]
    assert int(answer.headers["Content-Length"]) == len(answer.data)
    archive = zipfile.ZipFile(io.BytesIO(answer.data))
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == [
        "a.jpg",
        "beach/sand.jpg",
        "beach/日本語.txt",
        "empty/",
    ]
    assert archive.read("beach/sand.jpg") == b"S" * 5000


def test_a_folder_named_beyond_latin_1_downloads_under_its_name(client, auth):
    # Found by schemathesis: the name went into Content-Disposition as it was, and
    # waitress could not write the header (a 500). Such a name goes in filename*.
    headers = auth.headers()
    made = client.post("/api/v1/folders", headers=headers, json={"name": "Фото 2024 ✓"})
    answer = client.get(f"/api/v1/folders/{made.get_json()['id']}/zip", headers=headers)
    assert answer.status_code == 200
    disposition = answer.headers["Content-Disposition"]
    disposition.encode("latin-1")  # what a server can send
    assert "filename*=UTF-8''%D0%A4%D0%BE%D1%82%D0%BE%202024%20%E2%9C%93.zip" in disposition
    assert 'filename=" 2024 .zip"' in disposition


def test_the_root_zip_holds_everything_and_trashed_folders_stay_out(client, auth):
    headers = auth.headers()
    holiday = _tree(client, headers)
    beach = [
        e
        for e in client.get(f"/api/v1/folders/{holiday}", headers=headers).get_json()["entries"]
        if e["name"] == "beach"
    ][0]
    client.delete(f"/api/v1/folders/{beach['id']}", headers=headers)
    archive = zipfile.ZipFile(
        io.BytesIO(client.get("/api/v1/folders/root/zip", headers=headers).data)
    )
    assert sorted(archive.namelist()) == ["Holiday/a.jpg", "Holiday/empty/", "top.txt"]


def test_another_users_folder_is_not_zipped(client, auth):
    holiday = _tree(client, auth.headers("ann"))
    answer = client.get(f"/api/v1/folders/{holiday}/zip", headers=auth.headers("bob"))
    assert answer.status_code == 404 and answer.get_json() == {"error": "Folder not found"}
    assert client.get("/api/v1/folders/root/zip").status_code == 401


def test_the_zip_reads_each_file_only_when_the_archive_reaches_it(pcloud, client, auth):
    """Nothing is read before the first byte is sent, and one file at a time after:
    memory holds a piece, not a folder."""
    from pcloud.models import User
    from pcloud.services import archive

    _tree(client, auth.headers())
    opened = []
    real_open = pcloud.blobs.open

    def counting_open(key):
        opened.append(key)
        return real_open(key)

    pcloud.blobs.open = counting_open
    try:
        made = archive.folder_archive(pcloud.blobs, User.get().id, None)
        assert opened == []
        first = next(made.chunks)
        assert first.startswith(b"PK") and len(opened) <= 1
        rest = b"".join(made.chunks)
    finally:
        pcloud.blobs.open = real_open
    assert len(first) + len(rest) == made.length
    assert len(opened) == 4
