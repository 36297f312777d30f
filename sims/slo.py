"""Service-level objectives: ``p95<=3s``, ``success>=99.9%``, parsed and judged."""

from __future__ import annotations

import math
import re
from typing import Any

import attrs

from actors.runtime.errors import InvalidSetting

# SLO metric -> (summary key, unit); latency metrics are in seconds, shares in [0, 1].
METRICS: dict[str, tuple[str, str]] = {
    "p50": ("p50", "s"),
    "p95": ("p95", "s"),
    "p99": ("p99", "s"),
    "upstream_p95": ("upstream_p95", "s"),
    "upstream_p99": ("upstream_p99", "s"),
    "ttft_p50": ("ttft_p50", "s"),
    "ttft_p95": ("ttft_p95", "s"),
    "success": ("success_rate", "%"),
    "interviews_without_error": ("interviews_without_error", "%"),
}

_FORM = re.compile(r"^\s*([a-z_0-9]+)\s*(<=|>=)\s*([0-9.]+)\s*(ms|s|%)?\s*$")


@attrs.frozen
class Slo:
    metric: str
    op: str
    target: float
    text: str

    @classmethod
    def parse(cls, text: str) -> Slo:
        match = _FORM.match(text)
        allowed = f"METRIC<=VALUE or METRIC>=VALUE; metrics: {', '.join(METRICS)}"
        if not match:
            raise InvalidSetting("slo", text, allowed + ", e.g. p95<=3s or success>=99.9%")
        metric, op, number, unit = match.groups()
        if metric not in METRICS:
            raise InvalidSetting("slo", text, allowed)
        value = float(number)
        kind = METRICS[metric][1]
        if kind == "s":
            if unit not in (None, "s", "ms"):
                raise InvalidSetting("slo", text, f"{metric} takes seconds (s) or ms")
            value = value / 1000 if unit == "ms" else value
        else:
            if unit == "%":
                value /= 100
            if not 0 <= value <= 1:
                raise InvalidSetting("slo", text, f"{metric} is a share: 0..100% or 0..1")
        return cls(metric, op, value, text.strip())

    def value(self, summary: dict[str, Any]) -> float:
        raw = summary.get(METRICS[self.metric][0], math.nan)
        try:
            return float(raw)
        except (TypeError, ValueError):
            return math.nan

    def met(self, summary: dict[str, Any]) -> bool:
        """Whether one run's summary meets the objective (no data never does)."""
        value = self.value(summary)
        if not math.isfinite(value):
            return False
        return value <= self.target if self.op == "<=" else value >= self.target

    @property
    def is_latency(self) -> bool:
        return METRICS[self.metric][1] == "s"


DEFAULT_SLOS = ("p95<=5s", "success>=99.5%")
