"""`kdsharp app` end to end in a real headless browser (Chromium driven by selenium).

The server runs as a user starts it (`python -m kdsharp app`); the browser uploads a 16-bit
image, waits for the before/after slider, downloads the result (full size, 16-bit), casts a
blind-comparison vote and finds it in the SQLite file; a screenshot of the page is taken, and
saved as docs/app.png (the README's) only when KDSHARP_UPDATE_DOCS=1, so a test run leaves the
checkout as it was. `.ci/run` installs Chromium, chromedriver and the app extra, so this runs in CI.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
CHROMEDRIVER = shutil.which("chromedriver")
MISSING = [
    what
    for what, ok in (
        ("gradio (pip install '.[app]')", importlib.util.find_spec("gradio")),
        ("selenium (pip install '.[test]')", importlib.util.find_spec("selenium")),
        ("Chromium (apt-get install chromium)", CHROMIUM),
        ("chromedriver (apt-get install chromium-driver)", CHROMEDRIVER),
    )
    if not ok
]
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason="the browser test needs " + ", ".join(MISSING) + " (.ci/run installs them)"
)

WAIT = 240  # s: the models run on a shared CPU


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``kdsharp app`` on a free port; stopped with Ctrl-C (SIGINT) at the end, its temp folder checked gone."""
    tmp = tmp_path_factory.mktemp("app")
    port, votes, log = _free_port(), tmp / "votes.db", tmp / "server.log"
    env = {**os.environ, "KDSHARP_QUIET": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kdsharp",
                "app",
                "--port",
                str(port),
                "--votes",
                str(votes),
                "--compare",
                "input,unsharp,fast",
                "--max-upload-mb",
                "2",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=tmp,
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + WAIT
    while True:
        if proc.poll() is not None:
            pytest.fail(f"kdsharp app exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.time() > deadline:
            proc.kill()
            pytest.fail(f"kdsharp app did not answer within {WAIT} s:\n{log.read_text(errors='replace')}")
        time.sleep(0.5)
    yield {"url": url, "votes": votes, "tmp": tmp, "log": log}
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    text = log.read_text(errors="replace")
    found = re.search(r"temporary files: (\S+)", text)
    assert found, text
    assert not Path(found.group(1)).exists(), f"temporary folder left behind: {found.group(1)}"
    assert "Traceback" not in text, text


@pytest.fixture(scope="module")
def browser(server):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = server["tmp"] / "downloads"
    downloads.mkdir()
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--force-device-scale-factor=1",
        "--lang=en-US",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
    ):  # a test-pattern camera
        opts.add_argument(arg)
    opts.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, condition, what: str, timeout: float = WAIT):
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:  # the page re-renders as results arrive: an element seen a moment ago may be gone
        return WebDriverWait(
            driver, timeout, poll_frequency=0.25, ignored_exceptions=(StaleElementReferenceException,)
        ).until(condition)
    except TimeoutException:
        driver.save_screenshot(str(ROOT / "tests" / "app-failure.png"))
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (screenshot: tests/app-failure.png)")


def _css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def _text(driver, selector: str) -> str:
    found = _css(driver, selector)
    return found[0].text if found else ""


def _loaded_images(driver, selector: str) -> list[str]:
    """The ``src`` of every fully loaded picture under ``selector``."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).filter(i => i.complete && i.naturalWidth > 0)"
        ".map(i => i.src)",
        selector + " img",
    )


def _upload(driver, elem_id: str, path: Path) -> None:
    _css(driver, f"#{elem_id} input[type=file]")[0].send_keys(str(path))


def _click(driver, selector: str) -> None:
    el = _css(driver, selector)[0]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
    el.click()


def _tab(driver, name: str) -> None:
    from selenium.webdriver.common.by import By

    next(b for b in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if name in b.text).click()


def _button(driver, scope: str, text: str):
    return next((b for b in _css(driver, f"{scope} button") if text in b.text), None)


def test_image_upload_slider_download_vote_screenshot(server, browser):
    d = browser
    tmp = server["tmp"]
    d.get(server["url"])
    _wait(d, lambda d: _css(d, "#image-input input[type=file]"), "the image tab")

    # an upload over --max-upload-mb: refused with a message on the page
    noise = tmp / "noise.png"
    cv2.imwrite(str(noise), np.random.default_rng(0).integers(0, 255, (1000, 1000, 3), dtype=np.uint8))
    assert noise.stat().st_size > 2 * 2**20
    _upload(d, "image-input", noise)
    _wait(d, lambda d: "exceeds the maximum allowed size" in _text(d, "body"), "the upload-size message")

    # a file that is not an image: a readable message on the page, the server carries on
    bad = tmp / "notes.png"
    bad.write_text("not an image at all")
    _upload(d, "image-input", bad)
    time.sleep(1.0)
    _click(d, "#image-run")
    _wait(d, lambda d: "not a readable image" in _text(d, "#image-info"), "the bad-upload message")
    assert "notes.png" in _text(d, "#image-info")

    # a 16-bit photo, degraded like a call: sharpened, shown in the slider, downloaded at full size and depth
    from kdsharp.data import SAMPLES_DIR
    from kdsharp.data.degrade import degrade

    clean = cv2.cvtColor(cv2.imread(str(SAMPLES_DIR / "coffee.png")), cv2.COLOR_BGR2RGB)
    photo = tmp / "call frame.png"
    cv2.imwrite(str(photo), cv2.cvtColor(degrade(clean, "defocus", seed=3), cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    h, w = clean.shape[:2]
    d.refresh()
    _wait(d, lambda d: _css(d, "#image-input input[type=file]"), "the image tab after a reload")
    _upload(d, "image-input", photo)
    _wait(d, lambda d: _loaded_images(d, "#image-input"), "the uploaded image")
    _click(d, "#image-run")
    _wait(d, lambda d: len(_loaded_images(d, "#image-slider")) >= 2, "two images in the before/after slider")
    info = _text(d, "#image-info")
    assert "fast" in info and f"{w}x{h} 16-bit" in info, info
    link = _wait(d, lambda d: _css(d, "#image-download a[href]"), "the download link")[0]
    assert link.text.endswith("call_frame_sharp.png") or "call_frame_sharp.png" in link.get_attribute("href")
    d.execute_script("window.scrollTo(0, 0);")
    time.sleep(0.5)
    shot = ROOT / "docs" / "app.png" if os.environ.get("KDSHARP_UPDATE_DOCS") == "1" else server["tmp"] / "app.png"
    assert d.save_screenshot(str(shot))
    _click(d, "#image-download a[href]")
    done = _wait(d, lambda d: [p for p in d.downloads.glob("*.png")], "the downloaded result", timeout=60)
    got = cv2.imread(str(done[0]), cv2.IMREAD_UNCHANGED)
    assert got is not None and got.shape == (h, w, 3) and got.dtype == np.uint16

    # blind comparison: the tab loads a pair, a vote lands in the database with the pair, the crop and the time
    _tab(d, "Blind comparison")
    _wait(d, lambda d: _loaded_images(d, "#compare-a") and _loaded_images(d, "#compare-b"), "the blind pair")
    _click(d, "#vote-a")
    _wait(d, lambda d: "Saved as vote #1" in _text(d, "#compare-status"), "the vote confirmation")
    assert "A was" in _text(d, "#compare-status")
    with sqlite3.connect(server["votes"]) as con:
        rows = con.execute("SELECT a, b, choice, winner, image, time, source FROM votes").fetchall()
        png = con.execute("SELECT png FROM images WHERE sha256 = ?", (rows[0][4],)).fetchone()[0]
    assert len(rows) == 1
    a, b, choice, winner, _, when, source = rows[0]
    assert {a, b} <= {"input", "unsharp", "fast"} and a != b and choice == "A" and winner == a
    assert when and source.endswith(".png") and bytes(png[:8]) == b"\x89PNG\r\n\x1a\n"


def test_webcam_tab_streams_fast_previews_of_the_camera(server, browser):
    d = browser
    d.get(server["url"])
    _wait(d, lambda d: _css(d, "#image-input"), "the page")
    _tab(d, "Webcam")
    _wait(d, lambda d: _button(d, "#webcam-input", "Webcam"), "the camera button").click()
    _wait(d, lambda d: _button(d, "#webcam-input", "Record"), "the record button").click()
    first = _wait(d, lambda d: _loaded_images(d, "#webcam-output"), "a sharpened camera frame", timeout=120)[0]
    _wait(
        d,
        lambda d: any(src != first for src in _loaded_images(d, "#webcam-output")),
        "a second frame (a live stream, not one picture)",
        timeout=60,
    )
    stop = _button(d, "#webcam-input", "Stop")
    if stop is not None:
        stop.click()
