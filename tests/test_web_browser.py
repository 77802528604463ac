"""The web app in a real browser: Debian's headless Chromium, driven by selenium through
the system chromedriver, against a real `pcloud serve`.

Screenshots of each main screen, at desktop and phone sizes, go to test-artifacts/web/
(git-ignored). axe-core is fetched from npm into tests/.cache/ once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import fresh_database_url, make_settings
from tests.served import start_server, stop_server

selenium = pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import NoAlertPresentException, TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as expected  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (Path("/usr/bin/chromium").exists() and Path("/usr/bin/chromedriver").exists()),
        reason="needs Debian's chromium and chromium-driver",
    ),
]
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "web"
CACHE = Path(__file__).resolve().parent / ".cache"
PASSWORD = "correct horse battery"
DESKTOP = (1280, 860)
PHONE = (390, 844)
XSS_NAME = "<img src=x onerror=alert(1)>.jpg"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Served:
    """A `pcloud serve` on a fixed port of its own, that a test may stop and start again."""

    def __init__(self, settings, port: int) -> None:
        self.settings = settings
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process, _url = start_server(self.settings, port=self.port, workers=1)

    def kill(self) -> None:
        """Gone at once, mid-request, as when a server loses power."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_server(self.process)

    def new_user(self) -> str:
        name = f"u{uuid.uuid4().hex[:10]}"
        answer = requests.post(
            f"{self.url}/register",
            timeout=10,
            json={"username": name, "email": f"{name}@example.org", "password": PASSWORD},
        )
        assert answer.status_code == 201, answer.text
        return name

    def login(self, name: str, device_name: str | None = None) -> dict:
        body = {"login_identifier": name, "password": PASSWORD, "device_name": device_name}
        answer = requests.post(f"{self.url}/login", timeout=10, json=body)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def headers(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.login(name)['access_token']}"}

    def root_entries(self, name: str, headers: dict | None = None) -> list[dict]:
        answer = requests.get(
            f"{self.url}/api/v1/folders/root", headers=headers or self.headers(name), timeout=10
        )
        return answer.json()["entries"]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("web")
    with fresh_database_url(folder) as database_url:
        settings = make_settings(
            folder, database_url, max_upload_size=2 * 1024**3, tus_max_chunk=64 * 1024**2
        )
        server = Served(settings, free_port())
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(tmp_path_factory, downloads) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    profile = tmp_path_factory.mktemp("chromium-profile")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser, served, downloads):
    """The browser at a fresh start: no cookies, no saved uploads, desktop size."""
    browser.set_window_size(*DESKTOP)
    browser.get(f"{served.url}/app/")
    browser.execute_script("localStorage.clear()")
    # (WebDriver's delete_all_cookies reaches only the cookies the page's path sees.)
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
    for leftover in downloads.iterdir():
        leftover.unlink()
    browser.get(f"{served.url}/app/#/signin")
    browser.refresh()  # a new page: nothing of the last test's left in memory
    css(browser, "#login")
    return browser


def wait_for(browser, condition, seconds: float = 15):
    """condition(browser), once true; on a timeout the screen and the browser's log are
    saved as test-artifacts/web/timeout-*.png and .log first."""
    try:
        return WebDriverWait(browser, seconds, poll_frequency=0.05).until(condition)
    except TimeoutException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%H%M%S")
        browser.save_screenshot(str(ARTIFACTS / f"timeout-{stamp}.png"))
        log = "\n".join(str(entry) for entry in browser.get_log("browser"))
        (ARTIFACTS / f"timeout-{stamp}.log").write_text(log)
        raise


def css(browser, selector: str):
    return wait_for(browser, expected.presence_of_element_located((By.CSS_SELECTOR, selector)))


def click(browser, selector: str) -> None:
    wait_for(browser, expected.element_to_be_clickable((By.CSS_SELECTOR, selector))).click()


def click_now(browser, selector: str) -> None:
    """Click `selector` in one step inside the page (for what is redrawn all the time,
    such as the upload panel, whose elements go stale between finding and clicking)."""
    script = "const e = document.querySelector(arguments[0]); if (e) e.click(); return !!e"
    wait_for(browser, lambda driver: driver.execute_script(script, selector))


def click_button(browser, text: str, within: str = "body") -> None:
    def find(driver):
        for button in driver.find_elements(By.CSS_SELECTOR, f"{within} button, {within} a.button"):
            if button.text.strip() == text and button.is_displayed() and button.is_enabled():
                return button
        return False

    wait_for(browser, find).click()


def sign_in(browser, served: Served, name: str | None = None) -> str:
    name = name or served.new_user()
    browser.get(f"{served.url}/app/")
    css(browser, "#login").send_keys(name)
    css(browser, "#password").send_keys(PASSWORD)
    click(browser, "form button[type=submit]")
    css(browser, "#files")
    return name


def listed_names(browser) -> list[str]:
    return browser.execute_script(
        "return [...document.querySelectorAll('#files .entry .name')].map(e => e.textContent)"
    )


def wait_listed(browser, *names: str, seconds: float = 30) -> None:
    wait_for(browser, lambda driver: set(names) <= set(listed_names(driver)), seconds)


def wait_uploads_done(browser, seconds: float = 60) -> None:
    def done(driver):
        return driver.execute_script(
            "const items = [...document.querySelectorAll('#uploads .upload')];"
            "return items.length > 0 && items.every(i => i.classList.contains('done')"
            " || i.classList.contains('skipped'))"
        )

    wait_for(browser, done, seconds)


ROW_OF = """
const [name, selector] = arguments;
const entry = [...document.querySelectorAll('#files .entry')]
  .find(e => e.querySelector('.name').textContent === name);
if (!entry) return false;
if (selector) { entry.querySelector(selector).click(); return true; }
return entry.querySelector('.name').textContent;
"""


def row_text(browser, name: str) -> str:
    """The name as the row shows it (the list redraws rows: found anew each time)."""
    return wait_for(browser, lambda driver: driver.execute_script(ROW_OF, name, None))


def on_row(browser, name: str, selector: str) -> None:
    """Click `selector` in the row of that name, in one step inside the page."""
    wait_for(browser, lambda driver: driver.execute_script(ROW_OF, name, selector))


def select(browser, name: str) -> None:
    on_row(browser, name, "input.select")


def answer_dialog(browser, text: str | None = None, button: str | None = None) -> None:
    box = css(browser, "dialog[open]")
    if text is not None:
        field = box.find_element(By.CSS_SELECTOR, "input")
        field.clear()
        field.send_keys(text)
    if button is None:
        box.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    else:
        click_button(browser, button, "dialog[open]")
    wait_for(browser, lambda driver: not driver.find_elements(By.CSS_SELECTOR, "dialog[open]"))


def screenshot(browser, name: str) -> None:
    """Save the screen at desktop and phone sizes, light and dark
    (test-artifacts/web/<name>-<size>[-dark].png)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    size = browser.get_window_size()
    for scheme in ("light", "dark"):
        browser.execute_cdp_cmd(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
        )
        for label, (width, height) in (("desktop", DESKTOP), ("phone", PHONE)):
            browser.set_window_size(width, height)
            time.sleep(0.3)
            suffix = "-dark" if scheme == "dark" else ""
            browser.save_screenshot(str(ARTIFACTS / f"{name}-{label}{suffix}.png"))
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    browser.set_window_size(size["width"], size["height"])


def axe_core() -> str:
    """axe-core's axe.min.js, from npm into tests/.cache/ the first time."""
    script = CACHE / "axe-core" / "axe.min.js"
    if not script.exists():
        CACHE.mkdir(exist_ok=True)
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("needs npm to fetch axe-core")
        packed = subprocess.run(
            [npm, "pack", "axe-core@4", "--silent", "--pack-destination", str(CACHE)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[-1]
        with tarfile.open(CACHE / packed) as archive:
            for member in ("package/axe.min.js", "package/LICENSE"):
                target = CACHE / "axe-core" / Path(member).name
                target.parent.mkdir(exist_ok=True)
                target.write_bytes(archive.extractfile(member).read())
    return script.read_text()


def serious_violations(browser) -> list[str]:
    browser.execute_script(axe_core())
    result = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations))"
        ".catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));"
    )
    return [
        f"{violation['id']}: {violation['help']} "
        f"({[node['target'] for node in violation['nodes']][:3]})"
        for violation in result
        if violation["impact"] in ("serious", "critical")
    ]


def make_file(folder: Path, name: str, size: int) -> tuple[Path, str]:
    path = folder / name
    with path.open("wb") as out:
        left = size
        while left:
            piece = os.urandom(min(left, 1024 * 1024))
            out.write(piece)
            left -= len(piece)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def downloaded(downloads: Path, name: str, seconds: float = 30) -> Path:
    deadline = time.monotonic() + seconds
    target = downloads / name
    while time.monotonic() < deadline:
        if target.exists() and not list(downloads.glob("*.crdownload")):
            return target
        time.sleep(0.1)
    raise AssertionError(f"{name} was not downloaded: {list(downloads.iterdir())}")


# ---- the tests -------------------------------------------------------------------------


def test_a_browser_asking_for_the_root_is_sent_to_the_app_and_sees_the_sign_in(page, served):
    page.get(f"{served.url}/")
    css(page, "#login")
    assert page.current_url == f"{served.url}/app/"
    assert page.title == "pcloud"
    assert serious_violations(page) == []
    screenshot(page, "sign-in")


def test_registering_in_the_app_signs_the_new_account_in(page, served):
    page.get(f"{served.url}/app/#/register")
    name = f"r{uuid.uuid4().hex[:8]}"
    css(page, "#username").send_keys(name)
    css(page, "#email").send_keys(f"{name}@example.org")
    css(page, "#password").send_keys(PASSWORD)
    screenshot(page, "register")
    click(page, "form button[type=submit]")
    css(page, "#files")
    assert name in page.find_element(By.CSS_SELECTOR, "main").text or listed_names(page) == []
    assert serious_violations(page) == []


def test_a_wrong_password_is_told_and_the_refresh_token_never_reaches_a_script(page, served):
    name = served.new_user()
    css(page, "#login").send_keys(name)
    css(page, "#password").send_keys("wrong")
    click(page, "form button[type=submit]")
    wait_for(
        page,
        lambda driver: (
            "Invalid credentials" in driver.find_element(By.CSS_SELECTOR, ".form-error").text
        ),
    )
    sign_in(page, served, name)
    assert page.execute_script("return document.cookie") == ""
    stored = page.execute_script(
        "return JSON.stringify(Object.assign({}, localStorage))"
        " + JSON.stringify(Object.assign({}, sessionStorage))"
    )
    assert "eyJ" not in stored  # no token (a JWT) kept where scripts read
    assert "token" not in page.current_url
    page.refresh()  # the session survives a reload through the HttpOnly cookie
    css(page, "#files")


def test_upload_by_picker_list_download_and_organise(page, served, tmp_path, downloads):
    name = sign_in(page, served)
    big, big_sha = make_file(tmp_path, "big video.mp4", 20 * 1024 * 1024)
    small = [make_file(tmp_path, f"note {index}.txt", 1000 + index) for index in range(3)]
    picked = tmp_path / "Holiday"
    (picked / "beach").mkdir(parents=True)
    for index in range(4):
        (picked / f"photo{index}.jpg").write_bytes(os.urandom(5000 + index))
    (picked / "beach" / "sand.jpg").write_bytes(os.urandom(7000))

    page.find_element(By.ID, "pick-files").send_keys(
        "\n".join(str(path) for path, _ in [(big, 0), *small])
    )
    wait_uploads_done(page)
    page.find_element(By.ID, "pick-folder").send_keys(str(picked))
    wait_uploads_done(page)
    wait_listed(page, "big video.mp4", "note 0.txt", "note 2.txt", "Holiday")
    screenshot(page, "files-list")
    entries = {entry["name"]: entry for entry in served.root_entries(name)}
    assert entries["big video.mp4"]["sha256"] == big_sha
    assert entries["Holiday"]["type"] == "folder"

    # Download a file, compare its bytes.
    select(page, "big video.mp4")
    click_button(page, "Download", "#selectionbar")
    assert (
        hashlib.sha256(downloaded(downloads, "big video.mp4").read_bytes()).hexdigest() == big_sha
    )
    click_button(page, "Clear selection")

    # Into the uploaded folder: its files and its subfolder arrived.
    on_row(page, "Holiday", ".open")
    wait_listed(page, "beach", "photo0.jpg", "photo3.jpg")
    assert "Holiday" in page.find_element(By.CSS_SELECTOR, ".crumbs").text
    # The folder as a ZIP, streamed by the server.
    click_button(page, "Download all")
    with zipfile.ZipFile(downloaded(downloads, "Holiday.zip")) as archive:
        assert sorted(archive.namelist()) == [
            "beach/sand.jpg",
            "photo0.jpg",
            "photo1.jpg",
            "photo2.jpg",
            "photo3.jpg",
        ]
        assert archive.read("beach/sand.jpg") == (picked / "beach" / "sand.jpg").read_bytes()
    click_button(page, "Photo grid")
    css(page, "#files.grid")
    wait_listed(page, "photo0.jpg")
    screenshot(page, "photo-grid")
    assert serious_violations(page) == []
    click_button(page, "Photo grid")
    css(page, "#files.list")
    page.find_element(By.CSS_SELECTOR, ".crumbs a").click()

    # Rename.
    wait_listed(page, "note 0.txt")
    select(page, "note 0.txt")
    click_button(page, "Rename", "#selectionbar")
    screenshot(page, "rename-dialog")
    answer_dialog(page, "renamed note.txt")
    wait_listed(page, "renamed note.txt")
    assert "note 0.txt" not in listed_names(page)

    # Move into Holiday, by the dialog.
    select(page, "note 1.txt")
    click_button(page, "Move", "#selectionbar")
    click_button(page, "Holiday", "dialog[open]")
    wait_for(
        page,
        lambda driver: "In: Holiday" in driver.find_element(By.CSS_SELECTOR, "dialog .where").text,
    )
    answer_dialog(page)
    wait_for(page, lambda driver: "note 1.txt" not in listed_names(driver))
    holiday = next(e for e in served.root_entries(name) if e["name"] == "Holiday")
    inside = requests.get(
        f"{served.url}/api/v1/folders/{holiday['id']}", headers=served.headers(name), timeout=10
    ).json()["entries"]
    assert "note 1.txt" in [entry["name"] for entry in inside]

    # Copy, into the same folder: the copy gets a numbered name.
    select(page, "big video.mp4")
    click_button(page, "Copy", "#selectionbar")
    answer_dialog(page)
    wait_listed(page, "big video_1.mp4")

    # Delete to the trash, and restore.
    select(page, "note 2.txt")
    click_button(page, "Delete", "#selectionbar")
    answer_dialog(page)
    wait_for(page, lambda driver: "note 2.txt" not in listed_names(driver))
    page.find_element(By.CSS_SELECTOR, '.topnav a[data-section="trash"]').click()
    restore = css(page, 'button[aria-label="Restore note 2.txt"]')
    screenshot(page, "trash")
    assert serious_violations(page) == []
    restore.click()
    wait_for(
        page, lambda driver: "The trash is empty" in driver.find_element(By.TAG_NAME, "main").text
    )
    assert "note 2.txt" in [entry["name"] for entry in served.root_entries(name)]


DROP_FILES = """
// Drop the files of the hidden input #drop-source on the page, as a drag from the desktop
// would: WebDriver cannot drag an OS file, but it can pick one, and a DataTransfer holding
// real File objects goes through the page's own dragover and drop handlers.
const input = document.getElementById('drop-source');
const transfer = new DataTransfer();
for (const file of input.files) transfer.items.add(file);
const target = document.getElementById('main');
const how = {dataTransfer: transfer, bubbles: true, cancelable: true};
const over = new DragEvent('dragover', how);
target.dispatchEvent(over);
target.dispatchEvent(new DragEvent('drop', how));
return over.defaultPrevented;
"""


def drop_files(browser, *paths: Path) -> None:
    browser.execute_script(
        "let input = document.getElementById('drop-source');"
        "if (!input) { input = document.createElement('input'); input.type = 'file';"
        " input.multiple = true; input.id = 'drop-source'; input.hidden = true;"
        " document.body.append(input); }"
        "input.value = '';"
    )
    browser.find_element(By.ID, "drop-source").send_keys("\n".join(str(p) for p in paths))
    assert browser.execute_script(DROP_FILES), "the page took no drop of files"


def upload_states(browser) -> dict[str, str]:
    """What the upload panel shows for each file (nothing while it is hidden)."""
    return browser.execute_script(
        "const panel = document.getElementById('uploads');"
        "if (!panel || panel.hidden) return {};"
        "return Object.fromEntries([...panel.querySelectorAll('.upload')]"
        ".map(i => [i.dataset.name, i.querySelector('.state').textContent]))"
    )


def test_dropped_files_are_uploaded_and_a_large_one_dropped_again_is_not_sent_again(
    page, served, tmp_path
):
    """Small and large files dragged onto the page are uploaded; dropping the large one
    again (same name, size and time) sends nothing, and a small one already there is
    known by its hash."""
    name = sign_in(page, served)
    large, large_sha = make_file(tmp_path, "film.mov", 40 * 1024 * 1024)
    small, small_sha = make_file(tmp_path, "memo.txt", 3000)
    drop_files(page, large, small)
    wait_uploads_done(page)
    wait_listed(page, "film.mov", "memo.txt")
    stored = {entry["name"]: entry for entry in served.root_entries(name)}
    assert (stored["film.mov"]["sha256"], stored["memo.txt"]["sha256"]) == (large_sha, small_sha)

    click_button(page, "Clear", "#uploads")
    wait_for(page, lambda driver: upload_states(driver) == {})
    drop_files(page, large, small)
    expected = {"film.mov": "Already there (same size and time)", "memo.txt": "Already there"}
    try:
        wait_for(page, lambda driver: upload_states(driver) == expected)
    finally:
        screenshot(page, "uploads-dropped-again")
    assert upload_states(page) == expected
    assert sorted(entry["name"] for entry in served.root_entries(name)) == ["film.mov", "memo.txt"]


def test_a_large_upload_survives_the_server_going_away_and_resumes(page, served, tmp_path):
    name = sign_in(page, served)
    path, sha = make_file(tmp_path, "long film.mkv", 120 * 1024 * 1024)
    # Slow the browser's uplink so that the upload is surely midway when the server goes.
    page.execute_cdp_cmd("Network.enable", {})
    page.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": 25 * 1024 * 1024,
        },
    )
    try:
        page.find_element(By.ID, "pick-files").send_keys(str(path))
        sent = lambda driver: driver.execute_script(  # noqa: E731
            "const p = document.querySelector('#uploads .upload progress'); return p ? p.value : 0"
        )
        wait_for(page, lambda driver: sent(driver) > 20 * 1024 * 1024, 60)
        served.kill()
        wait_for(
            page, lambda driver: "Connection lost" in driver.find_element(By.ID, "uploads").text, 30
        )
        screenshot(page, "upload-interrupted")
        served.start()
        wait_uploads_done(page, 120)
    finally:
        page.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )
    stored = {entry["name"]: entry for entry in served.root_entries(name)}
    assert stored["long film.mkv"]["sha256"] == sha
    assert list((served.settings.upload_folder / "partial").iterdir()) == []


def test_an_unfinished_upload_goes_on_after_a_reload_when_the_file_is_picked_again(
    page, served, tmp_path
):
    name = sign_in(page, served)
    path, sha = make_file(tmp_path, "archive.tar", 64 * 1024 * 1024)
    page.execute_cdp_cmd("Network.enable", {})
    page.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": 25 * 1024 * 1024,
        },
    )
    try:
        page.find_element(By.ID, "pick-files").send_keys(str(path))
        progress = (
            "const p = document.querySelector('#uploads .upload progress'); return p ? p.value : 0"
        )
        wait_for(page, lambda driver: driver.execute_script(progress) > 20 * 1024 * 1024, 60)
        page.refresh()
        css(page, "#files")
        wait_for(
            page, lambda driver: "Unfinished uploads" in driver.find_element(By.ID, "uploads").text
        )
        screenshot(page, "upload-unfinished")
        page.find_element(By.ID, "pick-files").send_keys(str(path))
        # It goes on from what the server had: the first progress shown is well past zero.
        wait_for(page, lambda driver: driver.execute_script(progress) > 0)
        assert page.execute_script(progress) >= 16 * 1024 * 1024
        wait_uploads_done(page, 60)
    finally:
        page.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )
    stored = {entry["name"]: entry for entry in served.root_entries(name)}
    assert stored["archive.tar"]["sha256"] == sha
    assert "archive.tar_1" not in str(stored)


def test_a_file_named_like_markup_stays_text(page, served, tmp_path):
    sign_in(page, served)
    odd = tmp_path / XSS_NAME
    odd.write_bytes(b"\xff\xd8not really a jpeg")
    page.find_element(By.ID, "pick-files").send_keys(str(odd))
    wait_listed(page, XSS_NAME)
    with pytest.raises(NoAlertPresentException):
        page.switch_to.alert.text  # noqa: B018
    assert page.execute_script("return document.querySelectorAll('img[src=\"x\"]').length") == 0
    assert row_text(page, XSS_NAME) == XSS_NAME


def test_devices_can_be_signed_out_and_so_can_the_browser(page, served):
    name = served.new_user()
    other = served.login(name, device_name="Other phone")
    sign_in(page, served, name)
    page.find_element(By.CSS_SELECTOR, '.topnav a[data-section="account"]').click()
    end = css(page, 'button[aria-label="Sign out Other phone"]')
    screenshot(page, "account")
    assert serious_violations(page) == []
    end.click()
    wait_for(
        page,
        lambda driver: (
            not driver.find_elements(By.CSS_SELECTOR, 'button[aria-label="Sign out Other phone"]')
        ),
    )
    refused = requests.post(
        f"{served.url}/token/refresh", json={"refresh_token": other["refresh_token"]}, timeout=10
    )
    assert refused.status_code == 401
    # Change the password: the new one works, the old one no longer does.
    css(page, "#old-password").send_keys(PASSWORD)
    css(page, "#new-password").send_keys("a new long passphrase")
    css(page, "#repeat-password").send_keys("a new long passphrase")
    click_button(page, "Change password")
    wait_for(page, lambda driver: "Password changed" in driver.find_element(By.ID, "toast").text)
    login = {"login_identifier": name, "password": "a new long passphrase"}
    assert requests.post(f"{served.url}/login", json=login, timeout=10).status_code == 200
    login["password"] = PASSWORD
    assert requests.post(f"{served.url}/login", json=login, timeout=10).status_code == 401
    page.find_element(By.CSS_SELECTOR, '.topnav a[data-section="account"]').click()
    click_button(page, "Sign out")
    css(page, "#login")
    page.refresh()
    css(page, "#login")  # the cookie went with the session: a reload does not sign back in
    login["password"] = "a new long passphrase"
    token = requests.post(f"{served.url}/login", json=login, timeout=10).json()["access_token"]
    left = requests.get(
        f"{served.url}/sessions", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).json()["sessions"]
    assert "Web browser" not in [session["device_name"] for session in left]


def test_the_app_page_runs_no_inline_script_and_logs_no_errors(page, served):
    page.get_log("browser")  # what earlier tests left
    sign_in(page, served)
    errors = [
        entry["message"]
        for entry in page.get_log("browser")
        if entry["level"] == "SEVERE"
        # (asking for a session before signing in is answered 401: expected)
        and "/api/v1/web/session/refresh" not in entry["message"]
    ]
    assert errors == []


def make_webm(path: Path, seconds: int = 4) -> None:
    """A VP8 WebM (which every Chromium plays) of noise, a few MB: too big to be read at
    one go, so that a seek asks the server for a range."""
    av = pytest.importorskip("av")
    with av.open(str(path), "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.bit_rate = 8_000_000
        for number in range(seconds * 10):
            frame = av.VideoFrame(320, 240, "yuv420p")
            for plane in frame.planes:
                plane.update(os.urandom(plane.buffer_size))
            frame.pts = number
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def png(width: int = 40, height: int = 30) -> bytes:
    """A real (tiny, red) PNG picture."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + b"\xd0\x30\x30" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + (chunk(b"IEND", b""))
    )


def test_photos_open_inline_and_a_video_plays_and_seeks(page, served, tmp_path):
    name = served.new_user()
    headers = served.headers(name)
    make_webm(tmp_path / "clip.webm")
    for file_name, data in (
        ("red.png", png()),
        ("clip.webm", (tmp_path / "clip.webm").read_bytes()),
    ):
        answer = requests.post(
            f"{served.url}/api/v1/folders/root/files",
            headers=headers,
            files={"file": (file_name, data)},
            timeout=30,
        )
        assert answer.status_code == 201, answer.text
    sign_in(page, served, name)
    on_row(page, "red.png", ".open")
    wait_for(
        page,
        lambda d: (
            d.execute_script(
                "const i = document.querySelector('dialog[open] .stage img');"
                "return i && i.complete && i.naturalWidth || 0"
            )
            == 40
        ),
    )
    click_button(page, "Previous", "dialog[open]")  # clip.webm sorts before red.png
    wait_for(
        page,
        lambda d: (
            d.execute_script(
                "const v = document.querySelector('dialog[open] video');"
                "return v && v.readyState >= 1 && v.duration || 0"
            )
            > 3
        ),
    )
    page.execute_script(
        "const v = document.querySelector('dialog[open] video'); v.pause();"
        "window.seeked = false; v.addEventListener('seeked', () => { window.seeked = true; });"
        "v.currentTime = 3.2;"
    )
    wait_for(page, lambda d: d.execute_script("return window.seeked"))
    assert (
        abs(
            page.execute_script("return document.querySelector('dialog[open] video').currentTime")
            - 3.2
        )
        < 0.5
    )
    screenshot(page, "viewer")
    assert serious_violations(page) == []


def test_the_list_is_used_with_the_keyboard(page, served, tmp_path):
    name = served.new_user()
    headers = served.headers(name)
    for index in range(30):
        requests.post(
            f"{served.url}/api/v1/folders/root/files",
            headers=headers,
            files={"file": (f"file {index:02d}.txt", b"x" * index)},
            timeout=10,
        )
    sign_in(page, served, name)
    wait_listed(page, "file 00.txt")
    page.execute_script("document.querySelector('#files .entry .open').focus()")
    focused = "return document.activeElement.closest('[data-index]')?.dataset.index"
    actions = webdriver.ActionChains(page)
    actions.send_keys(Keys.ARROW_DOWN).send_keys(Keys.ARROW_DOWN).perform()
    assert page.execute_script(focused) == "2"
    actions.send_keys(Keys.END).perform()
    wait_for(page, lambda driver: driver.execute_script(focused) == "29")
    assert page.execute_script("return document.activeElement.textContent") == "file 29.txt"
    actions.send_keys(Keys.DELETE).perform()  # asks first, with the focus in the dialog
    css(page, "dialog[open]")
    assert page.execute_script("return document.activeElement.closest('dialog') !== null")
    actions.send_keys(Keys.ESCAPE).perform()
    wait_for(page, lambda driver: not driver.find_elements(By.CSS_SELECTOR, "dialog[open]"))
    assert "file 29.txt" in [entry["name"] for entry in served.root_entries(name, headers)]


def slow_uplink(browser, bytes_per_second: int) -> None:
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": bytes_per_second,
        },
    )


def test_a_paused_upload_stops_and_goes_on_when_resumed(page, served, tmp_path):
    name = served.new_user()
    headers = served.headers(name)
    path, sha = make_file(tmp_path, "paused.bin", 48 * 1024 * 1024)
    sign_in(page, served, name)
    progress = "return document.querySelector('#uploads .upload progress')?.value || 0"
    slow_uplink(page, 20 * 1024 * 1024)
    try:
        page.find_element(By.ID, "pick-files").send_keys(str(path))
        wait_for(page, lambda driver: driver.execute_script(progress) > 4 * 1024 * 1024, 60)
        click_now(page, 'button[aria-label="Pause paused.bin"]')
        wait_for(page, lambda driver: "Paused" in driver.find_element(By.ID, "uploads").text)
        [saved] = page.execute_script("return Object.values(localStorage)")
        url = served.url + json.loads(saved)["url"]
        tus = {**headers, "Tus-Resumable": "1.0.0"}
        time.sleep(0.5)  # what was under way when paused has settled
        before = int(requests.head(url, headers=tus, timeout=10).headers["Upload-Offset"])
        time.sleep(1.5)
        after = int(requests.head(url, headers=tus, timeout=10).headers["Upload-Offset"])
        assert before == after < 48 * 1024 * 1024  # nothing more is sent while paused
        click_now(page, 'button[aria-label="Resume paused.bin"]')
        wait_uploads_done(page, 60)
    finally:
        slow_uplink(page, -1)
    stored = {entry["name"]: entry for entry in served.root_entries(name, headers)}
    assert stored["paused.bin"]["sha256"] == sha


def test_the_photo_grid_shows_thumbnails_and_a_share_link_is_made_copied_and_revoked(page, served):
    name = served.new_user()
    headers = served.headers(name)
    answer = requests.post(
        f"{served.url}/api/v1/folders/root/files",
        headers=headers,
        files={"file": ("wide.png", png(400, 200))},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    sign_in(page, served, name)
    click_button(page, "Photo grid")
    # The grid's picture is the server's thumbnail (fetched with the token, as a blob:
    # URL), not the icon: its proportions are the photo's.
    wait_for(
        page,
        lambda d: (
            d.execute_script(
                "const i = document.querySelector('#files .entry .thumb img');"
                "return i && i.complete && i.src.startsWith('blob:') && i.naturalWidth"
            )
            == 256
        ),
    )
    assert (
        page.execute_script("return document.querySelector('#files .thumb img').naturalHeight")
        == 128
    )
    screenshot(page, "photo-grid")

    select(page, "wide.png")
    click_button(page, "Share link")
    field = css(page, "dialog[open] #share-link")
    link = field.get_attribute("value")
    assert link.startswith(f"{served.url}/s/")
    shared = requests.get(link, timeout=10)
    assert shared.status_code == 200 and "wide.png" in shared.text
    page.execute_cdp_cmd(
        "Browser.grantPermissions",
        {"origin": served.url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
    )
    answer_dialog(page, button="Copy link")
    assert page.execute_script("return navigator.clipboard.readText()") == link

    page.get(f"{served.url}/app/#/account")
    css(page, "#shares-title")
    row = wait_for(
        page,
        lambda d: d.execute_script(
            "const b = document.querySelector('[aria-label=\"Revoke the link to wide.png\"]');"
            "if (b) b.click(); return !!b"
        ),
    )
    assert row
    wait_for(
        page,
        lambda d: (
            "No links" in d.find_element(By.CSS_SELECTOR, "[aria-labelledby=shares-title]").text
        ),
    )
    assert requests.get(link, timeout=10).status_code == 410


def test_the_sign_up_link_shows_only_where_registration_is_open(page, served, tmp_path):
    css(page, "#login")
    wait_for(page, lambda d: d.find_element(By.ID, "register-aside").is_displayed())
    with fresh_database_url(tmp_path) as database_url:
        closed = Served(make_settings(tmp_path, database_url, registration="closed"), free_port())
        closed.start()
        try:
            page.get(f"{closed.url}/app/")
            css(page, "#login")
            wait_for(
                page,
                lambda d: d.execute_script(
                    "return document.getElementById('register-aside').hidden"
                ),
            )
        finally:
            closed.stop()
