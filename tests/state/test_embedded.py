"""Routers embedded in one process share a MemoryStore through the same wiring as Redis."""

from __future__ import annotations

import attrs
import pytest
import trio

import engine
from engine.routing.errors import NoProviderAvailable
from engine.serve.state import MemoryStore
from tests.live.conftest import live_config, start_mock

FAST = {"sync_every": 0.05}


async def test_two_embedded_routers_share_quarantines_and_limits_through_one_memory_store(
    nursery,
):
    a = await start_mock(nursery, "a", "down")
    b = await start_mock(nursery, "b")
    limits = [{"name": "rpm", "unit": "requests", "limit": 3, "per": 600}]
    config = live_config(
        [a, b],
        providers=[
            {"name": "a", "base_url": f"{a.url}/v1", "priority": 0},
            {"name": "b", "base_url": f"{b.url}/v1", "priority": 1, "limits": limits},
        ],
        routing={"policy": "priority"},
        breaker={"failure_threshold": 1, "open_for": 30},
        state=FAST,
    )
    store = MemoryStore()
    messages = [{"role": "user", "content": "Why this job?"}]
    async with (
        engine.open_router(config, state=store) as one,
        engine.open_router(attrs.evolve(config), state=store) as two,
    ):
        answer = await one.complete(messages, max_tokens=4)
        assert (answer.provider, answer.attempts) == ("b", 2)  # a failed and opened on one
        with trio.fail_after(1):
            while two.fleet.provider("a").breaker.state.value != "open":
                await trio.sleep(0.01)
        answers = [await router.complete(messages, max_tokens=4) for router in (two, one)]
        assert [(x.provider, x.attempts) for x in answers] == [("b", 1), ("b", 1)]
        # b's 3 requests per 10 minutes are spent, by both routers together.
        with pytest.raises(NoProviderAvailable, match=r"rpm \(shared\) limit reached"):
            await two.complete(messages, max_tokens=4, deadline=5)
        assert one.state_status()["store"] == "memory"
    assert a.mock.calls["500"] == 1 and b.mock.calls["200"] == 3
