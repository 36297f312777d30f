"""The limiters against their arithmetic: what a bucket or a window may admit over any interval.

Tolerance: sums of floats are compared with a relative error of 1e-9 (plus 1e-9
absolute), far below one token; every bound here is otherwise exact.
"""

from __future__ import annotations

import math

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.errors import RateLimited
from actors.limits import Admission, FixedWindow, LimitSpec, TokenBucket
from actors.messages import ChatMessage, ChatRequest
from actors.runtime.errors import InvalidSetting
from engine.routing.fleet import open_fleet
from sims.profiles import ANTHROPIC_TIER1, PROFILES
from tests.conftest import virtual_account

TOL = 1e-9
# Attempts: (seconds after the previous one, amount as a share of the burst).
ATTEMPTS = st.lists(
    st.tuples(st.floats(0, 5, allow_nan=False), st.floats(0.01, 1.0)), min_size=1, max_size=60
)


def _within(total: float, bound: float) -> bool:
    return total <= bound + TOL * max(1.0, bound)


def _drive(limiter: TokenBucket | FixedWindow, attempts, scale: float) -> list[tuple[float, float]]:
    """Offer each attempt once; return the (time, amount) of those admitted."""
    now, granted = 0.0, []
    for gap, share in attempts:
        now += gap
        amount = share * scale
        if limiter.wait_for(now, amount) == 0:
            limiter.take(now, amount)
            granted.append((now, amount))
    return granted


@settings(max_examples=200, deadline=None)
@given(
    attempts=ATTEMPTS,
    limit=st.integers(1, 100),
    per=st.sampled_from([1.0, 10.0, 60.0]),
    every=st.sampled_from([None, 0.5, 1.0]),
)
def test_a_bucket_admits_at_most_rate_times_t_plus_burst_over_any_interval(
    attempts, limit, per, every
):
    spec = LimitSpec("b", "tokens", limit, min(per, 60.0), enforce_every=every)
    bucket = spec.build()
    assert isinstance(bucket, TokenBucket)
    granted = _drive(bucket, attempts, spec.burst)
    rate = spec.limit / spec.per
    for i, (start, _) in enumerate(granted):
        total = 0.0
        for end, amount in granted[i:]:
            total += amount
            assert _within(total, rate * (end - start) + spec.burst), (start, end, total)


@pytest.mark.parametrize(
    ("limit", "per", "every"), [(60, 60.0, None), (60, 60.0, 1.0), (7, 3.0, 0.5)]
)
def test_a_saturated_bucket_admits_exactly_rate_times_t_plus_burst(limit, per, every):
    """A client that takes whatever is there, every 0.25 s: C at once, then r per second."""
    spec = LimitSpec("b", "tokens", limit, per, enforce_every=every)
    bucket = spec.build()
    rate, total, now = limit / per, 0.0, 0.0
    for _ in range(400):
        level = bucket.level(now)
        bucket.take(now, level)
        total += level
        assert math.isclose(total, spec.burst + rate * now, rel_tol=TOL), (now, total)
        now += 0.25


@settings(max_examples=200, deadline=None)
@given(attempts=ATTEMPTS, limit=st.integers(1, 50), per=st.sampled_from([1.0, 5.0, 300.0]))
def test_a_fixed_window_admits_at_most_its_limit_per_window(attempts, limit, per):
    window = FixedWindow("w", "requests", float(limit), per)
    granted = _drive(window, attempts, float(limit))
    used: dict[int, float] = {}
    for t, amount in granted:
        k = int(t // per)
        used[k] = used.get(k, 0.0) + amount
        assert _within(used[k], limit), (k, used[k])


def test_a_limit_enforced_every_second_holds_a_burst_of_one_second_not_a_minute():
    whole = LimitSpec("rpm", "requests", 60, 60.0).build()
    sliced = LimitSpec("rpm", "requests", 60, 60.0, enforce_every=1.0).build()
    at_once = {}
    for name, limiter in (("whole", whole), ("sliced", sliced)):
        at_once[name] = 0
        while limiter.wait_for(0.0, 1) == 0:
            limiter.take(0.0, 1)
            at_once[name] += 1
    assert at_once == {"whole": 60, "sliced": 1}
    # The same steady rate: the next request a second later, for both.
    assert sliced.wait_for(0.0, 1) == pytest.approx(1.0)
    assert whole.wait_for(0.0, 1) == pytest.approx(1.0)


@settings(max_examples=200, deadline=None)
@given(attempts=ATTEMPTS, every=st.sampled_from([0.5, 1.0, 2.0]))
def test_a_sliced_bucket_admits_one_slice_at_once_and_never_more_than_a_slice_per_slice_of_refill(
    attempts, every
):
    """At one instant it admits at most one slice's allowance; over any interval T, at most
    the allowance plus T's refill: so at most two allowances in a slice-long interval (a
    full bucket, then a slice of refill), where the whole-minute bucket admits a minute's."""
    spec = LimitSpec("tpm", "tokens", 6000, 60.0, enforce_every=every)
    bucket = spec.build()
    granted = _drive(bucket, [(gap, share) for gap, share in attempts], spec.burst)
    rate = spec.limit / spec.per
    for i, (start, _) in enumerate(granted):
        same_instant = sum(a for t, a in granted[i:] if t == start)
        assert _within(same_instant, spec.burst)
        in_slice = sum(a for t, a in granted[i:] if t < start + every)
        assert _within(in_slice, spec.burst + rate * every)


def test_a_prompt_longer_than_a_slice_waits_for_a_full_bucket_and_keeps_the_rate():
    # 30,000 tokens/minute enforced per second: a slice holds 500 tokens.
    bucket = LimitSpec("tpm", "tokens", 30_000, 60.0, enforce_every=1.0).build()
    assert bucket.wait_for(0.0, 30_001) == math.inf  # more than the minute's limit: never
    assert bucket.wait_for(0.0, 2_000) == 0
    bucket.take(0.0, 2_000)  # in debt by 1,500 tokens
    # The next one waits until the bucket holds a slice again: 2,000 tokens at 500/s.
    assert bucket.wait_for(0.0, 100) == pytest.approx(2_000 / 500 - (500 - 100) / 500)
    assert bucket.wait_for(0.0, 2_000) == pytest.approx(4.0)


def test_input_and_output_tokens_are_limited_apart():
    """A request with a tiny prompt and a large max_tokens is held by OTPM, not ITPM."""
    # Anthropic's tier-1 limits over the whole minute (a slice admits one long call into
    # a full bucket, which would hide which limit binds).
    limits = [attrs.evolve(limit, enforce_every=None) for limit in ANTHROPIC_TIER1.spec.limits]
    admission = Admission(limits)
    assert admission.try_admit(0.0, 1, 20, 7_000, 80) == (0.0, "")
    wait, binding = admission.try_admit(1.0, 1, 20, 4_000, 80)
    assert binding == "otpm" and wait > 0
    # A long prompt with a short answer is held by ITPM instead.
    assert admission.try_admit(1.0, 1, 25_000, 10, 100_000) == (0.0, "")
    wait, binding = admission.try_admit(2.0, 1, 10_000, 10, 40_000)
    assert binding == "itpm" and wait > 0


def test_output_tokens_are_estimated_from_max_tokens_then_settled_to_the_actual_output():
    spec = LimitSpec("otpm", "output_tokens", 600, 60.0, adjust_output=True)
    kept = LimitSpec("tpm", "tokens", 600, 60.0)
    admission = Admission([spec, kept])
    assert admission.try_admit(0.0, 1, 0, 600, 0) == (0.0, "")  # max_tokens 600
    otpm, tpm = admission.limiters
    admission.settle(0.0, 0.0, estimated=600, actual=60)
    assert otpm.level(0.0) == pytest.approx(540)  # Anthropic gives back what was not used
    assert tpm.level(0.0) == pytest.approx(0)  # OpenAI-like: max_tokens stays charged
    # A settlement never fills a bucket past its size.
    admission.settle(0.0, 0.0, estimated=600, actual=0)
    assert otpm.level(0.0) == 600


def test_a_window_settles_only_while_the_charge_is_in_it():
    admission = Admission(
        [LimitSpec("otpd", "output_tokens", 1000, 86400.0, "window", adjust_output=True)]
    )
    (window,) = admission.limiters
    admission.try_admit(10.0, 1, 0, 500, 0)
    admission.settle(10.0, 20.0, 500, 100)
    assert window.used(20.0) == 100
    admission.try_admit(86000.0, 1, 0, 500, 0)
    admission.settle(86000.0, 86500.0, 500, 100)  # the day it was charged to has gone
    assert window.used(86500.0) == 0


@pytest.mark.parametrize("adjust", [True, False])
async def test_a_provider_settles_its_output_estimate_when_the_call_ends(virtual_clock, adjust):
    limits = (LimitSpec("otpm", "output_tokens", 1000, 60.0, adjust_output=adjust),)
    account, _ = virtual_account("a", seconds=0.6, limits=limits)
    request = ChatRequest(
        messages=(ChatMessage("user", "hi"),), max_tokens=900, expected_output_tokens=50
    )
    async with open_fleet([account]) as fleet:
        provider = fleet.provider("a")
        await provider.call(request, "r1")
        if adjust:  # 900 charged at the start, 850 given back at the end: another 900 fits
            await provider.call(request, "r2")
            (otpm,) = provider.admission.limiters
            assert otpm.level(1.2) == pytest.approx(1000 - 900 + 1000 / 60 * 1.2 - 900 + 850 * 2)
        else:  # the estimate stays charged
            with pytest.raises(RateLimited, match="otpm"):
                await provider.call(request, "r2")


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"enforce_every": 0}, "limit.enforce_every"),
        ({"enforce_every": 120.0}, "limit.enforce_every"),
        ({"enforce_every": 1.0, "mode": "window"}, "limit.enforce_every"),
        ({"adjust_output": True}, "limit.adjust_output"),
        ({"unit": "tokens", "adjust_output": "yes"}, "limit.adjust_output"),
        ({"unit": "output_token"}, "limit.unit"),
    ],
)
def test_new_limit_settings_are_refused_with_the_field_and_what_is_allowed(fields, key):
    base = {"name": "x", "unit": "requests", "limit": 60, "per": 60.0, **fields}
    with pytest.raises(InvalidSetting, match=key) as refused:
        LimitSpec(**base)
    assert "allowed:" in str(refused.value)


def test_every_profile_builds_and_every_limit_says_where_it_comes_from():
    for name, profile in PROFILES.items():
        Admission(profile.spec.limits)
        assert profile.source, name
        for limit in profile.spec.limits:
            assert limit.source, f"{name}: limit {limit.name} has no source"
