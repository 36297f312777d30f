"""Service-level objectives: ``provider_p95<=3s``, ``success>=99.9%``, parsed and judged."""

from __future__ import annotations

import math
import re
from typing import Any

import attrs

from actors.runtime.errors import InvalidSetting

# SLO metric -> unit; each is read from ``summary["slo_metrics"]`` (sims.slo_metrics):
# latencies in seconds, with a failed request counted as missing the objective; shares
# in [0, 1].
METRICS: dict[str, str] = {
    **{f"{name}_p{q}": "s" for name in ("answer", "provider", "ttft") for q in (50, 95, 99)},
    "success": "%",
    "interviews_without_error": "%",
}
# Names an earlier version took, and what to write now.
RENAMED = {
    "p50": "answer_p50",
    "p95": "answer_p95 (every candidate-facing turn, cache hits included) or provider_p95",
    "p99": "answer_p99",
    "upstream_p95": "provider_p95",
    "upstream_p99": "provider_p99",
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
            example = (
                "; a latency in s or ms, a share in % or 0..1"
                ", e.g. provider_p95<=3s, provider_p95<=500ms or success>=99.9%"
            )
            raise InvalidSetting("slo", text, allowed + example)
        metric, op, number, unit = match.groups()
        if metric in RENAMED:
            raise InvalidSetting("slo", text, f"{metric} is now {RENAMED[metric]}; {allowed}")
        if metric not in METRICS:
            raise InvalidSetting("slo", text, allowed)
        value = float(number)
        kind = METRICS[metric]
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
        raw = (summary.get("slo_metrics") or {}).get(self.metric, math.nan)
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
        return METRICS[self.metric] == "s"


#: Sizing's default: what a provider fleet controls (cache hits are the cache's doing).
DEFAULT_SLOS = ("provider_p95<=5s", "success>=99.5%")
