"""Circuit breaker, one per provider: CLOSED -> OPEN -> HALF_OPEN -> CLOSED.

:class:`BreakerCore` is the pure state machine (time passed in, tested with
hypothesis); :class:`CircuitBreaker` is that machine run as an actor: it wakes
itself at the end of each quarantine so the state readers see flips on time and
takes commands (force open, reset) through its mailbox. Its entry points are the
machine's own (``allow(now)``, ``record(permit, now, code, latency)``), with no
wrapper between the provider and the machine, and its published state is the
machine's (``state``, ``open_until``, ``ejections``), read in place. Every
transition goes to the subscribers given at construction, in their order; the
breaker keeps none of them.
"""

from __future__ import annotations

import collections
import enum
import math
from collections.abc import Callable, Sequence

import attrs

from actors.runtime import clock
from actors.runtime.actor import Actor
from actors.runtime.errors import require


class State(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


# The states as module constants: on CPython 3.11 reading an enum member off its class
# costs several times a global read, and the call path compares states on every attempt.
_CLOSED, _OPEN, _HALF_OPEN = State.CLOSED, State.OPEN, State.HALF_OPEN

# Outcome codes a breaker can count; "ok" is a success. "overloaded" (a provider short of
# capacity for everyone) and "answer_cap" (the router's own cap) are not counted by
# default; the first may be chosen, the second never is the provider's failure.
COUNTABLE_CODES = (
    "rate_limited",
    "overloaded",
    "upstream_error",
    "unreachable",
    "timeout",
    "malformed_reply",
    "auth_failed",
)


def _check(field: str, ok: bool, value: object, allowed: str) -> None:
    require(f"breaker.{field}", ok, value, allowed)


@attrs.frozen
class BreakerConfig:
    """When to open, for how long, and how to test recovery.

    ``open_for`` is the first quarantine; each consecutive re-opening without a
    full recovery lengthens it by ``open_for`` (base x n), up to ``max_open_for``.
    """

    failure_threshold: int = 5
    failure_rate: float | None = None
    slow_call_rate: float | None = None
    slow_call_s: float = 10.0
    window: int = 20
    minimum_calls: int = 10
    open_for: float = 30.0
    max_open_for: float = 300.0
    half_open_trials: int = 1
    close_after: int = 1
    failure_codes: tuple[str, ...] = ("upstream_error", "unreachable", "timeout", "malformed_reply")

    def __attrs_post_init__(self) -> None:
        _check("failure_threshold", self.failure_threshold >= 1, self.failure_threshold, ">= 1")
        for name in ("failure_rate", "slow_call_rate"):
            rate = getattr(self, name)
            _check(name, rate is None or 0 < rate <= 1, rate, "a share in (0, 1], or unset")
        _check("slow_call_s", self.slow_call_s > 0, self.slow_call_s, "> 0 seconds")
        _check("window", self.window >= 1, self.window, ">= 1 calls")
        _check(
            "minimum_calls",
            1 <= self.minimum_calls <= self.window,
            self.minimum_calls,
            f"1 .. window ({self.window})",
        )
        _check("open_for", 0 < self.open_for < math.inf, self.open_for, "> 0 seconds")
        _check("max_open_for", self.max_open_for >= self.open_for, self.max_open_for, ">= open_for")
        _check("half_open_trials", self.half_open_trials >= 1, self.half_open_trials, ">= 1")
        _check(
            "close_after",
            1 <= self.close_after <= self.half_open_trials,
            self.close_after,
            f"1 .. half_open_trials ({self.half_open_trials})",
        )
        unknown = [c for c in self.failure_codes if c not in COUNTABLE_CODES]
        _check("failure_codes", not unknown, unknown, ", ".join(COUNTABLE_CODES))


@attrs.frozen
class Transition:
    """A breaker changed state."""

    #: When the breaker changed state.
    time: float
    #: The account whose breaker it is.
    provider: str
    #: The state it left.
    source: State
    #: The state it entered.
    target: State
    #: Why, in words (``3 consecutive failures (upstream_error)``).
    reason: str


class BreakerCore:
    """The breaker's state machine; every method takes the current time.

    ``allow`` returns a permit (the current epoch) or None; ``record`` ignores a
    result whose permit belongs to an earlier epoch, so a call admitted before a
    transition cannot move the new state. Each transition is handed to every one of
    ``subscribers``, in order.
    """

    def __init__(
        self,
        provider: str,
        config: BreakerConfig,
        subscribers: Sequence[Callable[[Transition], None]] = (),
    ) -> None:
        self.provider = provider
        self.config = config
        self.subscribers = tuple(subscribers)
        self._clear()

    def _clear(self) -> None:
        """The state of a breaker that has seen nothing (a new or restarted one)."""
        self.state = State.CLOSED
        self.epoch = 0
        self.open_until = -math.inf
        self.ejections = 0  # consecutive openings without a full recovery
        self.consecutive_failures = 0
        self.calls: collections.deque[tuple[bool, bool]] = collections.deque(
            maxlen=self.config.window
        )
        self.trials_in_flight = 0
        self.trial_successes = 0

    def _move(self, at: float, target: State, reason: str) -> None:
        transition = Transition(at, self.provider, self.state, target, reason)
        self.state = target
        self.epoch += 1
        self.consecutive_failures = 0
        self.calls.clear()
        self.trials_in_flight = 0
        self.trial_successes = 0
        self._moved(transition)

    def _moved(self, transition: Transition) -> None:
        for subscriber in self.subscribers:
            subscriber(transition)

    def _open(self, at: float, reason: str) -> None:
        self.ejections += 1
        cfg = self.config
        self.open_until = at + min(cfg.open_for * self.ejections, cfg.max_open_for)
        self._move(at, State.OPEN, reason)

    def tick(self, now: float) -> None:
        """Move OPEN -> HALF_OPEN if the quarantine is over (stamped at its end)."""
        if self.state is _OPEN and now >= self.open_until:
            self._move(self.open_until, State.HALF_OPEN, "quarantine over")

    def allow(self, now: float) -> int | None:
        if self.state is _CLOSED:
            return self.epoch
        self.tick(now)
        if self.state is _HALF_OPEN and self.trials_in_flight < self.config.half_open_trials:
            self.trials_in_flight += 1
            return self.epoch
        return None

    def would_allow(self, now: float) -> bool:
        """Whether :meth:`allow` would grant a permit now, without taking it."""
        if self.state is _CLOSED:
            return True
        if self.state is _OPEN:
            return now >= self.open_until and self.config.half_open_trials > 0
        return self.trials_in_flight < self.config.half_open_trials

    def record(self, permit: int, now: float, code: str, latency: float) -> None:
        """Count one finished call; ``code`` is "ok" or an error code."""
        if permit != self.epoch:
            return
        cfg = self.config
        failed = code in cfg.failure_codes
        ignored = not failed and code != "ok"
        if self.state is _HALF_OPEN:
            self.trials_in_flight -= 1
            if failed:
                self._open(now, f"trial call failed ({code})")
            elif not ignored:
                self.trial_successes += 1
                if self.trial_successes >= cfg.close_after:
                    self.ejections = 0
                    self._move(now, State.CLOSED, f"{self.trial_successes} trial call(s) succeeded")
            return
        if self.state is not _CLOSED or ignored:
            return
        slow = latency >= cfg.slow_call_s
        self.consecutive_failures = self.consecutive_failures + 1 if failed else 0
        self.calls.append((failed, slow))
        if self.consecutive_failures >= cfg.failure_threshold:
            self._open(now, f"{self.consecutive_failures} consecutive failures ({code})")
            return
        if len(self.calls) >= cfg.minimum_calls:
            n = len(self.calls)
            if cfg.failure_rate is not None:
                rate = sum(f for f, _ in self.calls) / n
                if rate >= cfg.failure_rate:
                    self._open(now, f"failure rate {rate:.0%} over the last {n} calls")
                    return
            if cfg.slow_call_rate is not None:
                rate = sum(s for _, s in self.calls) / n
                if rate >= cfg.slow_call_rate:
                    self._open(now, f"slow-call rate {rate:.0%} over the last {n} calls")

    def force_open(self, now: float, reason: str) -> None:
        if self.state is not _OPEN:
            self._open(now, reason)

    def adopt_open(self, now: float, until: float, ejections: int, reason: str) -> bool:
        """Open until ``until`` because another router quarantined this provider.

        The quarantine's end and its ejection count are taken as they are, not
        recomputed, so every router lets the provider back at the same time and
        lengthens its next quarantine alike. False if it would change nothing.
        """
        if until <= now or (self.state is _OPEN and self.open_until >= until):
            return False
        self.ejections = max(self.ejections, ejections)
        self.open_until = until
        self._move(now, State.OPEN, reason)
        return True

    def reset(self, now: float, reason: str) -> None:
        self.ejections = 0
        if self.state is not _CLOSED:
            self._move(now, State.CLOSED, reason)


@attrs.frozen
class ForceOpen:
    reason: str


@attrs.frozen
class Reset:
    reason: str


@attrs.frozen
class _QuarantineOver:
    epoch: int


class CircuitBreaker(BreakerCore, Actor):
    """The breaker actor for one provider: its state machine, plus a mailbox and a timer.

    ``allow`` and ``record`` are the machine's methods, called in the provider's task:
    they never wait, and trio runs them without interleaving, so they keep the actor's
    one-at-a-time guarantee without a mailbox round trip on every request.
    """

    def __init__(
        self,
        provider: str,
        config: BreakerConfig,
        subscribers: Sequence[Callable[[Transition], None]] = (),
    ) -> None:
        Actor.__init__(self, f"breaker:{provider}")
        BreakerCore.__init__(self, provider, config, subscribers)

    def on_start(self) -> None:
        self._clear()

    def _moved(self, transition: Transition) -> None:
        if transition.target is _OPEN and self._nursery is not None:
            delay = max(0.0, self.open_until - clock.now())
            self.after(delay, _QuarantineOver(self.epoch))
        super()._moved(transition)

    def adopt_quarantine(self, seconds: float, ejections: int, reason: str) -> bool:
        """Open for ``seconds`` more: a quarantine another router shared (engine.serve.state)."""
        now = clock.now()
        return self.adopt_open(now, now + seconds, ejections, reason)

    async def receive(self, message: object) -> None:
        now = clock.now()
        match message:
            case _QuarantineOver(epoch) if epoch == self.epoch:
                self.tick(now)
            case _QuarantineOver():
                pass
            case ForceOpen(reason):
                self.force_open(now, reason)
            case Reset(reason):
                self.reset(now, reason)
            case _:
                raise TypeError(f"breaker {self.provider!r} got an unknown message {message!r}")
