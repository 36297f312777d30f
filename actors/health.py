"""The health monitor: passive outcomes, outside reports, active pings, reachability.

Per provider it keeps a latency EWMA, a ring of recent latencies for
percentiles, an error-rate EWMA and a health score in [0, 1]. Outcomes from
providers arrive as plain method calls (they never wait); outside reports and
ping ticks arrive through the mailbox. Selection policies read each provider's
EWMAs in place (read-only, no round trip); percentiles, which no policy needs,
are computed only when :meth:`HealthMonitor.snapshot_of` hands out an immutable
:class:`HealthSnapshot` for reports and the HTTP surface.

It also keeps which accounts cannot be reached (:attr:`HealthMonitor.unreachable`): a
live backend reports each connection it could not make, and the next HTTP answer
(:mod:`actors.backends.reach`); the router passes over such an account while another can
take the request, and the HTTP surface counts it unavailable.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable

import attrs
import numpy as np
import trio

from actors.errors import AttemptError
from actors.runtime import clock
from actors.runtime.actor import Actor
from actors.runtime.errors import InvalidSetting

#: How many of a provider's latest failed outcomes it keeps, for the status page.
RECENT_ERRORS = 8

# Outcome codes that say a provider is unhealthy. A 429 or a full queue says it
# is busy, not broken, and a cancelled call says nothing about it.
UNHEALTHY_CODES = frozenset(
    {"upstream_error", "unreachable", "timeout", "malformed_reply", "auth_failed"}
)


@attrs.frozen
class HealthConfig:
    alpha: float = 0.1
    window: int = 256
    ping_every: float | None = None
    ping_timeout: float = 5.0
    #: Live only: seconds between reachability checks, a GET of each base URL (one per
    #: URL, without credentials; any HTTP answer: reachable, no connection: unreachable),
    #: which mark and clear accounts without costing a completion; unset: none.
    reach_every: float | None = None

    def __attrs_post_init__(self) -> None:
        if not 0 < self.alpha <= 1:
            raise InvalidSetting("health.alpha", self.alpha, "a weight in (0, 1]")
        if self.window < 1:
            raise InvalidSetting("health.window", self.window, ">= 1 samples")
        if self.ping_every is not None and not self.ping_every > 0:
            raise InvalidSetting("health.ping_every", self.ping_every, "> 0 seconds, or unset")
        if not self.ping_timeout > 0:
            raise InvalidSetting("health.ping_timeout", self.ping_timeout, "> 0 seconds")
        if self.reach_every is not None and not self.reach_every > 0:
            raise InvalidSetting("health.reach_every", self.reach_every, "> 0 seconds, or unset")


@attrs.frozen
class HealthSnapshot:
    provider: str
    score: float
    error_rate: float
    latency_ewma: float
    p50: float
    p95: float
    p99: float
    calls: int
    failures: int
    last_error: str
    #: Its latest outcomes other than an answer, oldest first: (time on the engine's
    #: clock, code); a 429 or an overload among them, which move no health figure.
    recent_errors: tuple[tuple[float, str], ...] = ()


class ProviderHealth:
    """Mutable statistics of one provider, owned by the monitor."""

    __slots__ = (
        "_filled",
        "_next",
        "alpha",
        "calls",
        "error_ewma",
        "failures",
        "last_error",
        "latencies",
        "latency_ewma",
        "measured_at",
        "name",
        "percentiles",
        "recent_errors",
    )

    def __init__(self, name: str, alpha: float, window: int) -> None:
        self.name = name
        self.alpha = alpha
        self.calls = 0
        self.failures = 0
        self.error_ewma = 0.0
        self.latency_ewma = math.nan
        self.measured_at = math.nan
        # A plain list: storing a Python float into it is cheaper than into numpy.
        self.latencies = [0.0] * window
        self._next = 0
        self._filled = 0
        self.last_error = ""
        self.percentiles = (math.nan, math.nan, math.nan)
        self.recent_errors: deque[tuple[float, str]] = deque(maxlen=RECENT_ERRORS)

    def observe(self, code: str, latency: float, now: float) -> None:
        """Count one outcome; ``now`` stamps the latency sample (see :meth:`latency_at`).

        Owned by the monitor: outcomes arrive through :meth:`HealthMonitor.observe`.
        """
        if code == "cancelled" or code == "rejected" or code == "deadline":
            return  # the caller's doing (gone, refused locally, out of time), not the provider's
        self.calls += 1
        if code != "ok":
            self.recent_errors.append((now, code))
        failed = code in UNHEALTHY_CODES
        a = self.alpha
        self.error_ewma += a * ((1.0 if failed else 0.0) - self.error_ewma)
        if failed:
            self.failures += 1
            self.last_error = code
        if code == "ok" or code == "timeout":
            # A timeout took at least its timeout: counting it keeps a hanging
            # provider from looking fast to the latency-aware policies.
            ewma = self.latency_ewma
            self.latency_ewma = latency if ewma != ewma else ewma + a * (latency - ewma)
            self.measured_at = now
            self.latencies[self._next] = latency
            self._next = (self._next + 1) % len(self.latencies)
            self._filled = min(self._filled + 1, len(self.latencies))

    @property
    def samples(self) -> int:
        """How many latencies the ring holds (up to its window)."""
        return self._filled

    def latency_at(self, now: float, max_age: float) -> float:
        """The latency EWMA, or NaN (unknown) if no sample is younger than ``max_age``.

        A provider that once looked slow gets no traffic from a latency-aware policy,
        so nothing would ever correct the old figure; forgetting it makes the policy
        try the provider again.
        """
        return self.latency_ewma if now - self.measured_at <= max_age else math.nan

    def refresh_percentiles(self) -> None:
        if self._filled:
            p50, p95, p99 = np.percentile(self.latencies[: self._filled], (50, 95, 99))
            self.percentiles = (float(p50), float(p95), float(p99))

    def snapshot(self) -> HealthSnapshot:
        p50, p95, p99 = self.percentiles
        return HealthSnapshot(
            provider=self.name,
            score=1.0 - self.error_ewma,
            error_rate=self.error_ewma,
            latency_ewma=self.latency_ewma,
            p50=p50,
            p95=p95,
            p99=p99,
            calls=self.calls,
            failures=self.failures,
            last_error=self.last_error,
            recent_errors=tuple(self.recent_errors),
        )


@attrs.frozen
class ReachMark:
    """An account that could not be reached: why (the latest failed connection), since
    when, and when that latest one failed."""

    reason: str
    since: float
    latest: float


@attrs.frozen
class ReportFailure:
    """A failure seen by another service (passive report from outside)."""

    provider: str
    reason: str


@attrs.frozen
class _Ping:
    pass


Pinger = Callable[[], Awaitable[None]]


class HealthMonitor(Actor):
    def __init__(self, config: HealthConfig, name: str = "health") -> None:
        super().__init__(name)
        self.config = config
        self._pingers: dict[str, Pinger] = {}
        self.providers: dict[str, ProviderHealth] = {}
        #: Accounts that could not be reached, by name: read in place by the router (the
        #: same dict for the monitor's whole life, so a reader may keep it).
        self.unreachable: dict[str, ReachMark] = {}
        self._watchers: list[Callable[[str], None]] = []

    def watch(self, watcher: Callable[[str], None]) -> None:
        """Tell ``watcher`` the name of every provider whose statistics change, as they
        change (the router keeps its accounts ordered by them)."""
        self._watchers.append(watcher)

    def register(self, provider: str, pinger: Pinger | None = None) -> None:
        """Track ``provider``; ``pinger`` makes one small real call for active checks."""
        self.providers[provider] = ProviderHealth(provider, self.config.alpha, self.config.window)
        if pinger is not None:
            self._pingers[provider] = pinger

    def on_start(self) -> None:
        for name in list(self.providers):
            self.providers[name] = ProviderHealth(name, self.config.alpha, self.config.window)
            for watcher in self._watchers:
                watcher(name)
        self.unreachable.clear()
        if self.config.ping_every is not None and self._pingers:
            self.every(self.config.ping_every, _Ping)

    def observe(self, provider: str, code: str, latency: float, now: float) -> None:
        """Count one outcome of ``provider`` (an attempt's, a ping's, a report's) at ``now``."""
        self.providers[provider].observe(code, latency, now)
        for watcher in self._watchers:
            watcher(provider)

    def reach(self, provider: str, reason: str, now: float) -> None:
        """What an exchange with ``provider`` said at ``now``: ``reason`` it could not be
        reached, or ``""`` (reached: any HTTP answer), which clears the mark."""
        if not reason:
            self.unreachable.pop(provider, None)
            return
        mark = self.unreachable.get(provider)
        self.unreachable[provider] = ReachMark(reason, now if mark is None else mark.since, now)

    def report(self, provider: str, reason: str) -> None:
        """Queue a failure seen by another service; rejects an unknown provider."""
        if provider not in self.providers:
            raise InvalidSetting("provider", provider, ", ".join(self.providers) or "none")
        self.tell(ReportFailure(provider, reason))

    def health(self, provider: str) -> ProviderHealth:
        return self.providers[provider]

    def snapshot_of(self, provider: str) -> HealthSnapshot:
        stats = self.providers[provider]
        stats.refresh_percentiles()
        return stats.snapshot()

    async def _ping(self, provider: str, pinger: Pinger) -> None:
        start = clock.now()
        code = "ok"
        with trio.move_on_after(self.config.ping_timeout) as scope:
            try:
                await pinger()
            except AttemptError as exc:
                code = exc.code
        if scope.cancelled_caught:
            code = "timeout"
        end = clock.now()
        self.observe(provider, code, end - start, end)

    async def receive(self, message: object) -> None:
        match message:
            case _Ping():
                assert self._nursery is not None
                for provider, pinger in self._pingers.items():
                    self._nursery.start_soon(self._ping, provider, pinger)
            case ReportFailure(provider, reason):
                self.observe(provider, "upstream_error", 0.0, clock.now())
                self.providers[provider].last_error = f"reported: {reason}"
            case _:
                raise TypeError(f"health monitor got an unknown message {message!r}")
