"""The public share pages in a real browser: headless Chromium (Debian's, driven by its
chromedriver through selenium) against a real `pcloud serve`, signed out.

Screenshots of every page go to test-artifacts/shares/ (git-ignored).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
import requests
from PIL import Image

from tests.conftest import fresh_database_url, make_settings
from tests.served import PASSWORD, start_server, stop_server
from tests.test_thumbnails import picture

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.e2e

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "shares"

if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.skip("needs Debian's chromium and chromium-driver", allow_module_level=True)


class Site:
    """A running `pcloud serve` and a signed-in owner who makes links."""

    def __init__(self, url: str) -> None:
        self.url = url
        requests.post(
            f"{url}/register",
            json={"username": "ann", "email": "ann@example.org", "password": PASSWORD},
            timeout=10,
        )
        login = requests.post(
            f"{url}/login", json={"login_identifier": "ann", "password": PASSWORD}, timeout=10
        ).json()
        self.headers = {"Authorization": f"Bearer {login['access_token']}"}

    def upload(self, data: bytes, name: str, folder: str = "root") -> dict:
        answer = requests.post(
            f"{self.url}/api/v1/folders/{folder}/files?on_conflict=rename",
            headers=self.headers,
            files={"file": (name, data)},
            timeout=30,
        )
        assert answer.status_code == 201, answer.text
        return answer.json()

    def folder(self, name: str) -> dict:
        answer = requests.post(
            f"{self.url}/api/v1/folders", headers=self.headers, json={"name": name}, timeout=10
        )
        assert answer.status_code == 201, answer.text
        return answer.json()

    def share(self, **body) -> str:
        answer = requests.post(
            f"{self.url}/api/v1/shares", headers=self.headers, json=body, timeout=10
        )
        assert answer.status_code == 201, answer.text
        return self.url + answer.json()["path"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("share-browser")
    with fresh_database_url(folder) as database_url:
        settings = make_settings(folder, database_url, max_upload_size=256 * 1024 * 1024)
        process, url = start_server(settings)
        try:
            yield Site(url)
        finally:
            stop_server(process)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(tmp_path_factory, downloads):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(browser, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def wait(browser, condition, seconds: float = 20):
    return WebDriverWait(browser, seconds, poll_frequency=0.05).until(condition)


def loaded(browser, selector: str) -> bool:
    return browser.execute_script(
        "const i = document.querySelector(arguments[0]);"
        "return !!i && i.complete && i.naturalWidth > 0;",
        selector,
    )


def downloaded(folder: Path, name: str, seconds: float = 20) -> bytes:
    path = folder / name
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and not list(folder.glob("*.crdownload")):
            return path.read_bytes()
        time.sleep(0.1)
    raise AssertionError(f"{name} was not downloaded: {os.listdir(folder)}")


def test_a_shared_photo_shows_its_thumbnail_and_downloads_the_same_bytes(site, browser, downloads):
    data = picture(4000, 3000)
    site.upload(data, "holiday.jpg")
    entry = site.upload(picture(1200, 800), "beach.jpg")
    link = site.share(file_id=entry["id"])
    browser.get(link)
    wait(browser, lambda b: loaded(b, "#photo"))
    assert browser.find_element(By.ID, "file-name").text == "beach.jpg"
    width = browser.execute_script("return document.querySelector('#photo').naturalWidth")
    assert width == 1024  # the 1024 thumbnail, not the original
    screenshot(browser, "file-photo")
    browser.find_element(By.ID, "download").click()
    expected = requests.get(link + "/download", timeout=10).content
    assert downloaded(downloads, "beach.jpg") == expected
    assert hashlib.sha256(expected).hexdigest() == entry["sha256"]


def test_a_password_protected_link_opens_only_with_its_password(site, browser):
    entry = site.upload(b"the plans", "plans.txt")
    link = site.share(file_id=entry["id"], password="correct horse")
    browser.get(link)
    assert "plans.txt" not in browser.page_source
    screenshot(browser, "password")
    browser.find_element(By.ID, "password").send_keys("wrong")
    browser.find_element(By.ID, "unlock").click()
    wait(browser, lambda b: b.find_elements(By.ID, "wrong-password"))
    browser.find_element(By.ID, "password").send_keys("correct horse")
    browser.find_element(By.ID, "unlock").click()
    wait(browser, lambda b: b.find_elements(By.ID, "file-name"))
    assert browser.find_element(By.ID, "file-name").text == "plans.txt"
    screenshot(browser, "password-opened")


def test_an_anonymous_visitor_drops_a_large_file_and_resumes_after_a_break(site, browser, tmp_path):
    dropbox = site.folder("Inbox")
    link = site.share(folder_id=dropbox["id"], mode="upload")
    data = os.urandom(24 * 1024 * 1024)
    path = tmp_path / "big video.bin"
    path.write_bytes(data)
    browser.get(link)
    screenshot(browser, "drop")
    # A slow line, so that the page can be left halfway through.
    browser.set_network_conditions(
        offline=False, latency=5, download_throughput=50_000_000, upload_throughput=4_000_000
    )
    try:
        browser.find_element(By.ID, "files").send_keys(str(path))
        browser.find_element(By.ID, "send").click()
        wait(
            browser,
            lambda b: b.execute_script(
                "const p = document.querySelector('#uploads progress');"
                "return p && p.value > p.max * 0.2;"
            ),
            60,
        )
        browser.get(link)  # the tab goes away mid-upload
    finally:
        browser.delete_network_conditions()
    browser.find_element(By.ID, "files").send_keys(str(path))
    browser.find_element(By.ID, "send").click()
    row = wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#uploads li[data-done]"), 60)
    resumed_at = int(row[0].get_attribute("data-resumed-at"))
    assert resumed_at > 0  # went on from what had arrived
    screenshot(browser, "drop-done")
    listing = requests.get(
        f"{site.url}/api/v1/folders/{dropbox['id']}", headers=site.headers, timeout=10
    ).json()
    [entry] = listing["entries"]
    assert entry["name"] == "big video.bin"
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()


def make_webm(path: Path, seconds: int = 6) -> None:
    with av.open(str(path), "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.gop_size = 10
        for number in range(seconds * 10):
            image = Image.new("RGB", (320, 240), (number * 4 % 256, 80, 160))
            frame = av.VideoFrame.from_image(image)
            frame.pts = number
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def test_a_shared_video_plays_and_seeks(site, browser, tmp_path):
    path = tmp_path / "clip.webm"
    make_webm(path)
    entry = site.upload(path.read_bytes(), "clip.webm")
    browser.get(site.share(file_id=entry["id"]))
    video = browser.find_element(By.ID, "player")
    wait(browser, lambda b: b.execute_script("return arguments[0].readyState >= 1", video))
    duration = browser.execute_script("return arguments[0].duration", video)
    assert duration == pytest.approx(6, abs=0.5)
    browser.execute_script("arguments[0].muted = true; arguments[0].play()", video)
    wait(browser, lambda b: b.execute_script("return arguments[0].currentTime > 0.2", video))
    browser.execute_script(
        "const v = arguments[0]; v.pause(); v.dataset.seeked = '';"
        "v.addEventListener('seeked', () => { v.dataset.seeked = 'yes'; }, {once: true});"
        "v.currentTime = 4.0;",
        video,
    )
    wait(browser, lambda b: video.get_attribute("data-seeked") == "yes")
    position = browser.execute_script("return arguments[0].currentTime", video)
    assert position == pytest.approx(4.0, abs=0.3)
    screenshot(browser, "video")


def test_an_expired_link_shows_a_410_page(site, browser):
    entry = site.upload(b"old news", "old.txt")
    link = site.share(file_id=entry["id"], expires_in=1)
    time.sleep(1.5)
    browser.get(link)
    assert "This link no longer works" in browser.find_element(By.TAG_NAME, "h1").text
    status = browser.find_element(By.ID, "share-error").get_attribute("data-status")
    assert status == "410"
    assert requests.get(link, timeout=10).status_code == 410
    screenshot(browser, "expired")


def test_a_file_named_like_markup_shows_as_text(site, browser):
    name = "<img src=x onerror=alert(1)>.jpg"
    entry = site.upload(picture(), name)
    browser.get(site.share(file_id=entry["id"]))
    wait(browser, lambda b: loaded(b, "#photo"))
    assert browser.find_element(By.ID, "file-name").text == name
    assert browser.execute_script("return document.querySelectorAll('img[src=\"x\"]').length") == 0
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018
    screenshot(browser, "markup-name")


def test_a_shared_folder_shows_thumbnails_and_downloads_one_file(site, browser, downloads):
    album = site.folder("Album")
    for number in range(6):
        site.upload(picture(800 + number * 10, 600), f"photo {number}.jpg", album["id"])
    site.upload(b"notes", "notes.txt", album["id"])
    link = site.share(folder_id=album["id"])
    browser.get(link)
    wait(
        browser,
        lambda b: b.execute_script(
            "return [...document.querySelectorAll('img.thumb')]"
            ".every(i => i.complete && i.naturalWidth > 0)"
        ),
    )
    assert len(browser.find_elements(By.CSS_SELECTOR, "img.thumb")) == 6
    screenshot(browser, "folder")
    shutil.rmtree(downloads / "notes.txt", ignore_errors=True)
    browser.find_element(By.XPATH, "//a[.//span[text()='notes.txt']]").click()
    assert downloaded(downloads, "notes.txt") == b"notes"
