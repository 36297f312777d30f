"""Capacity planning: the smallest fleet that meets every SLO, per concurrency level.

For each level the search bisects over fleet size (the account groups being
sized grow together along their ranges), which assumes that more accounts never
make things worse. A fleet passes only if every seed meets every SLO, so one
failing seed settles it: the bisection probes fleets on one seed, and only the
fleet it would recommend runs the others (:class:`_Search`). Simulations run in
separate processes over the machine's cores, or on a Dask cluster
(:class:`sims.pool.Pool`). Each point depends only on (scenario, level, fleet,
seed), so the same inputs give the same answer however and wherever the work is
scheduled.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

import attrs

from actors.runtime.errors import InvalidSetting
from sims.pool import Pool
from sims.scenario import Scenario, ScenarioError, load, structure
from sims.slo import Slo

_RANGE = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*=\s*(\d+)\s*\.\.\s*(\d+)\s*$")


@attrs.frozen
class AccountRange:
    """How many accounts of one group of the scenario to consider: ``group=LOW..HIGH``."""

    group: str
    low: int
    high: int

    @classmethod
    def parse(cls, text: str) -> AccountRange:
        match = _RANGE.match(text)
        if not match:
            raise InvalidSetting("accounts", text, "GROUP=MIN..MAX, e.g. huggingface=1..64")
        group, low, high = match.group(1), int(match.group(2)), int(match.group(3))
        if not 1 <= low <= high:
            raise InvalidSetting("accounts", text, "1 <= MIN <= MAX")
        return cls(group, low, high)


@attrs.frozen
class Run:
    """What one seeded simulation of a point found (compact, picklable)."""

    seed: int
    summary: dict[str, Any]
    groups: dict[str, dict[str, Any]]


@attrs.frozen
class Point:
    """A fleet at a level, on the seeds it ran: a probe ran one, the answer every one.

    ``passed``: every seed it ran met every SLO (a failed point stops at its first
    failing seed, in seed order).
    """

    interviews: int
    counts: dict[str, int]
    runs: tuple[Run, ...]
    passed: bool

    @property
    def accounts(self) -> int:
        return sum(self.counts.values())

    def seeds_passing(self, slos: Sequence[Slo]) -> int:
        return sum(all(slo.met(run.summary) for slo in slos) for run in self.runs)


@attrs.frozen
class LevelAnswer:
    interviews: int
    recommended: Point | None
    points: tuple[Point, ...]
    monotone: bool


@attrs.frozen
class Sizing:
    scenario: Scenario
    slos: tuple[Slo, ...]
    ranges: tuple[AccountRange, ...]
    replications: int
    levels: tuple[LevelAnswer, ...]

    @property
    def confidence(self) -> float:
        """Lower bound, at 95% confidence, on the share of seeds that would meet the SLOs.

        A recommendation met the SLOs on all K seeds; with zero failures in K
        trials the one-sided 95% Clopper-Pearson bound is 0.05 ** (1 / K).
        """
        return 0.05 ** (1.0 / self.replications)


def _counts_at(step: int, ranges: Sequence[AccountRange], steps: int) -> dict[str, int]:
    """Account counts at ``step`` of ``steps``: every group moves along its range together."""
    if steps == 0:
        return {r.group: r.low for r in ranges}
    return {r.group: r.low + math.ceil(step * (r.high - r.low) / steps) for r in ranges}


def _overrides_for(scenario: Scenario, interviews: int, counts: dict[str, int]) -> list[str]:
    prefixes = [group.prefix for group in scenario.accounts]
    overrides = [f"workload.interviews={interviews}"]
    for group, count in counts.items():
        overrides.append(f"accounts.{prefixes.index(group)}.count={count}")
    return overrides


def simulate_point(raw: dict[str, Any], source: str, overrides: list[str], seed: int) -> Run:
    """One seeded simulation, reduced to what sizing and its report need."""
    from engine.routing.config import apply_override
    from sims.results import summarise
    from sims.runner import simulate

    raw = copy.deepcopy(raw)
    for assignment in overrides:
        apply_override(raw, assignment, ScenarioError)
    raw["seed"] = seed
    scenario = structure(raw, source)
    results = summarise(simulate(scenario))
    groups: dict[str, dict[str, Any]] = {}
    for group in scenario.accounts:
        names = {spec.name for spec in group.specs()}
        rows = [row for row in results.providers if row["name"] in names]
        held: dict[str, int] = {}
        for row in rows:
            for limit, count in row["held_back"].items():
                held[limit] = held.get(limit, 0) + count
        groups[group.prefix] = {
            "accounts": len(rows),
            "utilisation": sum(r["utilisation"] for r in rows) / max(1, len(rows)),
            "peak_utilisation": max((r["utilisation"] for r in rows), default=0.0),
            "held_back": held,
            "cost": sum(r["cost"] for r in rows),
            "calls": sum(r["calls"] for r in rows),
        }
    keep = (
        "requests",
        "success_rate",
        "p50",
        "p95",
        "p99",
        "upstream_p95",
        "upstream_p99",
        "ttft_p50",
        "ttft_p95",
        "cache_hit_rate",
        "cost_total",
        "cost_per_interview",
        "interviews_without_error",
        "slo_metrics",
        "rate_limited",
        "held_back_by_limits",
        "simulated_s",
    )
    return Run(seed, {k: results.summary[k] for k in keep}, groups)


class _Search:
    """The search for one level: bisection on one seed per fleet, then the answer confirmed.

    A fleet that misses an SLO on one seed has failed whatever its other seeds do, so the
    bisection probes each fleet it visits with the first seed only; the remaining seeds
    run only on the fleet it would recommend. If that one misses an SLO on a later seed
    it has failed, and the search goes on above it. So the answer met every SLO on every
    seed and the fleet below it failed, as with every seed everywhere, for a fraction
    of the simulations. Points are memoised and shared with the report.
    """

    def __init__(self, sizer: Sizer, interviews: int) -> None:
        self.sizer = sizer
        self.interviews = interviews
        self.points: dict[int, Point] = {}

    def probe(self, step: int) -> Point:
        if step not in self.points:
            self.points[step] = self.sizer.evaluate(self.interviews, step, seeds=1)
        return self.points[step]

    def confirm(self, step: int) -> Point:
        point = self.points[step]
        if point.passed and len(point.runs) < self.sizer.replications:
            point = self.sizer.evaluate(self.interviews, step, earlier=point)
            self.points[step] = point
        return point

    def run(self) -> LevelAnswer:
        steps = self.sizer.steps
        if not self.probe(steps).passed:
            return self._answer(None)
        low, high = 0, steps  # high: the smallest step whose seeds so far all passed
        while True:
            while low < high:
                mid = (low + high) // 2
                if self.probe(mid).passed:
                    high = mid
                else:
                    low = mid + 1
            if self.confirm(high).passed:
                return self._answer(self.points[high])
            above = [k for k, p in self.points.items() if k > high and p.passed]
            if not above:
                return self._answer(None)
            low, high = high + 1, min(above)

    def _answer(self, recommended: Point | None) -> LevelAnswer:
        ordered = [self.points[k] for k in sorted(self.points)]
        # Bisection trusts that more accounts never hurt; say so when the data disagree.
        monotone = all(not (a.passed and not b.passed) for a, b in itertools.pairwise(ordered))
        return LevelAnswer(self.interviews, recommended, tuple(ordered), monotone)


def check_inputs(
    scenario: Scenario, slos: Sequence[Slo], ranges: Sequence[AccountRange], replications: int
) -> None:
    """Refuse what cannot be sized, naming the setting, before any simulation starts."""
    if replications < 1:
        raise InvalidSetting("replications", replications, ">= 1")
    if not slos:
        raise InvalidSetting("slo", [], "at least one SLO")
    prefixes = [group.prefix for group in scenario.accounts]
    for account_range in ranges:
        if account_range.group not in prefixes:
            raise InvalidSetting("accounts", account_range.group, " | ".join(prefixes))


class Sizer:
    def __init__(
        self,
        scenario: Scenario,
        raw: dict[str, Any],
        source: str,
        slos: Sequence[Slo],
        ranges: Sequence[AccountRange],
        replications: int,
        executor: Executor,
        on_simulation: Callable[[], None] | None = None,
        on_point: Callable[[Point], None] | None = None,
    ) -> None:
        check_inputs(scenario, slos, ranges, replications)
        self.scenario = scenario
        self.raw = raw
        self.source = source
        self.slos = tuple(slos)
        self.ranges = tuple(ranges)
        self.replications = replications
        self.executor = executor
        self.steps = max(r.high - r.low for r in ranges)
        self._on_simulation = on_simulation
        self._on_point = on_point
        self._lock = threading.Lock()

    def meets(self, run: Run) -> bool:
        return all(slo.met(run.summary) for slo in self.slos)

    def evaluate(
        self, interviews: int, step: int, seeds: int | None = None, earlier: Point | None = None
    ) -> Point:
        """Simulate a fleet on its next ``seeds`` seeds (default: up to ``replications``).

        The seeds run in parallel but are read in seed order, and the first that misses
        an SLO ends the point (later ones are cancelled, or their results dropped), so
        what a point holds never depends on which simulation finished first.
        """
        counts = _counts_at(step, self.ranges, self.steps)
        overrides = _overrides_for(self.scenario, interviews, counts)
        runs = list(earlier.runs) if earlier is not None else []
        last = self.replications if seeds is None else min(self.replications, len(runs) + seeds)
        futures = [
            self.executor.submit(
                simulate_point, self.raw, self.source, overrides, self.scenario.seed + r
            )
            for r in range(len(runs), last)
        ]
        for index, future in enumerate(futures):
            run = future.result()
            runs.append(run)
            if self._on_simulation is not None:
                with self._lock:
                    self._on_simulation()
            if not self.meets(run):
                for later in futures[index + 1 :]:
                    later.cancel()
                break
        passed = all(self.meets(run) for run in runs)
        point = Point(interviews, counts, tuple(runs), passed)
        if self._on_point is not None:
            self._on_point(point)
        return point


def default_range(scenario: Scenario) -> AccountRange:
    group = scenario.accounts[0]
    return AccountRange(group.prefix, 1, max(64, 4 * group.count))


def size(
    scenario_ref: str,
    levels: Sequence[int],
    slos: Sequence[Slo],
    ranges: Sequence[AccountRange] = (),
    replications: int = 3,
    overrides: Sequence[str] = (),
    seed: int | None = None,
    workers: int | None = None,
    on_simulation: Callable[[], None] | None = None,
    cluster: str | None = None,
    on_point: Callable[[Point], None] | None = None,
    on_level: Callable[[LevelAnswer], None] | None = None,
) -> Sizing:
    """Find, for each number of interviews, the smallest fleet meeting every SLO.

    The simulations run on ``workers`` local processes (default: every core), or on
    the Dask scheduler at ``cluster`` (``tcp://HOST:PORT``): the same answer either way.
    ``on_simulation``, ``on_point`` and ``on_level`` are told of each simulation, fleet
    and level as it finishes (from several threads), for progress displays.
    """
    if not levels or any(level < 1 for level in levels):
        raise InvalidSetting("interviews", list(levels), "one or more counts >= 1")
    pool = Pool(workers=workers, cluster=cluster)
    scenario, raw = load(scenario_ref, overrides, seed=seed)
    ranges = tuple(ranges) or (default_range(scenario),)
    check_inputs(scenario, slos, ranges, replications)
    with pool.open() as executor:
        sizer = Sizer(
            scenario,
            raw,
            scenario_ref,
            slos,
            ranges,
            replications,
            executor,
            on_simulation,
            on_point,
        )

        def search(level: int) -> LevelAnswer:
            answer = _Search(sizer, level).run()
            if on_level is not None:
                on_level(answer)
            return answer

        # One thread drives each level's bisection; the executor's workers simulate.
        with ThreadPoolExecutor(max_workers=len(levels)) as drivers:
            answers = list(drivers.map(search, sorted(set(levels))))
    return Sizing(scenario, tuple(slos), ranges, replications, tuple(answers))


def expected_simulations(levels: int, ranges: Sequence[AccountRange], replications: int) -> int:
    """An estimate for a progress bar, per level: one seed on the top fleet and on each
    fleet the bisection visits, the other seeds on the answer."""
    steps = max(r.high - r.low for r in ranges)
    return levels * (1 + math.ceil(math.log2(max(1, steps))) + replications)
