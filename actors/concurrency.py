"""Adaptive concurrency: a provider's in-flight limit follows its latency (AIMD).

Every ``window`` calls that held a slot, the limiter compares their mean service
time (slot held to answer, queueing left out) with the provider's baseline. Above
``tolerance`` x baseline the provider is congested or degraded: the limit is
multiplied by ``backoff`` (down to ``min_limit``), so fewer calls pile onto it and
the rest go elsewhere (a full account is one the router fails over from, and the
weighted policy counts load against the current limit; an account at its limit
with no queue room is skipped like a rate-limited one). Otherwise the limit grows
back by ``max(1, sqrt(limit))`` up to the account's ``max_concurrency``.

The baseline follows healthy windows with weight ``baseline_alpha`` and congested
ones ten times more slowly, so a spike does not become the new normal but a
lasting slow-down eventually does. Off unless ``adaptive``.
"""

from __future__ import annotations

import math

import attrs

from actors.runtime.errors import require
from actors.slots import Slots


def _check(field: str, ok: bool, value: object, allowed: str) -> None:
    require(f"concurrency.{field}", ok, value, allowed)


@attrs.frozen
class ConcurrencyConfig:
    adaptive: bool = False
    min_limit: int = 1
    window: int = 20
    tolerance: float = 2.0
    backoff: float = 0.5
    baseline_alpha: float = 0.1

    def __attrs_post_init__(self) -> None:
        _check("min_limit", self.min_limit >= 1, self.min_limit, ">= 1 calls")
        _check("window", self.window >= 1, self.window, ">= 1 calls")
        _check("tolerance", 1 < self.tolerance < math.inf, self.tolerance, "> 1 (x baseline)")
        _check("backoff", 0 < self.backoff < 1, self.backoff, "a factor in (0, 1)")
        _check("baseline_alpha", 0 < self.baseline_alpha <= 1, self.baseline_alpha, "in (0, 1]")


class AdaptiveLimit:
    """One provider's limit; it resizes the provider's slots as it moves."""

    __slots__ = ("_n", "_sum", "baseline", "ceiling", "config", "decreases", "limit", "lowest")

    def __init__(self, config: ConcurrencyConfig, ceiling: int) -> None:
        self.config = config
        self.ceiling = ceiling
        self.limit = float(ceiling)
        self.lowest = ceiling
        self.baseline = math.nan
        self.decreases = 0
        self._sum = 0.0
        self._n = 0

    def observe(self, service_time: float, slots: Slots) -> None:
        """Count one call that held a slot (answered, or timed out holding it)."""
        self._sum += service_time
        self._n += 1
        cfg = self.config
        if self._n < cfg.window:
            return
        mean = self._sum / self._n
        self._sum, self._n = 0.0, 0
        base = self.baseline
        if base != base:
            self.baseline = mean
            return
        if mean > cfg.tolerance * base:
            self.limit = max(float(min(cfg.min_limit, self.ceiling)), self.limit * cfg.backoff)
            self.decreases += 1
            self.baseline = base + cfg.baseline_alpha / 10 * (mean - base)
        else:
            self.limit = min(float(self.ceiling), self.limit + max(1.0, math.sqrt(self.limit)))
            self.baseline = base + cfg.baseline_alpha * (mean - base)
        current = max(1, int(self.limit))
        self.lowest = min(self.lowest, current)
        if current != slots.capacity:
            slots.resize(current)
