"""Hedging, retry budgets, adaptive concurrency, priorities and load shedding, on virtual time."""

from __future__ import annotations

import pytest
import trio

from actors.breaker import BreakerConfig
from actors.cache import CacheConfig
from actors.concurrency import AdaptiveLimit, ConcurrencyConfig
from actors.faults import Fault
from actors.limits import LimitSpec
from actors.messages import ChatMessage, ChatRequest
from actors.runtime import clock
from actors.runtime.distributions import Constant
from actors.runtime.errors import CallboardError, InvalidSetting
from actors.slots import Slots
from engine.routing.books import Books
from engine.routing.decision_log import DecisionLog
from engine.routing.errors import InvalidRequest, RetryBudgetExhausted, Shed
from engine.routing.fleet import RouterConfig, open_fleet
from engine.routing.hedging import HedgingConfig
from engine.routing.policies import PolicyConfig
from engine.routing.retry import RetryBudget, RetryBudgetConfig, RetryConfig
from engine.routing.waiting import LineConfig
from tests.conftest import virtual_account

PRICED = {"input_cost_per_mtok": 1.0, "output_cost_per_mtok": 1.0}


def ask(i: int | str, **fields: object) -> ChatRequest:
    return ChatRequest(messages=(ChatMessage("user", f"question {i}"),), **fields)


def hedged(**hedging: object) -> RouterConfig:
    return RouterConfig(
        routing=PolicyConfig(policy="priority"),
        retry=RetryConfig(jitter=0.0),
        cache=CacheConfig(enabled=False),
        hedging=HedgingConfig(enabled=True, min_samples=5, **hedging),
    )


async def warm_up(fleet, name: str, calls: int = 5) -> None:
    for i in range(calls):
        await fleet.provider(name).call(ask(f"warm {i}"), f"warm-{name}-{i}")


# --- hedging ----------------------------------------------------------------------


async def test_a_slow_attempt_is_hedged_and_the_loser_is_cancelled_and_billed_what_it_used(
    virtual_clock,
):
    # "slow" answers in 1 s until t=100, then 10x slower; its p95 (1 s) is the hedge delay.
    slow, slow_backend = virtual_account(
        "slow",
        seconds=1.0,
        priority=0,
        faults=[Fault("latency", start=100, multiplier=10)],
        **PRICED,
    )
    fast, _ = virtual_account("fast", seconds=1.0, priority=1, **PRICED)
    log = DecisionLog(keep=True)
    async with open_fleet([slow, fast], hedged(), log=log) as fleet:
        await warm_up(fleet, "slow")
        slow_provider = fleet.provider("slow")
        cost_before = slow_provider.stats.cost
        await clock.sleep_until(100)
        answer = await fleet.router.complete(ask(1))
        # The hedge went out after 1 s and answered 1 s later; the slow call was cut short.
        assert answer.provider == "fast"
        assert answer.latency == pytest.approx(2.0)
        assert answer.attempts == 1 and answer.cost > 0
        assert slow_provider.slots.in_use == 0  # the loser's slot is free at once
        # Billed as the provider bills a call cut short: the whole input, and the output
        # generated in the 2 s it ran (of 10 s, the first token at 0 s: a fifth of it).
        loser = slow_provider.stats.cost - cost_before
        prompt = ask(1).prompt_tokens
        assert loser == pytest.approx((prompt + 150 // 5) / 1e6)
        assert slow_provider.stats.answered == 5 and not slow_provider.stats.failures
        assert fleet.health.providers["slow"].failures == 0  # a hedge is not a failure
        stats = fleet.router.stats
        assert (stats.hedges, stats.hedge_wins, stats.answered) == (1, 1, 1)
        assert stats.attempts == 2 and not stats.failed and Books.of(fleet.router).balanced()
        assert len(slow_backend.requests) == 6  # the slow account did get the request
    steps = [(a, d) for _, rid, a, d in log.events if rid == answer.request_id]
    assert ("hedge", "provider=fast after=1.000 slow=slow") in steps


async def test_when_the_first_attempt_answers_first_the_hedge_is_cancelled(virtual_clock):
    first, _ = virtual_account(
        "first", seconds=1.0, priority=0, faults=[Fault("latency", start=100, multiplier=1.5)]
    )
    second, _ = virtual_account("second", seconds=5.0, priority=1, **PRICED)
    async with open_fleet([first, second], hedged()) as fleet:
        await warm_up(fleet, "first")
        await clock.sleep_until(100)
        answer = await fleet.router.complete(ask(1))
        assert answer.provider == "first" and answer.latency == pytest.approx(1.5)
        hedge = fleet.provider("second")
        assert hedge.stats.calls == 1 and hedge.stats.answered == 0
        # The hedge ran 0.5 s of its 5 s: billed its input and a tenth of its output.
        assert hedge.stats.cost == pytest.approx((ask(1).prompt_tokens + 15) / 1e6)
        assert hedge.slots.in_use == 0
        assert (fleet.router.stats.hedges, fleet.router.stats.hedge_wins) == (1, 0)


async def test_no_hedge_before_the_delay_nor_without_a_baseline_nor_when_off(virtual_clock):
    a, _ = virtual_account("a", seconds=1.0, priority=0)
    b, b_backend = virtual_account("b", seconds=1.0, priority=1)
    async with open_fleet([a, b], hedged(percentile=50, min_delay=3.0)) as fleet:
        # Unmeasured: no baseline, no hedge, however slow.
        for i in range(5):
            await fleet.router.complete(ask(i))
        # Measured at 1 s, and the floor is 3 s: a 1 s answer is never hedged.
        await fleet.router.complete(ask("after"))
        assert fleet.router.stats.hedges == 0 and b_backend.requests == []
    off = RouterConfig(routing=PolicyConfig(policy="priority"), cache=CacheConfig(enabled=False))
    slow, _ = virtual_account("slow", seconds=20.0, priority=0)
    other, other_backend = virtual_account("other", seconds=1.0, priority=1)
    async with open_fleet([slow, other], off) as fleet:
        for i in range(25):
            await fleet.router.complete(ask(i))
        assert fleet.router.stats.hedges == 0 and other_backend.requests == []
        assert fleet.router.hedge_timer is None


def test_the_hedge_delay_is_a_percentile_or_an_ewma_multiple_with_a_floor():
    from actors.health import HealthConfig, HealthMonitor
    from engine.routing.hedging import HedgeTimer

    health = HealthMonitor(HealthConfig(alpha=0.5))
    health.register("a")

    class Account:
        class spec:
            name = "a"

    for latency in [1.0] * 18 + [10.0, 10.0]:
        health.observe("a", "ok", latency, 0.0)
    by_percentile = HedgeTimer(HedgingConfig(percentile=90, min_samples=20), health)
    assert by_percentile.delay(Account) == pytest.approx(1.9)  # numpy's p90 of 18 x 1, 2 x 10
    by_ewma = HedgeTimer(HedgingConfig(ewma_multiple=0.5, min_samples=20), health)
    ewma = health.providers["a"].latency_ewma
    assert by_ewma.delay(Account) == pytest.approx(max(0.5, 0.5 * ewma))
    floored = HedgeTimer(HedgingConfig(percentile=50, min_delay=4.0, min_samples=20), health)
    assert floored.delay(Account) == 4.0
    assert HedgeTimer(HedgingConfig(min_samples=21), health).delay(Account) is None


def test_hedging_settings_are_validated():
    for field, value in (("percentile", 100), ("min_delay", -1), ("ewma_multiple", 0)):
        with pytest.raises(InvalidSetting) as error:
            HedgingConfig(**{field: value})
        assert error.value.field == f"hedging.{field}"


# --- retry budget -----------------------------------------------------------------


def test_retry_credits_are_earned_by_first_attempts_and_expire_with_the_window():
    budget = RetryBudget(RetryBudgetConfig(enabled=True, ratio=0.5, window=10, min_per_second=0))
    assert not budget.try_spend(0.0)  # nothing earned yet
    for _ in range(4):
        budget.deposit(1.0)  # 4 first attempts x 0.5 = 2 credits
    assert budget.try_spend(2.0) and budget.try_spend(2.0) and not budget.try_spend(2.0)
    assert budget.available(2.0) == pytest.approx(0.0)
    assert budget.available(12.5) == pytest.approx(0.0)  # deposits and spends both expired
    reserve = RetryBudget(RetryBudgetConfig(enabled=True, ratio=0.0, window=10, min_per_second=0.3))
    assert [reserve.try_spend(0.0) for _ in range(4)] == [True, True, True, False]


async def storm(budget: RetryBudgetConfig) -> tuple[int, list[CallboardError]]:
    """100 requests at once against two accounts that are down: attempts sent, errors."""
    down = [virtual_account(n, faults=[Fault("outage", start=0)])[0] for n in ("a", "b")]
    config = RouterConfig(
        retry=RetryConfig(jitter=0.0, max_attempts=4, backoff_base=1.0, budget=budget),
        breaker=BreakerConfig(failure_threshold=1000),  # no quarantine: the budget alone
        cache=CacheConfig(enabled=False),
    )
    errors: list[CallboardError] = []
    async with open_fleet(down, config) as fleet:

        async def one(i: int) -> None:
            try:
                await fleet.router.complete(ask(i))
            except CallboardError as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            for i in range(100):
                nursery.start_soon(one, i)
        assert Books.of(fleet.router).balanced()
    return sum(p.stats.calls for p in fleet.providers), errors


async def test_an_outage_does_not_become_a_retry_storm(virtual_clock):
    attempts_without, errors = await storm(RetryBudgetConfig())
    assert attempts_without == 400 and {e.code for e in errors} == {"request_failed"}
    budget = RetryBudgetConfig(enabled=True, ratio=0.2, window=10, min_per_second=0)
    attempts_with, errors = await storm(budget)
    # 100 first attempts earn 20 retries; every other failure ends its request at once.
    assert attempts_with == 100 + 20
    denied = [e for e in errors if isinstance(e, RetryBudgetExhausted)]
    assert len(errors) == 100 and len(denied) >= 80
    assert all(e.code == "retry_budget_exhausted" and e.attempts for e in denied)


def test_retry_budget_settings_are_validated():
    with pytest.raises(InvalidSetting) as error:
        RetryConfig(budget=RetryBudgetConfig(window=0))
    assert error.value.field == "retry.budget.window"


# --- adaptive concurrency ----------------------------------------------------------


def test_slots_shrink_by_retiring_and_grow_by_handing_to_waiters():
    slots = Slots(4, 10)
    for _ in range(4):
        assert slots.try_acquire()
    slots.resize(2)
    slots.release()  # 4 in use > 2: retired, not handed over
    assert (slots.in_use, slots.capacity) == (3, 2)
    assert not slots.try_acquire()


async def test_grown_slots_go_to_waiters_at_once(virtual_clock):
    slots = Slots(1, 10)
    assert slots.try_acquire()
    got: list[float] = []

    async def waiter() -> None:
        await slots.acquire()
        got.append(clock.now())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        nursery.start_soon(waiter)
        await clock.sleep(1.0)
        slots.resize(3)
    assert got == [1.0, 1.0] and slots.in_use == 3


def test_aimd_limit_halves_on_slow_windows_and_grows_back_when_healthy():
    slots = Slots(32, 0)
    limit = AdaptiveLimit(ConcurrencyConfig(adaptive=True, window=4), 32)
    for _ in range(4):
        limit.observe(1.0, slots)  # the first window sets the baseline
    for _ in range(3 * 4):
        limit.observe(5.0, slots)  # 5x the baseline: congested, three times
    assert limit.limit == 4.0 and slots.capacity == 4 and limit.decreases == 3
    for _ in range(20 * 4):
        limit.observe(1.0, slots)
    assert limit.limit == 32.0 and slots.capacity == 32 and limit.lowest == 4


@pytest.mark.slow
async def test_a_provider_whose_latency_rises_gets_fewer_calls_then_recovers(virtual_clock):
    # Both answer in 1 s; "a" is 6x slower from 100 s to 400 s. Round robin alone would
    # keep sending it half the traffic.
    a, _ = virtual_account("a", max_concurrency=16, queue_limit=0,
                           faults=[Fault("latency", start=100, end=400, multiplier=6)])  # fmt: skip
    b, _ = virtual_account("b", max_concurrency=16, queue_limit=0)
    config = RouterConfig(
        routing=PolicyConfig(policy="round_robin"),
        retry=RetryConfig(jitter=0.0),
        cache=CacheConfig(enabled=False),
        concurrency=ConcurrencyConfig(adaptive=True, window=10),
    )
    limits: list[tuple[float, int, int, int]] = []
    async with open_fleet([a, b], config) as fleet:
        provider, other = fleet.provider("a"), fleet.provider("b")

        async def client(i: int) -> None:
            n = 0
            while clock.now() < 700:
                await fleet.router.complete(ask(f"{i}-{n}"))
                n += 1
                await clock.sleep(0.5)

        async def watch() -> None:
            while clock.now() < 700:
                limits.append(
                    (clock.now(), provider.slots.capacity, provider.stats.calls, other.stats.calls)
                )
                await clock.sleep(10)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            for i in range(12):
                nursery.start_soon(client, i)
        stats = fleet.router.stats
        assert Books.of(fleet.router).balanced() and not stats.failed and stats.failovers == 0
    at = {t: (limit, a_calls, b_calls) for t, limit, a_calls, b_calls in limits}
    assert at[90][0] == 16 and at[90][1] == pytest.approx(at[90][2], abs=2)  # an even split
    assert max(limit for t, limit, _, _ in limits if 200 <= t < 400) == 1
    a_during = at[390][1] - at[200][1]
    b_during = at[390][2] - at[200][2]
    assert a_during < b_during / 20  # the slow account got a trickle, not half
    assert all(limit == 16 for t, limit, _, _ in limits if t >= 450)  # and came back
    assert provider.adaptive is not None and provider.adaptive.decreases >= 3


def test_adaptive_concurrency_settings_are_validated():
    with pytest.raises(InvalidSetting) as error:
        ConcurrencyConfig(backoff=1.0)
    assert error.value.field == "concurrency.backoff"


# --- priorities and load shedding --------------------------------------------------


async def burst(discipline: str) -> dict[str, list]:
    """One account admitting one request every 10 s; 8 low-priority requests, then 2 urgent."""
    account, _ = virtual_account(
        "only", seconds=1.0, limits=(LimitSpec("rate", "requests", 1, 10),)
    )
    config = RouterConfig(
        retry=RetryConfig(jitter=0.0, deadline=60.0),
        cache=CacheConfig(enabled=False),
        line=LineConfig(discipline=discipline, rate_window=60),
    )
    done: dict[str, list] = {"answered": [], "shed": [], "failed": []}
    async with open_fleet([account], config) as fleet:
        for i in range(7):  # a steady warm-up: the line learns it drains one request per 10 s
            await fleet.router.complete(ask(f"warm {i}"))
            await clock.sleep_until(10.0 * (i + 1))

        async def one(label: str, priority: int) -> None:
            try:
                await fleet.router.complete(ask(label, priority=priority))
                done["answered"].append((clock.now(), label))
            except Shed as exc:
                done["shed"].append((clock.now(), label, exc.retry_after))
            except CallboardError as exc:
                done["failed"].append((clock.now(), label, exc.code))

        async with trio.open_nursery() as nursery:
            for i in range(8):
                nursery.start_soon(one, f"low-{i}", 1)
                await clock.sleep(0.1)
            for i in range(2):
                nursery.start_soon(one, f"urgent-{i}", 0)
                await clock.sleep(0.1)
        assert Books.of(fleet.router).balanced()
    return done


async def test_urgent_requests_go_first_and_low_priority_is_shed_early_with_retry_after(
    virtual_clock,
):
    done = await burst("priority")
    order = [label for _, label in sorted(done["answered"])]
    assert order[:3] == ["low-0", "urgent-0", "urgent-1"]  # low-0 was already on its way
    shed = done["shed"]
    assert len(shed) >= 2 and all(label.startswith("low") for _, label, _ in shed)
    # Shed at once, on arrival or when the urgent ones pushed them back: not at the deadline.
    assert all(t < 71.0 and retry_after > 0 for t, _, retry_after in shed)
    # What is neither answered nor shed ran out of time at the deadline, and was low priority.
    assert all(label.startswith("low") for _, label, _ in done["failed"])


async def test_first_come_first_served_ignores_priority_and_sheds_nothing(virtual_clock):
    done = await burst("fifo")
    order = [label for _, label in sorted(done["answered"])]
    assert order[1].startswith("low")  # the urgent requests waited behind earlier ones
    assert not done["shed"]
    # Whoever cannot be served before the deadline (~130.x s) fails once that is certain:
    # at 120 s the next admission is at 130 s, and with the account's 1 s service time an
    # answer would come after the deadline. Not sooner: until then, it could make it.
    assert len(done["failed"]) == 4
    assert all(t == pytest.approx(120.0) for t, _, _ in done["failed"])
    assert all(code == "no_provider" for _, _, code in done["failed"])


async def test_priority_is_validated_and_the_interview_marks_its_first_turn(virtual_clock):
    account, _ = virtual_account("only")
    async with open_fleet([account]) as fleet:
        with pytest.raises(InvalidRequest) as error:
            await fleet.router.complete(ask(1, priority=-1))
        assert error.value.field == "priority"

    from actors.backends.sink import StreamSink
    from actors.messages import Completion
    from actors.runtime.randomness import RandomStreams
    from actors.session import InterviewSession
    from sims.interview import InterviewTally, ScriptedInterview
    from sims.workload import WorkloadConfig

    seen: list[int] = []

    class Router:
        async def complete(
            self, request: ChatRequest, session: InterviewSession, sink: StreamSink | None = None
        ) -> Completion:
            seen.append(request.priority)
            return Completion("r", "ok", "m", "p", 1, 1, 0.1, 0.1)

    workload = WorkloadConfig(
        interviews=1, turns=5, first_turn_priority=1, think_time=Constant(1.0)
    )
    interview = ScriptedInterview(
        0,
        0.0,
        Router(),  # type: ignore[arg-type]
        workload,
        RandomStreams(1).stream("i"),
        workload.question_weights(),
        InterviewTally(),
    )
    await interview.script()
    assert seen == [1, 0, 0, 0, 0]


# --- the live router has them too -----------------------------------------------------


def test_the_live_config_takes_the_same_tables_and_requests_carry_a_priority():
    from engine.serve.live_config import ConfigError, load_config
    from engine.serve.openai_format import parse_chat_body

    config = load_config(
        providers=["a=http://127.0.0.1:1/v1"],
        overrides=[
            "hedging.enabled=true",
            "hedging.ewma_multiple=3",
            "retry.budget.enabled=true",
            "concurrency.adaptive=true",
            'line.discipline="fifo"',
        ],
    )
    router = config.router_config
    assert router.hedging.enabled and router.hedging.ewma_multiple == 3
    assert router.retry.budget.enabled and router.concurrency.adaptive
    assert router.line.discipline == "fifo"
    assert not load_config(providers=["a=http://127.0.0.1:1/v1"]).router_config.hedging.enabled
    with pytest.raises(ConfigError, match=r"hedging\.min_delay"):
        load_config(providers=["a=http://127.0.0.1:1/v1"], overrides=["hedging.min_delay=-1"])
    request, _ = parse_chat_body({"messages": [{"role": "user", "content": "hi"}], "priority": 2})
    assert request.priority == 2
    with pytest.raises(InvalidRequest) as error:
        parse_chat_body({"messages": [{"role": "user", "content": "hi"}], "priority": "high"})
    assert error.value.field == "priority"
