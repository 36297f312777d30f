"""The simulator against queueing theory: Erlang C for an M/M/c queue, and Little's law.

One provider with c slots and an unbounded FIFO queue, Poisson arrivals and
exponential service times is an M/M/c queue, whose mean wait and probability
of waiting have closed forms. If the simulated values miss them beyond
statistical error, the clock, the slots or the recorder is wrong.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sims.runner import simulate
from sims.scenario import load

SLOTS = 4
SERVICE_MEAN = 1.0
ARRIVALS_PER_S = 3.2  # utilisation 0.8
REQUESTS = 20_000


def erlang_c(c: int, offered: float) -> float:
    """Probability that an arrival waits, for c servers and offered load a = λ/μ."""
    rho = offered / c
    top = offered**c / math.factorial(c) / (1 - rho)
    bottom = sum(offered**k / math.factorial(k) for k in range(c)) + top
    return top / bottom


@pytest.fixture(scope="module")
def mmc_run():
    overrides = [
        f"workload.interviews={REQUESTS}",
        "workload.arrival='poisson'",
        f"workload.rate_per_minute={ARRIVALS_PER_S * 60}",
        "workload.turns=1",
        "workload.think_time=0",
        "accounts.0.count=1",
        f"accounts.0.max_concurrency={SLOTS}",
        f"accounts.0.latency={{ service = {{ kind = 'exponential', mean = {SERVICE_MEAN} }} }}",
        "sample_every=1.0",
        "seed=3",
    ]
    scenario, _ = load("reference", overrides)
    return simulate(scenario)


def batch_means(values: np.ndarray, batches: int = 20) -> tuple[float, float]:
    """Mean and the half-width of its ~99% confidence interval, by batch means."""
    means = np.array([b.mean() for b in np.array_split(values, batches)])
    return float(means.mean()), float(2.86 * means.std(ddof=1) / math.sqrt(batches))


def test_mean_wait_and_probability_of_waiting_match_erlang_c(mmc_run):
    arrays = mmc_run.recorder.arrays()
    assert len(arrays["start"]) == REQUESTS and (arrays["outcome"] == 0).all()
    waits = arrays["queue_wait"][REQUESTS // 20 :]  # drop the warm-up from an empty system
    offered = ARRIVALS_PER_S * SERVICE_MEAN
    p_wait = erlang_c(SLOTS, offered)
    expected_wait = p_wait * SERVICE_MEAN / (SLOTS - offered)
    mean_wait, half_width = batch_means(waits)
    assert abs(mean_wait - expected_wait) <= half_width, (mean_wait, expected_wait, half_width)
    waited, waited_hw = batch_means((waits > 0).astype(float))
    assert abs(waited - p_wait) <= waited_hw, (waited, p_wait, waited_hw)
    # And it is a real queue: the formula's own values are far from trivial.
    assert 0.5 < p_wait < 0.7 and expected_wait > 0.5


def test_littles_law_holds_on_the_results(mmc_run):
    arrays = mmc_run.recorder.arrays()
    series = mmc_run.series
    t = np.asarray(series.t)
    in_system = np.asarray(series.in_flight, dtype=float)
    busy = (t > 200) & (t < t.max() - 200)  # steady state, away from both ends
    measured_l = in_system[busy].mean()
    start = arrays["start"]
    window = (start > 200) & (start < t.max() - 200)
    rate = window.sum() / (start[window].max() - start[window].min())
    predicted_l = rate * arrays["latency"][window].mean()
    assert measured_l == pytest.approx(predicted_l, rel=0.05)
