"""Retry settings and backoff (exponential, jittered, never sooner than Retry-After),
and the retry budget that caps retries at a share of traffic."""

from __future__ import annotations

import math

import attrs

from actors.runtime.errors import require
from actors.runtime.randomness import RandomStream


def _check(field: str, ok: bool, value: object, allowed: str) -> None:
    require(f"retry.{field}", ok, value, allowed)


def _check_budget(field: str, ok: bool, value: object, allowed: str) -> None:
    require(f"retry.budget.{field}", ok, value, allowed)


@attrs.frozen
class RetryBudgetConfig:
    """Retries capped at a share of traffic, so an outage cannot become a retry storm.

    Every request's first attempt earns ``ratio`` of a retry credit; every retry
    or failover (and every hedge) spends one. Credits count over the last
    ``window`` seconds, plus ``min_per_second`` x ``window`` always available so a
    quiet service can still retry. With the budget empty, a failed attempt ends
    its request with :class:`~engine.routing.errors.RetryBudgetExhausted`. Off unless
    ``enabled``.
    """

    enabled: bool = False
    ratio: float = 0.2
    window: float = 10.0
    min_per_second: float = 1.0

    def __attrs_post_init__(self) -> None:
        _check_budget("ratio", 0 <= self.ratio < math.inf, self.ratio, ">= 0 (0.2: 20% extra)")
        _check_budget("window", 0 < self.window < math.inf, self.window, "> 0 seconds")
        _check_budget(
            "min_per_second",
            0 <= self.min_per_second < math.inf,
            self.min_per_second,
            ">= 0 retries per second",
        )


@attrs.frozen
class RetryConfig:
    """How hard the router tries before it gives up on a request.

    ``max_attempts`` counts every attempt, failovers included. The n-th backoff
    is ``backoff_base * backoff_factor ** (n - 1)`` capped at ``backoff_max``,
    shortened by up to ``jitter`` of itself at random, and never shorter than
    the Retry-After the provider last sent.
    """

    max_attempts: int = 4
    backoff_base: float = 2.0
    backoff_factor: float = 2.0
    backoff_max: float = 30.0
    jitter: float = 0.2
    deadline: float = 120.0
    #: The longest a provider's hint may keep it benched: Retry-After, retry-after-ms and
    #: rate-limit resets are cut to it (a hostile or broken ``Retry-After: 1e9``).
    max_retry_after: float = 300.0
    #: Seconds an overloaded account (529, "overloaded") rests when its provider sends no
    #: Retry-After; the request fails over at once meanwhile.
    overload_cooldown: float = 5.0
    budget: RetryBudgetConfig = RetryBudgetConfig()

    def __attrs_post_init__(self) -> None:
        _check("max_attempts", self.max_attempts >= 1, self.max_attempts, ">= 1")
        _check("backoff_base", self.backoff_base >= 0, self.backoff_base, ">= 0 seconds")
        _check("backoff_factor", self.backoff_factor >= 1, self.backoff_factor, ">= 1")
        _check("backoff_max", self.backoff_max >= 0, self.backoff_max, ">= 0 seconds")
        _check("jitter", 0 <= self.jitter <= 1, self.jitter, "a share in [0, 1]")
        _check("deadline", self.deadline > 0, self.deadline, "> 0 seconds or inf")
        _check(
            "max_retry_after",
            0 < self.max_retry_after < math.inf,
            self.max_retry_after,
            "> 0 seconds, finite",
        )
        _check(
            "overload_cooldown",
            0 <= self.overload_cooldown < math.inf,
            self.overload_cooldown,
            ">= 0 seconds, finite",
        )

    def backoff(self, retry_number: int, retry_after: float, stream: RandomStream) -> float:
        """Seconds to wait before retry ``retry_number`` (1 for the first retry)."""
        delay = min(self.backoff_max, self.backoff_base * self.backoff_factor ** (retry_number - 1))
        if self.jitter > 0 and delay > 0:
            delay *= 1.0 - self.jitter * stream.uniform()
        return max(delay, retry_after if math.isfinite(retry_after) else 0.0)


class SlidingCount:
    """A count of events over the last ``window`` seconds, in ``buckets`` steps.

    Adding and reading cost O(1) amortised: expired buckets are dropped as time
    moves on, and a running total is kept.
    """

    __slots__ = ("_counts", "_epoch", "_width", "total")

    def __init__(self, window: float, buckets: int = 10) -> None:
        self._width = window / buckets
        self._counts = [0.0] * buckets
        self._epoch = 0
        self.total = 0.0

    def advance(self, now: float) -> None:
        epoch = int(now // self._width)
        if epoch <= self._epoch:
            return
        counts = self._counts
        n = len(counts)
        if epoch - self._epoch >= n:
            counts[:] = [0.0] * n
            self.total = 0.0
        else:
            for e in range(self._epoch + 1, epoch + 1):
                self.total -= counts[e % n]
                counts[e % n] = 0.0
        self._epoch = epoch

    def add(self, now: float, amount: float = 1.0) -> None:
        self.advance(now)
        self._counts[self._epoch % len(self._counts)] += amount
        self.total += amount


class RetryBudget:
    """The router's retry credits (see :class:`RetryBudgetConfig`)."""

    def __init__(self, config: RetryBudgetConfig) -> None:
        self.config = config
        self._first = SlidingCount(config.window)
        self._spent = SlidingCount(config.window)
        self.reserve = config.min_per_second * config.window

    def deposit(self, now: float) -> None:
        """A request's first attempt earns ``ratio`` of a credit."""
        self._first.add(now)

    def available(self, now: float) -> float:
        self._first.advance(now)
        self._spent.advance(now)
        return self.config.ratio * self._first.total + self.reserve - self._spent.total

    def try_spend(self, now: float) -> bool:
        """Take one credit for a retry (or a hedge); False when the budget is empty."""
        if self.available(now) < 1.0:
            return False
        self._spent.add(now)
        return True
