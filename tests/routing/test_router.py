"""The routing core's reliability behaviours, on virtual time."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from actors.breaker import BreakerConfig, State
from actors.cache import CacheConfig
from actors.errors import AttemptError, RateLimited
from actors.faults import Fault
from actors.limits import LimitSpec
from actors.messages import ChatMessage, ChatRequest
from actors.provider import Disable, Enable
from actors.quota import QuotaAlert
from actors.runtime import clock
from actors.session import Turn
from actors.timeouts import Timeouts
from engine.routing.books import Books
from engine.routing.decision_log import DecisionLog
from engine.routing.errors import (
    DeadlineExceeded,
    InvalidRequest,
    NoProviderAvailable,
    RequestFailed,
)
from engine.routing.fleet import RouterConfig, open_fleet
from engine.routing.policies import PolicyConfig
from engine.routing.retry import RetryConfig
from tests.conftest import virtual_account

NO_JITTER = RetryConfig(jitter=0.0, deadline=120.0)
FIVE_S = Timeouts(first_byte=5.0)


def ask(text: str = "hello", **fields: object) -> ChatRequest:
    return ChatRequest(messages=(ChatMessage("user", text),), **fields)


def actions(log: DecisionLog, request_id: str) -> list[tuple[float, str, str]]:
    return [(t, action, detail) for t, rid, action, detail in log.events if rid == request_id]


async def test_happy_path_first_attempt_succeeds(virtual_clock):
    account, backend = virtual_account("a", seconds=1.5)
    log = DecisionLog(keep=True)
    async with open_fleet(
        [account], RouterConfig(retry=NO_JITTER, timeouts=FIVE_S), log=log
    ) as fleet:
        answer = await fleet.router.complete(ask())
    assert answer.attempts == 1
    assert answer.provider == "a"
    assert answer.latency == pytest.approx(1.5)
    assert [a for _, a, _ in actions(log, answer.request_id)] == ["received", "attempt", "success"]
    assert len(backend.requests) == 1
    assert fleet.router.stats.answered == 1 and Books.of(fleet.router).balanced()


async def test_timeouts_retry_with_backoff_2s_then_4s_then_succeed(virtual_clock):
    # The provider hangs for its first 15 s: attempts at 0 s and 7 s time out after 5 s.
    account, _ = virtual_account("a", faults=[Fault("hang", start=0, end=15)])
    log = DecisionLog(keep=True)
    async with open_fleet(
        [account], RouterConfig(retry=NO_JITTER, timeouts=FIVE_S), log=log
    ) as fleet:
        answer = await fleet.router.complete(ask())
    steps = actions(log, answer.request_id)
    backoffs = [(t, detail) for t, action, detail in steps if action == "backoff"]
    attempts = [t for t, action, _ in steps if action == "attempt"]
    assert [d.split("wait=")[1] for _, d in backoffs] == ["2.000", "4.000"]
    assert attempts == [0.0, 7.0, 16.0]
    assert answer.attempts == 3
    assert answer.latency == pytest.approx(17.0)
    # One request id throughout, on every decision line.
    assert {rid for _, rid, _, _ in log.events if not rid.startswith("breaker:")} == {
        answer.request_id
    }


async def test_429_fails_over_at_once_without_backoff(virtual_clock):
    limited, _ = virtual_account("limited", faults=[Fault("rate_limit", start=0, retry_after=30)])
    healthy, backend = virtual_account("healthy")
    config = RouterConfig(retry=NO_JITTER, timeouts=FIVE_S, routing=PolicyConfig(policy="priority"))
    log = DecisionLog(keep=True)
    async with open_fleet([limited, healthy], config, log=log) as fleet:
        answer = await fleet.router.complete(ask())
        second = await fleet.router.complete(ask("again"))
    steps = actions(log, answer.request_id)
    failed_at = next(t for t, a, _ in steps if a == "failed")
    second_attempt = [t for t, a, _ in steps if a == "attempt"][1]
    assert second_attempt == failed_at  # no wait between the 429 and the failover
    assert "backoff" not in [a for _, a, _ in steps]
    assert answer.provider == "healthy" and answer.attempts == 2
    assert fleet.router.stats.rate_limited == 1
    assert second.provider == "healthy" and len(backend.requests) == 2


async def test_own_rate_limit_is_a_429_with_retry_after(virtual_clock):
    account, _ = virtual_account("a", limits=(LimitSpec("rpm", "requests", 2, 60.0),))
    async with open_fleet([account], RouterConfig(retry=NO_JITTER, timeouts=FIVE_S)) as fleet:
        provider = fleet.provider("a")
        await provider.call(ask("1"), "x1")
        await provider.call(ask("2"), "x2")
        with pytest.raises(RateLimited) as refused:
            await provider.call(ask("3"), "x3")
        # 2 per minute refills one request every 30 s; 2 s have passed.
        assert refused.value.limit == "rpm"
        assert refused.value.retry_after == pytest.approx(28.0)
        assert provider.stats.rejections["rpm"] == 1
        # The router does not provoke that 429: it waits for the token, then sends.
        log = DecisionLog(keep=True)
        fleet.router.log = log
        answer = await fleet.router.complete(ask("4"))
    assert answer.attempts == 1
    assert answer.latency == pytest.approx(28.0 + 1.0)
    assert [a for _, a, _ in actions(log, answer.request_id)] == [
        "received",
        "queued",
        "attempt",
        "success",
    ]


async def test_five_failures_open_the_breaker_and_a_half_open_trial_closes_it(virtual_clock):
    flaky, _ = virtual_account("flaky", faults=[Fault("outage", start=0, end=20)])
    steady, _ = virtual_account("steady")
    config = RouterConfig(
        retry=RetryConfig(jitter=0.0, max_attempts=2),
        routing=PolicyConfig(policy="priority"),
        breaker=BreakerConfig(failure_threshold=5, open_for=30.0),
    )
    async with open_fleet([flaky, steady], config) as fleet:
        for i in range(5):
            answer = await fleet.router.complete(ask(f"q{i}"))
            assert answer.provider == "steady"  # each failure fails over: no error surfaces
        breaker = fleet.provider("flaky").breaker
        assert breaker.state is State.OPEN
        opened_at = fleet.transitions[-1].time
        calls_before = fleet.provider("flaky").stats.calls
        answer = await fleet.router.complete(ask("while open"))
        assert answer.provider == "steady" and answer.attempts == 1
        assert fleet.provider("flaky").stats.calls == calls_before  # skipped, not tried
        # The breaker wakes itself at the end of the quarantine; look just after it.
        await clock.sleep_until(opened_at + 30.0 + 1e-6)
        assert breaker.state is State.HALF_OPEN
        trial = await fleet.router.complete(ask("trial"))
        assert trial.provider == "flaky"
        assert breaker.state is State.CLOSED
    edges = [(t.source, t.target) for t in fleet.transitions]
    assert edges == [
        (State.CLOSED, State.OPEN),
        (State.OPEN, State.HALF_OPEN),
        (State.HALF_OPEN, State.CLOSED),
    ]
    assert fleet.transitions[1].time == opened_at + 30.0


async def test_a_bounded_history_keeps_the_latest_events_of_each_series(virtual_clock):
    """A long-running server keeps the latest breaker transitions and quota alerts only
    (open_router passes keep_history); a simulated run keeps them all."""
    account, _ = virtual_account("a")
    async with open_fleet([account], keep_history=2) as fleet:
        breaker = fleet.provider("a").breaker
        for i in range(3):
            breaker.force_open(clock.now(), f"opened {i}")
            breaker.reset(clock.now(), f"closed {i}")
            await clock.sleep(1.0)
        for level in (0.8, 0.9, 1.0):
            fleet.quota.tell(QuotaAlert(clock.now(), "a", "daily", level, level, 1.0, 86400.0))
        await clock.sleep(1.0)
    assert [t.reason for t in fleet.transitions] == ["opened 2", "closed 2"]
    assert [a.level for a in fleet.quota.alerts] == [0.9, 1.0]
    async with open_fleet([virtual_account("b")[0]]) as whole:
        for i in range(3):
            whole.provider("b").breaker.force_open(clock.now(), f"opened {i}")
            whole.provider("b").breaker.reset(clock.now(), f"closed {i}")
    assert len(whole.transitions) == 6


BAD_REQUESTS = [
    (dict(messages=()), "messages"),
    (dict(messages=(ChatMessage("wizard", "hi"),)), "messages[0].role"),
    (dict(messages=(ChatMessage("user", "hi"),), temperature=2.5), "temperature"),
    (dict(messages=(ChatMessage("user", "hi"),), temperature=-0.1), "temperature"),
    (dict(messages=(ChatMessage("user", "hi"),), model="gpt-9"), "model"),
    (dict(messages=(ChatMessage("user", "x" * 40_000),)), "messages"),
    (dict(messages=(ChatMessage("user", "hi"),), max_tokens=0), "max_tokens"),
]


@pytest.mark.parametrize(("fields", "bad_field"), BAD_REQUESTS)
async def test_invalid_request_fails_fast_and_no_provider_sees_it(fields, bad_field):
    account, backend = virtual_account("a", context_window=8192)
    async with open_fleet([account]) as fleet:
        # Fast, whatever the machine's load: refused before the request ever yields to
        # the scheduler (no wait, no provider, no lock), so its cost is the checks alone.
        with pytest.raises(InvalidRequest) as error, trio.testing.assert_no_checkpoints():
            await fleet.router.complete(ChatRequest(**fields))
    assert error.value.field == bad_field
    assert bad_field in str(error.value) and "allowed" in str(error.value)
    assert backend.requests == [] and fleet.provider("a").stats.calls == 0
    assert fleet.router.stats.failed["invalid_request"] == 1 and Books.of(fleet.router).balanced()


async def test_provider_failing_mid_interview_is_quarantined_and_history_carries_over(
    virtual_clock,
):
    # "best" is the fastest, so the weighted policy picks it, until it starts failing at 100 s.
    best, best_backend = virtual_account("best", seconds=0.5, faults=[Fault("outage", start=100)])
    second, second_backend = virtual_account("second", seconds=1.0)
    third, _ = virtual_account("third", seconds=2.0)
    config = RouterConfig(
        retry=RetryConfig(jitter=0.0),
        breaker=BreakerConfig(failure_threshold=3, open_for=300.0),
        routing=PolicyConfig(policy="sticky"),
        cache=CacheConfig(enabled=False),
    )
    async with open_fleet([best, second, third], config) as fleet:
        # Warm up the health statistics so the policy knows who is fastest.
        for i in range(3):
            for name in ("best", "second", "third"):
                await fleet.provider(name).call(ask(f"warm {i}"), f"warm-{name}-{i}")
        sessions = [
            await fleet.session(f"candidate-{i}", "You are an interviewer.") for i in (1, 2, 3)
        ]
        answers: dict[str, list] = {s.session_id: [] for s in sessions}
        for turn in range(8):
            await clock.sleep(30.0)
            for session in sessions:
                answer = await session.ask(Turn(f"answer {turn} from {session.session_id}"))
                answers[session.session_id].append(answer)
        breaker = fleet.provider("best").breaker
        assert breaker.state is State.OPEN
        opening = next(t for t in fleet.transitions if t.target is State.OPEN)
        assert "3 consecutive failures" in opening.reason
        assert breaker.open_until - opening.time == 300.0
        for session in sessions:
            # The candidate saw an answer on every turn: no error surfaced.
            assert len(answers[session.session_id]) == 8
            assert session.providers_used == ["best", "second"]
            # The first request "second" got for this session carried the whole conversation.
            moved = next(
                r
                for r in second_backend.requests
                if len(r.messages) > 1 and r.messages[1].content.endswith(session.session_id)
            )
            turns_before = sum(1 for a in answers[session.session_id] if a.provider == "best")
            assert len(moved.messages) == 1 + 2 * turns_before + 1
            assert moved.messages[0] == ChatMessage("system", "You are an interviewer.")
            assert list(moved.messages[:-1]) == session.history[: len(moved.messages) - 1]
        assert Books.of(fleet.router).balanced()
        assert best_backend.requests  # it really was used before it failed


async def test_all_providers_quarantined_queues_until_one_returns(virtual_clock):
    account, _ = virtual_account("only")
    config = RouterConfig(retry=RetryConfig(jitter=0.0, deadline=60.0))
    async with open_fleet([account], config) as fleet:
        fleet.provider("only").breaker.force_open(clock.now(), "test")
        answer = await fleet.router.complete(ask())
    # The breaker's 30 s quarantine fits inside the 60 s deadline: the request waits.
    assert answer.latency == pytest.approx(31.0)


async def test_no_provider_before_deadline_is_a_named_error_with_retry_after(virtual_clock):
    account, _ = virtual_account("only")
    config = RouterConfig(retry=RetryConfig(jitter=0.0, deadline=10.0))
    async with open_fleet([account], config) as fleet:
        fleet.provider("only").breaker.force_open(clock.now(), "test")
        with pytest.raises(NoProviderAvailable) as error:
            await fleet.router.complete(ask())
    assert error.value.retry_after == pytest.approx(30.0)
    assert clock.now() == 0.0  # shed at once, not after waiting for nothing
    assert fleet.router.stats.failed["no_provider"] == 1 and Books.of(fleet.router).balanced()


async def test_retry_after_from_a_429_is_honoured_on_the_next_attempt(virtual_clock):
    account, _ = virtual_account(
        "only", faults=[Fault("rate_limit", start=0, end=1, retry_after=7)]
    )
    log = DecisionLog(keep=True)
    async with open_fleet(
        [account], RouterConfig(retry=NO_JITTER, timeouts=FIVE_S), log=log
    ) as fleet:
        answer = await fleet.router.complete(ask())
    attempts = [t for t, a, _ in actions(log, answer.request_id) if a == "attempt"]
    assert attempts[1] - attempts[0] >= 7.0


async def test_deadline_bounds_the_whole_request(virtual_clock):
    account, _ = virtual_account("only", faults=[Fault("hang", start=0)])
    config = RouterConfig(
        retry=RetryConfig(jitter=0.0, deadline=12.0), timeouts=Timeouts(first_byte=5.0)
    )
    async with open_fleet([account], config) as fleet:
        with pytest.raises((DeadlineExceeded, RequestFailed)) as error:
            await fleet.router.complete(ask())
    assert clock.now() <= 12.0 + 1e-9
    # Each attempt waits its 5 s for a first byte; the one the deadline cuts says so.
    codes = [e.code for e in error.value.attempts]
    assert codes[0] == "timeout" and set(codes) <= {"timeout", "deadline"}


async def test_cancelled_request_is_counted_as_cancelled_and_frees_its_slot(virtual_clock):
    account, _ = virtual_account("only", seconds=10.0, max_concurrency=1)
    config = RouterConfig(retry=RetryConfig(jitter=0.0))
    async with open_fleet([account], config) as fleet:
        with trio.move_on_after(2.0):
            await fleet.router.complete(ask())
        assert fleet.provider("only").slots.in_use == 0
        stats = fleet.router.stats
        assert stats.cancelled == 1 and stats.in_flight == 0 and Books.of(fleet.router).balanced()
        answer = await fleet.router.complete(ask("next"))
        assert answer.latency == pytest.approx(10.0)


async def test_cache_serves_repeats_and_never_stores_failures(virtual_clock):
    good, backend = virtual_account("good")
    async with open_fleet([good], RouterConfig(retry=NO_JITTER, timeouts=FIVE_S)) as fleet:
        first = await fleet.router.complete(ask("same  question"))
        await clock.sleep(1.0)  # the cache actor stores the answer
        again = await fleet.router.complete(ask("same question"))
        bypass = await fleet.router.complete(ask("same question", bypass_cache=True))
    assert not first.cached and again.cached and again.content == first.content
    assert again.request_id != first.request_id and again.cost == 0.0
    assert not bypass.cached and len(backend.requests) == 2
    assert fleet.cache is not None and fleet.cache.core.hits == 1

    down, _ = virtual_account("down", faults=[Fault("outage", start=0)])
    config = RouterConfig(retry=RetryConfig(jitter=0.0, max_attempts=1))
    async with open_fleet([down], config) as fleet:
        with pytest.raises(RequestFailed):
            await fleet.router.complete(ask("q"))
        await clock.sleep(1.0)
        assert fleet.cache is not None and len(fleet.cache.core) == 0


async def test_waiting_requests_drain_when_a_window_resets(virtual_clock):
    # 5 requests per 60 s window: 20 requests at once need 4 windows, and every one
    # must get through as windows reset, not only the head of the line.
    account, _ = virtual_account(
        "windowed", seconds=0.5, limits=(LimitSpec("rpw", "requests", 5, 60.0, mode="window"),)
    )
    config = RouterConfig(
        retry=RetryConfig(jitter=0.0, deadline=300.0), cache=CacheConfig(enabled=False)
    )
    answers = []
    async with open_fleet([account], config) as fleet:

        async def one(i: int) -> None:
            answers.append(await fleet.router.complete(ask(f"q{i}")))

        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(one, i)
    assert len(answers) == 20
    starts = sorted(round(a.latency - 0.5) for a in answers)
    assert starts == [0] * 5 + [60] * 5 + [120] * 5 + [180] * 5


async def test_a_half_open_provider_gets_its_trial_even_when_the_policy_scores_it_low(
    virtual_clock,
):
    flaky, _ = virtual_account("flaky", faults=[Fault("outage", start=0, end=20)])
    steady, _ = virtual_account("steady")
    config = RouterConfig(
        retry=RetryConfig(jitter=0.0),
        breaker=BreakerConfig(failure_threshold=2, open_for=30.0),
        cache=CacheConfig(enabled=False),
    )
    async with open_fleet([flaky, steady], config) as fleet:
        for i in range(2):
            with pytest.raises(AttemptError):
                await fleet.provider("flaky").call(ask(f"q{i}"), f"direct-{i}")
        breaker = fleet.provider("flaky").breaker
        assert breaker.state is State.OPEN
        assert fleet.health.health("flaky").error_ewma > 0.1  # it scores low now
        await clock.sleep(40.0)
        assert breaker.state is State.HALF_OPEN
        answer = await fleet.router.complete(ask("after the quarantine"))
    # The weighted policy alone would pick the healthy account and leave flaky
    # half-open for good; the trial goes to flaky, passes, and closes its breaker.
    assert answer.provider == "flaky"
    assert breaker.state is State.CLOSED


async def test_a_session_answered_from_the_cache_keeps_its_provider(virtual_clock):
    account, backend = virtual_account("a")
    config = RouterConfig(retry=NO_JITTER, timeouts=FIVE_S, cache=CacheConfig(enabled=True))
    async with open_fleet([account], config) as fleet:
        first = await fleet.session("first", "You are an interviewer.")
        second = await fleet.session("second", "You are an interviewer.")
        await first.ask(Turn("hello"))
        await clock.sleep(1.0)  # the cache actor stores the answer
        answer = await second.ask(Turn("hello"))
    assert answer.cached and len(backend.requests) == 1
    assert first.provider == "a"
    assert second.provider is None  # no provider served it


async def test_an_unreachable_account_is_passed_over_until_none_else_can_answer(virtual_clock):
    """An account no connection reached goes after every account that answers, even the
    one its policy prefers; it still takes what nothing else can, and once reached again
    it is chosen as before."""
    preferred, preferred_backend = virtual_account("preferred", priority=0)
    spare, _ = virtual_account("spare", priority=1)
    config = RouterConfig(
        retry=NO_JITTER, routing=PolicyConfig(policy="priority"), cache=CacheConfig(enabled=False)
    )
    async with open_fleet([preferred, spare], config) as fleet:
        fleet.health.reach("preferred", "ConnectError (10.0.0.2:443): Connection refused", 0.0)
        for i in range(3):
            assert (await fleet.router.complete(ask(f"q{i}"))).provider == "spare"
        assert not preferred_backend.requests
        fleet.provider("spare").tell(Disable("key revoked"))
        await clock.sleep(0.1)
        # Nothing else can answer: the unreachable account gets the request (and with it
        # the chance to show it is back).
        assert (await fleet.router.complete(ask("only one left"))).provider == "preferred"
        fleet.provider("spare").tell(Enable("key replaced"))
        await clock.sleep(0.1)
        fleet.health.reach("preferred", "", clock.now())  # an HTTP answer: reachable again
        assert (await fleet.router.complete(ask("both again"))).provider == "preferred"
