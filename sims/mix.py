"""The cheapest mix of account kinds that meets the SLOs at one level (``callboard size --mix``).

Each kind given with ``--accounts`` is a dimension of its own. More accounts never hurt,
so for fixed counts of every kind but the last, the fewest of the last kind that meets
the SLOs can only fall as any other count grows. The search walks the grid of the other
kinds from the top down and, in each cell, looks for the fewest of the last kind upward
from the largest answer of the cells one account above it: a staircase along the frontier
of smallest fleets, each cell a few probes. A cell whose fees at that lower bound already
exceed the cheapest passing fleet found is skipped (fees only grow with counts, and usage
is never negative).

Probes run on one seed, as in :class:`sims.sizing._Search`; the cheapest fleet found (fees
plus the usage billed on that first seed, the same day for every fleet:
:mod:`sims.fleet_cost`) then runs more seeds until the
confidence rule's verdict is clear. If it fails, the walk runs again knowing so (visited
fleets are memoised: only new ones simulate), until the cheapest fleet standing is shown
to meet the SLOs, or none is left. The search trusts that a larger fleet never costs less
to run than the smallest one beside it on the frontier; the report lists every passing
fleet it visited by cost, so a cheaper one off the frontier would show.

Every probe round is a fixed two fleets and every decision depends only on the verdicts,
which depend only on (scenario, level, fleet, seed): the same answer on any number of
workers.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sims.confidence import MET, OPEN
from sims.fleet_cost import fee_table, monthly_cost, monthly_fees
from sims.sizing import PROBES_PER_ROUND, LevelAnswer, Point, Sizer

#: A fleet as the counts of the kinds being mixed, in the order they were given.
Mix = tuple[int, ...]


def passing(point: Point) -> bool:
    """Met the SLOs on every seed it ran, and not ruled unclear: a fleet still in the race."""
    return point.verdict in (OPEN, MET)


class MixSearch:
    """The cheapest mix of the sizer's kinds that the rule shows to meet the SLOs at a level."""

    def __init__(self, sizer: Sizer, interviews: int) -> None:
        self.sizer = sizer
        self.interviews = interviews
        self.kinds = [r.group for r in sizer.ranges]
        self.fees = fee_table(sizer.scenario)
        #: Groups not being mixed keep their count: a mix of nothing still has accounts.
        self.fixed = any(g.prefix not in self.kinds for g in sizer.scenario.accounts)
        self.points: dict[Mix, Point] = {}

    def counts(self, mix: Mix) -> dict[str, int]:
        return dict(zip(self.kinds, mix, strict=True))

    def cost(self, point: Point) -> float:
        """The month's cost on the level's first seed: every fleet visited ran that same day,
        so fleets compare like with like, whatever more seeds some ran."""
        return monthly_cost(self.fees, point, seeds=1).total

    def probe(self, mixes: list[Mix]) -> None:
        """Probe these mixes on their first seed, at once (those not probed before)."""
        fresh = sorted(set(mixes) - set(self.points))
        if not fresh:
            return
        with ThreadPoolExecutor(max_workers=len(fresh)) as probes:
            found = probes.map(
                lambda mix: self.sizer.evaluate_counts(
                    self.interviews, self.counts(mix), confirm=False
                ),
                fresh,
            )
            self.points.update(zip(fresh, found, strict=True))

    def _bracket(self, line: Callable[[int], Mix], low: int, high: int) -> tuple[int, int | None]:
        """Along ``line`` in [low, high]: the smallest count known to pass (None if none),
        and one above the largest known to fail below it."""
        known = [(k, self.points[line(k)]) for k in range(low, high + 1) if line(k) in self.points]
        ok = min((k for k, p in known if passing(p)), default=None)
        failed = [k for k, p in known if not passing(p) and (ok is None or k < ok)]
        return (max(failed) + 1 if failed else low), ok

    def smallest(self, line: Callable[[int], Mix], low: int, high: int) -> int | None:
        """The fewest along ``line`` in [low, high] that the probes show passing, None if
        none: gallop upward from ``low`` (usually the answer is close above it), then
        bisect what is left, :data:`PROBES_PER_ROUND` fleets a round."""
        reach = 0
        while True:
            low, ok = self._bracket(line, low, high)
            if ok is None:
                if low > high:
                    return None
                batch = {min(low + 2 ** (reach + i) - 1, high) for i in range(PROBES_PER_ROUND)}
                reach += PROBES_PER_ROUND
            elif low == ok:
                return ok
            else:
                parts = min(PROBES_PER_ROUND, ok - low)
                batch = {low + (ok - low) * i // (parts + 1) for i in range(1, parts + 1)}
            self.probe([line(k) for k in sorted(batch)])

    def cheapest(self) -> Point | None:
        """The passing fleet that costs least a month (ties: fewer accounts, then the mix)."""
        standing = [(m, p) for m, p in self.points.items() if passing(p)]
        if not standing:
            return None
        return min(standing, key=lambda item: (self.cost(item[1]), item[1].accounts, item[0]))[1]

    def walk(self) -> None:
        """The staircase: for every count of the other kinds, the fewest of the last."""
        *others, last = self.sizer.ranges
        #: Per cell of the other kinds: the fewest of the last kind it needs (or a lower
        #: bound, for a cell skipped on cost); None when even the top of its range fails.
        need: dict[Mix, int | None] = {}
        cells = itertools.product(*(range(r.high, r.low - 1, -1) for r in others))
        for cell in cells:  # every cell after the cells one account above it
            above = [
                (*cell[:i], cell[i] + 1, *cell[i + 1 :])
                for i, r in enumerate(others)
                if cell[i] < r.high
            ]
            if any(need[a] is None for a in above):
                need[cell] = None
                continue
            empty = not self.fixed and not any(cell)
            low = max([last.low, 1 if empty else 0, *(need[a] or 0 for a in above)])
            best = self.cheapest()
            fees = monthly_fees(self.fees, self.counts((*cell, low)))
            if low <= last.high and best is not None and fees >= self.cost(best):
                need[cell] = low  # no mix of this cell can be cheaper
                continue
            need[cell] = self.smallest(functools.partial(_extend, cell), low, last.high)

    def single(self, index: int) -> Point | None:
        """The smallest fleet of one kind alone (the other kinds at 0) shown to meet the SLOs."""
        r = self.sizer.ranges[index]
        zeros = [0] * len(self.kinds)

        def line(n: int) -> Mix:
            return tuple(n if i == index else z for i, z in enumerate(zeros))

        while (found := self.smallest(line, max(r.low, 1), r.high)) is not None:
            if self.confirm(line(found)).passed:
                return self.points[line(found)]
        return None

    def confirm(self, mix: Mix) -> Point:
        """Run the fleet on more seeds until the rule's verdict is clear."""
        point = self.points[mix]
        if point.verdict == OPEN:
            point = self.sizer.evaluate_counts(self.interviews, point.counts, earlier=point)
            self.points[mix] = point
        return point

    def run(self) -> LevelAnswer:
        while True:
            self.walk()
            best = self.cheapest()
            if best is None or best.passed:
                break
            self.confirm(tuple(best.counts[k] for k in self.kinds))
        singles = {kind: self.single(i) for i, kind in enumerate(self.kinds)}
        ordered = [self.points[m] for m in sorted(self.points)]
        monotone = _monotone(ordered)
        return LevelAnswer(self.interviews, best, tuple(ordered), monotone, singles=singles)


def _extend(cell: Mix, last: int) -> Mix:
    return (*cell, last)


def _monotone(points: list[Point]) -> bool:
    """No fleet missed where a fleet with no more of any kind passed: what the walk trusts."""
    return not any(
        small.viable
        and not big.viable
        and small is not big
        and all(small.counts[k] <= big.counts[k] for k in small.counts)
        for small in points
        for big in points
    )
