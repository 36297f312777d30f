"""Stateful tests for the rate limiters in :mod:`actors.limits` against reference models.

Providers refuse (or ban) accounts that overrun their limits, and the simulator's
results are only as good as its limiters. The models here recompute each limit
from the full history of granted requests (a closed formula for the token
bucket, a per-window sum for fixed windows, the grants since the report for a window
a provider reported) instead of updating a running level, so they share no code path
with the implementation.
"""

from __future__ import annotations

import copy
import math

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from actors.limits import OUTPUT_UNITS, UNITS, Admission, FixedWindow, LimitSpec, TokenBucket

EPS = 1e-6
SETTINGS = settings(max_examples=60, stateful_step_count=40, deadline=None)
# Quarter-second steps keep window arithmetic exact (integer window lengths).
STEPS = st.integers(0, 40).map(lambda q: q / 4)


class BucketModel:
    """Starts full; level before t = min(C, min over i of C - max(a_i, 0) + r(t - t_i) - the
    grants after t_i). A negative grant is a refund, capped at C; an amount above C (up to
    ``largest``) needs a full bucket and leaves it in debt."""

    def __init__(self, capacity: float, rate: float, largest: float | None = None) -> None:
        self.capacity, self.rate = capacity, rate
        self.largest = capacity if largest is None else largest
        self.grants: list[tuple[float, float]] = []

    def level(self, now: float) -> float:
        best, later = self.capacity, 0.0
        for t, a in reversed(self.grants):
            best = min(best, self.capacity - max(a, 0.0) + self.rate * (now - t) - later)
            later += a
        return best

    def wait(self, now: float, amount: float) -> tuple[float, bool]:
        """(expected wait, whether the call is too close to the boundary to judge)."""
        if amount > self.largest:
            return math.inf, False
        missing = min(amount, self.capacity) - self.level(now)
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

    def adjust(self, since: float, now: float, amount: float) -> None:
        """A correction counts in its window only if the charge it corrects was there."""
        if math.floor(since / self.per) == math.floor(now / self.per):
            self.grants.append((now, amount))


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
        slice_share=st.sampled_from([1.0, 0.5, 0.1]),
    )
    def setup(self, mode: str, capacity: int, rate: float, per: int, slice_share: float) -> None:
        self.limiter: TokenBucket | FixedWindow
        self.model: Model
        self.granted: list[tuple[float, float]] = []
        if mode == "bucket":
            # A sliced bucket: it holds a share of the limit, and admits up to the limit.
            burst = capacity * slice_share
            self.limiter = TokenBucket("b", "tokens", burst, rate, largest=float(capacity))
            self.model = BucketModel(burst, rate, float(capacity))
        else:
            self.limiter = FixedWindow("w", "tokens", float(capacity), float(per))
            self.model = WindowModel(float(capacity), float(per))

    @rule(dt=STEPS)
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(share=st.floats(0, 1.2))
    def request(self, share: float) -> None:
        top = self.model.largest if isinstance(self.model, BucketModel) else self.model.capacity
        amount = share * top
        expected, unsure = self.model.wait(self.now, amount)
        wait = self.limiter.wait_for(self.now, amount)
        if not unsure:
            assert (wait == 0) == (expected == 0), (wait, expected, amount)
            assert close(wait, expected), (wait, expected, amount)
        if wait == 0:
            self.limiter.take(self.now, amount)
            self.model.grants.append((self.now, amount))
            self.granted.append((self.now, amount))
        elif math.isfinite(wait):
            later = copy.copy(self.limiter)
            assert later.wait_for(self.now + wait, amount) == 0, "waiting the wait is not enough"

    @rule(which=st.integers(0, 1000), share=st.floats(0, 1.5))
    def adjust(self, which: int, share: float) -> None:
        """A granted charge turns out to be ``share`` of its estimate (output known at the end)."""
        if not self.granted:
            return
        since, estimate = self.granted.pop(which % len(self.granted))
        delta = estimate * share - estimate
        self.limiter.adjust(since, self.now, delta)
        if isinstance(self.model, WindowModel):
            self.model.adjust(since, self.now, delta)
        else:
            self.model.grants.append((self.now, delta))


class ReportedModel:
    """A provider's report of one unit: ``remaining`` until ``resets_at``, less the grants
    made since (``since``: how many grants came before it)."""

    def __init__(self, remaining: float, resets_at: float, since: int) -> None:
        self.remaining, self.resets_at, self.since = remaining, resets_at, since

    def wait(self, now: float, amount: float, grants: list[tuple[float, float]]) -> float:
        if now >= self.resets_at:
            return 0.0
        sent = sum(a for t, a in grants[self.since :] if t < self.resets_at)
        return 0.0 if sent + amount <= self.remaining else self.resets_at - now


class AdmissionMachine(RuleBasedStateMachine):
    """Several limits at once: all charged or none, each by its unit, the binding one named;
    limits with ``adjust_output`` swap the output estimate for the actual output at the end;
    the provider's reports, one per unit, bind beside them until their reset."""

    now = 0.0

    @initialize(
        specs=st.lists(
            st.tuples(
                st.sampled_from(UNITS),
                st.integers(1, 20),
                st.integers(1, 10),
                st.sampled_from(["bucket", "window"]),
                st.sampled_from([None, 0.5, 1.0]),
                st.booleans(),
            ),
            min_size=1,
            max_size=4,
        )
    )
    def setup(self, specs: list[tuple[str, int, int, str, float | None, bool]]) -> None:
        built = [
            LimitSpec(
                f"L{i}",
                u,
                float(n),
                float(p),
                m,
                enforce_every=every if m == "bucket" else None,
                adjust_output=adjust and u in OUTPUT_UNITS,
            )
            for i, (u, n, p, m, every, adjust) in enumerate(specs)
        ]
        self.admission = Admission(built)
        self.models: dict[str, tuple[LimitSpec, Model]] = {
            s.name: (
                s,
                BucketModel(s.burst, s.limit / s.per, s.limit)
                if s.mode == "bucket"
                else WindowModel(s.limit, s.per),
            )
            for s in built
        }
        self.calls: list[tuple[float, float]] = []  # (admitted at, output estimate)
        #: Every grant, per unit, in order; and the latest report of each unit.
        self.grants: dict[str, list[tuple[float, float]]] = {unit: [] for unit in UNITS}
        self.reports: dict[str, ReportedModel] = {}

    @rule(dt=STEPS)
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(unit=st.sampled_from(UNITS), remaining=st.integers(0, 20), reset_in=STEPS)
    def report(self, unit: str, remaining: int, reset_in: float) -> None:
        """The provider reports ``remaining`` of ``unit`` until ``reset_in`` from now."""
        resets_at = self.now + reset_in
        self.admission.report(self.now, unit, float(remaining), resets_at)
        self.reports[unit] = ReportedModel(float(remaining), resets_at, len(self.grants[unit]))
        # What has reset is gone; what has not is checked, once per unit.
        assert all(w.resets_at > self.now for w in self.admission.reported.values())
        gates = [gate for gate, _ in self.admission.checks]
        assert gates[: len(self.admission.limiters)] == self.admission.limiters
        assert gates[len(self.admission.limiters) :] == list(self.admission.reported.values())

    @rule(
        requests=st.integers(0, 2),
        inputs=st.integers(0, 15),
        outputs=st.integers(0, 15),
        chars=st.integers(0, 25),
    )
    def admit(self, requests: int, inputs: int, outputs: int, chars: int) -> None:
        amounts = {
            "requests": float(requests),
            "tokens": float(inputs + outputs),
            "input_tokens": float(inputs),
            "output_tokens": float(outputs),
            "chars": float(chars),
        }
        judged = {n: m.wait(self.now, amounts[s.unit]) for n, (s, m) in self.models.items()}
        for unit, reported in self.reports.items():
            judged[f"{unit} (reported)"] = (
                reported.wait(self.now, amounts[unit], self.grants[unit]),
                False,
            )
        for window in self.admission.reported.values():
            wait = window.wait_for(self.now, amounts[window.unit])
            if 0 < wait < math.inf:
                later = window.wait_for(self.now + wait, amounts[window.unit])
                assert later == 0, "waiting the wait is not enough"
        wait, name = self.admission.try_admit(self.now, requests, inputs, outputs, chars)
        if not any(unsure for _, unsure in judged.values()):
            worst = max(w for w, _ in judged.values())
            assert (wait == 0) == (worst == 0), (wait, judged)
            assert close(wait, worst), (wait, judged)
            if wait > 0:
                assert judged[name][0] > 0, f"{name} was reported but has room: {judged}"
                assert close(judged[name][0], worst), (name, judged)
        if wait == 0:
            assert name == ""
            for spec, model in self.models.values():
                model.grants.append((self.now, amounts[spec.unit]))
            for unit, grants in self.grants.items():
                grants.append((self.now, amounts[unit]))
            self.calls.append((self.now, float(outputs)))

    @rule(which=st.integers(0, 1000), actual=st.integers(0, 20))
    def settle(self, which: int, actual: int) -> None:
        """A call ends: its actual output replaces the estimate where the limit says so."""
        if not self.calls:
            return
        admitted, estimate = self.calls.pop(which % len(self.calls))
        self.admission.settle(admitted, self.now, estimate, float(actual))
        for spec, model in self.models.values():
            if not spec.adjust_output or actual == estimate:
                continue
            if isinstance(model, WindowModel):
                model.adjust(admitted, self.now, actual - estimate)
            else:
                model.grants.append((self.now, actual - estimate))


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
