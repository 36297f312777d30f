"""The provider actor: admission by every limit kind, FIFO slots, outcomes, disabling."""

from __future__ import annotations

import pytest
import trio

from actors.errors import AuthFailed, QueueFull, RateLimited
from actors.faults import Fault
from actors.limits import LimitSpec
from actors.messages import ChatMessage, ChatRequest
from actors.runtime import clock
from actors.runtime.errors import InvalidSetting
from engine.routing.fleet import open_fleet
from sims.profiles import GROQ_FREE, HUGGINGFACE, PROFILES, profile
from tests.conftest import virtual_account


def ask(chars: int = 40, **fields: object) -> ChatRequest:
    return ChatRequest(messages=(ChatMessage("user", "x" * chars),), **fields)


async def test_tokens_per_minute_refill_continuously(virtual_clock):
    # 1,000 tokens/min; each request costs its prompt (25 + 4 tokens) plus 171 expected out.
    limits = (LimitSpec("tpm", "tokens", 1000, 60.0),)
    account, _ = virtual_account("a", seconds=0.1, limits=limits)
    async with open_fleet([account]) as fleet:
        provider = fleet.provider("a")
        for i in range(5):
            await provider.call(ask(100, expected_output_tokens=171), f"r{i}")
        with pytest.raises(RateLimited) as refused:
            await provider.call(ask(100, expected_output_tokens=171), "r5")
    assert refused.value.limit == "tpm"
    # 200 tokens needed, refilling at 1000/60 per second, 0.5 s already refilled.
    assert refused.value.retry_after == pytest.approx(200 / (1000 / 60) - 0.5)


async def test_requests_per_day_is_a_fixed_window_reset_at_the_boundary(virtual_clock):
    limits = (LimitSpec("rpd", "requests", 3, 86400.0, mode="window"),)
    account, _ = virtual_account("a", seconds=1.0, limits=limits)
    async with open_fleet([account]) as fleet:
        provider = fleet.provider("a")
        await clock.sleep(80000.0)
        for i in range(3):
            await provider.call(ask(), f"r{i}")
        with pytest.raises(RateLimited) as refused:
            await provider.call(ask(), "r3")
        assert refused.value.retry_after == pytest.approx(86400.0 - 80003.0)
        await clock.sleep_until(86400.0)
        await provider.call(ask(), "r4")  # a new day


async def test_characters_per_month_count_prompt_characters(virtual_clock):
    limits = (LimitSpec("chars_month", "chars", 1000, 30 * 86400.0, mode="window"),)
    account, _ = virtual_account("a", seconds=1.0, limits=limits)
    async with open_fleet([account]) as fleet:
        provider = fleet.provider("a")
        await provider.call(ask(600), "r1")
        with pytest.raises(RateLimited, match="chars_month"):
            await provider.call(ask(600), "r2")
        await provider.call(ask(400), "r3")  # exactly fills the month
        with pytest.raises(RateLimited):
            await provider.call(ask(1), "r4")


async def test_a_request_bigger_than_a_limit_can_never_pass(virtual_clock):
    limits = (LimitSpec("tpm", "tokens", 100, 60.0),)
    account, _ = virtual_account("a", limits=limits)
    async with open_fleet([account]) as fleet:
        with pytest.raises(RateLimited) as refused:
            await fleet.provider("a").call(ask(4000), "big")
    assert refused.value.retry_after == float("inf")


async def test_concurrency_slots_queue_in_fifo_order_and_bound_the_queue(virtual_clock):
    account, _ = virtual_account("a", seconds=10.0, max_concurrency=2, queue_limit=2)
    finished: list[tuple[str, float]] = []
    async with open_fleet([account]) as fleet:
        provider = fleet.provider("a")

        async def one(name: str) -> None:
            await provider.call(ask(), name)
            finished.append((name, clock.now()))

        async with trio.open_nursery() as nursery:
            for i in range(4):
                nursery.start_soon(one, f"r{i}")
                await clock.sleep(0.1)  # arrive in order
            assert provider.slots.in_use == 2 and provider.slots.queued == 2
            with pytest.raises(QueueFull):
                await provider.call(ask(), "r4")
    assert [name for name, _ in finished] == ["r0", "r1", "r2", "r3"]
    assert [round(t, 1) for _, t in finished] == [10.0, 10.1, 20.0, 20.1]
    assert provider.stats.busy_time == pytest.approx(40.0)


async def test_revoked_key_disables_the_account(virtual_clock):
    account, _ = virtual_account("a", faults=[Fault("revoked", start=0)])
    async with open_fleet([account]) as fleet:
        provider = fleet.provider("a")
        with pytest.raises(AuthFailed):
            await provider.call(ask(), "r1")
        await clock.sleep(1.0)  # the provider actor handles its Disable message
        assert provider.wait_before(ask(), clock.now()) == float("inf")
        with pytest.raises(AuthFailed, match="disabled"):
            await provider.call(ask(), "r2")


async def test_cost_is_priced_per_million_tokens(virtual_clock):
    account, _ = virtual_account(
        "paid", input_cost_per_mtok=2.0, output_cost_per_mtok=10.0, model="m"
    )
    async with open_fleet([account]) as fleet:
        answer = await fleet.router.complete(ask(396, expected_output_tokens=1000, model="m"))
    # 396 chars -> 99 + 4 framing tokens in; 1,000 out.
    assert answer.prompt_tokens == 103 and answer.completion_tokens == 1000
    assert answer.cost == pytest.approx((103 * 2.0 + 1000 * 10.0) / 1e6)


def test_profiles_carry_their_documented_limits():
    groq = {limit.name: (limit.limit, limit.per, limit.mode) for limit in GROQ_FREE.spec.limits}
    assert groq == {
        "rpm": (30, 60.0, "bucket"),
        "rpd": (14_400, 86400.0, "window"),
        "tpm": (6_000, 60.0, "bucket"),
        "tpd": (500_000, 86400.0, "bucket"),
    }
    [window] = HUGGINGFACE.spec.limits
    assert window.mode == "window" and window.limit * 3600 / window.per == pytest.approx(996)
    for item in PROFILES.values():
        assert len(item.source) > 80  # each says where its figures come from
    with pytest.raises(InvalidSetting, match="profile"):
        profile("azure")


def test_bad_limits_are_named():
    with pytest.raises(InvalidSetting, match=r"limit\.limit"):
        LimitSpec("rpm", "requests", -1, 60.0)
    with pytest.raises(InvalidSetting, match=r"limit\.unit"):
        LimitSpec("rpm", "calls", 10, 60.0)
    with pytest.raises(InvalidSetting, match=r"limit\.mode"):
        LimitSpec("rpm", "requests", 10, 60.0, mode="sliding")


async def test_quota_alerts_at_80_and_90_percent_and_disabling_until_the_reset(virtual_clock):
    limits = (LimitSpec("rpd", "requests", 10, 86400.0, mode="window"),)
    account, _ = virtual_account("a", seconds=1.0, limits=limits)
    async with open_fleet([account]) as fleet:
        provider = fleet.provider("a")
        for i in range(10):
            await provider.call(ask(), f"r{i}")
        await clock.sleep(1.0)  # the tracker and the provider handle their messages
        alerts = [(a.level, a.time, a.used) for a in fleet.quota.alerts]
        assert alerts == [(0.8, 7.0, 8), (0.9, 8.0, 9), (1.0, 9.0, 10)]
        # Disabled until the day's reset: skipped by the router, a 429 if called.
        assert provider.disabled_until == 86400.0
        assert provider.wait_before(ask(), clock.now()) == pytest.approx(86400.0 - 11.0)
        with pytest.raises(RateLimited) as refused:
            await provider.call(ask(), "late")
        assert refused.value.limit == "rpd"
        # A new day: usable again, and the alerts start over.
        await clock.sleep_until(86400.0)
        await provider.call(ask(), "tomorrow")
        await clock.sleep(1.0)
        assert len(fleet.quota.alerts) == 3
