"""Deadlines, waits and billing as a request lives them, on virtual time.

A request's own deadline is not its provider's failure; no attempt starts that could
not answer in time; a request's latency is its wait for a slot, its wait for a limit
and its service; every attempt the provider started is billed, answered or not.
"""

from __future__ import annotations

import pytest
import trio

from actors.breaker import BreakerConfig, State
from actors.limits import LimitSpec
from actors.messages import ChatMessage, ChatRequest
from engine.routing.errors import DeadlineExceeded, NoProviderAvailable
from engine.routing.fleet import RouterConfig, open_fleet
from engine.routing.recording import OUTCOMES, RequestRecorder
from engine.routing.retry import RetryConfig
from engine.routing.router import Router
from tests.conftest import virtual_account

# One failure would open the breaker: whatever does not open it was not counted as one.
TOUCHY = BreakerConfig(failure_threshold=1)
PRICED = {"input_cost_per_mtok": 1_000_000.0, "output_cost_per_mtok": 1_000_000.0}


def ask(**fields: object) -> ChatRequest:
    return ChatRequest(messages=(ChatMessage("user", "hello there"),), **fields)


async def test_an_attempt_cut_off_by_the_request_deadline_is_billed_but_not_a_failure(
    virtual_clock,
):
    account, backend = virtual_account("a", seconds=10.0, **PRICED)
    recorder = RequestRecorder(["a"])
    config = RouterConfig(retry=RetryConfig(deadline=4.0), breaker=TOUCHY)
    async with open_fleet([account], config, recorder=recorder) as fleet:
        with pytest.raises(DeadlineExceeded):
            await fleet.router.complete(ask(max_tokens=100))
        provider = fleet.provider("a")
        assert provider.stats.failures == {"deadline": 1}
        assert provider.breaker.state is State.CLOSED
        assert fleet.health.health("a").failures == 0
    assert len(backend.requests) == 1
    attempts = recorder.attempt_arrays()
    assert [recorder.attempt_codes[i] for i in attempts["code"]] == ["deadline"]
    # Billed its whole input and the 40% of its output generated in 4 s of 10 (at $1 a token).
    request = ask(max_tokens=100)
    billed = attempts["cost"][0]
    assert billed == pytest.approx(request.prompt_tokens + 40, abs=1.0)
    arrays = recorder.arrays()
    assert OUTCOMES[arrays["outcome"][0]] == "deadline_exceeded"
    assert arrays["wasted"][0] == pytest.approx(billed)
    assert arrays["latency"][0] == pytest.approx(4.0)


async def test_a_client_that_goes_away_cancels_the_attempt_without_blaming_the_provider(
    virtual_clock,
):
    account, _ = virtual_account("a", seconds=10.0, **PRICED)
    recorder = RequestRecorder(["a"])
    async with open_fleet([account], RouterConfig(breaker=TOUCHY), recorder=recorder) as fleet:
        with trio.move_on_after(3.0):
            await fleet.router.complete(ask(max_tokens=100))
        provider = fleet.provider("a")
        assert provider.breaker.state is State.CLOSED
        assert fleet.health.health("a").failures == 0
        assert not provider.stats.failures
    attempts = recorder.attempt_arrays()
    assert [recorder.attempt_codes[i] for i in attempts["code"]] == ["cancelled"]
    assert attempts["cost"][0] > 0  # the provider had started: its input is billed
    assert OUTCOMES[recorder.arrays()["outcome"][0]] == "cancelled"


async def test_no_attempt_starts_that_could_not_answer_before_the_deadline(virtual_clock):
    account, backend = virtual_account("a", seconds=10.0)
    async with open_fleet([account], RouterConfig()) as fleet:
        await fleet.router.complete(ask())  # teaches the router a typical service of 10 s
        assert fleet.provider("a").typical_service == pytest.approx(10.0)
        began = trio.current_time()
        with pytest.raises(NoProviderAvailable):
            await fleet.router.complete(ask(deadline=8.0))
        # Told at once, not at the deadline, and nothing was sent (nor billed).
        assert trio.current_time() == began
        assert len(backend.requests) == 1
        # With time for it, the same request is sent.
        await fleet.router.complete(ask(deadline=12.0))
        assert len(backend.requests) == 2


async def _two_at_once(router: Router) -> None:
    async with trio.open_nursery() as nursery:
        for _ in range(2):
            nursery.start_soon(router.complete, ask())


async def test_waits_for_a_limit_and_for_a_slot_add_up_with_service_to_the_latency(
    virtual_clock,
):
    # One request per 60 s window, one slot, no queue: the second request waits for the
    # window to reset (a limit); the third, sent with a fresh window, for a slot.
    window = LimitSpec("rpm", "requests", 1, 60.0, mode="window")
    limited, _ = virtual_account("limited", seconds=1.0, limits=[window])
    single, _ = virtual_account("single", seconds=2.0, max_concurrency=1, queue_limit=0)
    recorder = RequestRecorder(["limited", "single"])
    config = RouterConfig(retry=RetryConfig(deadline=300.0))
    for account in (limited, single):
        async with open_fleet([account], config, recorder=recorder) as fleet:
            await _two_at_once(fleet.router)
    arrays = recorder.arrays()
    assert [OUTCOMES[o] for o in arrays["outcome"]] == ["ok"] * 4
    # (latency, slot wait, limit wait) per request, in the order they ended.
    rows = list(zip(arrays["latency"], arrays["slot_wait"], arrays["limit_wait"], strict=True))
    assert rows[0] == pytest.approx((1.0, 0.0, 0.0))
    assert rows[1] == pytest.approx((61.0, 0.0, 60.0))
    assert rows[2] == pytest.approx((2.0, 0.0, 0.0))
    assert rows[3] == pytest.approx((4.0, 2.0, 0.0))
