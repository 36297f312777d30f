"""Stateful tests for the rate limiters in :mod:`actors.limits` against reference models.

Providers refuse (or ban) accounts that overrun their limits, and the simulator's
results are only as good as its limiters. The models here recompute each limit
from the full history of granted requests (a closed formula for the token
bucket, a per-window sum for fixed windows) instead of updating a running level,
so they share no code path with the implementation.
"""

from __future__ import annotations

import copy
import math

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from actors.limits import Admission, FixedWindow, LimitSpec, TokenBucket

EPS = 1e-6
SETTINGS = settings(max_examples=60, stateful_step_count=40, deadline=None)
# Quarter-second steps keep window arithmetic exact (integer window lengths).
STEPS = st.integers(0, 40).map(lambda q: q / 4)


class BucketModel:
    """Starts full; level before t = min over i of C + r(t - t_i) - sum of grants since t_i."""

    def __init__(self, capacity: float, rate: float) -> None:
        self.capacity, self.rate = capacity, rate
        self.grants: list[tuple[float, float]] = []

    def level(self, now: float) -> float:
        best, spent = self.capacity, 0.0
        for t, a in reversed(self.grants):
            spent += a
            best = min(best, self.capacity + self.rate * (now - t) - spent)
        return best

    def wait(self, now: float, amount: float) -> tuple[float, bool]:
        """(expected wait, whether the call is too close to the boundary to judge)."""
        if amount > self.capacity:
            return math.inf, False
        missing = amount - self.level(now)
        return max(0.0, missing / self.rate), abs(missing) < EPS


class WindowModel:
    """Counts granted amounts whose time falls in the current window [k*per, (k+1)*per)."""

    def __init__(self, capacity: float, per: float) -> None:
        self.capacity, self.per = capacity, per
        self.grants: list[tuple[float, float]] = []

    def wait(self, now: float, amount: float) -> tuple[float, bool]:
        if amount > self.capacity:
            return math.inf, False
        k = math.floor(now / self.per)
        used = sum(a for t, a in self.grants if math.floor(t / self.per) == k)
        return (0.0 if used + amount <= self.capacity else (k + 1) * self.per - now), False


Model = BucketModel | WindowModel


def close(a: float, b: float) -> bool:
    return a == b or math.isclose(a, b, rel_tol=EPS, abs_tol=EPS)


class LimiterMachine(RuleBasedStateMachine):
    """One TokenBucket or FixedWindow, driven by requests and the passing of time."""

    now = 0.0

    @initialize(
        mode=st.sampled_from(["bucket", "window"]),
        capacity=st.integers(1, 100),
        rate=st.floats(0.1, 20),
        per=st.integers(1, 10),
    )
    def setup(self, mode: str, capacity: int, rate: float, per: int) -> None:
        self.limiter: TokenBucket | FixedWindow
        self.model: Model
        if mode == "bucket":
            self.limiter = TokenBucket("b", "tokens", float(capacity), rate)
            self.model = BucketModel(float(capacity), rate)
        else:
            self.limiter = FixedWindow("w", "tokens", float(capacity), float(per))
            self.model = WindowModel(float(capacity), float(per))

    @rule(dt=STEPS)
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(share=st.floats(0, 1.2))
    def request(self, share: float) -> None:
        amount = share * self.model.capacity
        expected, unsure = self.model.wait(self.now, amount)
        wait = self.limiter.wait_for(self.now, amount)
        if not unsure:
            assert (wait == 0) == (expected == 0), (wait, expected, amount)
            assert close(wait, expected), (wait, expected, amount)
        if wait == 0:
            self.limiter.take(self.now, amount)
            self.model.grants.append((self.now, amount))
        elif math.isfinite(wait):
            later = copy.copy(self.limiter)
            assert later.wait_for(self.now + wait, amount) == 0, "waiting the wait is not enough"


class AdmissionMachine(RuleBasedStateMachine):
    """Several limits at once: all charged or none, and the binding one is named."""

    now = 0.0

    @initialize(
        specs=st.lists(
            st.tuples(
                st.sampled_from(["requests", "tokens", "chars"]),
                st.integers(1, 20),
                st.integers(1, 10),
                st.sampled_from(["bucket", "window"]),
            ),
            min_size=1,
            max_size=3,
        )
    )
    def setup(self, specs: list[tuple[str, int, int, str]]) -> None:
        built = [
            LimitSpec(f"L{i}", u, float(n), float(p), m) for i, (u, n, p, m) in enumerate(specs)
        ]
        self.admission = Admission(built)
        self.models: dict[str, tuple[str, Model]] = {
            s.name: (
                s.unit,
                BucketModel(s.limit, s.limit / s.per)
                if s.mode == "bucket"
                else WindowModel(s.limit, s.per),
            )
            for s in built
        }

    @rule(dt=STEPS)
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(requests=st.integers(0, 2), tokens=st.integers(0, 25), chars=st.integers(0, 25))
    def admit(self, requests: int, tokens: int, chars: int) -> None:
        amounts = {"requests": float(requests), "tokens": float(tokens), "chars": float(chars)}
        judged = {n: m.wait(self.now, amounts[u]) for n, (u, m) in self.models.items()}
        wait, name = self.admission.try_admit(self.now, requests, tokens, chars)
        if not any(unsure for _, unsure in judged.values()):
            worst = max(w for w, _ in judged.values())
            assert (wait == 0) == (worst == 0), (wait, judged)
            assert close(wait, worst), (wait, judged)
            if wait > 0:
                assert judged[name][0] > 0, f"{name} was reported but has room: {judged}"
                assert close(judged[name][0], worst), (name, judged)
        if wait == 0:
            assert name == ""
            for unit, model in self.models.values():
                model.grants.append((self.now, amounts[unit]))


TestLimiterMachine = LimiterMachine.TestCase
TestLimiterMachine.settings = SETTINGS
TestAdmissionMachine = AdmissionMachine.TestCase
TestAdmissionMachine.settings = SETTINGS


def test_waiting_the_returned_wait_is_enough() -> None:
    bucket = TokenBucket("b", "tokens", 1.0, 6.0)
    bucket.take(8.0, 0.5)
    wait = bucket.wait_for(8.0, 0.75)  # 0.041666...
    # The level reaches 0.7499999999999999, so a second (sub-ulp) wait is returned,
    # and 8.041666... + 5.9e-16 == 8.041666...: a virtual clock cannot advance past it.
    assert bucket.wait_for(8.0 + wait, 0.75) == 0
