"""Failover over real HTTP: 429, 5xx, hangs, dead ports, breakers, and rate-limit headers."""

from __future__ import annotations

import attrs
import httpx
import pytest
import trio

from actors.limits import LimitSpec
from sims.mock_provider import MockProfile
from tests.live.conftest import live_config, start_mock, start_router

CHAT = {
    "model": "auto",
    "messages": [{"role": "user", "content": "Why this job?"}],
    "max_tokens": 8,
}


async def _pair(nursery, profile_a: str, **tables):
    """Mock providers a (tried first: priority policy) and b (healthy) behind a router."""
    a = await start_mock(nursery, "a", profile_a)
    b = await start_mock(nursery, "b")
    tables.setdefault("routing", {"policy": "priority"})
    config = live_config([a, b], silent=[a] if profile_a == "hang" else [], **tables)
    config = attrs.evolve(
        config,
        providers=(config.providers[0], attrs.evolve(config.providers[1], priority=1)),
    )
    url = await start_router(nursery, config)
    return a, b, url


async def _chat(http: httpx.AsyncClient, body=CHAT) -> httpx.Response:
    with trio.fail_after(10):
        return await http.post("/v1/chat/completions", json=body)


async def test_a_429_fails_over_at_once_and_keeps_off_for_its_retry_after(nursery):
    a, _b, url = await _pair(nursery, "rate-limited")
    async with httpx.AsyncClient(base_url=url) as http:
        first = (await _chat(http)).json()
        second = (await _chat(http)).json()
        health = (await http.get("/api/models/health")).json()["providers"]
    assert (first["provider"], first["attempts"]) == ("b", 2)
    assert (second["provider"], second["attempts"]) == ("b", 1)
    assert a.mock.calls["429"] == 1  # not asked again during its Retry-After
    status_a = next(p for p in health if p["name"] == "a")
    assert not status_a["available"] and status_a["wait_s"] > 5


@pytest.mark.parametrize("profile", ["down", "flaky"])
async def test_a_5xx_fails_over_to_a_healthy_provider(nursery, profile):
    a, _b, url = await _pair(nursery, "down" if profile == "down" else "healthy")
    if profile == "flaky":
        a.mock.set_profile("down")  # switched at run time, as the admin endpoint does
    async with httpx.AsyncClient(base_url=url) as http:
        reply = (await _chat(http)).json()
    assert (reply["provider"], reply["attempts"]) == ("b", 2)
    assert a.mock.calls["500"] == 1


async def test_a_hanging_provider_times_out_and_fails_over(nursery):
    _a, _b, url = await _pair(nursery, "hang")
    async with httpx.AsyncClient(base_url=url) as http:
        reply = (await _chat(http)).json()
    assert (reply["provider"], reply["attempts"]) == ("b", 2)
    assert reply["total_latency_ms"] >= 500  # a's first byte was due within 0.5 s


async def test_a_killed_provider_is_replaced_without_the_client_noticing(nursery):
    a, _b, url = await _pair(nursery, "healthy")
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await _chat(http)).json()["provider"] == "a"
        a.kill()
        await trio.sleep(0.05)
        reply = (await _chat(http)).json()
    assert (reply["provider"], reply["attempts"]) == ("b", 2)


async def test_breaker_opens_after_consecutive_failures_and_traffic_skips_it(nursery):
    a, _b, url = await _pair(
        nursery, "down", breaker={"failure_threshold": 2, "open_for": 30, "max_open_for": 60}
    )
    async with httpx.AsyncClient(base_url=url) as http:
        for _ in range(2):
            assert (await _chat(http)).json()["attempts"] == 2
        third = (await _chat(http)).json()
        health = {p["name"]: p for p in (await http.get("/api/models/health")).json()["providers"]}
        best = (await http.get("/api/models/best")).json()["provider"]["name"]
    assert (third["provider"], third["attempts"]) == ("b", 1)
    assert health["a"]["breaker"] == "open" and health["a"]["breaker_open_for_s"] > 25
    assert health["a"]["error_rate"] > 0 and health["b"]["breaker"] == "closed"
    assert best == "b"
    assert a.mock.calls["500"] == 2


async def test_rate_limit_headers_slow_the_router_down_before_the_429(nursery):
    a, _b, url = await _pair(nursery, "healthy")
    tight = MockProfile(
        "tight",
        "3 requests a minute",
        a.mock.profile.latency,
        limits=(LimitSpec("requests", "requests", 3, 60.0),),
    )
    a.mock.profiles["tight"] = tight
    a.mock.set_profile("tight")
    async with httpx.AsyncClient(base_url=url) as http:
        providers = [(await _chat(http)).json()["provider"] for _ in range(5)]
        status = (await http.get("/api/models/health")).json()["providers"][0]
    # The third answer said "0 requests left, reset in 60 s": the router moved on
    # before a could refuse anything, though no limit of a is configured.
    assert providers == ["a", "a", "a", "b", "b"]
    assert a.mock.calls["429"] == 0
    assert status["reported_limits"][0]["remaining"] == 0
    assert not status["available"]


async def test_when_every_provider_fails_the_error_lists_every_attempt(nursery):
    _a, b, url = await _pair(nursery, "down", retry={"max_attempts": 2})
    b.mock.set_profile("down")
    async with httpx.AsyncClient(base_url=url) as http:
        response = await _chat(http)
    error = response.json()["error"]
    assert response.status_code == 502
    assert error["code"] == "request_failed" and error["type"] == "server_error"
    assert [(x["provider"], x["code"]) for x in error["attempts"]] == [
        ("a", "upstream_error"),
        ("b", "upstream_error"),
    ]
    assert response.headers["x-request-id"] == error["request_id"]


async def test_when_every_provider_cools_down_the_answer_carries_retry_after(nursery):
    _a, b, url = await _pair(nursery, "rate-limited", retry={"deadline": 2.0})
    b.mock.set_profile("rate-limited")
    async with httpx.AsyncClient(base_url=url) as http:
        response = await _chat(http)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_provider"
    assert int(response.headers["retry-after"]) >= 1
