"""Rate limits as providers enforce them: continuous token buckets and fixed windows.

These are plain state machines with the time passed in, so the provider actor
calls them synchronously on the hot path and tests drive them without a clock.
"""

from __future__ import annotations

import math

import attrs

from actors.runtime.errors import InvalidSetting

UNITS: tuple[str, ...] = ("requests", "tokens", "chars")
MODES: tuple[str, ...] = ("bucket", "window")


def _positive(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise InvalidSetting(f"limit.{attribute.name}", value, "a finite number > 0")


def _one_of(options: tuple[str, ...]):
    def check(instance: object, attribute: attrs.Attribute, value: str) -> None:
        if value not in options:
            raise InvalidSetting(f"limit.{attribute.name}", value, " | ".join(options))

    return check


@attrs.frozen
class LimitSpec:
    """``limit`` units per ``per`` seconds, as a refilling bucket or a fixed window.

    OpenAI, Anthropic and Groq refill continuously (``bucket``); HuggingFace
    counts in fixed windows, and daily or monthly quotas reset at a boundary
    (``window``).
    """

    name: str
    unit: str = attrs.field(validator=_one_of(UNITS))
    limit: float = attrs.field(validator=_positive)
    per: float = attrs.field(validator=_positive)
    mode: str = attrs.field(default="bucket", validator=_one_of(MODES))

    def build(self) -> TokenBucket | FixedWindow:
        if self.mode == "bucket":
            return TokenBucket(self.name, self.unit, self.limit, self.limit / self.per)
        return FixedWindow(self.name, self.unit, self.limit, self.per)


class TokenBucket:
    """Holds up to ``capacity``; refills at ``rate`` per second; starts full."""

    __slots__ = ("_level", "_updated", "capacity", "name", "rate", "unit")

    def __init__(self, name: str, unit: str, capacity: float, rate: float) -> None:
        self.name = name
        self.unit = unit
        self.capacity = capacity
        self.rate = rate
        self._level = capacity
        self._updated = -math.inf

    def level(self, now: float) -> float:
        if now > self._updated:
            self._level = min(self.capacity, self._level + (now - self._updated) * self.rate)
            self._updated = now
        return self._level

    def wait_for(self, now: float, amount: float) -> float:
        """Seconds until ``amount`` could be taken (0 now; inf if it never fits)."""
        if amount > self.capacity:
            return math.inf
        missing = amount - self.level(now)
        # A shortfall of rounding size (waiting the reported wait can land a few ulps
        # short of the refill) counts as none, so a waiter never has to wait twice.
        return 0.0 if missing <= 1e-9 * self.capacity else missing / self.rate

    def take(self, now: float, amount: float) -> None:
        self._level = self.level(now) - amount

    def remaining_fraction(self, now: float) -> float:
        return max(0.0, self.level(now)) / self.capacity

    def set_remaining(self, now: float, remaining: float) -> None:
        """Align with what the provider reports (live rate-limit headers)."""
        self.level(now)
        self._level = min(self._level, max(0.0, remaining))


class FixedWindow:
    """At most ``limit`` per window; windows are ``[k * per, (k + 1) * per)``."""

    __slots__ = ("_used", "_window", "limit", "name", "per", "unit")

    def __init__(self, name: str, unit: str, limit: float, per: float) -> None:
        self.name = name
        self.unit = unit
        self.limit = limit
        self.per = per
        self._window = -1
        self._used = 0.0

    def _roll(self, now: float) -> None:
        window = int(now // self.per)
        if window != self._window:
            self._window = window
            self._used = 0.0

    def wait_for(self, now: float, amount: float) -> float:
        if amount > self.limit:
            return math.inf
        self._roll(now)
        if self._used + amount <= self.limit:
            return 0.0
        return (self._window + 1) * self.per - now

    def take(self, now: float, amount: float) -> None:
        self._roll(now)
        self._used += amount

    def remaining_fraction(self, now: float) -> float:
        self._roll(now)
        return max(0.0, self.limit - self._used) / self.limit

    def resets_at(self, now: float) -> float:
        self._roll(now)
        return (self._window + 1) * self.per

    def used(self, now: float) -> float:
        self._roll(now)
        return self._used

    def set_remaining(self, now: float, remaining: float) -> None:
        self._roll(now)
        self._used = max(self._used, self.limit - max(0.0, remaining))


Limiter = TokenBucket | FixedWindow


class Admission:
    """All of one account's limits, checked and charged together.

    A request is admitted only if every limit has room; then each is charged,
    so a rejected request costs nothing. The wait reported is the longest of the
    binding limits: retrying sooner could only be refused again.
    """

    __slots__ = ("_units", "limiters")

    def __init__(self, specs: tuple[LimitSpec, ...] | list[LimitSpec]) -> None:
        self.limiters: list[Limiter] = [spec.build() for spec in specs]
        # Index into the (requests, tokens, chars) amounts, resolved once.
        self._units = [UNITS.index(limiter.unit) for limiter in self.limiters]

    def try_admit(
        self, now: float, requests: float, tokens: float, chars: float
    ) -> tuple[float, str]:
        """Charge and return (0, "") if admitted, else (seconds to wait, binding limit)."""
        worst, binding = self.wait_for(now, requests, tokens, chars)
        if worst > 0:
            return worst, binding
        amounts = (requests, tokens, chars)
        for limiter, unit in zip(self.limiters, self._units, strict=True):
            limiter.take(now, amounts[unit])
        return 0.0, ""

    def wait_for(
        self, now: float, requests: float, tokens: float, chars: float
    ) -> tuple[float, str]:
        """(seconds until a request of this size fits, the binding limit), without charging."""
        amounts = (requests, tokens, chars)
        worst, binding = 0.0, ""
        for limiter, unit in zip(self.limiters, self._units, strict=True):
            wait = limiter.wait_for(now, amounts[unit])
            if wait > worst:
                worst, binding = wait, limiter.name
        return worst, binding

    def remaining_fraction(self, now: float) -> float:
        """The tightest limit's remaining share, in [0, 1]."""
        tightest = 1.0
        for limiter in self.limiters:
            share = limiter.remaining_fraction(now)
            if share < tightest:
                tightest = share
        return tightest
