"""The simulator's attempts meet the same timeouts as the live ones: the virtual provider
models a streamed answer (first token, then a token at a time) and a whole one (its first
byte is its last), and overload as a cool-down."""

from __future__ import annotations

import pytest

from actors.backends.virtual import LatencyModel
from actors.breaker import BreakerConfig, State
from actors.errors import AnswerCapReached, AttemptTimeout
from actors.faults import Fault
from actors.messages import ChatMessage, ChatRequest
from actors.runtime import clock
from actors.runtime.distributions import Constant
from actors.runtime.errors import InvalidSetting
from actors.timeouts import TimeoutOverrides, Timeouts
from engine.routing.errors import RequestFailed
from engine.routing.fleet import RouterConfig, open_fleet
from engine.routing.policies import PolicyConfig
from engine.routing.retry import RetryConfig
from tests.conftest import virtual_account

#: 2,800 tokens at 80 tokens/s after a 0.4 s first token: a 35.4 s answer.
LONG = LatencyModel(ttft=Constant(0.4), tokens_per_s=80.0, output_tokens=Constant(2800))


def ask(stream: bool) -> ChatRequest:
    message = ChatMessage("user", "Walk me through it.")
    return ChatRequest(messages=(message,), stream=stream, bypass_cache=True)


def config(**timeouts: float) -> RouterConfig:
    return RouterConfig(
        routing=PolicyConfig(policy="priority"),
        retry=RetryConfig(jitter=0.0, max_attempts=1, deadline=900.0),
        timeouts=Timeouts(**timeouts),
    )


async def test_a_long_streamed_answer_is_answered_and_a_whole_one_waits_for_its_first_byte(
    virtual_clock,
):
    account, _ = virtual_account("a", latency=LONG)
    async with open_fleet([account], config(first_byte=3.0, idle=1.0)) as fleet:
        for _ in range(5):
            answer = await fleet.router.complete(ask(stream=True))
            assert answer.completion_tokens == 2800 and answer.ttft == pytest.approx(0.4)
        assert fleet.provider("a").breaker.consecutive_failures == 0
        began = clock.now()
        with pytest.raises(RequestFailed) as caught:
            await fleet.router.complete(ask(stream=False))
    # Not streamed, the answer's first byte would come with its last, 35.4 s in.
    assert clock.now() - began == pytest.approx(3.0)
    assert [type(a) for a in caught.value.attempts] == [AttemptTimeout]
    assert "no first byte within 3 s" in str(caught.value)


async def test_a_stream_slower_than_the_idle_limit_is_cut_after_its_first_token(virtual_clock):
    # Decoding 200x slower: a token every 2.5 s, against 1 s of allowed silence.
    slow = Fault("latency", start=0, multiplier=200.0)
    account, _ = virtual_account("a", latency=LONG, faults=[slow])
    async with open_fleet([account], config(first_byte=100.0, idle=1.0)) as fleet:
        with pytest.raises(RequestFailed) as caught:
            await fleet.router.complete(ask(stream=True))
    assert clock.now() == pytest.approx(0.4 * 200 + 1.0)  # its first token, then 1 s
    assert "within the response (timeouts.idle)" in str(caught.value)


async def test_the_total_cap_is_the_routers_and_moves_no_breaker(virtual_clock):
    account, _ = virtual_account("a", latency=LONG)
    async with open_fleet([account], config(total=20.0)) as fleet:
        for _ in range(6):
            with pytest.raises(RequestFailed) as caught:
                await fleet.router.complete(ask(stream=True))
            assert [type(a) for a in caught.value.attempts] == [AnswerCapReached]
        provider = fleet.provider("a")
        assert provider.breaker.consecutive_failures == 0
        assert fleet.health.health("a").failures == 0
        assert provider.stats.failures["answer_cap"] == 6


async def test_an_overloaded_account_cools_down_and_its_breaker_stays_closed(virtual_clock):
    overload = Fault("overload", start=0, end=100, retry_after=20.0)
    a, _ = virtual_account("a", faults=[overload])
    b, _ = virtual_account("b")
    routing = RouterConfig(routing=PolicyConfig(policy="priority"))
    async with open_fleet([a, b], routing) as fleet:
        answers = [await fleet.router.complete(ask(stream=True)) for _ in range(10)]
        provider = fleet.provider("a")
        assert [x.provider for x in answers] == ["b"] * 10
        assert provider.stats.failures["overloaded"] == 1  # then it rested: 20 s
        assert provider.breaker.consecutive_failures == 0
        assert fleet.health.health("a").failures == 0
        assert answers[0].attempts == 2 and answers[0].latency == pytest.approx(
            answers[1].latency, abs=1.0
        )  # failed over at once, no backoff


async def test_an_accounts_own_timeouts_replace_only_the_limits_it_names(virtual_clock):
    own = TimeoutOverrides(first_byte=120.0)
    reasoner, _ = virtual_account("reasoner", timeouts=own)
    plain, _ = virtual_account("plain")
    router = RouterConfig(timeouts=Timeouts(first_byte=20.0, idle=15.0, total=300.0))
    async with open_fleet([reasoner, plain], router) as fleet:
        assert fleet.provider("reasoner").timeouts == Timeouts(
            connect=10.0, first_byte=120.0, idle=15.0, total=300.0
        )
        assert fleet.provider("plain").timeouts == router.timeouts
    with pytest.raises(InvalidSetting, match=r"timeouts\.idle"):
        TimeoutOverrides(idle=0.0)


async def test_overload_counts_toward_the_breaker_only_when_chosen(virtual_clock):
    overload = Fault("overload", start=0, retry_after=0.0)
    a, _ = virtual_account("a", faults=[overload])
    b, _ = virtual_account("b")
    counted = BreakerConfig(failure_threshold=3, failure_codes=("upstream_error", "overloaded"))
    routing = RouterConfig(routing=PolicyConfig(policy="priority"), breaker=counted)
    async with open_fleet([a, b], routing) as fleet:
        for _ in range(3):
            await fleet.router.complete(ask(stream=True))
        assert fleet.provider("a").breaker.state is State.OPEN
    with pytest.raises(InvalidSetting, match=r"breaker\.failure_codes"):
        BreakerConfig(failure_codes=("answer_cap",))
