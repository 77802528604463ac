"""WebDAV at /dav/ through Flask's test client: sign-in, the one tree shared with the API,
what each method does to it, and what hostile requests get."""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET

import pytest

from pcloud.api import create_app
from pcloud.core import Pcloud
from pcloud.models import AuditEvent, Blob, Change, DavLock, StoredFile
from pcloud.services import users

PASSWORD = "correct horse battery"
LOCK_BODY = (
    '<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope>'
    "<D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
    "<D:owner>test</D:owner></D:lockinfo>"
)


def basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def ann(auth) -> dict[str, str]:
    auth.register("ann")
    return basic("ann", PASSWORD)


def dav(client, method: str, path: str, headers: dict, **kwargs):
    return client.open(f"/dav{path}", method=method, headers=headers, **kwargs)


def propfind(client, path: str, headers: dict, depth: str = "1", body: str = ""):
    return dav(client, "PROPFIND", path, {**headers, "Depth": depth}, data=body)


def hrefs(response) -> list[str]:
    tree = ET.fromstring(response.data)
    return [element.text for element in tree.iter("{DAV:}href")]


def root_listing(client, auth) -> list[dict]:
    headers = auth.headers("ann")
    return client.get("/api/v1/folders/root", headers=headers).get_json()["entries"]


# --- signing in ------------------------------------------------------------------------


def test_nothing_under_dav_is_readable_without_signing_in(client, ann):
    for method in ("PROPFIND", "GET", "OPTIONS", "PUT", "DELETE"):
        answer = dav(client, method, "/", {})
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"].startswith('Basic realm="pcloud"')
        assert "error" in answer.get_json()


def test_a_wrong_password_is_401_and_then_throttled_with_retry_after(client, ann):
    statuses = [propfind(client, "/", basic("ann", "wrong"), "0").status_code for _ in range(8)]
    assert statuses[0] == 401 and statuses[-1] == 429
    answer = propfind(client, "/", basic("ann", "wrong"), "0")
    assert answer.status_code == 429 and int(answer.headers["Retry-After"]) >= 1
    failures = AuditEvent.select().where(AuditEvent.action == "sign-in-failed").count()
    assert failures >= 5


def test_the_account_password_is_verified_once_then_cached(client, ann, monkeypatch):
    checks = []
    real = users.password_matches
    monkeypatch.setattr(users, "password_matches", lambda *a: checks.append(1) or real(*a))
    for _ in range(5):
        assert propfind(client, "/", ann, "0").status_code == 207
    assert len(checks) == 1


def test_a_password_change_ends_the_cached_sign_in(client, ann, settings):
    assert propfind(client, "/", ann, "0").status_code == 207
    users.set_password(settings, "ann", "a new long password")
    assert propfind(client, "/", ann, "0").status_code == 401


def test_an_app_password_is_a_session_listed_and_revoked_at_once(client, auth):
    headers = auth.headers("ann")
    made = client.post("/api/v1/app-passwords", headers=headers, json={"device_name": "laptop"})
    assert made.status_code == 201
    secret = made.get_json()["password"]
    assert propfind(client, "/", basic("ann", secret), "0").status_code == 207
    listed = client.get("/sessions", headers=headers).get_json()["sessions"]
    [session] = [s for s in listed if s["method"] == "app-password"]
    assert session["device_name"] == "laptop" and session["id"] == made.get_json()["id"]
    assert client.delete(f"/sessions/{session['id']}", headers=headers).status_code == 200
    assert propfind(client, "/", basic("ann", secret), "0").status_code == 401


def test_a_put_through_an_app_password_records_its_device_on_the_version(client, auth):
    headers = auth.headers("ann")
    made = client.post("/api/v1/app-passwords", headers=headers, json={"device_name": "laptop"})
    laptop = basic("ann", made.get_json()["password"])
    assert dav(client, "PUT", "/notes.txt", laptop, data=b"first").status_code == 201
    assert dav(client, "PUT", "/notes.txt", laptop, data=b"second").status_code == 204
    [entry] = client.get("/api/v1/folders/root", headers=headers).get_json()["entries"]
    answer = client.get(f"/api/v1/files/{entry['id']}/versions", headers=headers).get_json()
    [version] = answer["versions"]
    assert version["replaced_by_session_id"] == made.get_json()["id"]


def test_an_app_password_is_stored_hashed_and_only_for_its_user(client, auth):
    headers = auth.headers("ann")
    auth.register("bob")
    secret = client.post(
        "/api/v1/app-passwords", headers=headers, json={"device_name": "nas"}
    ).get_json()["password"]
    from pcloud.models import AppPassword

    [row] = AppPassword.select()
    assert row.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(list(AppPassword.select().tuples()))
    assert propfind(client, "/", basic("bob", secret), "0").status_code == 401


def test_an_app_password_needs_a_device_name(client, auth):
    answer = client.post("/api/v1/app-passwords", headers=auth.headers("ann"), json={})
    assert answer.status_code == 400 and "device_name" in answer.get_json()["error"]


def test_the_cli_makes_an_app_password_that_signs_in(client, ann, runner):
    result = runner.invoke("users", "app-password", "ann", "--device", "backup box")
    assert result.exit_code == 0, result.output
    secret = result.output.strip().splitlines()[-1]
    assert propfind(client, "/", basic("ann", secret), "0").status_code == 207
    listed = runner.invoke("users", "sessions", "ann")
    assert "backup box" in listed.output and "app-password" in listed.output


def test_no_user_reaches_another_users_tree(client, auth, ann):
    assert dav(client, "PUT", "/secret.txt", ann, data=b"ann's").status_code == 201
    auth.register("bob")
    bob = basic("bob", PASSWORD)
    assert dav(client, "GET", "/secret.txt", bob).status_code == 404
    assert "/dav/secret.txt" not in hrefs(propfind(client, "/", bob))


# --- one tree with the API ---------------------------------------------------------------


def test_a_put_file_is_in_the_api_and_an_api_upload_is_in_the_listing(client, auth, ann):
    assert dav(client, "MKCOL", "/Photos", ann).status_code == 201
    assert dav(client, "PUT", "/Photos/beach.jpg", ann, data=b"jpeg bytes").status_code == 201
    photos = next(e for e in root_listing(client, auth) if e["name"] == "Photos")
    inside = client.get(f"/api/v1/folders/{photos['id']}", headers=auth.headers("ann"))
    [entry] = inside.get_json()["entries"]
    assert (
        entry["name"] == "beach.jpg"
        and entry["sha256"] == hashlib.sha256(b"jpeg bytes").hexdigest()
    )
    client.post(
        "/upload",
        headers=auth.headers("ann"),
        data={"file": (__import__("io").BytesIO(b"x"), "phone.txt")},
    )
    assert "/dav/phone.txt" in hrefs(propfind(client, "/", ann))
    kinds = [change.kind for change in Change.select().order_by(Change.id)]
    assert kinds.count("created") == 3


def test_put_over_a_file_replaces_its_content_in_place(client, ann):
    assert dav(client, "PUT", "/notes.txt", ann, data=b"one").status_code == 201
    first = StoredFile.get(StoredFile.name == "notes.txt")
    assert dav(client, "PUT", "/notes.txt", ann, data=b"two!").status_code == 204
    again = StoredFile.get(StoredFile.name == "notes.txt")
    assert again.id == first.id and again.size == 4
    assert dav(client, "GET", "/notes.txt", ann).data == b"two!"
    assert Change.select().where(Change.kind == "modified").count() == 1


def test_x_oc_mtime_sets_the_files_modification_time(client, ann):
    answer = dav(client, "PUT", "/old.txt", {**ann, "X-OC-Mtime": "1577934245"}, data=b"x")
    assert answer.status_code == 201 and answer.headers["X-OC-MTime"] == "accepted"
    assert StoredFile.get(StoredFile.name == "old.txt").modified_at.timestamp() == 1577934245
    listed = propfind(client, "/old.txt", ann, "0").data.decode()
    assert "Thu, 02 Jan 2020 03:04:05 GMT" in listed


def test_a_malformed_x_oc_mtime_is_400_and_stores_nothing(client, ann):
    answer = dav(client, "PUT", "/t.txt", {**ann, "X-OC-Mtime": "yesterday"}, data=b"x")
    assert answer.status_code == 400
    assert StoredFile.select().count() == 0 and Blob.select().count() == 0


def test_oc_checksum_is_answered_and_a_wrong_sha256_refused(client, ann):
    good = hashlib.sha256(b"abc").hexdigest()
    wrong = {**ann, "OC-Checksum": "SHA256:" + "0" * 64}
    assert dav(client, "PUT", "/a.txt", wrong, data=b"abc").status_code == 400
    assert StoredFile.select().count() == 0
    right = {**ann, "OC-Checksum": f"SHA256:{good}"}
    assert dav(client, "PUT", "/a.txt", right, data=b"abc").status_code == 201
    assert dav(client, "GET", "/a.txt", ann).headers["OC-Checksum"] == f"SHA256:{good}"
    body = (
        '<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns">'
        "<d:prop><oc:checksums/><d:getetag/></d:prop></d:propfind>"
    )
    listed = propfind(client, "/a.txt", ann, "0", body).data.decode()
    assert f"SHA256:{good}" in listed and f'"{good}"' in listed


def test_put_past_the_quota_is_507_before_anything_is_stored(client, ann, runner):
    runner.invoke("users", "set-quota", "ann", "10")
    answer = dav(client, "PUT", "/big.bin", ann, data=b"x" * 100)
    assert answer.status_code == 507
    assert StoredFile.select().count() == 0 and Blob.select().count() == 0


def test_delete_moves_to_the_trash(client, auth, ann):
    dav(client, "PUT", "/gone.txt", ann, data=b"bye")
    assert dav(client, "DELETE", "/gone.txt", ann).status_code == 204
    trash = client.get("/api/v1/trash", headers=auth.headers("ann")).get_json()
    assert [item["name"] for item in trash["entries"]] == ["gone.txt"]


def test_copy_shares_the_stored_bytes(client, ann):
    dav(client, "PUT", "/a.bin", ann, data=b"z" * 1000)
    copy = dav(client, "COPY", "/a.bin", {**ann, "Destination": "http://localhost/dav/b.bin"})
    assert copy.status_code == 201
    assert Blob.select().count() == 1 and Blob.get().ref_count == 2
    assert dav(client, "GET", "/b.bin", ann).data == b"z" * 1000


def test_move_renames_and_moves_like_the_api(client, ann):
    dav(client, "MKCOL", "/docs", ann)
    dav(client, "PUT", "/a.txt", ann, data=b"a")
    moved = dav(client, "MOVE", "/a.txt", {**ann, "Destination": "http://localhost/dav/docs/b.txt"})
    assert moved.status_code == 201
    assert dav(client, "GET", "/docs/b.txt", ann).data == b"a"
    assert Change.select().where(Change.kind == "moved").count() == 1


def test_a_folder_cannot_move_into_itself_or_onto_itself(client, ann):
    dav(client, "MKCOL", "/docs", ann)
    dav(client, "MKCOL", "/docs/sub", ann)
    into = dav(client, "MOVE", "/docs", {**ann, "Destination": "http://localhost/dav/docs/sub/x"})
    onto = dav(client, "MOVE", "/docs", {**ann, "Destination": "http://localhost/dav/docs"})
    assert into.status_code == 403 and onto.status_code == 403


def test_a_destination_on_another_host_is_502(client, ann):
    dav(client, "PUT", "/a.txt", ann, data=b"a")
    answer = dav(client, "COPY", "/a.txt", {**ann, "Destination": "http://evil.example/dav/b"})
    assert answer.status_code == 502


# --- reading ------------------------------------------------------------------------------


def test_get_answers_ranges_etags_and_conditional_requests(client, ann):
    dav(client, "PUT", "/f.bin", ann, data=bytes(range(256)) * 4)
    whole = dav(client, "GET", "/f.bin", ann)
    etag = whole.headers["ETag"]
    assert etag.strip('"') == hashlib.sha256(bytes(range(256)) * 4).hexdigest()
    part = dav(client, "GET", "/f.bin", {**ann, "Range": "bytes=10-19"})
    assert part.status_code == 206 and part.data == bytes(range(10, 20))
    assert dav(client, "GET", "/f.bin", {**ann, "If-None-Match": etag}).status_code == 304
    head = dav(client, "HEAD", "/f.bin", ann)
    assert head.status_code == 200 and head.headers["Content-Length"] == "1024"


def test_propfind_infinity_is_refused_with_its_precondition(client, ann):
    answer = propfind(client, "/", ann, "infinity")
    assert answer.status_code == 403 and b"propfind-finite-depth" in answer.data
    no_depth = dav(client, "PROPFIND", "/", ann)
    assert no_depth.status_code == 403


def test_the_root_reports_rfc_4331_quota(client, ann, runner):
    runner.invoke("users", "set-quota", "ann", "1000")
    dav(client, "PUT", "/a.bin", ann, data=b"q" * 100)
    body = (
        '<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:quota-used-bytes/>'
        "<d:quota-available-bytes/></d:prop></d:propfind>"
    )
    tree = ET.fromstring(propfind(client, "/", ann, "0", body).data)
    assert tree.find(".//{DAV:}quota-used-bytes").text == "100"
    assert tree.find(".//{DAV:}quota-available-bytes").text == "900"


def test_the_quick_listing_says_what_wsgidav_would(client, ann, monkeypatch):
    dav(client, "MKCOL", "/d", ann)
    dav(client, "PUT", "/d/x & y <z>.txt", ann, data=b"1")
    dav(client, "PUT", "/d/ünï.txt", ann, data=b"22")
    body = (
        '<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:x="urn:x"><d:prop>'
        "<d:getcontentlength/><d:getlastmodified/><d:resourcetype/><d:getetag/><x:nope/>"
        "</d:prop></d:propfind>"
    )

    def answers() -> list:
        replies = [propfind(client, "/d", ann, "1", query) for query in ("", body)]
        assert all(reply.status_code == 207 for reply in replies)
        return [_normalised(reply.data) for reply in replies]

    quick = answers()
    from pcloud.dav.listing import FastPropfind

    monkeypatch.setattr(FastPropfind, "answer", lambda *args: None)
    assert answers() == quick


def _normalised(xml: bytes) -> list:
    """Each response as (href, sorted (property, status, text)), whatever the prefixes."""
    found = []
    for response in ET.fromstring(xml).iter("{DAV:}response"):
        href = response.find("{DAV:}href").text.rstrip("/")
        props = []
        for propstat in response.iter("{DAV:}propstat"):
            status = propstat.find("{DAV:}status").text
            for prop in propstat.find("{DAV:}prop"):
                text = "".join(prop.itertext()) if prop.tag != "{DAV:}supportedlock" else ""
                props.append((prop.tag, status, text, [child.tag for child in prop]))
        found.append((href, sorted(props)))
    return sorted(found)


def test_dead_properties_are_kept(client, ann):
    dav(client, "PUT", "/p.txt", ann, data=b"p")
    patch = (
        '<?xml version="1.0"?><d:propertyupdate xmlns:d="DAV:" xmlns:z="urn:z"><d:set><d:prop>'
        "<z:colour>blue</z:colour></d:prop></d:set></d:propertyupdate>"
    )
    assert dav(client, "PROPPATCH", "/p.txt", ann, data=patch).status_code == 207
    query = (
        '<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:z="urn:z">'
        "<d:prop><z:colour/></d:prop></d:propfind>"
    )
    assert b"blue" in propfind(client, "/p.txt", ann, "0", query).data


# --- locks --------------------------------------------------------------------------------


def test_a_lock_holds_in_another_process_of_the_same_database(client, ann, settings):
    dav(client, "PUT", "/shared.txt", ann, data=b"v1")
    locked = dav(
        client, "LOCK", "/shared.txt", {**ann, "Content-Type": "application/xml"}, data=LOCK_BODY
    )
    assert locked.status_code == 200 and locked.headers["Lock-Token"].startswith(
        "<opaquelocktoken:"
    )
    assert DavLock.select().count() == 1
    other = Pcloud.open(settings)  # another worker: its own app, the same database
    try:
        elsewhere = create_app(pcloud=other).test_client()
        refused = dav(elsewhere, "PUT", "/shared.txt", ann, data=b"v2")
        assert refused.status_code == 423
        token = locked.headers["Lock-Token"]
        allowed = dav(elsewhere, "PUT", "/shared.txt", {**ann, "If": f"({token})"}, data=b"v2")
        assert allowed.status_code == 204
    finally:
        other.close()


def test_lock_timeouts_are_capped(client, ann):
    dav(client, "PUT", "/t.txt", ann, data=b"t")
    headers = {**ann, "Content-Type": "application/xml", "Timeout": "Infinite"}
    dav(client, "LOCK", "/t.txt", headers, data=LOCK_BODY)
    assert DavLock.get().timeout == 3600


# --- hostile input ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/a%2Fb", "/a%5Cb", "/a%00b", "/../etc/passwd", "/x/./y"])
def test_unsafe_paths_are_refused(client, ann, path):
    answer = client.open(f"/dav{path}", method="PROPFIND", headers={**ann, "Depth": "0"})
    assert answer.status_code == 400 and "error" in answer.get_json()


def test_an_unsafe_name_is_refused_with_a_clear_status(client, ann):
    answer = client.put("/dav/back%5Cslash.txt", headers=ann, data=b"x")
    assert answer.status_code == 400
    answer = client.put("/dav/...", headers=ann, data=b"x")
    assert answer.status_code == 400
    assert StoredFile.select().count() == 0


def test_malformed_xml_is_400(client, ann):
    assert propfind(client, "/", ann, "0", "<propfind").status_code == 400


def test_entity_expansion_is_refused(client, ann):
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        '<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&b;</D:displayname></D:prop>'
        "</D:propfind>"
    )
    assert propfind(client, "/", ann, "0", bomb).status_code == 400
    external = (
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&x;</D:displayname></D:prop>'
        "</D:propfind>"
    )
    answer = propfind(client, "/", ann, "0", external)
    assert answer.status_code == 400 and b"root:" not in answer.data


def test_large_xml_bodies_are_refused(client, ann):
    answer = propfind(client, "/", ann, "0", "<a>" + "x" * (2 * 1024 * 1024) + "</a>")
    assert answer.status_code == 413 and "error" in answer.get_json()


def test_puts_waiting_for_a_password_check_are_bounded_and_503_past_it(pcloud, ann, monkeypatch):
    """A client opening PUTs with an account password faster than scrypt runs gets 503
    and Retry-After once VERIFICATIONS_AT_MOST checks are under way; a PUT that ends
    before its check began cancels it, and the room comes back."""
    import threading

    from pcloud.dav import put
    from pcloud.errors import ServiceUnavailable
    from pcloud.services.basic_sign_in import PasswordCache

    release = threading.Event()
    monkeypatch.setattr(put, "_verdict", lambda *args: release.wait(30) and False)
    headers = {"AUTHORIZATION": basic("ann", PASSWORD)["Authorization"]}
    passwords = PasswordCache(pcloud.settings.password_hash)
    bodies = [
        put.receiver_for_put(pcloud, passwords, "/dav/a.txt", headers)
        for _ in range(put.VERIFICATIONS_AT_MOST)
    ]
    with pytest.raises(ServiceUnavailable) as refused:
        put.receiver_for_put(pcloud, passwords, "/dav/a.txt", headers)
    assert refused.value.headers == {"Retry-After": "1"}
    assert put.VERIFIER_BUSY in str(refused.value)
    for body in bodies[2:]:  # cut off before their checks began: cancelled
        body.close()
    room = put.receiver_for_put(pcloud, passwords, "/dav/a.txt", headers)
    release.set()
    for body in [*bodies[:2], room]:
        body.close()
