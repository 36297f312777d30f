"""Paired comparisons over seeds: the mean difference and its 95% confidence interval.

Every variant of an experiment runs on the same seeds, so seed i of two variants
saw the same arrivals and the same provider draws (common random numbers); the
difference per seed removes that shared noise, and a paired t interval over the
differences says how sure the comparison is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
from scipy import stats


def t975(df: int) -> float:
    """Student's t quantile at 0.975 for ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    return float(stats.t.ppf(0.975, df))


@attrs.frozen
class Paired:
    """``variant - control`` over the seeds both have a finite value for."""

    mean: float
    low: float
    high: float
    n: int
    #: The control's mean over the same seeds, for relative changes.
    control_mean: float

    @property
    def significant(self) -> bool:
        """Whether the 95% interval leaves 0 out."""
        return self.n >= 2 and (self.low > 0 or self.high < 0)

    @property
    def relative(self) -> float:
        if self.control_mean == 0 or not math.isfinite(self.control_mean):
            return math.nan
        return self.mean / abs(self.control_mean)


def paired(variant: Sequence[float], control: Sequence[float]) -> Paired:
    """The paired mean difference with a 95% t interval (NaN bounds below 2 pairs)."""
    if len(variant) != len(control):
        raise ValueError("paired samples must have the same length (one value per seed)")
    pairs = [
        (float(v), float(c))
        for v, c in zip(variant, control, strict=True)
        if math.isfinite(float(v)) and math.isfinite(float(c))
    ]
    n = len(pairs)
    if n == 0:
        return Paired(math.nan, math.nan, math.nan, 0, math.nan)
    diffs = [v - c for v, c in pairs]
    mean = math.fsum(diffs) / n
    control_mean = math.fsum(c for _, c in pairs) / n
    if n < 2:
        return Paired(mean, math.nan, math.nan, 1, control_mean)
    variance = math.fsum((d - mean) ** 2 for d in diffs) / (n - 1)
    half = t975(n - 1) * math.sqrt(variance / n)
    return Paired(mean, mean - half, mean + half, n, control_mean)
