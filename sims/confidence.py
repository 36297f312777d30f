"""When a fleet's SLO verdict is statistically clear, and how often a fresh seed agrees.

A seed is one possible day: its arrivals, think times and provider draws. A planner
wants a fleet that meets its objectives on at least a share ``confidence`` of such days,
not on the few the search happened to run. :class:`Rule` decides, seed by seed in seed
order, whether a fleet has shown that:

- **missed**: a seed missed an objective. A fleet meeting them on a share ``c`` of seeds
  shows a miss on a given seed with probability at most ``1 - c``, so one miss rejects
  it (conservatively: a good fleet may be rejected, never a bad one accepted by this).
- **met**: at least ``min_seeds`` seeds all met every objective, and for each objective
  the one-sided normal tolerance bound is within the threshold: with confidence
  ``assurance`` (90%), a share ``1 - (1 - c) / k`` of all seeds (Bonferroni over ``k``
  objectives, so that all of them hold together on a share ``c``) has a value within
  ``mean + factor * sd``, where ``factor`` is the exact normal tolerance factor
  (noncentral t). A prediction bound for the next seed would be cheaper, but the search
  looks at one fleet after another and picks the first that passes, which a bound with no
  confidence of its own lets through too often (tests/sims/test_confidence.py).
- **unclear**: ``max_seeds`` ran without either, or the bound would still cross the
  threshold after ``max_seeds`` seeds at today's mean and spread (more seeds would
  not make it clear, so none are spent); the fleet is not recommended.
- **open**: none of the above yet: run another seed.

The normal model of a metric across seeds is an approximation (a latency percentile
near a queueing cliff is skewed); the held-out check (:func:`holdout_interval`) is the
model-free test of the result.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import attrs
from scipy import stats

from actors.runtime.errors import require
from sims.slo import Slo

MISSED, MET, UNCLEAR, OPEN = "missed", "met", "unclear", "open"


@attrs.frozen
class Judgement:
    """A fleet's verdict on the seeds it ran, with each objective's fresh-seed bound."""

    verdict: str
    #: SLO text -> the tolerance bound on the seeds run (nan below two seeds).
    bounds: dict[str, float]


@attrs.frozen
class Rule:
    """The sequential rule: how sure, and how many seeds at least and at most."""

    #: The share of seeds (days) a recommended fleet should meet every objective on.
    confidence: float = 0.95
    min_seeds: int = 3
    max_seeds: int = 12
    #: How sure the tolerance bound is that the share is reached.
    assurance: float = 0.90

    def __attrs_post_init__(self) -> None:
        require(
            "confidence",
            0.5 <= self.confidence < 1,
            self.confidence,
            "a share of fresh seeds in [50%, 100%), e.g. 95%",
        )
        require("assurance", 0.5 <= self.assurance < 1, self.assurance, "a probability in [0.5, 1)")
        require("replications", self.min_seeds >= 2, self.min_seeds, ">= 2 seeds")
        require(
            "max-replications",
            self.max_seeds >= self.min_seeds,
            self.max_seeds,
            f">= --replications ({self.min_seeds})",
        )

    def factor(self, seeds: int, objectives: int) -> float:
        """The one-sided normal tolerance factor: with ``assurance``, a share
        ``1 - (1 - confidence) / objectives`` of all values lies below mean + factor * sd."""
        return _tolerance_factor(1 - (1 - self.confidence) / objectives, self.assurance, seeds)

    def bound(self, values: Sequence[float], slo: Slo, objectives: int, seeds: int) -> float:
        """The tolerance bound on ``slo``'s metric across seeds, had ``seeds`` seeds shown
        the mean and spread of ``values`` (nan below two values)."""
        if len(values) < 2:
            return math.nan
        mean = math.fsum(values) / len(values)
        spread = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))
        half = self.factor(seeds, objectives) * spread
        return mean + half if slo.op == "<=" else mean - half

    def judge(self, summaries: Sequence[dict[str, Any]], slos: Sequence[Slo]) -> Judgement:
        """The verdict on these seeds' summaries, in seed order."""
        values = {slo.text: [slo.value(s) for s in summaries] for slo in slos}
        n = len(summaries)
        bounds = {slo.text: self.bound(values[slo.text], slo, len(slos), n) for slo in slos}
        if not all(slo.met(s) for s in summaries for slo in slos):
            return Judgement(MISSED, bounds)
        if n < self.min_seeds:
            return Judgement(OPEN, bounds)
        if all(_within(slo, bounds[slo.text]) for slo in slos):
            return Judgement(MET, bounds)
        at_cap = {
            slo.text: self.bound(values[slo.text], slo, len(slos), self.max_seeds) for slo in slos
        }
        if n >= self.max_seeds or not all(_within(slo, at_cap[slo.text]) for slo in slos):
            return Judgement(UNCLEAR, bounds)
        return Judgement(OPEN, bounds)


@functools.cache
def _tolerance_factor(share: float, assurance: float, seeds: int) -> float:
    # Cached: the noncentral t quantile is the costliest step of judging a seed.
    shift = float(stats.norm.ppf(share)) * math.sqrt(seeds)
    return float(stats.nct.ppf(assurance, seeds - 1, shift)) / math.sqrt(seeds)


def _within(slo: Slo, bound: float) -> bool:
    return bound <= slo.target if slo.op == "<=" else bound >= slo.target


def chance_of_misses(share: float, days: int, misses: int) -> float:
    """How often a fleet that meets the objectives on exactly ``share`` of days misses them
    on ``misses`` or more of ``days`` fresh days: what makes "9 of 10" no contradiction of
    "95% of days"."""
    return float(stats.binom.sf(misses - 1, days, 1.0 - share))


def holdout_interval(met: int, seeds: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval on the share of fresh seeds that meet the
    objectives, from ``met`` of ``seeds`` held-out seeds."""
    if seeds == 0:
        return (math.nan, math.nan)
    interval = stats.binomtest(met, seeds).proportion_ci(confidence_level=level, method="exact")
    return (float(interval.low), float(interval.high))
