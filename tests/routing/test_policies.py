"""Selection policies, each against the behaviour its name promises."""

from __future__ import annotations

import logging
from collections import Counter

import pytest
import trio

from actors.cache import CacheConfig
from actors.faults import Fault
from actors.messages import ChatMessage, ChatRequest
from actors.runtime import clock
from actors.runtime.errors import InvalidSetting
from actors.session import Turn
from engine.routing.decision_log import DecisionLog
from engine.routing.fleet import RouterConfig, open_fleet
from engine.routing.policies import PolicyConfig
from engine.routing.retry import RetryConfig
from tests.conftest import virtual_account


def config(policy: str) -> RouterConfig:
    return RouterConfig(
        routing=PolicyConfig(policy=policy),
        retry=RetryConfig(jitter=0.0),
        cache=CacheConfig(enabled=False),
    )


def ask(i: int) -> ChatRequest:
    return ChatRequest(messages=(ChatMessage("user", f"question {i}"),))


async def served_by(policy: str, accounts, requests: int = 12, gap: float = 5.0) -> list[str]:
    async with open_fleet(accounts, config(policy)) as fleet:
        served = []
        for i in range(requests):
            served.append((await fleet.router.complete(ask(i))).provider)
            await clock.sleep(gap)
    return served


async def test_round_robin_rotates_over_accounts(virtual_clock):
    accounts = [virtual_account(n)[0] for n in ("a", "b", "c")]
    assert await served_by("round_robin", accounts, 6) == ["a", "b", "c", "a", "b", "c"]


async def test_round_robin_skips_an_account_that_cannot_take_the_request(virtual_clock):
    accounts = [virtual_account(n)[0] for n in ("a", "b", "c")]
    async with open_fleet(accounts, config("round_robin")) as fleet:
        fleet.provider("b").breaker.force_open(clock.now(), "test")
        served = [(await fleet.router.complete(ask(i))).provider for i in range(4)]
    assert served == ["a", "c", "a", "c"]


async def test_priority_uses_the_first_available_in_priority_order(virtual_clock):
    backup, _ = virtual_account("backup", priority=1)
    main, _ = virtual_account("main", priority=0, faults=[Fault("outage", start=20, end=40)])
    served = await served_by("priority", [backup, main], requests=10, gap=5.0)
    # main serves until its outage starts; backup covers; breaker reopens main later.
    assert served[:4] == ["main"] * 4 and "backup" in served[4:]


async def test_lowest_latency_prefers_the_fastest_once_measured(virtual_clock):
    slow, _ = virtual_account("slow", seconds=3.0)
    fast, _ = virtual_account("fast", seconds=0.5)
    served = await served_by("lowest_latency", [slow, fast], requests=10)
    assert served[:2] == ["slow", "fast"]  # unmeasured providers get tried first
    assert set(served[2:]) == {"fast"}


async def test_weighted_spreads_load_and_prefers_healthy_fast_providers(virtual_clock):
    slow, _ = virtual_account("slow", seconds=4.0, max_concurrency=4)
    fast, _ = virtual_account("fast", seconds=1.0, max_concurrency=4)
    flaky, _ = virtual_account("flaky", seconds=1.0, faults=[Fault("errors", start=0, share=0.5)])
    served = Counter(await served_by("weighted", [slow, fast, flaky], requests=40, gap=2.0))
    assert served["fast"] > served["slow"] and served["fast"] > served["flaky"]


async def test_sticky_keeps_a_session_on_its_provider(virtual_clock):
    accounts = [virtual_account(n)[0] for n in ("a", "b", "c")]
    async with open_fleet(accounts, config("sticky")) as fleet:
        sessions = [await fleet.session(f"s{i}") for i in range(3)]
        for turn in range(4):
            for session in sessions:
                await session.ask(Turn(f"turn {turn}"))
                await clock.sleep(1.0)
    for session in sessions:
        assert len(session.providers_used) == 1


def test_unknown_policy_is_named():
    with pytest.raises(InvalidSetting, match=r"routing\.policy"):
        PolicyConfig(policy="random")


async def test_one_structured_log_line_per_decision(virtual_clock, caplog):
    flaky, _ = virtual_account("flaky", faults=[Fault("outage", start=0, end=1)])
    steady, _ = virtual_account("steady")
    caplog.set_level(logging.INFO, logger="callboard.router")
    async with open_fleet([flaky, steady], config("priority"), log=DecisionLog()) as fleet:
        answer = await fleet.router.complete(ask(1))
    lines = [r.getMessage() for r in caplog.records if r.name == "callboard.router"]
    actions = [line.split("action=")[1].split()[0] for line in lines]
    assert actions == ["received", "attempt", "failed", "failover", "attempt", "success"]
    assert all(f"request_id={answer.request_id} " in line for line in lines)
    assert "provider=steady" in lines[-1]


async def test_tiers_send_light_turns_to_light_models_and_reasoning_only_to_strong(virtual_clock):
    light, _ = virtual_account("light", tier="light", max_concurrency=1, queue_limit=0, seconds=5.0)
    strong, _ = virtual_account("strong", tier="strong", max_concurrency=1, seconds=5.0)
    routing = PolicyConfig(tiers="by_kind", light_kinds=("small_talk",))
    cfg = RouterConfig(routing=routing, cache=CacheConfig(enabled=False))
    async with open_fleet([light, strong], cfg) as fleet:
        small = ChatRequest(messages=(ChatMessage("user", "hi"),), kind="small_talk")
        hard = ChatRequest(messages=(ChatMessage("user", "why?"),), kind="follow_up")
        assert (await fleet.router.complete(small)).provider == "light"
        assert (await fleet.router.complete(hard)).provider == "strong"
        # Light busy: a light turn may use the strong model...
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fleet.router.complete, small)
            await clock.sleep(0.1)
            assert (await fleet.router.complete(small)).provider == "strong"
        # ...but with the strong model busy, a reasoning turn waits rather than go light.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fleet.router.complete, hard)
            await clock.sleep(0.1)
            answer = await fleet.router.complete(hard)
        assert answer.provider == "strong" and answer.latency == pytest.approx(9.9)


async def test_strong_only_never_uses_a_light_account(virtual_clock):
    light, light_backend = virtual_account("light", tier="light")
    strong, _ = virtual_account("strong", tier="strong")
    routing = PolicyConfig(tiers="strong_only")
    async with open_fleet([light, strong], RouterConfig(routing=routing)) as fleet:
        for i in range(5):
            req = ChatRequest(messages=(ChatMessage("user", f"hi {i}"),), kind="small_talk")
            assert (await fleet.router.complete(req)).provider == "strong"
    assert light_backend.requests == []
    with pytest.raises(InvalidSetting, match=r"routing\.tiers"):
        PolicyConfig(tiers="cheapest")


async def test_a_stale_latency_is_forgotten_so_a_once_slow_provider_is_tried_again(virtual_clock):
    # "slow" was slow for its first answers, then recovered; nothing would re-measure it.
    slow, slow_backend = virtual_account(
        "slow", seconds=1.0, faults=[Fault("latency", start=0, end=30, multiplier=8.0)]
    )
    fast, _ = virtual_account("fast", seconds=1.0)
    routing = PolicyConfig(policy="lowest_latency", latency_ttl=120.0)
    cfg = RouterConfig(routing=routing, cache=CacheConfig(enabled=False))
    async with open_fleet([slow, fast], cfg) as fleet:
        early = [(await fleet.router.complete(ask(i))).provider for i in range(6)]
        calls = len(slow_backend.requests)
        await clock.sleep(60.0)
        assert (await fleet.router.complete(ask(6))).provider == "fast"  # still remembered
        await clock.sleep(120.0)
        later = (await fleet.router.complete(ask(7))).provider
    assert early[0] == "slow" and set(early[2:]) == {"fast"}
    assert calls == 1 and later == "slow" and len(slow_backend.requests) == 2
    with pytest.raises(InvalidSetting, match=r"routing\.latency_ttl"):
        PolicyConfig(latency_ttl=0)
