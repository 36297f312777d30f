"""Named random streams and the distributions drawn from them."""

from __future__ import annotations

import statistics

import pytest

from actors.runtime.distributions import Constant, Empirical, Exponential, LogNormal
from actors.runtime.randomness import RandomStreams


def test_a_stream_is_a_function_of_seed_and_name():
    a = [RandomStreams(5).stream("provider:a").uniform() for _ in range(3)]
    b = [RandomStreams(5).stream("provider:a").uniform() for _ in range(3)]
    assert a == b
    assert RandomStreams(5).stream("provider:a").uniform() != (
        RandomStreams(6).stream("provider:a").uniform()
    )


def test_adding_a_stream_does_not_shift_another():
    lone = RandomStreams(1)
    lone_draws = [lone.stream("x").standard_normal() for _ in range(2000)]
    crowded = RandomStreams(1)
    crowded_draws = []
    for _ in range(2000):
        crowded.stream("y").uniform()
        crowded_draws.append(crowded.stream("x").standard_normal())
    assert lone_draws == crowded_draws


def test_bad_seed_is_rejected():
    with pytest.raises(ValueError, match="seed"):
        RandomStreams(-1)


@pytest.mark.parametrize(
    "distribution",
    [
        Constant(2.0),
        Exponential(30.0),
        LogNormal(0.0, 0.5),
        LogNormal.from_median_p95(0.4, 1.2),
        Empirical([(0, 0.1), (50, 0.5), (95, 2.0), (100, 4.0)]),
    ],
)
def test_sample_mean_matches_the_distribution_mean(distribution):
    stream = RandomStreams(42).stream("test")
    draws = [distribution.sample(stream) for _ in range(40_000)]
    assert statistics.fmean(draws) == pytest.approx(distribution.mean, rel=0.03)
    assert min(draws) >= 0


def test_lognormal_fit_hits_its_percentiles():
    fitted = LogNormal.from_median_p95(0.4, 1.2)
    stream = RandomStreams(3).stream("fit")
    draws = sorted(fitted.sample(stream) for _ in range(40_000))
    assert draws[len(draws) // 2] == pytest.approx(0.4, rel=0.03)
    assert draws[int(len(draws) * 0.95)] == pytest.approx(1.2, rel=0.05)


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([(10, 1.0), (100, 2.0)], "start at percentile 0"),
        ([(0, 1.0), (50, 2.0), (50, 3.0), (100, 4.0)], "increase strictly"),
        ([(0, 3.0), (100, 2.0)], "ascending"),
    ],
)
def test_bad_empirical_points_are_named(points, message):
    with pytest.raises(ValueError, match=message):
        Empirical(points)


def test_negative_parameters_are_rejected_with_the_field_name():
    with pytest.raises(ValueError, match=r"Exponential\.mean"):
        Exponential(-1.0)
    with pytest.raises(ValueError, match=r"LogNormal\.sigma"):
        LogNormal(0.0, -0.5)
