"""What a live provider reports of its limits, beside the configured ones: the stricter wins.

A report (remaining R, reset in T s) admits no more than R, less what was sent since,
until T, whatever a configured limiter of the unit would allow; a configured limiter
that is stricter still binds; a later report replaces an earlier one; a report past its
reset is over. Driven on the virtual clock where a call or a wait is involved.
"""

from __future__ import annotations

import attrs
import pytest
import trio

from actors.backends import Usage
from actors.backends.ratelimit_headers import LimitFeed, LimitObservation, RateLimitInfo
from actors.backends.virtual import ErrorRates, LatencyModel, VirtualBackend
from actors.breaker import BreakerConfig, CircuitBreaker
from actors.errors import RateLimited
from actors.faults import FaultSchedule
from actors.limits import LimitSpec
from actors.messages import ChatMessage, ChatRequest
from actors.provider import AttemptFeed, Provider, ProviderSpec
from actors.runtime import clock
from actors.runtime.randomness import RandomStreams
from engine.routing.fleet import Account, RouterConfig, open_fleet
from engine.routing.policies import PolicyConfig
from tests.conftest import virtual_account

RPM = LimitSpec("rpm", "requests", 1000, 60.0)
REQUEST = ChatRequest(messages=(ChatMessage("user", "hi"),), max_tokens=1, bypass_cache=True)


def requests_left(remaining: float, reset_in: float | None, limit: float | None = None):
    return [LimitObservation("requests", remaining, limit, reset_in)]


async def test_a_reported_reset_holds_whatever_the_configured_bucket_allows(virtual_clock):
    # The issue: 1,000 a minute configured, "0 left, reset in 30 s" reported.
    account, backend = virtual_account("a", seconds=0.5, limits=(RPM,))
    async with open_fleet([account]) as fleet:
        provider = fleet.provider("a")
        await clock.sleep(10.0)
        provider.observe_limits(requests_left(0, 30.0, 1000), clock.now())
        assert provider.wait_before(REQUEST, clock.now()) == pytest.approx(30.0)
        with pytest.raises(RateLimited) as refused:
            await provider.call(REQUEST, "r1")
        assert refused.value.limit == "requests (reported)"
        await clock.sleep(29.5)
        assert provider.wait_before(REQUEST, clock.now()) == pytest.approx(0.5)
        await clock.sleep_until(40.0)  # the reset: the report is over
        assert provider.wait_before(REQUEST, clock.now()) == 0.0
        await provider.call(REQUEST, "r2")
    assert len(backend.requests) == 1


@pytest.mark.parametrize("limits", [(), (RPM,)], ids=["unconfigured", "configured"])
async def test_what_was_sent_since_the_report_counts_against_it(virtual_clock, limits):
    account, backend = virtual_account("a", seconds=1.0, limits=limits)
    async with open_fleet([account]) as fleet:
        provider = fleet.provider("a")
        provider.observe_limits(requests_left(2, 30.0), clock.now())
        await provider.call(REQUEST, "r1")
        await provider.call(REQUEST, "r2")
        with pytest.raises(RateLimited) as refused:
            await provider.call(REQUEST, "r3")
        assert refused.value.retry_after == pytest.approx(28.0)
        assert provider.admission.reported["requests"].sent == 2
        await clock.sleep_until(30.0)
        await provider.call(REQUEST, "r4")
    assert len(backend.requests) == 3


def _provider(*limits: LimitSpec) -> tuple[Provider, list[str]]:
    """An account outside a fleet, with the names of what it told its attempt feed."""
    heard: list[str] = []
    feed = AttemptFeed()
    feed.subscribe(Heard(heard))
    spec = ProviderSpec(name="p", limits=limits)
    backend = VirtualBackend("p", LatencyModel(), ErrorRates(), FaultSchedule(), RandomStreams(0))
    return Provider(spec, backend, CircuitBreaker("p", BreakerConfig()), feed), heard


@attrs.define
class Heard:
    said: list[str]

    def attempt_ended(
        self, request_id: str, provider: str, code: str, cost: float, seen=None
    ) -> None:
        self.said.append(code)

    def capacity_freed(self) -> None:
        self.said.append("freed")

    def account_changed(self, provider: str) -> None:
        """Not what these tests listen for: nothing is freed by it."""


def test_the_stricter_of_configured_and_reported_binds_both_ways():
    provider, _ = _provider(LimitSpec("rpm", "requests", 2, 60.0))
    admission = provider.admission
    # Reported: 5 left for 10 s. Configured: 2 a minute. The configured one binds.
    provider.observe_limits(requests_left(5, 10.0), 0.0)
    assert admission.try_admit(0.0, 1, 0, 0, 0) == (0.0, "")
    assert admission.try_admit(0.0, 1, 0, 0, 0) == (0.0, "")
    assert provider.wait_before(REQUEST, 0.0) == pytest.approx(30.0)
    # Reported: 0 left for 100 s. Now the report binds, past the configured refill.
    provider.observe_limits(requests_left(0, 100.0), 0.0)
    assert provider.wait_before(REQUEST, 45.0) == pytest.approx(55.0)
    assert provider.wait_before(REQUEST, 100.0) == 0.0
    assert provider.stats.held_back == {"rpm": 1, "requests (reported)": 1}


def test_a_later_report_replaces_an_earlier_one_and_an_expired_one_is_dropped():
    provider, heard = _provider()
    tokens = ChatRequest(messages=(ChatMessage("user", "x" * 40),), max_tokens=10)
    provider.observe_limits([LimitObservation("tokens", 0, None, 30.0)], 0.0)
    assert provider.wait_before(tokens, 1.0) == pytest.approx(29.0)
    # Sooner and looser: it replaces the first, and whoever waits is told to look again.
    provider.observe_limits([LimitObservation("tokens", 500, None, 4.0)], 1.0)
    assert provider.wait_before(tokens, 1.0) == 0.0
    assert heard == ["freed"]
    # Tighter again: it replaces that one too, and gives nothing back.
    provider.observe_limits([LimitObservation("tokens", 0, None, 6.0)], 2.0)
    assert provider.wait_before(tokens, 2.0) == pytest.approx(6.0)
    assert heard == ["freed"]
    # A report of another unit after the tokens' reset drops the tokens' window.
    provider.observe_limits(requests_left(100, 11.0), 9.0)
    admission = provider.admission
    assert list(admission.reported) == ["requests"]
    assert [gate.name for gate, _ in admission.checks] == ["requests (reported)"]
    # A reset in 0 s ends the unit's window at once: an account that reports nothing
    # more checks nothing more.
    provider.observe_limits(requests_left(0, 0.0), 9.0)
    assert admission.checks == [] and admission.reported == {}


class ReportingBackend:
    """A virtual account's backend that reports rate-limit headers after each answer."""

    def __init__(self, account: Account, info: RateLimitInfo) -> None:
        self.inner = account.backend
        self.info = info
        self.feed = LimitFeed()

    async def complete(self, request, request_id, usage: Usage, sink=None, watch=None):
        reply = await self.inner.complete(request, request_id, usage, sink, watch)
        self.feed.report(self.info)
        return reply


def _reporting(name: str, remaining: float, reset_in: float) -> tuple[Account, ReportingBackend]:
    account, _ = virtual_account(name, seconds=1.0, limits=(RPM,))
    backend = ReportingBackend(
        account, RateLimitInfo(None, tuple(requests_left(remaining, reset_in)))
    )
    return Account(account.spec, backend, backend.feed), backend


async def test_the_router_waits_for_the_reported_reset_and_a_new_report_wakes_it(virtual_clock):
    account, _ = _reporting("a", 0, 30.0)
    async with open_fleet([account]) as fleet:
        router = fleet.router
        first = await router.complete(REQUEST)  # answered at 1 s: "0 left, reset in 30 s"
        second = await router.complete(REQUEST)  # waits for the reset, then is sent
        assert (first.latency, second.latency) == (pytest.approx(1.0), pytest.approx(31.0))
        # Now 32 s, "0 left until 62 s". A waiting request is woken by a report that gives
        # room back (another answer's headers), not left to wait for the reset.
        provider = fleet.provider("a")
        waited: list[float] = []

        async def waiting() -> None:
            start = clock.now()
            await router.complete(REQUEST)
            waited.append(clock.now() - start)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiting)
            await clock.sleep(5.0)
            provider.observe_limits(requests_left(10, 30.0), clock.now())
    assert waited == [pytest.approx(6.0)]  # 5 s waiting, then 1 s of service


async def test_the_router_fails_over_while_an_account_rests_on_its_report(virtual_clock):
    a, _ = _reporting("a", 0, 30.0)
    b, b_backend = virtual_account("b", seconds=1.0, limits=(RPM,), priority=1)
    config = RouterConfig(routing=PolicyConfig(policy="priority"))
    async with open_fleet([a, b], config) as fleet:
        answered = [(await fleet.router.complete(REQUEST)).provider for _ in range(4)]
    assert answered == ["a", "b", "b", "b"]
    assert len(b_backend.requests) == 3
