"""Two ``callboard serve`` instances on one Redis behave as one router.

Each test starts a real redis-server, loopback mock providers and two routers
in-process, and talks to both over HTTP.
"""

from __future__ import annotations

import logging

import attrs
import httpx
import pytest
import trio

from actors.limits import LimitSpec
from engine.serve.state.redis_store import RedisStore
from engine.serve.state.store import Charge
from tests.live.conftest import start_mock, start_router
from tests.state.conftest import shared_config

pytestmark = pytest.mark.slow  # every test here takes seconds: out of `pytest -m "not slow"`

CHAT = {
    "model": "auto",
    "messages": [{"role": "user", "content": "Why this job?"}],
    "max_tokens": 8,
}


async def _chat(http: httpx.AsyncClient, body=CHAT) -> httpx.Response:
    with trio.fail_after(10):
        return await http.post("/v1/chat/completions", json=body)


async def _two_routers(nursery, config):
    first = await start_router(nursery, config)
    second = await start_router(nursery, config)
    return httpx.AsyncClient(base_url=first, timeout=30), httpx.AsyncClient(
        base_url=second, timeout=30
    )


def _breaker(health: dict, name: str) -> str:
    return next(p["breaker"] for p in health["providers"] if p["name"] == name)


async def test_a_provider_quarantined_by_one_router_is_skipped_by_the_other_within_a_second(
    nursery, redis_server
):
    a = await start_mock(nursery, "a", "down")
    b = await start_mock(nursery, "b")
    config = shared_config(
        [a, b],
        redis_server.url,
        routing={"policy": "priority"},
        breaker={"failure_threshold": 1, "open_for": 30},
    )
    config = attrs.evolve(
        config, providers=(config.providers[0], attrs.evolve(config.providers[1], priority=1))
    )
    one, two = await _two_routers(nursery, config)
    async with one, two:
        reply = (await _chat(one)).json()
        assert (reply["provider"], reply["attempts"]) == ("b", 2)  # a failed; its breaker opened
        opened = trio.current_time()
        with trio.fail_after(1.0):
            while _breaker((await two.get("/api/models/health")).json(), "a") != "open":
                await trio.sleep(0.02)
        seen_after = trio.current_time() - opened
        reply = (await _chat(two)).json()
        metrics = (await two.get("/metrics")).text
    assert (reply["provider"], reply["attempts"]) == ("b", 1)
    assert a.mock.calls["500"] == 1  # the second router never tried a
    assert seen_after < 1.0
    assert "callboard_state_quarantines_adopted_total 1.0" in metrics
    assert "callboard_state_rate_limits_adopted_total 0.0" in metrics


async def test_rate_limits_and_quotas_are_shared_not_multiplied_by_the_routers(
    nursery, redis_server
):
    limits = [
        {"name": "rpm", "unit": "requests", "limit": 6, "per": 60},
        {"name": "daily", "unit": "requests", "limit": 4, "per": 86400, "mode": "window"},
    ]
    a = await start_mock(nursery, "a")
    config = shared_config(
        [a],
        redis_server.url,
        providers=[{"name": "a", "base_url": f"{a.url}/v1", "limits": limits}],
    )
    one, two = await _two_routers(nursery, config)
    async with one, two:
        replies = [await _chat(http) for http in (one, two) * 4]
        states = [(await http.get("/health")).json()["state"] for http in (one, two)]
    assert [s["outages"] for s in states] == [0, 0]  # else they rightly fell back to local limits
    statuses = [r.status_code for r in replies]
    # Each router alone would admit 4 (its own daily quota); together they admit 4 in all.
    assert statuses.count(200) == 4 and a.mock.calls["200"] == 4
    assert statuses[:4] == [200, 200, 200, 200]
    refused = [r.json()["error"] for r in replies[4:]]
    assert all(r["code"] == "no_provider" for r in refused), refused
    assert all(int(r.headers["retry-after"]) > 0 for r in replies[4:])  # the quota's reset


async def test_a_session_started_on_one_router_continues_on_the_other_with_its_history(
    nursery, redis_server
):
    a = await start_mock(nursery, "a")
    config = shared_config([a], redis_server.url)
    one, two = await _two_routers(nursery, config)
    async with one, two:
        created = await one.post(
            "/sessions", json={"session_id": "cand-1", "system_prompt": "You interview."}
        )
        assert created.status_code == 201
        first = (
            await one.post("/sessions/cand-1/messages", json={"content": "Hi, I'm Ana."})
        ).json()
        second = (
            await two.post("/sessions/cand-1/messages", json={"content": "I like trio."})
        ).json()
        third = (await one.post("/sessions/cand-1/messages", json={"content": "What next?"})).json()
        on_two = (await two.get("/sessions/cand-1")).json()
        unknown = await two.get("/sessions/nobody")
    assert (first["turns"], second["turns"], third["turns"]) == (1, 2, 3)
    history = [(m["role"], m["content"]) for m in on_two["history"]]
    assert history[:4] == [
        ("system", "You interview."),
        ("user", "Hi, I'm Ana."),
        ("assistant", first["content"]),
        ("user", "I like trio."),
    ]
    assert history[4:] == [
        ("assistant", second["content"]),
        ("user", "What next?"),
        ("assistant", third["content"]),
    ]
    assert unknown.status_code == 404


async def test_a_second_router_refuses_a_turn_while_the_first_is_answering_it(
    nursery, redis_server
):
    a = await start_mock(nursery, "a", "hang")  # the first turn waits for its first byte
    config = shared_config(
        [a], redis_server.url, retry={"max_attempts": 1}, timeouts={"first_byte": 5.0}
    )
    one, two = await _two_routers(nursery, config)
    async with one, two:
        await one.post("/sessions", json={"session_id": "cand-2"})
        answers: list[httpx.Response] = []

        async def first_turn() -> None:
            answers.append(await one.post("/sessions/cand-2/messages", json={"content": "Hi"}))

        async with trio.open_nursery() as turns:
            turns.start_soon(first_turn)
            while not a.mock.in_flight:  # the first turn's attempt has reached a
                await trio.sleep(0.01)
            busy = await two.post("/sessions/cand-2/messages", json={"content": "Hello?"})
        a.mock.set_profile("healthy")
        after = await two.post("/sessions/cand-2/messages", json={"content": "Hello again"})
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "session_busy"
    assert answers[0].status_code == 502  # the hanging attempt timed out; history unchanged
    assert after.status_code == 200 and after.json()["turns"] == 1


async def test_the_response_cache_is_shared(nursery, redis_server):
    a = await start_mock(nursery, "a")
    config = shared_config([a], redis_server.url, cache={"enabled": True})
    one, two = await _two_routers(nursery, config)
    async with one, two:
        first = (await _chat(one)).json()
        with trio.fail_after(2):  # the other router copies the entry at its next pull (50 ms)
            while "callboard_state_cache_copied_total 1.0" not in (await two.get("/metrics")).text:
                await trio.sleep(0.02)
        second = (await _chat(two)).json()
    assert (first["cached"], second["cached"]) == (False, True)
    assert second["choices"] == first["choices"]
    assert a.mock.calls["200"] == 1  # the second router answered without calling a


async def test_streamed_answers_take_their_tokens_from_the_shared_bucket(nursery, redis_server):
    limits = [{"name": "rpm", "unit": "requests", "limit": 2, "per": 600}]
    a = await start_mock(nursery, "a")
    providers = [{"name": "a", "base_url": f"{a.url}/v1", "limits": limits}]
    one, two = await _two_routers(
        nursery, shared_config([a], redis_server.url, providers=providers)
    )
    events: list[list[str]] = []
    async with one, two:
        for http in (one, two, one):
            with trio.fail_after(10):
                async with http.stream(
                    "POST", "/v1/chat/completions", json={**CHAT, "stream": True}
                ) as response:
                    events.append([line async for line in response.aiter_lines() if line])
                    events[-1].insert(0, str(response.status_code))
    assert [e[0] for e in events] == ["200", "200", "503"]
    assert all(e[-1] == "data: [DONE]" and len(e) > 3 for e in events[:2])
    assert a.mock.calls["200"] == 2


async def test_a_providers_own_429_keeps_the_other_router_off_it_for_its_retry_after(
    nursery, redis_server
):
    a = await start_mock(nursery, "a", "rate-limited")  # 429 with Retry-After: 10
    b = await start_mock(nursery, "b")
    providers = [
        {"name": "a", "base_url": f"{a.url}/v1", "priority": 0},
        {"name": "b", "base_url": f"{b.url}/v1", "priority": 1},
    ]
    config = shared_config(
        [a, b], redis_server.url, providers=providers, routing={"policy": "priority"}
    )
    one, two = await _two_routers(nursery, config)
    async with one, two:
        first = (await _chat(one)).json()
        with trio.fail_after(1.0):
            while (await two.get("/health")).json()["state"]["rate_limits_adopted"] != 1:
                await trio.sleep(0.02)
        second = (await _chat(two)).json()
    assert (first["provider"], first["attempts"]) == ("b", 2)
    assert (second["provider"], second["attempts"]) == ("b", 1)
    assert a.mock.calls["429"] == 1  # the second router never asked a during its Retry-After


async def test_quota_alerts_count_every_routers_requests(nursery, redis_server, caplog):
    caplog.set_level(logging.WARNING, logger="callboard.quota")
    daily = [{"name": "daily", "unit": "requests", "limit": 10, "per": 86400, "mode": "window"}]
    a = await start_mock(nursery, "a")
    providers = [{"name": "a", "base_url": f"{a.url}/v1", "limits": daily}]
    one, two = await _two_routers(
        nursery, shared_config([a], redis_server.url, providers=providers)
    )
    async with one, two:
        statuses = [(await _chat(http)).status_code for http in (one, two) * 5]
        await trio.sleep(0.05)  # the tracker logs from its mailbox
    assert statuses == [200] * 10
    # Each router sent 5 (50% of the quota): only the fleet's count crosses 80, 90, 100%,
    # and each level is reported once, by the router whose request crossed it.
    alerts = [r.getMessage() for r in caplog.records if r.name == "callboard.quota"]
    assert [m.split(" resets_at")[0] for m in alerts] == [
        "quota provider=a limit=daily used=8 of 10 (80%)",
        "quota provider=a limit=daily used=9 of 10 (90%)",
        "quota provider=a limit=daily used=10 of 10 (100%)",
    ]


async def test_output_token_limits_are_settled_to_what_was_generated_for_both_routers(
    nursery, redis_server
):
    # Each request is charged its max_tokens (3,000) at admission, as Anthropic charges
    # OTPM; 4,000 a day would refuse the second. Settled to what was generated, all pass.
    daily = {
        "name": "otpd",
        "unit": "output_tokens",
        "limit": 4000,
        "per": 86400,
        "mode": "window",
        "adjust_output": True,
    }
    a = await start_mock(nursery, "a")
    config = shared_config(
        [a],
        redis_server.url,
        providers=[{"name": "a", "base_url": f"{a.url}/v1", "limits": [daily]}],
    )
    spec = LimitSpec(**daily)
    generated = 0
    store = RedisStore(redis_server.url, prefix=config.state.prefix)
    one, two = await _two_routers(nursery, config)
    async with one, two, store.connected():
        for http in (one, two, one):
            reply = await _chat(http, {**CHAT, "max_tokens": 3000})
            assert reply.status_code == 200, reply.text
            generated += reply.json()["usage"]["completion_tokens"]
            with trio.fail_after(2):  # the settlement is written behind the reply
                while (await store.take([Charge("a/otpd", spec, 0)])).used[0] != generated:
                    await trio.sleep(0.01)
    assert 3 <= generated < 1000
