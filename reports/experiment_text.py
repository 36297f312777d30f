"""An experiment's figures in words: differences with their unit and sign, intervals,
and the verdict's sentence."""

from __future__ import annotations

import math
from typing import Any

from reports import summary
from sims.experiment import METRICS, Metric
from sims.experiment_data import ALL_METRICS, as_number


def amount(metric: Metric, value: float) -> str:
    """A difference's size, without its sign, in the metric's unit."""
    size = abs(value)
    if not math.isfinite(size):
        return "n/a"
    if metric.unit == "share":
        return f"{size * 100:.2f} percentage points"
    if metric.unit == "seconds":
        return summary.seconds(size)
    if metric.unit == "money":
        return summary.money(size)
    return f"{size:,.1f}"


def _direction(metric: Metric, value: float) -> str:
    if metric.unit == "count":
        return "fewer" if value < 0 else "more"
    return "lower" if value < 0 else "higher"


def signed(metric: Metric, value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    if value == 0:
        return "0"
    sign = "+" if value > 0 else "-"
    if metric.unit == "share":
        return f"{sign}{abs(value) * 100:.2f} pt"
    return f"{sign}{amount(metric, value)}"


def interval(metric: Metric, d: dict[str, Any], words: bool = False) -> str:
    """The 95% interval; with ``words``, one-sided ones read "1.2 s to 3.4 s lower"."""
    low, high = as_number(d["low"]), as_number(d["high"])
    if not (math.isfinite(low) and math.isfinite(high)):
        return "no interval (one seed)"
    if words and high < 0:
        return f"95% CI {amount(metric, high)} to {amount(metric, low)} {_direction(metric, -1)}"
    if words and low > 0:
        return f"95% CI {amount(metric, low)} to {amount(metric, high)} {_direction(metric, 1)}"
    return f"95% CI {signed(metric, low)} to {signed(metric, high)}"


def verdict_words(data: dict[str, Any]) -> dict[str, Any]:
    """The verdict's sentence, and each trade-off as "label +difference (worse)"."""
    verdict = data["verdict"]
    judge = verdict["judge"]
    metric = METRICS[judge]
    control = data["variants"][0]["name"]
    seeds = len(data["meta"]["seeds"])
    d = verdict["difference"]
    name = (
        verdict["against"] if verdict["best_on_average"] == control else verdict["best_on_average"]
    )
    if verdict["best_on_average"] == control:
        if verdict["significant"]:
            sentence = (
                f"{control} (the control) won on {metric.label}: the best alternative, {name}, "
                f"had {amount(metric, d['mean'])} {_direction(metric, d['mean'])} "
                f"{metric.label} ({interval(metric, d, True)}, paired over {seeds} seeds)."
            )
        else:
            sentence = (
                f"No variant beat {control} (the control) on {metric.label}: the closest, "
                f"{name}, differs by {signed(metric, d['mean'])}, within noise "
                f"({interval(metric, d)}, paired over {seeds} seeds)."
            )
        return {"sentence": sentence, "tradeoffs": []}
    relative = as_number(d["relative"])
    share = f"{relative * 100:+.0f}%; " if math.isfinite(relative) else ""
    if verdict["significant"]:
        sentence = (
            f"{name} won: {metric.label} {amount(metric, d['mean'])} "
            f"{_direction(metric, d['mean'])} than {control} "
            f"({share}{interval(metric, d, True)}, paired over {seeds} seeds)."
        )
    else:
        sentence = (
            f"No clear winner on {metric.label}: {name} was {amount(metric, d['mean'])} "
            f"{_direction(metric, d['mean'])} than {control} on average, but within noise "
            f"({interval(metric, d)}, paired over {seeds} seeds)."
        )
    index = [v["name"] for v in data["variants"]].index(name)
    tradeoffs = []
    for key in verdict["tradeoffs"]:
        other = ALL_METRICS[key]
        od = data["differences"][index - 1]["metrics"][key]
        worse = (float(od["mean"]) < 0) == other.higher_is_better
        tradeoffs.append(
            f"{other.label} {signed(other, float(od['mean']))}"
            + (" (worse)" if worse and other in METRICS.values() else "")
        )
    return {"sentence": sentence, "tradeoffs": tradeoffs}
