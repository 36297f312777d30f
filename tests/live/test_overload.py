"""Overload over loopback: far more requests than the providers' slots. The router answers
what fits, sheds the rest with 503 and Retry-After (new interviews first), and never holds
a client past its deadline."""

from __future__ import annotations

import functools
from typing import Any

import attrs
import httpx
import pytest
import trio

from actors.backends.virtual import LatencyModel
from actors.runtime.distributions import Constant
from engine.routing.config import ConfigError
from engine.routing.waiting import LineConfig
from engine.serve.live_config import structure_config
from sims.mock_provider import MockProfile
from sims.scenario import Scenario
from sims.scenario import structure as structure_scenario
from tests.live.conftest import Upstream, live_config, start_mock, start_router

HALF_SECOND = MockProfile(
    "half-second",
    "every answer takes 0.5 s",
    LatencyModel(service=Constant(0.5), output_tokens=Constant(5)),
)
DEADLINE = 3.0


@pytest.mark.slow
async def test_overload_is_shed_by_priority_with_retry_after_and_nobody_hangs(nursery):
    upstream = await start_mock(nursery, "m", HALF_SECOND.name, profiles=[HALF_SECOND], speed=1.0)
    config = live_config(
        [upstream],
        providers=[
            {"name": "m", "base_url": f"{upstream.url}/v1", "max_concurrency": 2, "queue_limit": 0}
        ],
        retry={"deadline": DEADLINE},
        line={"max_waiting": 8, "rate_window": 5.0},
    )
    url = await start_router(nursery, config)
    results: list[tuple[int, int, float, httpx.Response]] = []  # (priority, i, seconds, response)

    async def ask(http: httpx.AsyncClient, priority: int, i: int) -> None:
        body = {"messages": [{"role": "user", "content": f"q{i}"}], "priority": priority}
        start = trio.current_time()
        response = await http.post("/v1/chat/completions", json=body)
        results.append((priority, i, trio.current_time() - start, response))

    limits = httpx.Limits(max_connections=None)
    async with httpx.AsyncClient(base_url=url, timeout=DEADLINE + 5, limits=limits) as http:
        for i in range(4):  # warm up: the line learns how fast it drains (4 answers/s)
            await ask(http, 0, -1 - i)
        results.clear()
        async with trio.open_nursery() as clients:
            for i in range(40):  # new interviews, then turns of interviews under way
                clients.start_soon(ask, http, 1, i)
                await trio.sleep(0.002)
            for i in range(10):
                clients.start_soon(ask, http, 0, i)
                await trio.sleep(0.002)
        books = (await http.get("/stats")).json()
        health = (await http.get("/health")).json()

    statuses = sorted({r.status_code for *_, r in results})
    assert set(statuses) <= {200, 503, 504}, statuses
    assert max(seconds for _, _, seconds, _ in results) < DEADLINE + 1.0  # nobody hangs
    refused = [(p, s, r) for p, _, s, r in results if r.status_code == 503]
    assert len(refused) >= 20
    for _, _, response in refused:
        error = response.json()["error"]
        assert error["code"] in ("shed", "overloaded", "no_provider")
        assert int(response.headers["retry-after"]) >= 1 and error["retry_after"] > 0
    # Most refusals are immediate, not after waiting out the deadline.
    assert sum(s < 1.0 for _, s, _ in refused) >= len(refused) * 0.6
    answered = {p: sum(r.status_code == 200 for q, _, _, r in results if q == p) for p in (0, 1)}
    assert answered[0] >= 6 and answered[0] / 10 > 2 * answered[1] / 40
    assert books["balanced"] and books["queued"] == books["in_flight"] == 0
    assert books["received"] == 54 and books["answered"] == 4 + answered[0] + answered[1]
    assert health["in_flight"] == 0


def test_the_live_and_the_simulated_line_have_one_default_and_the_old_table_is_refused():
    base = {"providers": [{"name": "a", "base_url": "http://127.0.0.1:9/v1"}]}
    live = structure_config(base, "t").line
    # A fleet is sized under the discipline the router is deployed with.
    assert live == attrs.fields(Scenario).line.default == LineConfig()
    assert live.discipline == "priority"
    bounded = structure_config({**base, "line": {"max_waiting": 5}}, "t").line
    assert bounded.discipline == "priority" and bounded.max_waiting == 5
    fifo = structure_config({**base, "line": {"discipline": "fifo"}}, "t").line
    assert fifo.discipline == "fifo"
    for structure in (structure_config, structure_scenario):
        raw = {"shedding": {"enabled": False}}
        with pytest.raises(ConfigError, match=r"shedding: .*a \[line\] table instead") as error:
            structure(raw, "t")
        assert 'discipline = "priority"' in str(error.value)


ONE_SECOND = MockProfile(
    "one-second",
    "every answer takes 1 s",
    LatencyModel(service=Constant(1.0), output_tokens=Constant(5)),
)


async def one_slot_router(nursery, profile: MockProfile, **tables: Any) -> tuple[Upstream, str]:
    """A router over one mock (``profile``) whose account takes one call at a time, no queue."""
    upstream = await start_mock(nursery, "m", profile.name, profiles=[profile], speed=1.0)
    config = live_config(
        [upstream],
        providers=[
            {"name": "m", "base_url": f"{upstream.url}/v1", "max_concurrency": 1, "queue_limit": 0}
        ],
        **tables,
    )
    return upstream, await start_router(nursery, config)


@pytest.mark.slow
async def test_a_turn_of_an_interview_under_way_goes_before_a_new_interview(nursery):
    _, url = await one_slot_router(nursery, ONE_SECOND, line={"max_waiting": 1})
    answers: dict[str, httpx.Response] = {}
    async with httpx.AsyncClient(base_url=url, timeout=15) as http:
        for sid in ("under-way", "new"):
            await http.post("/sessions", json={"session_id": sid})
        first = await http.post("/sessions/under-way/messages", json={"content": "Hi, I'm Ana."})
        assert first.status_code == 200

        async def send(label: str, path: str, body: dict) -> None:
            answers[label] = await http.post(path, json=body)

        async with trio.open_nursery() as clients:
            chat = {"messages": [{"role": "user", "content": "hold the slot"}]}
            clients.start_soon(send, "holder", "/v1/chat/completions", chat)
            await trio.sleep(0.2)
            # A new interview's first turn (priority 1) waits in the one place in line ...
            clients.start_soon(send, "new", "/sessions/new/messages", {"content": "Hello"})
            await trio.sleep(0.2)
            # ... until a turn of the interview under way (priority 0) takes it.
            clients.start_soon(send, "ongoing", "/sessions/under-way/messages", {"content": "Go"})
    assert answers["holder"].status_code == 200 and answers["ongoing"].status_code == 200
    assert answers["new"].status_code == 503
    assert answers["new"].json()["error"]["code"] == "shed"


@pytest.mark.slow
async def test_health_says_saturated_not_down_while_every_slot_is_busy(nursery):
    """A load balancer must not pull a router for being busy: 200 'saturated' while the
    only account's slot is taken, 503 'down' only once no account can answer at all."""
    slow, url = await one_slot_router(nursery, HALF_SECOND, breaker={"failure_threshold": 1})
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        assert (await http.get("/health")).json()["status"] == "ok"
        async with trio.open_nursery() as clients:
            body = {"messages": [{"role": "user", "content": "hold the slot"}]}
            clients.start_soon(functools.partial(http.post, "/v1/chat/completions", json=body))
            await trio.sleep(0.2)
            busy = await http.get("/health")
        assert busy.status_code == 200
        assert busy.json()["status"] == "saturated" and busy.json()["providers_up"] == 1
        slow.kill()
        failed = await http.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": "again"}]}
        )
        assert failed.status_code >= 500
        down = await http.get("/health")
        assert down.status_code == 503
        assert down.json()["status"] == "down" and down.json()["providers_up"] == 0
