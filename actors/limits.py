"""Rate limits as providers enforce them: continuous token buckets and fixed windows,
and the windows a live provider reports in its rate-limit headers.

These are plain state machines with the time passed in, so the provider actor
calls them synchronously on the hot path and tests drive them without a clock.
"""

from __future__ import annotations

import math

import attrs

from actors.runtime.errors import InvalidSetting

#: What a limit counts. ``tokens`` is the total (input + output) that OpenAI's and Groq's
#: TPM count; Anthropic counts ``input_tokens`` (ITPM) and ``output_tokens`` (OTPM) apart.
UNITS: tuple[str, ...] = ("requests", "tokens", "input_tokens", "output_tokens", "chars")
#: What a caller key's budget may also count (engine/serve/callers): money, which no
#: provider limits by rate, so an account's limits (:class:`Admission`) refuse it.
BUDGET_UNITS: tuple[str, ...] = ("dollars",)
MODES: tuple[str, ...] = ("bucket", "window")
#: Units a request's output counts towards: the ones its estimate is charged to.
OUTPUT_UNITS: tuple[str, ...] = ("tokens", "output_tokens")


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
    (``window``). ``enforce_every`` (seconds, buckets only) enforces the limit over
    shorter slices, as OpenAI and Anthropic say they may: 60 per minute enforced
    every second holds a burst of 1, not 60, at the same steady rate.
    ``adjust_output`` charges the output estimate (``max_tokens``) when the call
    starts and corrects it to the output generated when the call ends, as
    Anthropic does for OTPM; otherwise the estimate stays charged.
    """

    name: str
    #: requests | tokens (input + output) | input_tokens | output_tokens | chars (of the
    #: prompt); dollars in a caller key's budget only.
    unit: str = attrs.field(validator=_one_of(UNITS + BUDGET_UNITS))
    limit: float = attrs.field(validator=_positive)
    per: float = attrs.field(validator=_positive)
    mode: str = attrs.field(default="bucket", validator=_one_of(MODES))
    #: Seconds of a slice the limit is enforced over (bucket only; at most ``per``).
    enforce_every: float | None = None
    #: Correct the output estimate to the actual output at the end (tokens, output_tokens).
    adjust_output: bool = False
    #: Where the figure comes from (a provider's page), shown in the profile table.
    source: str = ""

    def __attrs_post_init__(self) -> None:
        every = self.enforce_every
        if every is not None:
            _positive(self, attrs.fields(LimitSpec).enforce_every, every)
            if every > self.per or self.mode != "bucket":
                raise InvalidSetting(
                    "limit.enforce_every",
                    every,
                    f"seconds in (0, per = {self.per:g}] with mode = bucket, or unset",
                )
        if self.adjust_output not in (True, False):
            raise InvalidSetting("limit.adjust_output", self.adjust_output, "true | false")
        if self.adjust_output and self.unit not in OUTPUT_UNITS:
            raise InvalidSetting(
                "limit.adjust_output",
                self.adjust_output,
                f"false for unit {self.unit!r}; true only with unit = {' | '.join(OUTPUT_UNITS)}",
            )

    @property
    def burst(self) -> float:
        """The most a full bucket admits at once: the limit, or one slice's share of it."""
        if self.enforce_every is None:
            return self.limit
        return self.limit * self.enforce_every / self.per

    def build(self) -> TokenBucket | FixedWindow:
        if self.mode == "bucket":
            return TokenBucket(
                self.name, self.unit, self.burst, self.limit / self.per, largest=self.limit
            )
        return FixedWindow(self.name, self.unit, self.limit, self.per)


class TokenBucket:
    """Holds up to ``capacity``; refills at ``rate`` per second; starts full.

    ``largest`` (default: the capacity) is the largest amount ever admitted. A
    sliced limit's capacity is one slice's share, which a single long prompt
    may exceed: such an amount enters only a full bucket and leaves it in debt,
    repaid at ``rate``, so the steady rate holds and nothing else enters meanwhile.
    """

    __slots__ = ("_level", "_updated", "capacity", "largest", "limit", "name", "rate", "unit")

    def __init__(
        self, name: str, unit: str, capacity: float, rate: float, largest: float | None = None
    ) -> None:
        self.name = name
        self.unit = unit
        self.capacity = capacity
        self.rate = rate
        self.largest = capacity if largest is None else largest
        #: The published size (what a provider's headers report as the limit).
        self.limit = self.largest
        self._level = capacity
        self._updated = -math.inf

    def level(self, now: float) -> float:
        if now > self._updated:
            self._level = min(self.capacity, self._level + (now - self._updated) * self.rate)
            self._updated = now
        return self._level

    def settled(self) -> tuple[float, float]:
        """(level, when): the level as last brought up to date, and when. Until the next
        take, ``level(now)`` is ``min(capacity, level + (now - when) * rate)`` for a later
        ``now``, which a reader can compute for many buckets at once."""
        return self._level, self._updated

    def wait_for(self, now: float, amount: float) -> float:
        """Seconds until ``amount`` could be taken (0 now; inf if it never fits)."""
        if amount > self.largest:
            return math.inf
        # level(now), written out: the router asks every account's limits on every
        # look for a provider, so this is the hottest code of a rate-limited simulation.
        capacity = self.capacity
        level = self._level
        if now > self._updated:
            level += (now - self._updated) * self.rate
            if level > capacity:
                level = capacity
            self._level = level
            self._updated = now
        missing = (amount if amount < capacity else capacity) - level
        # A shortfall of rounding size (waiting the reported wait can land a few ulps
        # short of the refill) counts as none, so a waiter never has to wait twice.
        return 0.0 if missing <= 1e-9 * capacity else missing / self.rate

    def take(self, now: float, amount: float) -> None:
        """Charge ``amount`` (negative: give back, never above the capacity)."""
        self._level = min(self.capacity, self.level(now) - amount)

    def adjust(self, since: float, now: float, amount: float) -> None:
        """Correct a charge made at ``since`` by ``amount``: a bucket has no boundary."""
        self.take(now, amount)

    def remaining_fraction(self, now: float) -> float:
        return max(0.0, self.level(now)) / self.capacity

    def room(self, now: float) -> float:
        """Units it would admit at once now (what a status page shows as remaining)."""
        return max(0.0, self.level(now))

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
        window = int(now // self.per)  # _roll(now), written out (a hot path)
        if window != self._window:
            self._window = window
            self._used = 0.0
        if self._used + amount <= self.limit:
            return 0.0
        return (window + 1) * self.per - now

    def take(self, now: float, amount: float) -> None:
        self._roll(now)
        self._used += amount

    def adjust(self, since: float, now: float, amount: float) -> None:
        """Correct a charge made at ``since`` by ``amount``, if its window is still open.

        A window that has closed since is gone with what it counted.
        """
        self._roll(now)
        if int(since // self.per) == self._window:
            self._used = max(0.0, self._used + amount)

    def remaining_fraction(self, now: float) -> float:
        self._roll(now)
        return max(0.0, self.limit - self._used) / self.limit

    def room(self, now: float) -> float:
        """Units it would admit in the current window."""
        self._roll(now)
        return max(0.0, self.limit - self._used)

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


class ReportedWindow:
    """What the provider last said of one unit: ``remaining`` left until ``resets_at``.

    A live provider's headers carry its own count, which a configured limiter cannot
    know (other clients of the key, a tier the config does not match, a limit it does
    not declare). Until the reset this admits no more than the reported remaining
    less what the router has sent since the report, whatever a configured limiter of
    the unit would allow; from the reset on it admits everything and the configured
    limiters alone decide, until the next report replaces it. A reset is read as the
    moment the count is whole again (OpenAI's and Anthropic's meaning), so the window is
    never looser than the provider; on a continuously refilling provider it may be
    stricter between reports, and each response's report lifts it.
    """

    __slots__ = ("limit", "name", "remaining", "resets_at", "sent", "unit")

    def __init__(
        self, unit: str, remaining: float, resets_at: float, limit: float | None = None
    ) -> None:
        self.unit = unit
        #: The name a refusal and a hold-back count give it.
        self.name = f"{unit} (reported)"
        self.remaining = max(0.0, remaining)
        self.resets_at = resets_at
        #: The size the provider reported, if it did (shown, not enforced).
        self.limit = limit
        #: What was admitted since the report.
        self.sent = 0.0

    def wait_for(self, now: float, amount: float) -> float:
        """Seconds until ``amount`` may pass: 0 if it fits or the window is over, else
        until the reset (rounded up so that waiting it is always enough)."""
        resets_at = self.resets_at
        if now >= resets_at or self.sent + amount <= self.remaining:
            return 0.0
        wait = resets_at - now
        return wait if now + wait >= resets_at else math.nextafter(wait, math.inf)

    def take(self, now: float, amount: float) -> None:
        if now < self.resets_at:
            self.sent += amount

    def room(self, now: float) -> float:
        """Units it still admits before the reset (inf once the reset has passed)."""
        if now >= self.resets_at:
            return math.inf
        return max(0.0, self.remaining - self.sent)


#: Whatever a request must pass: a configured limiter or a reported window.
Gate = TokenBucket | FixedWindow | ReportedWindow


def check_account_unit(spec: LimitSpec) -> LimitSpec:
    """``spec`` if an account can enforce it: its unit is one a provider counts."""
    if spec.unit not in UNITS:
        raise InvalidSetting("limit.unit", spec.unit, " | ".join(UNITS))
    return spec


class Admission:
    """All of one account's limits, checked and charged together.

    A request is admitted only if every limit has room; then each is charged
    by its unit, so a rejected request costs nothing. The wait reported is the
    longest of the binding limits: retrying sooner could only be refused again.
    The limits are the configured ones (:attr:`limiters`) and the windows the
    provider last reported (:attr:`reported`, one per unit): each must admit, so the
    stricter always wins.
    """

    __slots__ = ("_adjusting", "_configured", "checks", "limiters", "reported")

    def __init__(self, specs: tuple[LimitSpec, ...] | list[LimitSpec]) -> None:
        for spec in specs:
            check_account_unit(spec)
        self.limiters: list[Limiter] = [spec.build() for spec in specs]
        #: The provider's latest report of each unit that has not reset yet.
        self.reported: dict[str, ReportedWindow] = {}
        # (limiter, index into the amounts tuple, ordered as UNITS), resolved once.
        self._configured: list[tuple[Gate, int]] = [
            (limiter, UNITS.index(limiter.unit)) for limiter in self.limiters
        ]
        #: Every limit a request must pass with its unit index: the configured ones, then
        #: the reported windows. Empty when the account has neither, which the provider
        #: tests first: wait_for runs for every account on every look for a provider.
        self.checks: list[tuple[Gate, int]] = list(self._configured)
        self._adjusting = [
            limiter
            for spec, limiter in zip(specs, self.limiters, strict=True)
            if spec.adjust_output
        ]

    def try_admit(
        self, now: float, requests: float, input_tokens: float, output_tokens: float, chars: float
    ) -> tuple[float, str]:
        """Charge and return (0, "") if admitted, else (seconds to wait, binding limit).

        ``output_tokens`` is the output estimate (``max_tokens``, else what is expected).
        """
        worst, binding = self.wait_for(now, requests, input_tokens, output_tokens, chars)
        if worst > 0:
            return worst, binding
        amounts = (requests, input_tokens + output_tokens, input_tokens, output_tokens, chars)
        for limiter, unit in self.checks:
            limiter.take(now, amounts[unit])
        return 0.0, ""

    def wait_for(
        self, now: float, requests: float, input_tokens: float, output_tokens: float, chars: float
    ) -> tuple[float, str]:
        """(seconds until a request of this size fits, the binding limit), without charging."""
        amounts = (requests, input_tokens + output_tokens, input_tokens, output_tokens, chars)
        worst, binding = 0.0, ""
        for limiter, unit in self.checks:
            wait = limiter.wait_for(now, amounts[unit])
            if wait > worst:
                worst, binding = wait, limiter.name
        return worst, binding

    def report(
        self, now: float, unit: str, remaining: float, resets_at: float, limit: float | None = None
    ) -> bool:
        """The provider reports ``remaining`` of ``unit`` left until ``resets_at``: this
        replaces its last report of the unit (windows past their reset are dropped too).

        True if it gives back room the last report was holding (waiters should look).
        """
        if unit not in UNITS:
            raise InvalidSetting("reported unit", unit, " | ".join(UNITS))
        old = self.reported.pop(unit, None)
        kept = {u: w for u, w in self.reported.items() if w.resets_at > now}
        window = None
        if resets_at > now:
            window = kept[unit] = ReportedWindow(unit, remaining, resets_at, limit)
        self.reported = kept
        self.checks = self._configured + [(w, UNITS.index(w.unit)) for w in kept.values()]
        if old is None or old.resets_at <= now:
            return False
        return window is None or window.room(now) > old.room(now)

    def settle(self, admitted: float, now: float, estimated: float, actual: float) -> None:
        """A call admitted at ``admitted`` ended: limits with ``adjust_output`` swap the
        output estimate they were charged for the ``actual`` output."""
        if estimated == actual:
            return
        for limiter in self._adjusting:
            limiter.adjust(admitted, now, actual - estimated)

    def remaining_fraction(self, now: float) -> float:
        """The tightest limit's remaining share, in [0, 1]."""
        tightest = 1.0
        for limiter in self.limiters:
            share = limiter.remaining_fraction(now)
            if share < tightest:
                tightest = share
        return tightest
