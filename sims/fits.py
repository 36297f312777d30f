"""Fitting a positive quantity (a time to first token, a think time) to a distribution.

Candidate families are fitted by maximum likelihood (scipy.stats, location fixed at 0),
with right-censored observations as censored (an attempt cut by a timeout says its time
to first token was at least that long), and ranked by AIC; the KS distance of the winner
against the uncensored values says how well it fits. A family the simulator cannot
sample (gamma) is written as its quantiles, an ``empirical`` distribution.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
from scipy import stats

#: Two-sided 99% normal quantile: intervals wide enough that a test on them is not flaky.
Z99 = float(stats.norm.ppf(0.995))
#: Percentiles of an ``empirical`` distribution written for a family the simulator lacks.
PERCENTILES = (0, 1, 5, 10, 25, 50, 75, 90, 95, 99, 100)
#: The top percentile's quantile stands in for the unbounded 100th.
TOP = 0.999


@attrs.frozen
class Interval:
    """A parameter's estimate and its 99% interval."""

    estimate: float
    low: float
    high: float


@attrs.frozen
class Candidate:
    """One family's maximum-likelihood fit."""

    family: str  # lognormal | gamma | exponential | constant
    params: tuple[float, ...]  # scipy's shape(s) then scale (loc fixed at 0)
    aic: float


@attrs.frozen
class Fit:
    """The best family for a sample, with the evidence for it."""

    best: Candidate
    runners_up: tuple[Candidate, ...]
    n: int  # observations (censored ones included)
    censored: int
    ks: float  # KS distance of the best family to the values (see _ks when censored)
    ks_p: float
    mean: Interval
    median: Interval | None  # lognormal: exp(mu)
    sigma: Interval | None  # lognormal: the log's standard deviation

    def spec(self) -> dict[str, Any]:
        """The fit as a scenario distribution (``{kind = ...}``)."""
        family, params = self.best.family, self.best.params
        if family == "constant":
            return {"kind": "constant", "value": params[0]}
        if family == "exponential":
            return {"kind": "exponential", "mean": params[-1]}
        if family == "lognormal":
            return {"kind": "lognormal", "mu": math.log(params[1]), "sigma": params[0]}
        dist = _frozen(self.best)
        top = float(dist.ppf(TOP))
        points = [[p, float(dist.ppf(p / 100)) if p < 100 else top] for p in PERCENTILES]
        return {"kind": "empirical", "points": points}

    def describe(self) -> str:
        """One line for a TOML comment: family, sample, fit, runners-up."""
        if self.best.family == "constant":
            return f"constant: all {self.n} values the same"
        shown = f"{self.best.family} by AIC of {self.n} values"
        if self.censored:
            shown += f" ({self.censored} censored)"
        under = " (values under the first cut)" if self.censored else ""
        shown += f"; KS{under} D={self.ks:.3f} p={self.ks_p:.3g}"
        others = ", ".join(
            f"{c.family} {c.aic - self.best.aic:+.1f}" for c in self.runners_up if c.aic < math.inf
        )
        if others:
            shown += f"; AIC vs {self.best.aic:.1f}: {others}"
        return shown


_FAMILIES: dict[str, Any] = {
    "lognormal": stats.lognorm,
    "gamma": stats.gamma,
    "exponential": stats.expon,
}


def fit(values: Sequence[float], censored: Sequence[float] = ()) -> Fit:
    """The best of the candidate families for ``values`` (> 0), ``censored`` being lower
    bounds (right-censored). Deterministic: MLE, no random draws."""
    observed = np.sort(np.asarray(values, dtype=float))
    cut = np.sort(np.asarray(censored, dtype=float))
    if observed.size == 0 or np.any(observed <= 0):
        raise ValueError("fit needs positive observed values")
    if np.ptp(observed) <= 1e-6 * observed[0] and cut.size == 0:
        # Every value the same: a constant explains it exactly; no family's likelihood can.
        candidates = [Candidate("constant", (float(np.median(observed)),), -math.inf)]
    else:
        candidates = [_candidate(name, observed, cut) for name in _FAMILIES]
    candidates.sort(key=lambda c: (c.aic, c.family))
    best = candidates[0]
    ks, ks_p = (0.0, 1.0) if best.family == "constant" else _ks(observed, cut, best)
    return Fit(
        best=best,
        runners_up=tuple(candidates[1:]),
        n=int(observed.size + cut.size),
        censored=int(cut.size),
        ks=ks,
        ks_p=ks_p,
        mean=_mean(observed, best),
        median=_lognormal_median(best, observed.size) if best.family == "lognormal" else None,
        sigma=_lognormal_sigma(best, observed.size) if best.family == "lognormal" else None,
    )


def _ks(observed: np.ndarray, cut: np.ndarray, best: Candidate) -> tuple[float, float]:
    """KS distance and p-value of the values against the fit; with censoring, of the
    values under the first cut against the fit truncated there (above it, what was seen
    depends on what was cut)."""
    dist = _frozen(best)
    if cut.size == 0:
        result = stats.kstest(observed, dist.cdf)
    else:
        first = float(cut[0])
        below = observed[observed < first]
        mass = float(dist.cdf(first))
        if below.size == 0 or mass <= 0:
            return math.nan, math.nan
        result = stats.kstest(below, lambda x: dist.cdf(x) / mass)
    return float(result.statistic), float(result.pvalue)


def _candidate(name: str, observed: np.ndarray, cut: np.ndarray) -> Candidate:
    family = _FAMILIES[name]
    data: Any = observed
    if cut.size:
        data = stats.CensoredData(uncensored=observed, right=cut)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        params = tuple(float(p) for p in family.fit(data, floc=0))
    shapes = params[:-2]
    scale = params[-1]
    dist = family(*shapes, loc=0, scale=scale)
    loglik = float(np.sum(dist.logpdf(observed)) + np.sum(dist.logsf(cut)))
    k = len(shapes) + 1
    aic = 2 * k - 2 * loglik if math.isfinite(loglik) else math.inf
    return Candidate(name, (*shapes, scale), aic)


def _frozen(candidate: Candidate) -> Any:
    family = _FAMILIES[candidate.family]
    *shapes, scale = candidate.params
    return family(*shapes, loc=0, scale=scale)


def _mean(observed: np.ndarray, best: Candidate) -> Interval:
    """The fitted mean, with the 99% interval of the sample mean (CLT)."""
    estimate = best.params[0] if best.family == "constant" else float(_frozen(best).mean())
    half = (
        Z99 * float(np.std(observed, ddof=1)) / math.sqrt(observed.size) if observed.size > 1 else 0
    )
    return Interval(estimate, estimate - half, estimate + half)


def _lognormal_median(best: Candidate, n: int) -> Interval:
    """exp(mu) with the MLE's asymptotic interval on mu (SE sigma / sqrt(n))."""
    sigma, scale = best.params
    half = Z99 * sigma / math.sqrt(n)
    return Interval(scale, scale * math.exp(-half), scale * math.exp(half))


def _lognormal_sigma(best: Candidate, n: int) -> Interval:
    """sigma with the MLE's asymptotic interval (SE sigma / sqrt(2n))."""
    sigma = best.params[0]
    half = Z99 * sigma / math.sqrt(2 * n)
    return Interval(sigma, sigma - half, sigma + half)


def rate(events: int, trials: int) -> Interval:
    """A share and its exact (Clopper-Pearson) 99% interval."""
    if trials == 0:
        return Interval(0.0, 0.0, 1.0)
    low, high = stats.binomtest(events, trials).proportion_ci(0.99, method="exact")
    return Interval(events / trials, float(low), float(high))
