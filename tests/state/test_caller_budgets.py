"""Caller budgets are one budget across routers that share a Redis, like account limits."""

from __future__ import annotations

import coredis
import httpx
import pytest
import trio

from engine.serve.callers import digest
from tests.live.conftest import start_mock, start_router
from tests.state.conftest import shared_config

pytestmark = pytest.mark.slow  # every test here takes seconds: out of `pytest -m "not slow"`

KEY = "cb-shared-0123456789abcdef0123456789abcdef"
ASK = {"model": "auto", "messages": [{"role": "user", "content": "Hello?"}], "max_tokens": 5}


async def _two_routers(nursery, redis_url: str, tmp_path, budget: str):
    mock = await start_mock(nursery, "a")
    keys = tmp_path / "callers.toml"
    keys.write_text(f'[[keys]]\nid = "team"\nsha256 = "{digest(KEY)}"\n[keys.budget]\n{budget}\n')
    config = shared_config([mock], redis_url, callers={"keys_file": str(keys)})
    urls = [await start_router(nursery, config) for _ in range(2)]
    return [
        httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {KEY}"}, timeout=10)
        for url in urls
    ]


async def _shared_tokens_reach(url: str, tokens: float) -> None:
    """Wait until the answers' tokens, charged after each answer, are in Redis."""
    async with coredis.Redis.from_url(url, decode_responses=True) as redis:
        with trio.fail_after(5):
            while True:
                used = await redis.hget("callboard:limit:caller:team/tokens_per_day", "used")
                if float(used or 0) >= tokens:
                    return
                await trio.sleep(0.01)


async def _status(client: httpx.AsyncClient) -> int:
    return (await client.post("/v1/chat/completions", json=ASK)).status_code


async def test_two_routers_count_one_request_budget(nursery, redis_server, tmp_path):
    one, two = await _two_routers(nursery, redis_server.url, tmp_path, "requests_per_day = 3")
    async with one, two:
        assert [await _status(one), await _status(one), await _status(two)] == [200] * 3
        # Each router alone has seen at most 2 of the 3: only the shared count refuses.
        refused = await two.post("/v1/chat/completions", json=ASK)
        assert refused.status_code == 429
        assert "requests_per_day" in refused.json()["error"]["message"]
        assert int(refused.headers["retry-after"]) >= 1
        assert await _status(one) == 429


async def test_tokens_answered_by_one_router_count_at_the_other(nursery, redis_server, tmp_path):
    one, two = await _two_routers(nursery, redis_server.url, tmp_path, "tokens_per_day = 20")
    async with one, two:
        assert await _status(one) == 200  # its answer's 10 tokens are charged after it
        await _shared_tokens_reach(redis_server.url, 10)
        assert await _status(two) == 200  # one token of room is enough to be admitted
        await _shared_tokens_reach(redis_server.url, 20)
        # Router two has charged only its own 10 tokens: the shared count (20) refuses.
        refused = await two.post("/v1/chat/completions", json=ASK)
        assert refused.status_code == 429 and "tokens_per_day" in refused.json()["error"]["message"]


async def test_while_redis_is_down_each_router_holds_the_budget_on_its_own_count(
    nursery, redis_server, tmp_path
):
    one, two = await _two_routers(nursery, redis_server.url, tmp_path, "requests_per_day = 2")
    async with one, two:
        redis_server.kill()
        # No store to ask: router one admits the key's 2 requests, then refuses a third.
        assert [await _status(one), await _status(one), await _status(one)] == [200, 200, 429]
