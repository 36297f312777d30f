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

# Two-sided 95% quantiles of Student's t, t(0.975, df), for df = 1 .. 30.
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip
_Z975 = 1.959963984540054


def t975(df: int) -> float:
    """Student's t quantile at 0.975 for ``df`` degrees of freedom (to 4 decimals)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    # Cornish-Fisher expansion around the normal quantile; exact to 1e-5 beyond df 30.
    z, v = _Z975, float(df)
    return (
        z
        + (z**3 + z) / (4 * v)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
    )


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
