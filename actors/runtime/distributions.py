"""Latency and size distributions used by virtual providers and workloads."""

from __future__ import annotations

import bisect
import itertools
import math

import attrs

from actors.runtime.randomness import RandomStream


def _non_negative(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name} must be a finite number >= 0, "
            f"got {value!r}"
        )


@attrs.frozen
class Constant:
    value: float = attrs.field(validator=_non_negative)

    def sample(self, stream: RandomStream) -> float:
        return self.value

    @property
    def mean(self) -> float:
        return self.value


@attrs.frozen
class Exponential:
    mean: float = attrs.field(validator=_non_negative)

    def sample(self, stream: RandomStream) -> float:
        return self.mean * stream.standard_exponential()


@attrs.frozen
class LogNormal:
    """exp(N(mu, sigma)); ``median = exp(mu)``."""

    mu: float
    sigma: float = attrs.field(validator=_non_negative)

    def sample(self, stream: RandomStream) -> float:
        return math.exp(self.mu + self.sigma * stream.standard_normal())

    @property
    def mean(self) -> float:
        return math.exp(self.mu + self.sigma**2 / 2)

    @classmethod
    def from_median_p95(cls, median: float, p95: float) -> LogNormal:
        """Fit from two published percentiles (how provider latency is usually quoted)."""
        if not 0 < median < p95:
            raise ValueError(f"need 0 < median < p95, got median={median!r} p95={p95!r}")
        return cls(mu=math.log(median), sigma=math.log(p95 / median) / 1.6448536269514722)


@attrs.frozen
class Empirical:
    """Inverse-CDF sampling from measured percentiles, linear between them.

    ``points`` are (percentile in [0, 100], value) pairs; 0 and 100 are required
    so that every draw is bounded by what was measured.
    """

    points: tuple[tuple[float, float], ...] = attrs.field(converter=lambda p: tuple(map(tuple, p)))

    def __attrs_post_init__(self) -> None:
        ps = [p for p, _ in self.points]
        vs = [v for _, v in self.points]
        if len(ps) < 2 or ps[0] != 0 or ps[-1] != 100:
            raise ValueError(
                f"Empirical.points must start at percentile 0 and end at 100, got {ps}"
            )
        if any(b <= a for a, b in itertools.pairwise(ps)):
            raise ValueError(f"Empirical.points percentiles must increase strictly, got {ps}")
        if any(b < a for a, b in itertools.pairwise(vs)) or vs[0] < 0:
            raise ValueError(f"Empirical.points values must be >= 0 and ascending, got {vs}")

    def sample(self, stream: RandomStream) -> float:
        q = stream.uniform() * 100.0
        ps = [p for p, _ in self.points]
        i = max(1, bisect.bisect_right(ps, q))
        (p0, v0), (p1, v1) = self.points[i - 1], self.points[i]
        return v0 + (v1 - v0) * (q - p0) / (p1 - p0)

    @property
    def mean(self) -> float:
        # Mean of a piecewise-linear inverse CDF: trapezoids.
        return sum(
            (p1 - p0) / 100.0 * (v0 + v1) / 2
            for (p0, v0), (p1, v1) in zip(self.points, self.points[1:], strict=False)
        )


DistributionSpec = Constant | Exponential | LogNormal | Empirical
