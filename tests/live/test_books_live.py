"""The books live, over loopback, under a seeded random schedule of upstream faults and
clients that give up: /stats balances at every look, and every request that reached the
router has exactly one outcome, consistent with what its client saw."""

from __future__ import annotations

import collections
import random

import httpx
import pytest
import trio

from tests.live.conftest import live_config, start_mock, start_router

pytestmark = pytest.mark.slow  # every test here takes seconds: out of `pytest -m "not slow"`

REQUESTS = 120
PROFILES = ("unlimited",) * 4 + ("flaky", "down", "hang", "rate-limited", "slow")


async def test_the_books_balance_live_under_random_faults_and_impatient_clients(nursery):
    chance = random.Random(8)
    upstreams = [await start_mock(nursery, f"m{i}", "unlimited", speed=20.0) for i in range(3)]
    config = live_config(
        upstreams,
        providers=[
            {"name": u.name, "base_url": f"{u.url}/v1", "max_concurrency": 3, "queue_limit": 1}
            for u in upstreams
        ],
        # Short on purpose: timeouts are among the faults whose books must balance (a
        # hanging upstream's), yet long beside a loopback mock's answer however busy the
        # machine: a healthy call is not what they cut.
        retry={"deadline": 3.0, "backoff_base": 0.05},
        timeouts={"first_byte": 1.0, "idle": 1.0},
        breaker={"failure_threshold": 3, "open_for": 0.5},
        line={"max_waiting": 10, "rate_window": 2.0},
    )
    url = await start_router(nursery, config)
    client_saw: collections.Counter[str] = collections.Counter()
    looks: list[dict] = []

    async def ask(i: int) -> None:
        body = {
            "messages": [{"role": "user", "content": f"q{i}"}],
            "priority": chance.randrange(3),
            "stream": chance.random() < 0.3,
        }
        patience = chance.choice([0.05, 0.2, 5.0, 5.0, 5.0])
        async with httpx.AsyncClient(base_url=url, timeout=patience) as http:
            try:
                response = await http.post("/v1/chat/completions", json=body)
            except httpx.TimeoutException:
                client_saw["gave_up"] += 1
                return
        if response.status_code == 200:
            # A stream that failed after it started ends with an error event instead.
            failed = body["stream"] and '"error"' in response.text
            client_saw[response.text.split('"code":"')[1].split('"')[0] if failed else "ok"] += 1
        else:
            client_saw[response.json()["error"]["code"]] += 1

    async def chaos() -> None:
        while True:
            await trio.sleep(chance.uniform(0.1, 0.5))
            chance.choice(upstreams).mock.set_profile(chance.choice(PROFILES))

    async def ask_while(profile: str, patience: float) -> None:
        """One request while every upstream is ``profile``: the outcomes the random
        schedule may not happen to produce, made certain (a failure, a give-up)."""
        for upstream in upstreams:
            upstream.mock.set_profile(profile)
        # Its own deadline, as long as its patience: the outcome is the profile's alone.
        body = {"messages": [{"role": "user", "content": f"forced {profile}"}], "deadline": 30}
        async with httpx.AsyncClient(base_url=url, timeout=patience) as http:
            try:
                response = await http.post("/v1/chat/completions", json=body)
            except httpx.TimeoutException:
                client_saw["gave_up"] += 1
            else:
                ok = response.status_code == 200
                client_saw["ok" if ok else response.json()["error"]["code"]] += 1
        for upstream in upstreams:
            upstream.mock.set_profile("unlimited")

    await ask_while("unlimited", 60.0)
    await ask_while("down", 60.0)
    await ask_while("hang", 0.2)
    sent = REQUESTS + 3

    async with httpx.AsyncClient(base_url=url) as books_client:

        async def watch() -> None:
            while True:
                looks.append((await books_client.get("/stats")).json())
                await trio.sleep(0.05)

        async with trio.open_nursery() as background:
            background.start_soon(chaos)
            background.start_soon(watch)
            async with trio.open_nursery() as clients:
                for i in range(REQUESTS):
                    clients.start_soon(ask, i)
                    await trio.sleep(chance.uniform(0.01, 0.04))
            for upstream in upstreams:
                upstream.mock.set_profile("unlimited")
            with trio.fail_after(5):
                while (books := (await books_client.get("/stats")).json())["in_flight"] or books[
                    "queued"
                ]:
                    await trio.sleep(0.02)
            background.cancel_scope.cancel()

    assert len(looks) > 10 and all(look["balanced"] for look in looks)
    assert books["balanced"] and 0 < books["received"] <= sent
    # Each request that entered has one outcome server-side. A client that gave up usually
    # cancelled it; one that gave up just as the answer came has it counted as answered (or
    # failed) instead; one that gave up before its request was read never entered.
    server = {"ok": books["answered"], "cancelled": books["cancelled"], **books["failed"]}
    assert set(client_saw) - {"gave_up"} <= set(server)
    extra = {code: server[code] - client_saw[code] for code in server if code != "cancelled"}
    assert all(n >= 0 for n in extra.values()), (server, client_saw)
    never_entered = client_saw["gave_up"] - books["cancelled"] - sum(extra.values())
    assert never_entered >= 0 and books["received"] + never_entered == sent
    # The schedule really mixed outcomes (faults, shedding, impatience, answers).
    assert books["cancelled"] >= 1 and books["failed"] and books["answered"] >= 1
