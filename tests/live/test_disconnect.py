"""Clients that vanish, over loopback: the upstream call is cancelled, the provider slot is
freed, and the request is counted as cancelled (not failed) in /stats and /metrics."""

from __future__ import annotations

import httpx
import pytest
import trio

from actors.backends.virtual import LatencyModel
from actors.runtime.distributions import Constant
from sims.mock_provider import MockProfile
from tests.live.conftest import live_config, start_mock, start_router

pytestmark = pytest.mark.slow  # every test here takes seconds: out of `pytest -m "not slow"`

#: Answers start after 50 ms and then take 10 s: long enough to hang up in the middle.
CRAWL = MockProfile(
    "crawl",
    "first token at once, then 20 tokens/s for 200 tokens",
    LatencyModel(ttft=Constant(0.05), tokens_per_s=20.0, output_tokens=Constant(200)),
)
CHAT = {"messages": [{"role": "user", "content": "Tell me everything."}]}


async def books(http: httpx.AsyncClient) -> dict:
    return (await http.get("/stats")).json()


async def settled(http: httpx.AsyncClient, mock, cancelled: int) -> dict:
    """The books once ``cancelled`` requests are counted and nothing runs upstream."""
    with trio.fail_after(5):
        while True:
            seen = await books(http)
            if seen["cancelled"] == cancelled and seen["in_flight"] == 0 and mock.in_flight == 0:
                return seen
            await trio.sleep(0.02)


async def slots_in_use(http: httpx.AsyncClient) -> int:
    providers = (await http.get("/api/models/health")).json()["providers"]
    return sum(p["in_flight"] for p in providers)


async def test_a_client_that_hangs_up_cancels_the_upstream_call(nursery):
    upstream = await start_mock(nursery, "slowpoke", "crawl", profiles=[CRAWL], speed=1.0)
    url = await start_router(nursery, live_config([upstream]))
    async with httpx.AsyncClient(base_url=url) as http:
        # 1. Before the answer: the client gives up while the provider is still working.
        async with httpx.AsyncClient(base_url=url, timeout=0.5) as impatient:
            try:
                await impatient.post("/v1/chat/completions", json=CHAT)
                raise AssertionError("the answer should take 10 s")
            except httpx.ReadTimeout:
                pass
        after_plain = await settled(http, upstream.mock, cancelled=1)

        # 2. Mid-stream: read the first pieces of text, then hang up.
        async with (
            httpx.AsyncClient(base_url=url) as reader,
            reader.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as reply,
        ):
            assert reply.status_code == 200
            lines = reply.aiter_lines()
            seen = 0
            while seen < 3:
                if (await lines.__anext__()).startswith("data: "):
                    seen += 1
            assert upstream.mock.in_flight == 1
        after_stream = await settled(http, upstream.mock, cancelled=2)

        assert await slots_in_use(http) == 0
        metrics = (await http.get("/metrics")).text
        # The slot is free: the next request is answered at once by the same provider.
        upstream.mock.set_profile("unlimited")
        ok = await http.post("/v1/chat/completions", json={**CHAT, "max_tokens": 5})
        assert ok.status_code == 200
        final = await books(http)

    for seen in (after_plain, after_stream):
        assert seen["failed"] == {} and seen["answered"] == 0 and seen["balanced"]
    assert 'callboard_requests_total{outcome="cancelled",provider="none"} 2.0' in metrics
    assert "callboard_requests_received_total 2.0" in metrics
    assert final == {
        "received": 3,
        "queued": 0,
        "in_flight": 0,
        "answered": 1,
        "failed": {},
        "cancelled": 2,
        "balanced": True,
        "draining": False,
    }
