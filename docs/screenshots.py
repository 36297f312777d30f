"""Screenshots for the docs, taken in headless Chromium: the status page of a live router
whose first provider has started failing, and a simulation's report.html.

    .venv/bin/python docs/screenshots.py        # or: docs/figures.py --screenshots

It runs what a user would: two ``callboard mock-provider`` and a ``callboard serve`` on
free loopback ports, traffic through the router, one provider switched to ``down`` until
its breaker opens; and ``callboard simulate interview-day``. Each picture is written to
docs/images/ and named on stdout as a Markdown image, which docs/figures.py puts in the
page. Pixels depend on Chromium's version and fonts, so screenshots are only ever
written, never compared.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
BIN = Path(sys.executable).parent


def ask(number: int) -> dict[str, object]:
    """A chat request of its own (the router's cache would answer a repeated one)."""
    question = f"Question {number}: why this job?"
    return {"model": "auto", "messages": [{"role": "user", "content": question}], "max_tokens": 8}


WIDTH = 1280


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def started(*argv: str, cwd: Path) -> Iterator[None]:
    """A ``callboard`` command in the background in ``cwd`` (the router writes its log
    there), stopped (its process group) on exit."""
    process = subprocess.Popen(
        [str(BIN / "callboard"), *argv],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def wait_until_up(url: str) -> None:
    for _ in range(300):
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.1)
    raise SystemExit(f"screenshots: {url} did not answer within 30 s")


def chromium() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--hide-scrollbars"):
        options.add_argument(argument)
    options.add_argument("--force-device-scale-factor=1")
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def full_page(driver: webdriver.Chrome, path: Path, height_cap: int = 1600) -> None:
    """Make the viewport as tall as the page (up to ``height_cap``) and save a PNG of it."""
    driver.set_window_size(WIDTH, 200)  # so the page's height is its content's, not the window's
    height = min(driver.execute_script("return document.documentElement.scrollHeight"), height_cap)
    driver.set_window_size(WIDTH, height)
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    driver.set_window_size(2 * WIDTH - inner[0], 2 * height - inner[1])
    driver.save_screenshot(str(path))


ROUTER_TOML = """\
[[providers]]
name = "a"
base_url = "http://127.0.0.1:{a}/v1"
limits = [
    {{ name = "rpm", unit = "requests", limit = 60, per = 60 }},
    {{ name = "tpm", unit = "tokens", limit = 40000, per = 60 }},
]

[[providers]]
name = "b"
base_url = "http://127.0.0.1:{b}/v1"
limits = [{{ name = "rpd", unit = "requests", limit = 1000, per = 86400, mode = "window" }}]

[routing]
policy = "priority"

[breaker]
failure_threshold = 3
"""


def status_page(driver: webdriver.Chrome, work: Path) -> Path:
    a, b, router = free_port(), free_port(), free_port()
    url = f"http://127.0.0.1:{router}"
    config = work / "router.toml"
    config.write_text(ROUTER_TOML.format(a=a, b=b))
    with (
        started("mock-provider", "--port", str(a), "--name", "provider-a", "--seed", "1", cwd=work),
        started("mock-provider", "--port", str(b), "--name", "provider-b", "--seed", "2", cwd=work),
        started("serve", str(config), "--port", str(router), cwd=work),
    ):
        for port in (a, b):
            wait_until_up(f"http://127.0.0.1:{port}/v1/models")
        wait_until_up(f"{url}/health/live")
        with httpx.Client(base_url=url, timeout=60) as http:
            for number in range(12):
                http.post("/v1/chat/completions", json=ask(number))
            httpx.post(f"http://127.0.0.1:{a}/admin/profile", json={"profile": "down"})
            for number in range(12, 18):
                http.post("/v1/chat/completions", json=ask(number))
        driver.set_window_size(WIDTH, 900)
        driver.get(f"{url}/status")
        breaker = 'tr[data-account="a"] td.breaker'
        WebDriverWait(driver, 60).until(
            lambda d: d.find_element(By.CSS_SELECTOR, breaker).text.startswith("open")
        )
        path = IMAGES / "status-page.png"
        full_page(driver, path)
    return path


def report_page(driver: webdriver.Chrome, work: Path) -> Path:
    run = work / "interview-day"
    subprocess.run(
        [str(BIN / "callboard"), "simulate", "interview-day", "--quiet", "--out", str(run)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    driver.get((run / "report.html").as_uri())
    path = IMAGES / "report-html.png"
    full_page(driver, path)
    return path


def main() -> int:
    IMAGES.mkdir(parents=True, exist_ok=True)
    driver = chromium()
    try:
        with tempfile.TemporaryDirectory(prefix="callboard-screenshots-") as work:
            status = status_page(driver, Path(work))
            report = report_page(driver, Path(work))
    finally:
        driver.quit()
    print(
        "![The status page: provider-a's breaker open after it started failing]"
        f"(images/{status.name})"
    )
    print(f"![report.html of `callboard simulate interview-day`](images/{report.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
