"""Hedged requests: when an attempt is slower than its provider usually is, ask another.

After a delay derived from the provider's observed latency (a percentile of its
recent calls, or a multiple of its latency EWMA, never below a floor) a second
attempt goes to another provider; the first answer wins and the other attempt is
cancelled (its slot is freed, it is billed for what the provider processed until
then, and it counts as a hedge, not as a failure). :func:`hedged_attempt` runs the two
legs for the router.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

import attrs
import numpy as np
import trio

from actors.errors import AttemptError
from actors.messages import Completion
from actors.runtime import clock
from actors.runtime.errors import require
from engine.routing.selection import by_tier, eligible

if TYPE_CHECKING:
    from actors.backends.sink import StreamSink
    from actors.health import HealthMonitor
    from actors.provider import Provider
    from engine.routing.decision_log import DecisionLog
    from engine.routing.policies import Policy, PolicyConfig
    from engine.routing.pursuit import Pursuit
    from engine.routing.retry import RetryBudget, RetryConfig

# How many more calls a provider must have seen before its percentile is recomputed.
_REFRESH_EVERY = 16


def _check(field: str, ok: bool, value: object, allowed: str) -> None:
    require(f"hedging.{field}", ok, value, allowed)


@attrs.frozen
class HedgingConfig:
    """When to send a second attempt (off unless ``enabled``).

    The hedge goes out ``max(min_delay, p)`` after the first attempt started, where
    ``p`` is the ``percentile`` of the provider's recent latencies or, when
    ``ewma_multiple`` is set, that multiple of its latency EWMA. A provider with
    fewer than ``min_samples`` measured calls is not hedged (there is no baseline).
    When a retry budget is on, a hedge spends a retry credit like a retry does.
    """

    enabled: bool = False
    percentile: float = 95.0
    ewma_multiple: float | None = None
    min_delay: float = 0.5
    min_samples: int = 20

    def __attrs_post_init__(self) -> None:
        _check("percentile", 0 < self.percentile < 100, self.percentile, "a percentile in (0, 100)")
        _check(
            "ewma_multiple",
            self.ewma_multiple is None or 0 < self.ewma_multiple < math.inf,
            self.ewma_multiple,
            "a number > 0, or unset to use the percentile",
        )
        _check("min_delay", 0 <= self.min_delay < math.inf, self.min_delay, ">= 0 seconds")
        _check("min_samples", self.min_samples >= 1, self.min_samples, ">= 1 calls")


class HedgeTimer:
    """The hedge delay per provider, from the health monitor's live statistics."""

    def __init__(self, config: HedgingConfig, health: HealthMonitor) -> None:
        self.config = config
        self.health = health
        self._cached: dict[str, tuple[int, float]] = {}  # provider -> (calls seen, percentile)

    def delay(self, provider: Provider) -> float | None:
        """Seconds after the first attempt's start to hedge it, or None (not measured yet)."""
        cfg = self.config
        name = provider.spec.name
        stats = self.health.providers[name]
        samples = stats.samples
        if samples < cfg.min_samples:
            return None
        if cfg.ewma_multiple is not None:
            base = cfg.ewma_multiple * stats.latency_ewma
        else:
            cached = self._cached.get(name)
            if cached is None or stats.calls - cached[0] >= _REFRESH_EVERY:
                value = float(np.percentile(stats.latencies[:samples], cfg.percentile))
                cached = self._cached[name] = (stats.calls, value)
            base = cached[1]
        return max(cfg.min_delay, base)


class HedgeCounts(Protocol):
    """The counters a hedge moves in the router's books."""

    attempts: int
    hedges: int
    hedge_wins: int


class HedgingRouter(Protocol):
    """What a hedge needs from the router that sends it (the router has all of it)."""

    @property
    def providers(self) -> list[Provider]: ...
    @property
    def policy(self) -> Policy: ...
    @property
    def tiers(self) -> PolicyConfig | None: ...
    @property
    def retry(self) -> RetryConfig: ...
    @property
    def budget(self) -> RetryBudget | None: ...
    @property
    def hedge_timer(self) -> HedgeTimer | None: ...
    @property
    def stats(self) -> HedgeCounts: ...
    @property
    def log(self) -> DecisionLog: ...


async def hedged_attempt(
    router: HedgingRouter,
    provider: Provider,
    pursuit: Pursuit,
    sink: StreamSink | None = None,
) -> tuple[Completion, Provider]:
    """The ``pursuit``'s attempt on ``provider``, hedged on another if it runs past its
    hedge delay.

    Returns the first answer and who gave it; the other leg is cancelled (its slot
    freed, billed for what the provider processed until then). A leg that fails while
    the other still runs is recorded in the pursuit like any failed attempt; if both
    fail, the first leg's error is raised for the router to handle as usual.
    Both legs stream into ``sink``, if any.
    """
    timer = router.hedge_timer
    assert timer is not None
    request, request_id, deadline = pursuit.request, pursuit.request_id, pursuit.deadline
    errors = pursuit.errors
    delay = timer.delay(provider)
    if delay is None or delay >= min(provider.timeouts.total, deadline - clock.now()):
        return await provider.call(request, request_id, deadline, sink), provider
    won: list[tuple[Completion, Provider]] = []
    first_error: list[AttemptError] = []
    first_done = trio.Event()
    stats = router.stats
    log = router.log

    async def leg(target: Provider, hedge: bool) -> None:
        try:
            completion = await target.call(request, request_id, deadline, sink)
        except AttemptError as exc:
            if not hedge:
                first_error.append(exc)
                return
            end = clock.now()
            pursuit.attempt_failed(exc, target.spec.name, end)
            if log.active:
                log.emit(end, request_id, "failed", f"provider={target.spec.name} hedge=1")
            return
        finally:
            if not hedge:
                first_done.set()
        if not won:
            won.append((completion, target))
            nursery.cancel_scope.cancel()  # the other leg: cancelled, freed, billed what it used

    async with trio.open_nursery() as nursery:
        nursery.start_soon(leg, provider, False)
        with trio.move_on_after(delay):
            await first_done.wait()
        # A leg that already streamed part of its answer is not hedged: the other leg's
        # answer could not be appended to it, so it would be charged for nothing.
        if not first_done.is_set() and not pursuit.answer_begun:
            now = clock.now()
            second = _hedge_target(router, pursuit, provider, now)
            budget = router.budget
            if second is not None and (budget is None or budget.try_spend(now)):
                stats.hedges += 1
                stats.attempts += 1
                if log.active:
                    detail = (
                        f"provider={second.spec.name} after={delay:.3f} slow={provider.spec.name}"
                    )
                    log.emit(now, request_id, "hedge", detail)
                nursery.start_soon(leg, second, True)
    if won:
        completion, winner = won[0]
        if winner is not provider:
            stats.hedge_wins += 1
            errors.extend(first_error)  # the first leg failed before the hedge answered
        return completion, winner
    raise first_error[0]


def _hedge_target(
    router: HedgingRouter, pursuit: Pursuit, slow: Provider, now: float
) -> Provider | None:
    """Another provider than ``slow`` that can take the request now (and answer before its
    deadline), chosen by the router's policy."""
    request = pursuit.request
    found = eligible(
        router.providers, request, now, pursuit.avoid, router.tiers, pursuit.deadline - now
    )
    others = [p for p in found.ready if p is not slow]
    if not others:
        return None
    chosen = by_tier(others, request, router.tiers)
    return router.policy.choose(chosen, request, pursuit.session, now)
