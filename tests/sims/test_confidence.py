"""The sequential rule that decides when a fleet has shown it meets its SLOs."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from actors.runtime.errors import InvalidSetting
from sims.confidence import MET, MISSED, OPEN, UNCLEAR, Rule, holdout_interval
from sims.slo import Slo

P95 = Slo.parse("provider_p95<=5s")
SUCCESS = Slo.parse("success>=99.5%")


def _seeds(*values: float, success: float = 1.0) -> list[dict]:
    return [{"slo_metrics": {"provider_p95": v, "success": success}} for v in values]


def test_the_tolerance_factor_is_the_published_one():
    # One-sided normal tolerance factors for 95% coverage at 90% confidence (NIST/SEMATECH
    # e-Handbook 7.2.6.3; Natrella): n = 5, 10, 20.
    rule = Rule()
    assert rule.factor(5, 1) == pytest.approx(3.400, abs=0.01)
    assert rule.factor(10, 1) == pytest.approx(2.568, abs=0.01)
    assert rule.factor(20, 1) == pytest.approx(2.208, abs=0.01)
    # Two objectives hold together on 95% of seeds only if each holds on 97.5%.
    assert rule.factor(10, 2) > rule.factor(10, 1)


def test_a_miss_on_any_seed_rules_the_fleet_out():
    assert Rule().judge(_seeds(4.0, 5.2, 4.0), [P95]).verdict == MISSED
    assert Rule().judge(_seeds(math.inf), [P95]).verdict == MISSED  # failures past the p95
    assert Rule().judge(_seeds(4.0, 4.0, 4.0, success=0.99), [P95, SUCCESS]).verdict == MISSED


def test_too_few_seeds_stay_open_and_a_tight_fleet_is_met():
    rule = Rule()
    assert rule.judge(_seeds(3.0, 3.01), [P95]).verdict == OPEN  # below min_seeds
    judged = rule.judge(_seeds(3.0, 3.05, 3.1), [P95])
    assert judged.verdict == MET
    assert judged.bounds["provider_p95<=5s"] == pytest.approx(3.05 + rule.factor(3, 1) * 0.05)


def test_a_wide_spread_near_the_threshold_needs_more_seeds_or_is_unclear():
    rule = Rule()
    # mean 4.5, sd 0.1: the bound crosses 5 s at 3 seeds but not at 12: run more.
    assert rule.judge(_seeds(4.4, 4.5, 4.6), [P95]).verdict == OPEN
    # mean 4.5, sd 0.4: even 12 seeds at this spread would not clear it: stop now.
    assert rule.judge(_seeds(4.1, 4.5, 4.9), [P95]).verdict == UNCLEAR
    # the cap: 12 seeds whose bound still crosses 5 s (mean 4.5, sd 0.23).
    twelve = [4.28, 4.72] * 6
    assert rule.judge(_seeds(*twelve), [P95]).verdict == UNCLEAR


def test_a_share_objective_is_bounded_from_below():
    rule = Rule()
    seeds = [{"slo_metrics": {"success": s}} for s in (0.9990, 0.9995, 1.0, 0.9985, 0.9992, 1.0)]
    judged = rule.judge(seeds, [SUCCESS])
    assert judged.bounds["success>=99.5%"] < 0.9994  # below the mean, not above it
    assert judged.verdict == MET


def _acceptance(rule: Rule, share_meeting: float, runs: int, rng: np.random.Generator) -> float:
    """How often the rule accepts a fleet whose metric is normal across seeds and meets
    the objective on ``share_meeting`` of them, run seed by seed as the search does."""
    sd = 0.3
    mean = 5.0 - NormalDist().inv_cdf(share_meeting) * sd
    accepted = 0
    for _ in range(runs):
        values: list[float] = []
        verdict = OPEN
        while verdict == OPEN:
            values.append(float(rng.normal(mean, sd)))
            verdict = rule.judge(_seeds(*values), [P95]).verdict
        accepted += verdict == MET
    return accepted / runs


def test_a_fleet_that_meets_the_slo_on_80_percent_of_days_is_rarely_recommended():
    # Looking again after every seed raises the rule's error above one look's; that every
    # seed must also meet the SLO lowers it. 2,000 runs measured 5.7%; a next-seed
    # prediction bound (no assurance of its own) let 14% through, and fails this test.
    rng = np.random.default_rng(7)
    runs = 2000
    rate = _acceptance(Rule(), 0.80, runs, rng)
    assert rate < 0.057 + 4 * math.sqrt(0.057 * 0.943 / runs)


def test_a_fleet_far_inside_the_slo_is_recommended_on_few_seeds():
    rng = np.random.default_rng(11)
    runs = 1000
    rate = _acceptance(Rule(), 0.99999, runs, rng)
    assert rate > 0.90 - 4 * math.sqrt(0.90 * 0.10 / runs)


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": 0.3}, "confidence"),
        ({"min_seeds": 1}, "replications"),
        ({"min_seeds": 5, "max_seeds": 4}, "max-replications"),
        ({"assurance": 1.5}, "assurance"),
    ],
)
def test_bad_settings_are_named(fields, name):
    with pytest.raises(InvalidSetting, match=name):
        Rule(**fields)


def test_the_held_out_interval_is_exact():
    low, high = holdout_interval(20, 20)
    assert low == pytest.approx(0.025 ** (1 / 20), abs=1e-9)  # no miss in 20: 0.025^(1/20)
    assert high == 1.0
    low, high = holdout_interval(9, 10)
    assert low == pytest.approx(0.5550, abs=1e-4) and high == pytest.approx(0.9975, abs=1e-4)
    assert all(math.isnan(x) for x in holdout_interval(0, 0))
