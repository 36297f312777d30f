"""Redis dies, freezes or was never there: the routers keep serving, say so, and catch up."""

from __future__ import annotations

import logging

import attrs
import coredis
import httpx
import pytest
import trio

from tests.live.conftest import start_mock, start_router
from tests.state.conftest import shared_config
from tests.state.test_two_routers import _breaker, _chat, _two_routers

LIMITS = [{"name": "rpm", "unit": "requests", "limit": 600, "per": 60}]
#: Seconds between the circuit's probes of a store that is down.
RETRY_EVERY = 2.0


async def _state(http: httpx.AsyncClient) -> dict:
    return (await http.get("/health")).json()["state"]


async def _until_state(http: httpx.AsyncClient, status: str, within: float = 3.0) -> None:
    with trio.fail_after(within):
        while (await _state(http))["status"] != status:
            await trio.sleep(0.02)


@pytest.mark.slow
async def test_routers_keep_serving_when_redis_dies_and_resynchronise_when_it_returns(
    nursery, redis_server, caplog
):
    caplog.set_level(logging.INFO, logger="callboard.state")
    a = await start_mock(nursery, "a")
    b = await start_mock(nursery, "b")
    providers = [
        {"name": u.name, "base_url": f"{u.url}/v1", "limits": LIMITS, "priority": i}
        for i, u in enumerate((a, b))
    ]
    config = shared_config(
        [a, b],
        redis_server.url,
        providers=providers,
        routing={"policy": "priority"},
        breaker={"failure_threshold": 1, "open_for": 30},
    )
    one, two = await _two_routers(nursery, config)
    async with one, two:
        assert (await _chat(one)).status_code == 200
        assert (await _state(one))["status"] == "up"

        redis_server.kill()
        start = trio.current_time()
        replies = [await _chat(http) for http in (one, two) * 5]
        took = trio.current_time() - start
        assert [r.status_code for r in replies] == [200] * 10
        assert (await _state(one))["status"] == "down"
        down = await _state(two)
        assert down["status"] == "down" and down["fallbacks"] >= 1 and "last_error" in down
        metrics = (await two.get("/metrics")).text
        assert 'callboard_state_store_up{store="redis"} 0.0' in metrics
        assert "callboard_state_store_outages_total 1.0" in metrics

        # While Redis is away, a fails on the first router: its quarantine stays local.
        a.mock.set_profile("down")
        assert (await _chat(one)).json()["provider"] == "b"
        assert _breaker((await one.get("/api/models/health")).json(), "a") == "open"
        assert _breaker((await two.get("/api/models/health")).json(), "a") == "closed"

        redis_server.start()
        await _until_state(one, "up")
        await _until_state(two, "up")
        # Back up: the first router publishes what it missed, the second adopts it.
        with trio.fail_after(1.0):
            while _breaker((await two.get("/api/models/health")).json(), "a") != "open":
                await trio.sleep(0.02)
        failures_before = a.mock.calls["500"]
        assert (await _chat(two)).json()["provider"] == "b"
        assert a.mock.calls["500"] == failures_before
        metrics = (await two.get("/metrics")).text
    assert 'callboard_state_store_up{store="redis"} 1.0' in metrics
    assert took < 5.0  # ten requests: none waited long for the dead Redis
    messages = [r.getMessage() for r in caplog.records if r.name == "callboard.state"]
    assert any("status=down" in m and "serving on local state" in m for m in messages)
    assert any("status=up" in m and "resynchronising" in m for m in messages)


@pytest.mark.slow
async def test_a_frozen_redis_costs_a_request_at_most_its_timeout(nursery, redis_server):
    a = await start_mock(nursery, "a")
    config = shared_config(
        [a],
        redis_server.url,
        providers=[{"name": "a", "base_url": f"{a.url}/v1", "limits": LIMITS}],
        state={"timeout": 0.1, "retry_every": RETRY_EVERY},
    )
    one, two = await _two_routers(nursery, config)
    async with one, two:
        assert (await _chat(one)).status_code == 200
        redis_server.pause()
        began = trio.current_time()
        for http in (one, two) * 10:
            assert (await _chat(http)).status_code == 200
        elapsed = trio.current_time() - began
        frozen = [await _state(http) for http in (one, two)]
        redis_server.resume()
        await _until_state(one, "up", within=3 * RETRY_EVERY)
        await _until_state(two, "up", within=3 * RETRY_EVERY)
        assert (await _chat(two)).status_code == 200
    # Each router's first call to the frozen store waits its timeout (0.1 s) and opens the
    # circuit; after that a request skips the store, and the circuit probes it once per
    # retry_every. Counted, not timed: a loaded machine makes each wait no longer.
    probes = 1 + int(elapsed // RETRY_EVERY) + 1
    for state in frozen:
        assert state["status"] == "down" and 1 <= state["waited"] <= probes
        assert state["fallbacks"] > state["waited"]  # the rest did not wait at all


@pytest.mark.slow
async def test_a_router_starts_and_serves_without_redis_and_joins_when_it_comes_up(
    nursery, redis_server
):
    a = await start_mock(nursery, "a")
    config = shared_config([a], redis_server.url, cache={"enabled": True})
    redis_server.kill()
    url = await start_router(nursery, config)
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await _chat(http)).status_code == 200
        session = await http.post("/sessions", json={"session_id": "cand-9"})
        turn = await http.post("/sessions/cand-9/messages", json={"content": "Hi"})
        assert (session.status_code, turn.status_code) == (201, 200)
        health = (await http.get("/health")).json()
        assert health["status"] == "ok" and health["state"]["status"] == "down"
        redis_server.start()
        await _until_state(http, "up")
        # The session answered while Redis was away was written back: another router has it.
        other = await start_router(nursery, attrs.evolve(config))
        async with httpx.AsyncClient(base_url=other) as second:
            with trio.fail_after(2):
                while (reply := await second.get("/sessions/cand-9")).status_code != 200:
                    await trio.sleep(0.05)
    assert [m["role"] for m in reply.json()["history"]] == ["user", "assistant"]


async def test_a_foreign_value_under_the_prefix_is_an_outage_not_a_crash(nursery, redis_server):
    a = await start_mock(nursery, "a")
    url = await start_router(nursery, shared_config([a], redis_server.url, cache={"enabled": True}))
    async with (
        httpx.AsyncClient(base_url=url) as http,
        coredis.Redis.from_url(redis_server.url) as r,
    ):
        # A cache entry from some other writer (another version, say): not copied, counted.
        entry = {"k": "key-1", "v": '{"content": "no other field"}', "exp": "9" * 15, "o": "x"}
        await r.xadd("callboard:cache", entry)
        with trio.fail_after(3):
            while (await _state(http))["cache_entries_rejected"] != 1:
                await trio.sleep(0.02)
        await r.set("callboard:quarantine:a", "not json", px=60_000)
        with trio.fail_after(3):
            while (state := await _state(http))["status"] != "down":
                await trio.sleep(0.02)
        assert (await _chat(http)).status_code == 200
        await r.delete(["callboard:quarantine:a"])
        await _until_state(http, "up")
    assert "quarantines" in state["last_error"]
