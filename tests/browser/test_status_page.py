"""The status page in a real browser: it loads with no console error, draws every account,
and shows a breaker opening once its provider starts failing, from the live stream alone.

The router runs on this test's trio loop; Selenium blocks, so it is called from a thread.
"""

from __future__ import annotations

import functools

import attrs
import httpx
import trio
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import console_errors, set_viewport
from tests.live.conftest import live_config, start_mock, start_router

ASK = {"model": "auto", "messages": [{"role": "user", "content": "Hello?"}], "max_tokens": 5}
#: Seconds Selenium waits for the page to show something: long, so that a loaded machine
#: never fails the test; the page shows it within a snapshot interval (1 s) when idle.
PATIENCE = 60


def _cell(driver, account: str, column: str) -> str:
    found = driver.find_elements(By.CSS_SELECTOR, f'tr[data-account="{account}"] td.{column}')
    return found[0].text if found else ""


async def _in_browser(call, *args):
    return await trio.to_thread.run_sync(functools.partial(call, *args))


async def test_the_page_follows_a_breaker_opening_live(nursery, browser):
    a = await start_mock(nursery, "a")
    b = await start_mock(nursery, "b")
    config = live_config(
        [a, b],
        routing={"policy": "priority"},
        breaker={"failure_threshold": 2, "open_for": 120, "max_open_for": 240},
    )
    config = attrs.evolve(
        config, providers=(config.providers[0], attrs.evolve(config.providers[1], priority=1))
    )
    url = await start_router(nursery, config)

    def open_page() -> None:
        set_viewport(browser, 1280)
        browser.get(f"{url}/status")
        WebDriverWait(browser, PATIENCE).until(lambda d: _cell(d, "b", "breaker") == "closed")

    await _in_browser(open_page)
    assert await _in_browser(_cell, browser, "a", "breaker") == "closed"
    assert await _in_browser(browser.find_element(By.ID, "fleet").get_attribute, "data-status") in {
        "ok",
        "degraded",
    }

    a.mock.set_profile("down")  # as POST /admin/profile does
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for _ in range(3):
            assert (await http.post("/v1/chat/completions", json=ASK)).status_code == 200

    def breaker_opens() -> str:
        WebDriverWait(browser, PATIENCE).until(
            lambda d: _cell(d, "a", "breaker").startswith("open")
        )
        return _cell(browser, "a", "errors")

    errors = await _in_browser(breaker_opens)
    assert errors.count("upstream_error") == 2
    state = await _in_browser(_cell, browser, "a", "state")
    assert state.startswith("unavailable"), state
    assert await _in_browser(_cell, browser, "b", "breaker") == "closed"
    answered = await _in_browser(
        browser.find_element, By.CSS_SELECTOR, '[data-count="answered"] dd'
    )
    assert await _in_browser(lambda: answered.text) == "3"
    assert await _in_browser(console_errors, browser) == []


async def test_with_caller_keys_the_page_asks_for_an_admin_key(nursery, browser):
    ops = "cb-ops-0123456789abcdef0123456789abcdef00"
    web = "cb-web-0123456789abcdef0123456789abcdef00"
    a = await start_mock(nursery, "a")
    config = live_config([a], callers={"admins": ["ops"]})
    url = await start_router(nursery, config, env={"CALLBOARD_KEYS": f"ops={ops},web={web}"})

    def sign_in(key: str) -> str:
        browser.get(f"{url}/status")
        WebDriverWait(browser, PATIENCE).until(
            lambda d: d.find_element(By.ID, "key-form").is_displayed()
        )
        why = browser.find_element(By.ID, "key-why").text
        browser.find_element(By.ID, "key").send_keys(key)
        browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
        return why

    def refused_again() -> str:
        WebDriverWait(browser, PATIENCE).until(
            lambda d: "callers.admins" in d.find_element(By.ID, "key-why").text
        )
        return browser.find_element(By.ID, "key-why").text

    def shown() -> str:
        WebDriverWait(browser, PATIENCE).until(lambda d: _cell(d, "a", "breaker") == "closed")
        rows = browser.find_elements(By.CSS_SELECTOR, "#callers tr[data-caller]")
        return " ".join(row.get_attribute("data-caller") for row in rows)

    first_ask = await _in_browser(sign_in, web)
    assert "missing API key" in first_ask
    assert "'web'" in await _in_browser(refused_again)
    await _in_browser(sign_in, ops)
    assert await _in_browser(shown) == "ops web"
    # The refusals are the server's 401 and 403, which Chromium logs; nothing else.
    errors = await _in_browser(console_errors, browser)
    assert errors and all("401" in e or "403" in e for e in errors), errors
