"""The sampler actor: the fleet's state every few seconds of simulated time.

Per-provider series (slots in use, queue length, calls and 429s so far,
breaker state) and router-wide series (requests in flight, answered, failed,
cache hits) become the over-time figures of the report.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from actors.breaker import State
from actors.runtime import clock
from actors.runtime.actor import Actor
from engine.routing.fleet import Fleet

BREAKER_CODES = {State.CLOSED: 0, State.HALF_OPEN: 1, State.OPEN: 2}


@attrs.define
class ProviderSeries:
    """One account's samples, one value per sample time."""

    #: Slots in use.
    in_use: list[int] = attrs.Factory(list)
    #: Requests waiting in the account's own queue.
    queued: list[int] = attrs.Factory(list)
    #: Attempts sent to it so far.
    calls: list[int] = attrs.Factory(list)
    #: 429s so far (from the provider, or refused by its limits).
    rate_limited: list[int] = attrs.Factory(list)
    #: Its breaker: 0 closed, 1 half-open, 2 open.
    breaker: list[int] = attrs.Factory(list)
    #: 0 powered off, 1 starting (cold start), 2 serving.
    power: list[int] = attrs.Factory(list)


@attrs.define
class Series:
    """The sampler's samples, taken every ``sample_every`` seconds of the run."""

    #: When each sample was taken.
    t: list[float] = attrs.Factory(list)
    #: Requests in the router.
    in_flight: list[int] = attrs.Factory(list)
    #: Requests received so far.
    received: list[int] = attrs.Factory(list)
    #: Requests answered so far.
    answered: list[int] = attrs.Factory(list)
    #: Requests failed so far.
    failed: list[int] = attrs.Factory(list)
    #: Requests answered from the cache so far.
    cache_hits: list[int] = attrs.Factory(list)
    #: Each account's series, by name.
    providers: dict[str, ProviderSeries] = attrs.Factory(dict)


@attrs.frozen
class _Sample:
    pass


class Sampler(Actor):
    """Samples on a tick; ``on_sample(now, requests received)`` drives a progress bar."""

    def __init__(
        self,
        fleet: Fleet,
        every: float,
        on_sample: Callable[[float, int], None] | None = None,
    ) -> None:
        super().__init__("sampler")
        self.fleet = fleet
        self.interval = every
        self.on_sample = on_sample
        self.series = Series(providers={p.spec.name: ProviderSeries() for p in fleet.providers})

    def on_start(self) -> None:
        self.sample()
        self.every(self.interval, _Sample)

    def sample(self) -> None:
        series = self.series
        stats = self.fleet.router.stats
        series.t.append(clock.now())
        series.in_flight.append(stats.in_flight)
        series.received.append(stats.received)
        series.answered.append(stats.answered)
        series.failed.append(sum(stats.failed.values()))
        series.cache_hits.append(stats.cache_hits)
        for provider in self.fleet.providers:
            own = series.providers[provider.spec.name]
            pstats = provider.stats
            own.in_use.append(provider.slots.in_use)
            own.queued.append(provider.slots.queued)
            own.calls.append(pstats.calls)
            own.rate_limited.append(
                sum(pstats.rejections.values()) + pstats.failures["rate_limited"]
            )
            own.breaker.append(BREAKER_CODES[provider.breaker.state])
            own.power.append(
                0 if not provider.powered else 1 if provider.disabled_until > series.t[-1] else 2
            )
        if self.on_sample is not None:
            self.on_sample(series.t[-1], stats.received)

    async def receive(self, message: object) -> None:
        self.sample()
