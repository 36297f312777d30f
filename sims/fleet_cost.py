"""What a fleet costs a month: its accounts' fees plus the usage its simulations billed.

One definition for the capacity report and for the search of the cheapest mix
(:mod:`sims.mix`), so that the mix the search picks is the one the report prices lowest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from sims.scenario import Scenario
    from sims.sizing import Point

#: The interviews of a level are a day's; a month is this many such days.
DAYS_PER_MONTH = 30


@attrs.frozen
class MonthlyCost:
    """A fleet's month: usage (tokens and powered hours, as simulated) and fees."""

    usage: float
    fees: float

    @property
    def total(self) -> float:
        return self.usage + self.fees


def fee_table(scenario: Scenario) -> dict[str, float]:
    """Each account group's monthly fee per account (its profile's, or the scenario's)."""
    return {
        group.prefix: attrs.evolve(group, count=1).specs()[0].monthly_fee
        for group in scenario.accounts
    }


def monthly_fees(fees: Mapping[str, float], counts: Mapping[str, int]) -> float:
    """The fees of ``counts`` accounts per group: known before any simulation runs."""
    return sum(fees[group] * count for group, count in counts.items())


def monthly_cost(fees: Mapping[str, float], point: Point, seeds: int | None = None) -> MonthlyCost:
    """The fleet's fees, plus its mean usage cost per interview over its first ``seeds``
    seeds (default: all it ran), for the level's interviews every day of a month."""
    runs = point.runs[:seeds]
    per_interview = sum(run.summary["cost_per_interview"] for run in runs) / len(runs)
    usage = per_interview * point.interviews * DAYS_PER_MONTH
    return MonthlyCost(usage, monthly_fees(fees, point.counts))
