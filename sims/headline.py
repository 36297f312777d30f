"""The default run's headline: one back-of-envelope claim, read two ways, side by side.

The claim behind ``interview-day`` ("2 accounts at ~1,000 requests/hour each, 17
requests per interview, 80% served from cache: 500 concurrent interviews fit at 85%
capacity") is true under its own premises and false under a burst, and a reader needs
both. Each :class:`Reading` is a built-in scenario run as it is; this module judges each
run against the sizing SLOs and works out the figures the headline compares, all from
the run's own results and scenario, and what each reading takes to meet the SLOs: the
fleet ``callboard size`` recommends for it (:func:`fleet_needed`). Reports only word them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from sims.results import Results, round_floats
from sims.scenario import Scenario
from sims.slo import DEFAULT_SLOS, Slo
from sims.workload import WorkloadConfig

CLAIM = (
    "2 accounts at ~1,000 requests/hour each, 17 requests per interview, 80% served from "
    "cache: 500 concurrent interviews fit at 85% capacity"
)


@attrs.frozen
class Reading:
    """One way to read the claim: a label and the built-in scenario that plays it."""

    label: str
    scenario: str


#: The claim under its own premises first, then under the burst.
READINGS = (
    Reading("as claimed", "interview-day-as-claimed"),
    Reading("all at once", "interview-day"),
)


def start_spread(workload: WorkloadConfig) -> float:
    """Seconds over which the interviews are meant to start (their arrival window)."""
    match workload.arrival:
        case "all_at_once":
            return 0.0
        case "uniform" | "ramp":
            return workload.window
        case "poisson":
            return workload.interviews / workload.rate_per_minute * 60.0
        case _:
            return 24 * 3600.0


def request_capacity(scenario: Scenario) -> float:
    """Requests per second the fleet's request limits admit over time: each account's
    tightest ``requests`` limit, summed; nan if an account has none (no such bound)."""
    total = 0.0
    for spec in scenario.account_specs():
        rates = [limit.limit / limit.per for limit in spec.limits if limit.unit == "requests"]
        if not rates:
            return math.nan
        total += min(rates)
    return total


def limit_share(scenario: Scenario, results: Results) -> float:
    """The share of the fleet's request limits the run used: calls the accounts took over
    what their limits admit in the run's simulated time."""
    calls = sum(row.calls for row in results.providers)
    admitted = request_capacity(scenario) * results.summary.simulated_s
    return calls / admitted if admitted > 0 else math.nan


def fleet_needed(
    scenario_ref: str,
    interviews: int,
    overrides: Sequence[str] = (),
    seed: int | None = None,
    on_simulation: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """What it takes for a reading to meet the sizing SLOs: the smallest fleet of its
    first account group that ``callboard size`` shows to meet them (default rule and
    held-out check), or None when none in that group's default range does."""
    from sims.sizing import size

    slos = [Slo.parse(text) for text in DEFAULT_SLOS]
    sizing = size(
        scenario_ref, [interviews], slos, overrides=overrides, seed=seed,
        on_simulation=on_simulation,
    )  # fmt: skip
    [level] = sizing.levels
    [searched] = sizing.ranges
    chosen = level.recommended
    return {
        "group": searched.group,
        "range": [searched.low, searched.high],
        "accounts": None if chosen is None else chosen.counts[searched.group],
        "confidence": sizing.rule.confidence,
        "seeds_run": 0 if chosen is None else len(chosen.runs),
        "fresh_seeds": len(level.holdout),
        "fresh_met": level.holdout_met(slos),
    }


def reading_figures(
    reading: Reading,
    scenario: Scenario,
    results: Results,
    slos: list[Slo],
    needed: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What the headline says about one reading, as plain data (``needed``: what
    :func:`fleet_needed` found for it, if it ran)."""
    summary = results.summary
    judged_on = {"slo_metrics": attrs.asdict(summary.slo_metrics)}  # as sims.slo reads it
    plan = scenario.workload.turn_plan
    judged = [
        {
            "slo": slo.text,
            "value": slo.value(judged_on),
            "met": slo.met(judged_on),
            "seconds": slo.is_latency,
        }
        for slo in slos
    ]
    return {
        "label": reading.label,
        "scenario": scenario.name,
        "seed": scenario.seed,
        "description": " ".join(scenario.description.split()),
        "interviews": scenario.workload.interviews,
        "accounts": len(scenario.account_specs()),
        "start_spread_s": start_spread(scenario.workload),
        "question_share": plan.count("question") / len(plan),
        "success": summary.success_rate,
        "provider_p95": summary.slo_metrics.provider_p95,
        "answer_p95": summary.slo_metrics.answer_p95,
        "cache_hit_rate": summary.cache_hit_rate,
        "limit_share": limit_share(scenario, results),
        "slos": judged,
        "meets_slos": all(item["met"] for item in judged),
        "needed": needed,
    }


@attrs.frozen
class Headline:
    """The claim, the SLOs it is judged on, and one entry per reading."""

    claim: str
    slos: tuple[str, ...]
    readings: tuple[dict[str, Any], ...]

    def to_json(self) -> str:
        return json.dumps(round_floats(attrs.asdict(self)), sort_keys=True, indent=1) + "\n"


def judge(
    runs: list[tuple[Reading, Scenario, Results]],
    slos: list[Slo] | None = None,
    needed: Sequence[dict[str, Any] | None] | None = None,
) -> Headline:
    """The headline of the readings' runs, judged on ``slos`` (default: sizing's), with
    what :func:`fleet_needed` found for each, if it ran."""
    slos = slos if slos is not None else [Slo.parse(text) for text in DEFAULT_SLOS]
    needed = needed if needed is not None else [None] * len(runs)
    return Headline(
        CLAIM,
        tuple(slo.text for slo in slos),
        tuple(
            reading_figures(r, scenario, results, slos, fleet)
            for (r, scenario, results), fleet in zip(runs, needed, strict=True)
        ),
    )
