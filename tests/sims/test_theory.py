"""The simulator against queueing theory: Erlang C for M/M/c queues, and Little's law.

Servers with c slots in all, Poisson arrivals and exponential service times form an
M/M/c queue, whose mean wait and probability of waiting have closed forms. Requests
wait either in the account's own FIFO queue or, when the account has none
(``queue_limit = 0``, like most hosted APIs), in the router's line, which must be
work-conserving: a freed slot is taken at once by the next request in line. If the
simulated values miss theory beyond statistical error (a batch-means confidence
interval, so the tolerance follows from the sample), the clock, the slots, the line
or the recorder is wrong.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sims.runner import simulate
from sims.scenario import load

pytestmark = pytest.mark.slow  # every test here takes seconds: out of `pytest -m "not slow"`

SERVICE_MEAN = 1.0
#: Batch-means intervals at 99.9%: 15 tests share the suite, so a 1% interval would
#: fail one run in seven by chance alone.
Z_BATCHES = 4.3  # Student t, 19 degrees of freedom, two-sided 99.9%


def erlang_c(c: int, offered: float) -> float:
    """Probability that an arrival waits, for c servers and offered load a = λ/μ."""
    rho = offered / c
    top = offered**c / math.factorial(c) / (1 - rho)
    bottom = sum(offered**k / math.factorial(k) for k in range(c)) + top
    return top / bottom


def mmc_run(accounts: int, slots: int, queue_limit: int, load_per_slot: float, requests: int):
    """``accounts`` accounts of ``slots`` slots at utilisation ``load_per_slot``."""
    rate = load_per_slot * accounts * slots / SERVICE_MEAN
    overrides = [
        f"workload.interviews={requests}",
        "workload.arrival='poisson'",
        f"workload.rate_per_minute={rate * 60}",
        "workload.turns=1",
        "workload.think_time=0",
        f"accounts.0.count={accounts}",
        f"accounts.0.max_concurrency={slots}",
        f"accounts.0.queue_limit={queue_limit}",
        f"accounts.0.latency={{ service = {{ kind = 'exponential', mean = {SERVICE_MEAN} }} }}",
        "routing.policy='round_robin'",
        # M/M/c is first come first served without abandonment: the router's line must be
        # too (the default sheds by priority, which theory's queue never does).
        "line.discipline='fifo'",
        "sample_every=1.0",
        "seed=3",
    ]
    scenario, _ = load("reference", overrides)
    return simulate(scenario)


def batch_means(values: np.ndarray, batches: int = 20) -> tuple[float, float]:
    """Mean and the half-width of its 99.9% confidence interval, by batch means."""
    means = np.array([b.mean() for b in np.array_split(values, batches)])
    return float(means.mean()), float(Z_BATCHES * means.std(ddof=1) / math.sqrt(batches))


def waits_of(run) -> np.ndarray:
    arrays = run.recorder.arrays()
    assert (arrays["outcome"] == 0).all()
    assert not arrays["limit_wait"].any()  # no rate limit: every wait is for a slot
    order = np.argsort(arrays["start"], kind="stable")
    waits = arrays["slot_wait"][order]
    # Latency is the wait plus the service: the split adds up.
    service = (arrays["latency"] - arrays["slot_wait"])[order]
    assert service.min() > 0 and abs(service.mean() - SERVICE_MEAN) < 0.05
    return waits[len(waits) // 20 :]  # drop the warm-up from an empty system


CASES = [
    # (accounts, slots each, queue_limit, utilisation, requests)
    pytest.param(1, 4, 1_000_000, 0.5, 30_000, id="account-queue-0.5"),
    pytest.param(1, 4, 1_000_000, 0.8, 20_000, id="account-queue-0.8"),
    pytest.param(1, 4, 1_000_000, 0.95, 80_000, id="account-queue-0.95"),
    pytest.param(1, 4, 0, 0.5, 30_000, id="router-line-0.5"),
    pytest.param(1, 4, 0, 0.8, 20_000, id="router-line-0.8"),
    pytest.param(1, 4, 0, 0.95, 80_000, id="router-line-0.95"),
    pytest.param(2, 2, 0, 0.85, 30_000, id="two-accounts-one-line-0.85"),
]


@pytest.mark.parametrize(("accounts", "slots", "queue_limit", "load", "requests"), CASES)
def test_mean_wait_and_probability_of_waiting_match_erlang_c(
    accounts, slots, queue_limit, load, requests
):
    waits = waits_of(mmc_run(accounts, slots, queue_limit, load, requests))
    servers = accounts * slots
    offered = load * servers
    p_wait = erlang_c(servers, offered)
    expected_wait = p_wait * SERVICE_MEAN / (servers - offered)
    mean_wait, half_width = batch_means(waits)
    assert abs(mean_wait - expected_wait) <= half_width, (mean_wait, expected_wait, half_width)
    waited, waited_hw = batch_means((waits > 0).astype(float))
    assert abs(waited - p_wait) <= waited_hw, (waited, p_wait, waited_hw)
    # The intervals are tight enough to tell a guessed wake-up from a freed slot: the
    # old line (sleeping mean service / slots) was 1.5-2.7x too slow at these loads.
    assert half_width < 0.5 * expected_wait


@pytest.fixture(scope="module")
def line_run():
    return mmc_run(1, 4, 0, 0.8, 20_000)


def steady(run) -> tuple[np.ndarray, np.ndarray]:
    """Sample times and a mask of the steady state, away from both ends."""
    t = np.asarray(run.series.t)
    return t, (t > 200) & (t < t.max() - 200)


def test_littles_law_holds_in_flight_in_line_and_per_slot(line_run):
    """L = λW for the requests in the system, those waiting, and the busy slots."""
    arrays = line_run.recorder.arrays()
    t, busy = steady(line_run)
    start = arrays["start"]
    window = (start > 200) & (start < t.max() - 200)
    rate = window.sum() / (start[window].max() - start[window].min())
    in_system = np.asarray(line_run.series.in_flight, dtype=float)[busy].mean()
    assert in_system == pytest.approx(rate * arrays["latency"][window].mean(), rel=0.05)
    (series,) = line_run.series.providers.values()
    in_use = np.asarray(series.in_use, dtype=float)[busy].mean()
    service = arrays["latency"] - arrays["slot_wait"]
    assert in_use == pytest.approx(rate * service[window].mean(), rel=0.05)
    waiting = in_system - in_use
    assert waiting == pytest.approx(rate * arrays["slot_wait"][window].mean(), rel=0.1)
