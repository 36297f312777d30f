"""Stateful tests for :class:`actors.breaker.BreakerCore` against a reference model.

The breaker decides which provider may be called at all, so a wrong state, a
wrong quarantine end or a leaked half-open trial slot silently skews routing.
The model below is written from the documented rules (consecutive failures,
quarantine = open_for x ejections capped at max_open_for, half-open trials,
stale permits ignored), not from the implementation; hypothesis drives both with
random calls, results, ticks, resets and forced openings and compares them.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from actors.breaker import BreakerConfig, BreakerCore, State, Transition

FAILURES = ("upstream_error", "timeout", "malformed_reply")
CODES = ("ok", *FAILURES, "rate_limited", "cancelled")
ALLOWED_EDGES = {
    (State.CLOSED, State.OPEN),
    (State.OPEN, State.HALF_OPEN),
    (State.HALF_OPEN, State.OPEN),
    (State.HALF_OPEN, State.CLOSED),
    (State.OPEN, State.CLOSED),  # reset
}


class ModelBreaker:
    """Independent reference: consecutive-failure breaker with half-open trials."""

    def __init__(self, cfg: BreakerConfig) -> None:
        self.cfg = cfg
        self.state = State.CLOSED
        self.epoch = 0
        self.open_until = -math.inf
        self.ejections = 0
        self.streak = 0
        self.trials = 0
        self.successes = 0
        self.log: list[tuple[float, State, State]] = []

    def go(self, at: float, target: State) -> None:
        self.log.append((at, self.state, target))
        self.state, self.epoch = target, self.epoch + 1
        self.streak = self.trials = self.successes = 0

    def open(self, at: float) -> None:
        self.ejections += 1
        self.open_until = at + min(self.cfg.open_for * self.ejections, self.cfg.max_open_for)
        self.go(at, State.OPEN)

    def tick(self, now: float) -> None:
        if self.state is State.OPEN and now >= self.open_until:
            self.go(self.open_until, State.HALF_OPEN)

    def allow(self, now: float) -> int | None:
        self.tick(now)
        if self.state is State.CLOSED:
            return self.epoch
        if self.state is State.HALF_OPEN and self.trials < self.cfg.half_open_trials:
            self.trials += 1
            return self.epoch
        return None

    def record(self, permit: int, now: float, code: str) -> None:
        if permit != self.epoch:
            return
        failed = code in FAILURES
        if self.state is State.HALF_OPEN:
            self.trials -= 1
            if failed:
                self.open(now)
            elif code == "ok":
                self.successes += 1
                if self.successes >= self.cfg.close_after:
                    self.ejections = 0
                    self.go(now, State.CLOSED)
        elif self.state is State.CLOSED and (failed or code == "ok"):
            self.streak = self.streak + 1 if failed else 0
            if self.streak >= self.cfg.failure_threshold:
                self.open(now)


@st.composite
def configs(draw: st.DrawFn) -> BreakerConfig:
    trials = draw(st.integers(1, 3))
    open_for = float(draw(st.integers(1, 30)))
    return BreakerConfig(
        failure_threshold=draw(st.integers(1, 5)),
        open_for=open_for,
        max_open_for=open_for * draw(st.integers(1, 3)),
        half_open_trials=trials,
        close_after=draw(st.integers(1, trials)),
    )


class BreakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.permits: list[int] = []

    @initialize(cfg=configs())
    def setup(self, cfg: BreakerConfig) -> None:
        self.transitions: list[Transition] = []
        self.core = BreakerCore("p", cfg, [self.transitions.append])
        self.model = ModelBreaker(cfg)

    @rule(dt=st.integers(0, 20) | st.floats(0, 3, allow_nan=False))
    def advance(self, dt: float) -> None:
        self.now += dt

    @precondition(lambda self: self.model.state is State.OPEN)
    @rule(extra=st.sampled_from([0.0, 0.5]))
    def sleep_out_quarantine(self, extra: float) -> None:
        """What the actor does: wake exactly when (or just after) the quarantine ends."""
        self.now = max(self.now, self.model.open_until + extra)

    def _allow(self) -> int | None:
        expected, got = self.model.allow(self.now), self.core.allow(self.now)
        assert got == expected, (got, expected)
        return got

    @rule()
    def start_call(self) -> None:
        if (permit := self._allow()) is not None:
            self.permits.append(permit)

    @rule(code=st.sampled_from(CODES))
    def quick_call(self, code: str) -> None:
        """A call that finishes before anything else happens."""
        if (permit := self._allow()) is not None:
            self.model.record(permit, self.now, code)
            self.core.record(permit, self.now, code, 0.1)

    @precondition(lambda self: self.permits)
    @rule(
        pick=st.sampled_from(["newest", "oldest", "any"]),
        index=st.integers(0, 100),
        code=st.sampled_from(CODES),
        latency=st.floats(0, 20),
    )
    def record(self, pick: str, index: int, code: str, latency: float) -> None:
        """Finish an outstanding call; the oldest permits are the likely stale ones."""
        index = {"newest": -1, "oldest": 0}.get(pick, index % len(self.permits))
        permit = self.permits.pop(index)
        self.model.record(permit, self.now, code)
        self.core.record(permit, self.now, code, latency)

    @rule()
    def tick(self) -> None:
        self.model.tick(self.now)
        self.core.tick(self.now)

    @rule()
    def force_open(self) -> None:
        if self.model.state is not State.OPEN:
            self.model.open(self.now)
        self.core.force_open(self.now, "forced")

    @rule()
    def reset(self) -> None:
        self.model.ejections = 0
        if self.model.state is not State.CLOSED:
            self.model.go(self.now, State.CLOSED)
        self.core.reset(self.now, "reset")

    @invariant()
    def same_state(self) -> None:
        assert self.core.state is self.model.state
        assert self.core.ejections == self.model.ejections
        if self.model.state is State.OPEN:
            assert self.core.open_until == self.model.open_until

    @invariant()
    def same_transitions(self) -> None:
        got = [(t.time, t.source, t.target) for t in self.transitions]
        assert got == self.model.log
        times = [t.time for t in self.transitions]
        assert times == sorted(times)
        for t in self.transitions:
            assert (t.source, t.target) in ALLOWED_EDGES, t

    @invariant()
    def trials_bounded(self) -> None:
        if self.core.state is State.HALF_OPEN:
            live = sum(1 for p in self.permits if p == self.core.epoch)
            assert live <= self.core.config.half_open_trials


BreakerMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestBreakerMachine = BreakerMachine.TestCase


@settings(max_examples=60, deadline=None)
@given(outcomes=st.lists(st.booleans(), min_size=10, max_size=30))
def test_failure_rate_window_opens_exactly_when_window_is_full(outcomes: list[bool]) -> None:
    cfg = BreakerConfig(failure_threshold=100, failure_rate=0.5, window=10, minimum_calls=10)
    transitions: list[Transition] = []
    core = BreakerCore("p", cfg, [transitions.append])
    for i, failed in enumerate(outcomes):
        permit = core.allow(float(i))
        assert permit is not None
        core.record(permit, float(i), "timeout" if failed else "ok", 0.1)
        should_open = i >= 9 and sum(outcomes[i - 9 : i + 1]) >= 5
        if should_open:
            assert core.state is State.OPEN, (i, outcomes)
            assert transitions[-1].time == float(i)
            return
        assert core.state is State.CLOSED, (i, outcomes)
