"""Thumbnails and share links (issue 16), each beside its yardstick in the same run.

    python bench/shares.py [--photos 48] [--big-size 1GiB] [--folder-photos 1000] [--json out.json]

    T1  cold thumbnails of 12-megapixel JPEGs (256 px, JPEG), 8 concurrent clients,
        thumbnails/s, beside the best direct library call on the same files in one
        process per core (Pillow draft() + thumbnail(); pyvips' thumbnail if it imports)
    T2  warm thumbnails/s (wrk, 8 connections, Bearer) beside W4: 4 KiB authenticated
        downloads/s from the same server
    T3  a 1 GiB download through a share link, MB/s, beside W1 (the same file through
        /download/<name>), medians of 3 through curl
    T4  a shared folder of N photos opened in headless Chromium (thumbnails made first):
        ms until the first screen's thumbnails have loaded, and until all N have (the page
        scrolled to its end)

pcloud runs as `pcloud serve` with its defaults (one process per core), except
THUMBNAIL_WORKERS=0 so that nothing is made ahead in the background and T1 starts cold.
Reuses bench/run.py's servers and clients.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import requests
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (bench/ is not a package)

CLIENTS = 8
THUMBNAIL_SIZE = 256
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def make_photo(path: Path, seed: int) -> None:
    """A 12-megapixel JPEG of photo-like size (~3-4 MB): a gradient under fine noise."""
    noise = Image.effect_noise((4000, 3000), 40 + seed % 20)
    gradient = Image.linear_gradient("L").resize((4000, 3000))
    red = Image.blend(noise, gradient, 0.6)
    image = Image.merge("RGB", (red, gradient, noise))
    image.save(path, quality=88)


def direct_thumbnail(path: str) -> int:
    """The direct call: Pillow's draft() (JPEG's DCT scaling) then thumbnail()."""
    with Image.open(path) as image:
        image.draft("RGB", (THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        out = io.BytesIO()
        image.convert("RGB").save(out, "JPEG", quality=82)
        return len(out.getvalue())


def vips_thumbnail(path: str) -> int:
    import pyvips

    image = pyvips.Image.thumbnail(path, THUMBNAIL_SIZE)
    return len(image.jpegsave_buffer(Q=82))


def direct_rate(paths: list[Path], function) -> float:
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(function, [str(paths[0])]))  # start the processes first
        started = time.perf_counter()
        list(pool.map(function, [str(p) for p in paths]))
        return len(paths) / (time.perf_counter() - started)


def launch(work: Path) -> bench.Server:
    port = bench.free_port()
    env = {
        **{name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ},
        "PCLOUD_DATA_DIR": str(work / "pcloud-data"),
        "SECRET_KEY": "bench-secret-key-of-a-sensible-length",
        "MAX_UPLOAD_SIZE": "8GiB",
        "THUMBNAIL_WORKERS": "0",
    }
    command = [bench.tool_path("pcloud"), "--env-file", os.devnull, "serve"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    return bench.launch("pcloud", command, work, port, env=env, cwd=work)


def upload(server, headers, path_or_bytes, name: str, folder: str = "root") -> dict:
    data = path_or_bytes.read_bytes() if isinstance(path_or_bytes, Path) else path_or_bytes
    answer = requests.post(
        f"{server.url}/api/v1/folders/{folder}/files",
        headers=headers,
        files={"file": (name, data)},
        timeout=120,
    )
    answer.raise_for_status()
    return answer.json()


def in_parallel(function, items: list) -> list:
    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(function, items))


def cold_thumbnails(server, headers, file_ids: list[int]) -> float:
    session = requests.Session()

    def one(file_id: int) -> None:
        answer = session.get(
            f"{server.url}/api/v1/files/{file_id}/thumbnail",
            headers={**headers, "Accept": "image/jpeg"},
            timeout=120,
        )
        answer.raise_for_status()

    started = time.perf_counter()
    in_parallel(one, file_ids)
    return len(file_ids) / (time.perf_counter() - started)


def big_download(server, url: str, headers: dict | None = None) -> float:
    runs = [bench.curl(url, headers=headers, keep_body=False).speed_download for _ in range(3)]
    return statistics.median(runs) / 1e6


def folder_page(server, headers, count: int) -> dict[str, float]:
    from selenium import webdriver

    folder = requests.post(
        f"{server.url}/api/v1/folders", headers=headers, json={"name": "Album"}, timeout=30
    ).json()
    photo = io.BytesIO()

    def add(number: int) -> int:
        image = Image.new("RGB", (1600, 1200), (number % 256, (number * 7) % 256, 90))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85)
        return upload(server, headers, out.getvalue(), f"IMG_{number:04d}.jpg", folder["id"])["id"]

    del photo
    file_ids = in_parallel(add, list(range(count)))
    token_path = requests.post(
        f"{server.url}/api/v1/shares", headers=headers, json={"folder_id": folder["id"]}, timeout=30
    ).json()["path"]
    link = server.url + token_path
    session = requests.Session()
    in_parallel(  # the thumbnails first, as Chromium will ask for them (WebP)
        lambda file_id: session.get(
            f"{link}/thumbnail/{file_id}", headers={"Accept": "image/webp"}, timeout=120
        ).raise_for_status(),
        file_ids,
    )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="bench-chromium-")
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
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
    try:
        driver.get(server.url + "/s/static/base.css")  # the browser started; not measured
        first, everything = [], []
        for _ in range(3):
            driver.execute_cdp_cmd("Network.clearBrowserCache", {})
            driver.get("about:blank")
            started = time.perf_counter()
            driver.get(link)
            while not driver.execute_script(
                "return document.readyState === 'complete' && [...document.images]"
                ".filter(i => i.getBoundingClientRect().top < innerHeight)"
                ".every(i => i.complete && i.naturalWidth > 0)"
            ):
                time.sleep(0.005)
            first.append((time.perf_counter() - started) * 1000)
            while not driver.execute_script(
                "const shown = [...document.images].filter(i => "
                "  i.getBoundingClientRect().top < innerHeight);"
                "if (shown.every(i => i.complete && i.naturalWidth > 0)) scrollBy(0, innerHeight);"
                "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"
            ):
                time.sleep(0.005)
            everything.append((time.perf_counter() - started) * 1000)
            count_shown = driver.execute_script("return document.images.length")
            assert count_shown == count, count_shown
    finally:
        driver.quit()
    return {"first_screen_ms": statistics.median(first), "all_ms": statistics.median(everything)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=48)
    parser.add_argument("--big-size", default="1GiB")
    parser.add_argument("--folder-photos", type=int, default=1000)
    parser.add_argument("--load-seconds", type=float, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from pcloud.config import parse_size

    big_size = parse_size(args.big_size)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="pcloud-bench-shares-") as folder:
        work = Path(folder)
        photos = []
        print(f"making {args.photos} 12-megapixel JPEGs ...", flush=True)
        for number in range(args.photos):
            path = work / f"photo{number:03d}.jpg"
            make_photo(path, number)
            photos.append(path)
        size_mb = sum(p.stat().st_size for p in photos) / len(photos) / 1e6
        print(f"  {size_mb:.1f} MB each on average", flush=True)
        results["direct_pillow_per_s"] = direct_rate(photos, direct_thumbnail)
        try:
            try:
                import pyvips  # noqa: F401
            except (ImportError, OSError):
                bench.pip_install("pyvips-binary")  # pyvips with libvips in its wheel
                import pyvips  # noqa: F401

            results["direct_pyvips_per_s"] = direct_rate(photos, vips_thumbnail)
        except (ImportError, OSError):
            print("  (pyvips not importable here: Pillow is the direct figure)")
        server = launch(work)
        try:
            bench.wait_until_ready(server)
            headers = bench.pcloud_login(server, "sharer")
            file_ids = in_parallel(lambda p: upload(server, headers, p, p.name)["id"], photos)
            results["cold_per_s"] = cold_thumbnails(server, headers, file_ids)
            small = upload(server, headers, os.urandom(4096), "small.bin")
            path = f"/api/v1/files/{file_ids[0]}/thumbnail"
            warm_headers = {**headers, "Accept": "image/webp"}
            bench.wrk(server, 1, path, warm_headers)  # warm-up
            results["warm_per_s"] = bench.wrk(server, args.load_seconds, path, warm_headers).ok_rate
            bench.wrk(server, 1, f"/download/{small['name']}", headers)
            results["w4_per_s"] = bench.wrk(
                server, args.load_seconds, f"/download/{small['name']}", headers
            ).ok_rate
            big = work / "big.bin"
            with big.open("wb") as out:
                for _ in range(big_size // (64 * 1024 * 1024) or 1):
                    out.write(os.urandom(64 * 1024 * 1024))
            result, stored = bench.upload(
                bench.Server("pcloud", server.port, server.process, server.log, headers=headers),
                big,
                "big.bin",
            )
            big.unlink()
            big_id = [
                e
                for e in requests.get(
                    f"{server.url}/api/v1/folders/root", headers=headers, timeout=30
                ).json()["entries"]
                if e["name"] == stored
            ][0]["id"]
            link = requests.post(
                f"{server.url}/api/v1/shares", headers=headers, json={"file_id": big_id}, timeout=30
            ).json()["path"]
            results["w1_mb_s"] = big_download(server, f"{server.url}/download/{stored}", headers)
            results["share_mb_s"] = big_download(server, f"{server.url}{link}/download")
            if args.folder_photos:
                results.update(folder_page(server, headers, args.folder_photos))
        finally:
            server.stop()
    best_direct = max(results.get("direct_pillow_per_s", 0), results.get("direct_pyvips_per_s", 0))
    rows = [
        (
            "T1 cold thumbnails/s (12 MP JPEG, 8 clients)",
            results["cold_per_s"],
            best_direct,
            "best direct call",
            0.7,
        ),
        (
            "T2 warm thumbnails/s (8 connections)",
            results["warm_per_s"],
            results["w4_per_s"],
            "W4 4 KiB downloads/s",
            1.0,
        ),
        (
            "T3 1 GiB through a share link, MB/s",
            results["share_mb_s"],
            results["w1_mb_s"],
            "W1 /download",
            0.9,
        ),
    ]
    print(f"\n{'measurement':48} {'pcloud':>10} {'yardstick':>10}  ratio  target")
    for label, value, yardstick, name, target in rows:
        ratio = value / yardstick if yardstick else 0
        verdict = "met" if ratio >= target else "NOT met"
        print(
            f"{label:48} {value:10.1f} {yardstick:10.1f}  {ratio:4.2f}x  "
            f">= {target}x {name}: {verdict}"
        )
    print(
        f"  direct Pillow draft()+thumbnail(): {results['direct_pillow_per_s']:.1f}/s"
        + (
            f", pyvips: {results['direct_pyvips_per_s']:.1f}/s"
            if "direct_pyvips_per_s" in results
            else ""
        )
    )
    if "first_screen_ms" in results:
        verdict = "met" if results["first_screen_ms"] < 2000 else "NOT met"
        print(
            f"T4 folder of {args.folder_photos} photos in Chromium: first screen "
            f"{results['first_screen_ms']:.0f} ms, all thumbnails {results['all_ms']:.0f} ms "
            f"(target < 2000 ms: {verdict})"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
