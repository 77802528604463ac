"""The web app measured in headless Chromium against one `pcloud serve` (issue 17):

load    first load of /app/ (HTML + JS + CSS + icons): bytes over the wire (gzip) and
        the time until the sign-in form is usable (the app's `pcloud-interactive` mark)
list    a folder of 10,000 files: from navigation until its rows show, and until the
        last row shows after scrolling to the end
upload  1 GiB through tus from the page, beside W6 (bench/run.py's own tus client,
        8 MiB pieces over one keep-alive connection) against the same server, in
        the same run, in turns after one to warm up (medians of --rounds; the disk
        synced before each), the page timing itself: the ratio is what counts

  .venv/bin/python bench/web.py [--size-mib 1024] [--skip-upload] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import (  # noqa: E402
    PASSWORD,
    Options,
    launch_pcloud,
    pcloud_login,
    tus_upload,
    wait_until_ready,
)

FILES = 10_000


def browser(downloads: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
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
        f"--user-data-dir={tempfile.mkdtemp(prefix='bench-chromium-')}",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def wait(driver, script: str, seconds: float = 120, poll: float = 0.01):
    """The script's first truthy answer. (Each poll runs script in the page: a long
    measurement polls seldom, and times itself in the page.)"""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(poll)
    raise RuntimeError(f"timed out waiting for: {script}")


LOAD_FIGURES = """
const nav = performance.getEntriesByType('navigation')[0];
const resources = performance.getEntriesByType('resource')
  .filter(r => new URL(r.name).pathname.startsWith('/app/'));
const sum = (key) => nav[key] + resources.reduce((total, r) => total + r[key], 0);
return {
  wire_bytes: sum('transferSize'),
  body_bytes: sum('decodedBodySize'),
  files: resources.length + 1,
  interactive_ms: performance.getEntriesByName('pcloud-interactive')[0].startTime,
};
"""


def measure_load(driver, url: str, times: int = 7) -> dict:
    """A first load (the browser's cache off) `times` times: the median and the worst."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    loads = []
    for _ in range(times):
        driver.get("about:blank")
        driver.get(f"{url}/app/")
        wait(driver, "return performance.getEntriesByName('pcloud-interactive').length")
        loads.append(driver.execute_script(LOAD_FIGURES))
    driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": False})
    interactive = sorted(load["interactive_ms"] for load in loads)
    return {
        **loads[-1],
        "interactive_ms": round(statistics.median(interactive)),
        "interactive_worst_ms": round(interactive[-1]),
        "times": times,
    }


def sign_in(driver, url: str, username: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/app/")
    wait(driver, "return document.getElementById('login') || document.getElementById('files')")
    if driver.execute_script("return document.getElementById('files')"):
        return  # signed in already (the session outlives a reload)
    driver.find_element(By.ID, "login").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(driver, "return document.getElementById('files')")


def fill_folder(url: str, headers: dict) -> int:
    """A folder of FILES files (one blob; the rest made from its content, no bytes sent)."""
    folder = requests.post(
        f"{url}/api/v1/folders", headers=headers, json={"name": "ten thousand"}, timeout=30
    ).json()
    content = os.urandom(1000)
    sha256 = hashlib.sha256(content).hexdigest()
    requests.post(
        f"{url}/api/v1/folders/{folder['id']}/files",
        headers=headers,
        files={"file": ("photo 00000.jpg", content)},
        timeout=30,
    ).raise_for_status()
    for start in range(1, FILES, 1000):
        batch = [
            {"sha256": sha256, "name": f"photo {index:05d}.jpg", "folder_id": folder["id"]}
            for index in range(start, min(FILES, start + 1000))
        ]
        requests.post(
            f"{url}/api/v1/files/from-content/batch",
            headers=headers,
            json={"files": batch},
            timeout=120,
        ).raise_for_status()
    return folder["id"]


def measure_listing(driver, url: str, folder_id: int) -> dict:
    driver.execute_script(
        f"window.benchStart = performance.now(); location.hash = '#/files/{folder_id}'"
    )
    shown = wait(
        driver,
        "return document.querySelector('#files .entry:not(.placeholder) .name')"
        " && document.getElementById('count').textContent.startsWith('10000')"
        " && performance.now() - window.benchStart",
    )
    driver.execute_script(
        "window.benchScroll = performance.now();"
        "const s = document.getElementById('files'); s.scrollTop = s.scrollHeight"
    )
    last = wait(
        driver,
        "return [...document.querySelectorAll('#files .entry .name')]"
        ".some(e => e.textContent === 'photo 09999.jpg') && performance.now() - window.benchScroll",
    )
    return {"rows_shown_ms": shown, "scrolled_to_last_ms": last, "total_ms": shown + last}


# The page's own clock, from the file's choice until its upload row shows done.
UPLOAD_CLOCK = """
const started = performance.now();
window.benchDone = null;
new MutationObserver((_changes, observer) => {
  if (document.querySelector('#uploads .upload')?.classList.contains('done')) {
    window.benchDone = performance.now() - started;
    observer.disconnect();
  }
}).observe(document.body, { subtree: true, childList: true, attributes: true });
"""


def measure_upload(driver, server, work: Path, size: int, rounds: int) -> dict:
    """W6 and the page's upload of the same file, in turns: medians of `rounds`. The
    disk is synced before each, so that no upload pays for the writeback of the one
    before."""
    from selenium.webdriver.common.by import By

    path = work / "big.bin"
    with path.open("wb") as out:
        piece = os.urandom(8 * 1024 * 1024)
        for _ in range(size // len(piece)):
            out.write(piece)
    w6_seconds, browser_seconds = [], []
    for turn in range(-1, rounds):  # turn -1 warms up (Chromium's first upload is slow)
        os.sync()
        started = time.perf_counter()
        tus_upload(server, path, f"w6-{turn + 1}.bin")
        w6_seconds.append(time.perf_counter() - started)
        sign_in(driver, server.url, "bench")  # a fresh page: it lists the root anew
        driver.execute_script("location.hash = '#/files/root'")
        wait(driver, "return document.getElementById('pick-files')")
        os.sync()
        driver.execute_script(UPLOAD_CLOCK)
        driver.find_element(By.ID, "pick-files").send_keys(str(path))
        browser_seconds.append(wait(driver, "return window.benchDone", 900, poll=0.2) / 1000)
        remove_from_root(server, path.name)  # else the next turn's is skipped, as there
        if turn < 0:
            w6_seconds.clear()
            browser_seconds.clear()
    path.unlink()
    mib = size / 1024**2
    w6 = mib / statistics.median(w6_seconds)
    browser = mib / statistics.median(browser_seconds)
    return {
        "size_mib": mib,
        "rounds": rounds,
        "w6_mib_per_s": round(w6, 1),
        "browser_mib_per_s": round(browser, 1),
        "ratio": round(browser / w6, 2),
        "w6_seconds": [round(t, 2) for t in w6_seconds],
        "browser_seconds": [round(t, 2) for t in browser_seconds],
    }


def remove_from_root(server, name: str) -> None:
    listing = requests.get(f"{server.url}/api/v1/folders/root", headers=server.headers, timeout=30)
    for entry in listing.json()["entries"]:
        if entry["name"] == name:
            requests.delete(
                f"{server.url}/api/v1/files/{entry['id']}", headers=server.headers, timeout=30
            ).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--skip-upload", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="upload turns (medians)")
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pcloud-web-bench-"))
    options = Options(
        big_size=0, rounds=1, load_seconds=0, only=[], pcloud_args=[], profile_dir=None
    )
    server = launch_pcloud(work, options)
    driver = None
    try:
        wait_until_ready(server)
        server.headers = pcloud_login(server, "bench")
        driver = browser(work / "downloads")
        results = {"load": measure_load(driver, server.url)}
        folder_id = fill_folder(server.url, server.headers)
        sign_in(driver, server.url, "bench")
        results["list"] = measure_listing(driver, server.url, folder_id)
        if not arguments.skip_upload:
            results["upload"] = measure_upload(
                driver, server, work, arguments.size_mib * 1024**2, arguments.rounds
            )
        print(json.dumps(results, indent=2))
    finally:
        if driver is not None:
            driver.quit()
        server.stop()


if __name__ == "__main__":
    main()
