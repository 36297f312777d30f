"""Capacity planning: the smallest fleet that meets every SLO, per concurrency level.

For each level the search bisects over fleet size (the account groups being sized grow
together along their ranges) to a resolution (1% of the fleet by default), which assumes
that more accounts never make things worse. One seed that misses an SLO rules a fleet
out, so the bisection probes fleets on one seed, and only the fleet it would recommend
runs more, until :class:`sims.confidence.Rule` calls its verdict clear
(:class:`_Search`); the answer is then checked on fresh seeds. With ``mix``, the groups
are independent kinds and each level's answer is the cheapest mix of them
(:mod:`sims.mix`), judged and checked alike. Simulations run in separate processes over
the machine's cores, or on a Dask cluster (:class:`sims.pool.Pool`). Each point depends
only on (scenario, level, fleet, seed), so the same inputs give the same answer however
and wherever the work is scheduled.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

import attrs

from actors.runtime.errors import InvalidSetting
from sims.confidence import MET, MISSED, OPEN, Rule
from sims.pool import Pool
from sims.scenario import Scenario, ScenarioError, load, structure
from sims.slo import Slo

_RANGE = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*=\s*(\d+)\s*\.\.\s*(\d+)\s*$")


@attrs.frozen
class AccountRange:
    """How many accounts of one group of the scenario to consider: ``group=LOW..HIGH``.

    ``LOW`` may be 0 only when searching the cheapest mix (a mix may leave a kind out);
    :func:`check_inputs` says so.
    """

    group: str
    low: int
    high: int

    @classmethod
    def parse(cls, text: str) -> AccountRange:
        match = _RANGE.match(text)
        if not match:
            raise InvalidSetting("accounts", text, "GROUP=MIN..MAX, e.g. huggingface=1..64")
        group, low, high = match.group(1), int(match.group(2)), int(match.group(3))
        if not low <= high:
            raise InvalidSetting("accounts", text, "MIN <= MAX")
        return cls(group, low, high)

    @property
    def text(self) -> str:
        return f"{self.group}={self.low}..{self.high}"


@attrs.frozen
class Run:
    """What one seeded simulation of a point found (compact, picklable)."""

    seed: int
    summary: dict[str, Any]
    groups: dict[str, dict[str, Any]]


def meeting(runs: Sequence[Run], slos: Sequence[Slo]) -> int:
    """How many of these runs met every SLO."""
    return sum(all(slo.met(run.summary) for slo in slos) for run in runs)


@attrs.frozen
class Point:
    """A fleet at a level, on the seeds it ran, with the rule's verdict on them.

    A probe ran one seed (verdict ``open`` if it met the SLOs); the fleet the search
    would recommend ran until its verdict was clear (:class:`sims.confidence.Rule`).
    A point stops at its first seed that misses an SLO, in seed order.
    """

    interviews: int
    counts: dict[str, int]
    runs: tuple[Run, ...]
    verdict: str
    #: SLO text -> the tolerance bound over its seeds (nan below two seeds).
    bounds: dict[str, float] = attrs.field(factory=dict)

    @property
    def accounts(self) -> int:
        return sum(self.counts.values())

    @property
    def passed(self) -> bool:
        """Shown to meet every SLO on the rule's share of fresh seeds."""
        return self.verdict == MET

    @property
    def viable(self) -> bool:
        """No seed it ran missed an SLO (a probe's provisional pass)."""
        return self.verdict != MISSED

    def seeds_passing(self, slos: Sequence[Slo]) -> int:
        return meeting(self.runs, slos)


@attrs.frozen
class LevelAnswer:
    interviews: int
    recommended: Point | None
    points: tuple[Point, ...]
    monotone: bool
    #: The recommended fleet on fresh seeds the search never ran (empty without one).
    holdout: tuple[Run, ...] = ()
    #: The cheapest-mix search only: each kind's smallest fleet of that kind alone (others
    #: at 0) shown to meet the SLOs, or None within its range.
    singles: dict[str, Point | None] = attrs.field(factory=dict)

    def holdout_met(self, slos: Sequence[Slo]) -> int:
        """How many of the fresh seeds met every SLO."""
        return meeting(self.holdout, slos)


@attrs.frozen
class Sizing:
    scenario: Scenario
    slos: tuple[Slo, ...]
    ranges: tuple[AccountRange, ...]
    rule: Rule
    holdout_seeds: int
    levels: tuple[LevelAnswer, ...]
    #: The groups were independent kinds, and each level's answer the cheapest mix.
    mix: bool = False
    #: How far above the smallest fleet an answer may be, as a share of its accounts.
    resolution: float = 0.0


def _counts_at(step: int, ranges: Sequence[AccountRange], steps: int) -> dict[str, int]:
    """Account counts at ``step`` of ``steps``: every group moves along its range together."""
    if steps == 0:
        return {r.group: r.low for r in ranges}
    return {r.group: r.low + math.ceil(step * (r.high - r.low) / steps) for r in ranges}


def _step_of(counts: dict[str, int], ranges: Sequence[AccountRange], steps: int) -> int:
    """The step of the walk (:func:`_counts_at`) at which these counts are reached."""
    return next(k for k in range(steps + 1) if _counts_at(k, ranges, steps) == counts)


def _overrides_for(scenario: Scenario, interviews: int, counts: dict[str, int]) -> list[str]:
    prefixes = [group.prefix for group in scenario.accounts]
    overrides = [f"workload.interviews={interviews}"]
    for group, count in counts.items():
        overrides.append(f"accounts.{prefixes.index(group)}.count={count}")
    return overrides


def simulate_point(raw: dict[str, Any], source: str, overrides: list[str], seed: int) -> Run:
    """One seeded simulation, reduced to what sizing and its report need."""
    from engine.routing.config import apply_override
    from sims.results import summary_subset
    from sims.runner import simulate
    from sims.summarise import summarise

    raw = copy.deepcopy(raw)
    for assignment in overrides:
        apply_override(raw, assignment, ScenarioError)
    raw["seed"] = seed
    # A mix may leave a kind out: a count of 0 is no group at all.
    raw["accounts"] = [group for group in raw["accounts"] if group.get("count") != 0]
    scenario = structure(raw, source)
    results = summarise(simulate(scenario))
    groups: dict[str, dict[str, Any]] = {}
    for group in scenario.accounts:
        names = {spec.name for spec in group.specs()}
        rows = [row for row in results.providers if row.name in names]
        held: dict[str, int] = {}
        for row in rows:
            for limit, count in row.held_back.items():
                held[limit] = held.get(limit, 0) + count
        groups[group.prefix] = {
            "accounts": len(rows),
            "utilisation": sum(r.utilisation for r in rows) / max(1, len(rows)),
            "peak_utilisation": max((r.utilisation for r in rows), default=0.0),
            "held_back": held,
            "cost": sum(r.cost for r in rows),
            "calls": sum(r.calls for r in rows),
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
    return Run(seed, summary_subset(results.summary, keep), groups)


#: Fleets probed at once in each round of the search: a fixed number, so that the fleets
#: visited (and so the answer) never depend on how many workers run the simulations.
PROBES_PER_ROUND = 2
#: Where the search first looks around its guess, as a share of the guessed step.
GUESS_MARGIN = 0.08


#: A first level of at least this many interviews is guessed from a pilot (:func:`_pilot_guess`).
PILOT_FROM = 800
#: The pilot sizes this share of the level's interviews.
PILOT_SHARE = 1 / 8


def _pilot_guess(sizer: Sizer, interviews: int) -> int | None:
    """A guess for a first level, from the smallest fleet whose first seed meets the SLOs
    at an eighth of its interviews, scaled up (a simulation's cost grows with its
    interviews, so that bisection over the whole range costs about two of the level's own
    simulations and spares the level most of its rounds). Only the search's cost depends on
    the guess; the pilot's fleets are no part of the answer or the report."""
    if interviews < PILOT_FROM:
        return None
    pilot = math.ceil(interviews * PILOT_SHARE)
    guess = _pilot_guess(sizer, pilot)  # a large pilot has a pilot of its own
    step = _Search(sizer, pilot, guess, resolution=GUESS_MARGIN / 2).first_viable()
    return None if step is None else math.ceil(step * interviews / pilot)


class _Search:
    """The search for one level: the smallest fleet the rule shows to meet the SLOs.

    A fleet that misses an SLO on one seed has failed (:class:`sims.confidence.Rule`), so
    the search probes each fleet it visits on its first seed only, and treats a probe
    that met the SLOs as passing; only the fleet it would recommend runs more seeds,
    until the rule's verdict is clear. Each round probes :data:`PROBES_PER_ROUND` fleets
    at once, splitting the open interval into equal parts (a k-ary bisection), until the
    interval is within the ``resolution`` (:meth:`Sizer.close_enough`).

    Without a guess it probes the top of the range beside its middle. With one (the fleet
    the level below needed, or a pilot found, scaled by the ratio of interviews) it probes
    the guess and a fleet a few percent below it, and gallops upward (gaps doubling) if
    the guess missed; ``floor`` (the level below's answer: more interviews never need
    fewer accounts) bounds it from below. If the fleet to recommend misses on a later
    seed, or stays unclear, the search looks above it (:meth:`_settle`). Points are
    memoised and shared with the report.
    """

    def __init__(
        self,
        sizer: Sizer,
        interviews: int,
        guess: int | None = None,
        floor: int = 0,
        resolution: float | None = None,
    ) -> None:
        self.sizer = sizer
        self.interviews = interviews
        self.guess = guess
        self.floor = floor
        self.resolution = sizer.resolution if resolution is None else resolution
        self.points: dict[int, Point] = {}

    def probe(self, steps: Sequence[int]) -> None:
        """Probe these fleets on their first seed, at once (those not probed before)."""
        fresh = sorted(set(steps) - set(self.points))
        if not fresh:
            return
        with ThreadPoolExecutor(max_workers=len(fresh)) as probes:
            found = probes.map(
                lambda step: self.sizer.evaluate(self.interviews, step, confirm=False), fresh
            )
            self.points.update(zip(fresh, found, strict=True))

    def confirm(self, step: int) -> Point:
        """The fleet at ``step`` on its seeds until the rule's verdict is clear (those it
        ran as a probe kept)."""
        point = self.points.get(step)
        if point is None or point.verdict == OPEN:
            point = self.sizer.evaluate(self.interviews, step, earlier=point)
            self.points[step] = point
        return point

    def _bracket(self, low: int, high: int) -> tuple[int, int]:
        """Given ``low`` (no smaller step can be the answer) and ``high`` (viable), the
        tightest such pair the probes so far show."""
        viable = [k for k, p in self.points.items() if low <= k <= high and p.viable]
        high = min(viable, default=high)
        missed = [k for k, p in self.points.items() if low <= k < high and not p.viable]
        return (max(missed) + 1 if missed else low), high

    def _narrow(self, low: int, high: int) -> int:
        """The smallest viable step in [low, high] (``high`` viable), k-ary bisection, to
        the sizer's resolution (:meth:`Sizer.close_enough`)."""
        while not self.sizer.close_enough(low, high, self.resolution):
            parts = min(PROBES_PER_ROUND, high - low)
            self.probe([low + (high - low) * i // (parts + 1) for i in range(1, parts + 1)])
            low, high = self._bracket(low, high)
        return high

    def _gallop(self, start: int, gap: int) -> tuple[int, int] | None:
        """A bracket (low, high) with ``high`` viable and nothing viable known below it
        from ``start`` on: probes ``start``, ``start + gap``, ``start + 3 gap``, ``start +
        7 gap`` ... (the gaps doubling), a round at a time, up to the top of the range."""
        top = self.sizer.steps
        origin, reach = start, 0
        while True:
            known = [k for k, p in self.points.items() if k >= start and p.viable]
            ceiling = min(known, default=top)
            batch: list[int] = []
            while len(batch) < PROBES_PER_ROUND and ceiling not in batch:
                batch.append(min(origin + gap * (2**reach - 1), ceiling))
                reach += 1
            self.probe(batch)
            if any(self.points[k].viable for k in batch) or ceiling in known:
                return self._bracket(start, ceiling)
            if ceiling in batch:
                return None  # the top of the range missed too
            start = max(batch) + 1

    def run(self) -> LevelAnswer:
        start = self.first_viable()
        return self._answer(None if start is None else self._settle(start))

    def first_viable(self) -> int | None:
        """The smallest step whose first seed meets the SLOs (to the resolution), or None
        if the top of the range misses."""
        top = self.sizer.steps
        if self.guess is None:
            # The top of the range (is any fleet enough?) beside the middle: two a round.
            self.probe([top, (self.floor + top) // 2])
            if not self.points[top].viable:
                return None
            bracket: tuple[int, int] | None = self._bracket(self.floor, top)
        else:
            guess = min(max(self.guess, self.floor), top)
            margin = max(1, math.ceil(GUESS_MARGIN * guess))
            self.probe([max(self.floor, guess - margin), guess])
            if self.points[guess].viable:
                bracket = self._bracket(self.floor, guess)
            else:
                bracket = self._gallop(guess + 1, margin)
        return None if bracket is None else self._narrow(*bracket)

    def _settle(self, start: int) -> Point | None:
        """The smallest step from ``start`` on (to the sizer's resolution) that the rule
        shows to meet the SLOs, ``start`` being the smallest fleet whose first seed met them.

        Every larger fleet meets that seed too (more accounts never hurt), so no probe is
        spent above ``start``: candidates run their seeds in order until the rule's verdict
        is clear. From a candidate that failed it gallops upward (gaps doubling from the
        resolution), then bisects back between the last failure and the first pass.
        """
        top = self.sizer.steps
        if self.confirm(start).passed:
            return self.points[start]
        gap = max(1, self.sizer.slack(start, self.resolution))
        low, reach, high = start + 1, 0, None
        while high is None:
            step = min(top, start + gap * (2 ** (reach + 1) - 1))
            reach += 1
            if self.confirm(step).passed:
                high = step
            elif step == top:
                return None
            else:
                low = step + 1
        while not self.sizer.close_enough(low, high, self.resolution):
            middle = (low + high) // 2
            if self.confirm(middle).passed:
                high = middle
            else:
                low = middle + 1
        return self.points[high]

    def _answer(self, recommended: Point | None) -> LevelAnswer:
        ordered = [self.points[k] for k in sorted(self.points)]
        # The search trusts that more accounts never hurt; say so when the data disagree.
        monotone = all(not (a.viable and not b.viable) for a, b in itertools.pairwise(ordered))
        return LevelAnswer(self.interviews, recommended, tuple(ordered), monotone)


def check_inputs(
    scenario: Scenario, slos: Sequence[Slo], ranges: Sequence[AccountRange], mix: bool = False
) -> None:
    """Refuse what cannot be sized, naming the setting, before any simulation starts."""
    if not slos:
        raise InvalidSetting("slo", [], "at least one SLO")
    prefixes = [group.prefix for group in scenario.accounts]
    named = [r.group for r in ranges]
    for account_range in ranges:
        if account_range.group not in prefixes:
            raise InvalidSetting("accounts", account_range.group, " | ".join(prefixes))
        if named.count(account_range.group) > 1:
            raise InvalidSetting("accounts", account_range.group, "each group named once")
        if mix and account_range.high < 1:
            raise InvalidSetting(
                "accounts", account_range.text, "a range that holds an account: MAX >= 1"
            )
        if not mix and account_range.low < 1:
            raise InvalidSetting(
                "accounts", account_range.text, "MIN >= 1 (0 only with --mix, to leave it out)"
            )
        if account_range.low == 0 and (needing := _needs_group(scenario, account_range.group)):
            raise InvalidSetting(
                "accounts", account_range.text, f"MIN >= 1: {' and '.join(needing)} need the group"
            )
    if mix and len(ranges) < 2:
        raise InvalidSetting(
            "mix", named, "two or more kinds given with --accounts GROUP=MIN..MAX to mix"
        )


def _needs_group(scenario: Scenario, prefix: str) -> list[str]:
    """What in the scenario would be left without a target if the group were left out."""
    group = next(g for g in scenario.accounts if g.prefix == prefix)
    names = {spec.name for spec in group.specs()}
    needing = [
        f"faults[{i}]"
        for i, fault in enumerate(scenario.faults)
        if fault.target != "*" and set(scenario.fault_targets(fault)) <= names
    ]
    if scenario.autoscaler is not None and scenario.autoscaler.group == prefix:
        needing.append("autoscaler")
    return needing


class Sizer:
    def __init__(
        self,
        scenario: Scenario,
        raw: dict[str, Any],
        source: str,
        slos: Sequence[Slo],
        ranges: Sequence[AccountRange],
        rule: Rule,
        executor: Executor,
        parallel: int = 1,
        holdout_seeds: int = 0,
        on_simulation: Callable[[], None] | None = None,
        on_point: Callable[[Point], None] | None = None,
        mix: bool = False,
        resolution: float = 0.0,
    ) -> None:
        check_inputs(scenario, slos, ranges, mix)
        self.scenario = scenario
        self.raw = raw
        self.source = source
        self.slos = tuple(slos)
        self.ranges = tuple(ranges)
        self.rule = rule
        self.executor = executor
        self.parallel = parallel
        self.holdout_seeds = holdout_seeds
        self.steps = max(r.high - r.low for r in ranges)
        #: How far above the smallest fleet an answer may be, as a share of its accounts.
        self.resolution = resolution
        self._on_simulation = on_simulation
        self._on_point = on_point
        self._lock = threading.Lock()

    def accounts(self, step: int) -> int:
        return sum(_counts_at(step, self.ranges, self.steps).values())

    def close_enough(self, low: int, high: int, resolution: float) -> bool:
        """Whether ``high`` may be answered for the smallest fleet in [low, high]: at most
        the resolution's share of its accounts above ``low`` (exact below 1 / resolution
        accounts). A fleet's verdict on seeds varies from day to day more than one
        account's worth on large fleets, so the last rounds of an exact bisection would
        buy a precision the answer does not have."""
        allowed = math.floor(resolution * self.accounts(high))
        return self.accounts(high) - self.accounts(low) <= allowed

    def slack(self, step: int, resolution: float) -> int:
        """How many steps below ``step`` are within the resolution of it."""
        below = 0
        while below < step and self.close_enough(step - below - 1, step, resolution):
            below += 1
        return below

    def _submit(self, overrides: list[str], seed: int) -> Future[Run]:
        return self.executor.submit(simulate_point, self.raw, self.source, overrides, seed)

    def _ran_one(self) -> None:
        if self._on_simulation is not None:
            with self._lock:
                self._on_simulation()

    def evaluate(
        self, interviews: int, step: int, confirm: bool = True, earlier: Point | None = None
    ) -> Point:
        """The fleet at ``step`` of the walk along the ranges (:meth:`evaluate_counts`)."""
        counts = _counts_at(step, self.ranges, self.steps)
        return self.evaluate_counts(interviews, counts, confirm, earlier)

    def evaluate_counts(
        self,
        interviews: int,
        counts: dict[str, int],
        confirm: bool = True,
        earlier: Point | None = None,
    ) -> Point:
        """Simulate a fleet on its next seeds until the rule's verdict is clear (a probe,
        ``confirm=False``: its first seed only).

        Seeds run ``parallel`` at a time but are judged one by one in seed order, and the
        first clear verdict ends the point (later seeds are cancelled, or their results
        dropped), so what a point holds never depends on which simulation finished first
        nor on how many ran at once.
        """
        overrides = _overrides_for(self.scenario, interviews, counts)
        runs = list(earlier.runs) if earlier is not None else []
        judgement = self.rule.judge([run.summary for run in runs], self.slos)
        while judgement.verdict == OPEN and not (runs and not confirm):
            batch = max(self.parallel, self.rule.min_seeds - len(runs)) if confirm else 1
            batch = min(batch, self.rule.max_seeds - len(runs))
            first = len(runs)
            futures = [
                self._submit(overrides, self.scenario.seed + r) for r in range(first, first + batch)
            ]
            for index, future in enumerate(futures):
                runs.append(future.result())
                self._ran_one()
                judgement = self.rule.judge([run.summary for run in runs], self.slos)
                if judgement.verdict != OPEN or not confirm:
                    for later in futures[index + 1 :]:
                        later.cancel()
                    break
        point = Point(interviews, counts, tuple(runs), judgement.verdict, judgement.bounds)
        if self._on_point is not None:
            self._on_point(point)
        return point

    def holdout(self, point: Point) -> tuple[Run, ...]:
        """The recommended fleet on ``holdout_seeds`` fresh seeds, after the search's own
        (which end at ``seed + max_seeds``): every one runs, whatever it finds."""
        overrides = _overrides_for(self.scenario, point.interviews, point.counts)
        first = self.scenario.seed + self.rule.max_seeds
        futures = [self._submit(overrides, first + i) for i in range(self.holdout_seeds)]
        runs = []
        for future in futures:
            runs.append(future.result())
            self._ran_one()
        return tuple(runs)


#: 95% of fresh seeds, on 3 to 12 seeds per recommended fleet.
DEFAULT_RULE = Rule()
#: Answers within 1% of the smallest fleet: exact below 100 accounts.
DEFAULT_RESOLUTION = 0.01
MAX_RESOLUTION = 0.1


def default_range(scenario: Scenario) -> AccountRange:
    group = scenario.accounts[0]
    return AccountRange(group.prefix, 1, max(64, 4 * group.count))


def size(
    scenario_ref: str,
    levels: Sequence[int],
    slos: Sequence[Slo],
    ranges: Sequence[AccountRange] = (),
    rule: Rule = DEFAULT_RULE,
    holdout_seeds: int = 10,
    overrides: Sequence[str] = (),
    seed: int | None = None,
    workers: int | None = None,
    on_simulation: Callable[[], None] | None = None,
    cluster: str | None = None,
    on_point: Callable[[Point], None] | None = None,
    on_level: Callable[[LevelAnswer], None] | None = None,
    mix: bool = False,
    router: Mapping[str, Any] | None = None,
    resolution: float = DEFAULT_RESOLUTION,
) -> Sizing:
    """Find, for each number of interviews, the smallest fleet shown to meet every SLO by
    ``rule`` (with ``mix``, the cheapest mix of the ranges' kinds: :mod:`sims.mix`), and
    check each answer on ``holdout_seeds`` fresh seeds.

    The simulations run on ``workers`` local processes (default: every core), or on
    the Dask scheduler at ``cluster`` (``tcp://HOST:PORT``): the same answer either way.
    ``on_simulation``, ``on_point`` and ``on_level`` are told of each simulation, fleet
    and level as it finishes (from several threads), for progress displays. ``router``
    replaces the scenario's router tables (a live config's: ``--router``). ``resolution``
    lets an answer be up to that share of its accounts above the smallest fleet
    (:meth:`Sizer.close_enough`).
    """
    if not levels or any(level < 1 for level in levels):
        raise InvalidSetting("interviews", list(levels), "one or more counts >= 1")
    if holdout_seeds < 0:
        raise InvalidSetting("holdout", holdout_seeds, ">= 0 fresh seeds")
    if not 0 <= resolution <= MAX_RESOLUTION:
        raise InvalidSetting(
            "resolution", resolution, f"a share from 0 (exact) to {MAX_RESOLUTION:.0%}"
        )
    from sims.mix import MixSearch  # here: sims.mix builds on this module

    pool = Pool(workers=workers, cluster=cluster)
    scenario, raw = load(scenario_ref, overrides, seed=seed, tables=router)
    ranges = tuple(ranges) or (default_range(scenario),)
    check_inputs(scenario, slos, ranges, mix)
    with pool.open() as executor:
        sizer = Sizer(
            scenario,
            raw,
            scenario_ref,
            slos,
            ranges,
            rule,
            executor,
            executor.width,
            holdout_seeds,
            on_simulation,
            on_point,
            mix,
            resolution,
        )

        def check(answer: LevelAnswer) -> LevelAnswer:
            if answer.recommended is not None:
                answer = attrs.evolve(answer, holdout=sizer.holdout(answer.recommended))
            if on_level is not None:
                on_level(answer)
            return answer

        # Levels in increasing order, each searched from the one below's answer; a level's
        # held-out seeds run beside the next level's search.
        checks: list[Future[LevelAnswer]] = []
        try:
            with ThreadPoolExecutor(max_workers=1) as checker:
                below: Point | None = None
                for level in sorted(set(levels)):
                    search: _Search | MixSearch
                    if mix:  # each level on its own: a mix has no single size to scale
                        search = MixSearch(sizer, level)
                    elif below is None:
                        search = _Search(sizer, level, _pilot_guess(sizer, level))
                    else:
                        floor = _step_of(below.counts, sizer.ranges, sizer.steps)
                        guess = math.ceil(floor * level / below.interviews)
                        search = _Search(sizer, level, guess, floor)
                    answer = search.run()
                    checks.append(checker.submit(check, answer))
                    below = answer.recommended or below
                answers = [future.result() for future in checks]
        except KeyboardInterrupt:
            decided = tuple(
                future.result()
                for future in checks
                if future.done() and not future.cancelled() and future.exception() is None
            )
            partial = Sizing(
                scenario, tuple(slos), ranges, rule, holdout_seeds, decided, mix, resolution
            )
            raise SizingInterrupted(partial) from None
    return Sizing(
        scenario, tuple(slos), ranges, rule, holdout_seeds, tuple(answers), mix, resolution
    )


class SizingInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sizing: ``decided`` holds the levels searched and checked on their
    fresh seeds before it, so that what they cost is not lost."""

    def __init__(self, decided: Sizing) -> None:
        super().__init__()
        self.decided = decided


def expected_simulations(
    levels: int, ranges: Sequence[AccountRange], rule: Rule, holdout_seeds: int, mix: bool = False
) -> int:
    """An estimate for a progress bar, per level: one seed on the top fleet and on each
    fleet the bisection visits, a few more than the minimum on the answer, the held-out.
    A mix: about a probe per cell of the staircase, and a bisection per kind alone."""
    steps = max(r.high - r.low for r in ranges)
    bisection = 1 + math.ceil(math.log2(max(1, steps)))
    if mix:
        cells = math.prod(r.high - r.low + 1 for r in ranges[:-1])
        bisection = cells + len(ranges) * (bisection + rule.min_seeds)
    return levels * (bisection + rule.min_seeds + 2 + holdout_seeds)
