"""A real headless Chromium, driven with Selenium: Debian's ``chromium`` and
``chromium-driver`` (installed by .ci/run and the README's test command, as redis-server).

One browser per test module (starting one takes a second or two); each test gets a clean
window size. Without the two programs these tests fail, loudly, rather than skip.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

#: What a page prints to the console at these levels counts as an error.
ERROR_LEVELS = {"SEVERE"}


def _program(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found is not None:
            return found
    pytest.fail(
        f"{' or '.join(names)} is not on PATH: the browser tests need a real Chromium. "
        "Install it (Debian/Ubuntu: apt-get install -y chromium chromium-driver)"
    )


@pytest.fixture(scope="module")
def chromium() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = _program("chromium", "chromium-browser")
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--hide-scrollbars",  # scrollbars would take width from the layout under test
        "--force-device-scale-factor=1",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(_program("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chromium: webdriver.Chrome) -> Iterator[webdriver.Chrome]:
    """The module's browser on a blank page, its console read empty; left on a blank page,
    so that no stream of the test's server is open when the server stops."""
    chromium.get("about:blank")
    chromium.get_log("browser")
    yield chromium
    chromium.get("about:blank")


def console_errors(driver: webdriver.Chrome) -> list[str]:
    """What the page printed to the console as errors since the last look."""
    return [
        entry["message"] for entry in driver.get_log("browser") if entry["level"] in ERROR_LEVELS
    ]


def set_viewport(driver: webdriver.Chrome, width: int, height: int = 900) -> None:
    """Make the page's viewport ``width`` CSS pixels wide (the window adds its frame)."""
    driver.set_window_size(width, height)
    inner = driver.execute_script("return window.innerWidth")
    if inner != width:
        driver.set_window_size(2 * width - inner, height)
