"""``callboard compare``: observed arrivals replayed through a scenario's simulated fleet.

A model of the fleet is worth the distance between its answers and what happened. The
traces' requests enter the simulated router again at their observed times, sizes and
conversations (:mod:`sims.trace_workload`), so the two runs differ only by the model:
the scenario's accounts, limits, latency models, faults and routing. Both sides'
figures are computed by the same code from the same types (the reader's
:class:`~sims.observed.ObservedRequest`; the simulation's through
:class:`~sims.simulated_observed.ObservingRecorder`), overall over the requests and per
account over the attempts sent to it, and each simulated percentile is judged by its
distance from the observed one.

Both sides are samples. The simulated side is pooled over several seeds (``runs``), so
its own sampling noise shrinks; the observed side is what it is, so each observed
percentile carries its distribution-free 95% interval (from the binomial law of the
order statistics): a distance inside it is one more traffic may close.

Requests the real router answered from its cache never reached the fleet: they are left
out of both sides (and counted), and the replayed ones bypass the simulated cache.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import attrs
import numpy as np
from scipy import stats

from actors.runtime.errors import InvalidSetting
from sims.observed import Observed, ObservedAttempt, ObservedRequest, read_traces
from sims.runner import RunData, simulate
from sims.scenario import Scenario, load
from sims.simulated_observed import ObservingRecorder
from sims.trace_workload import Arrival, TraceWorkload

#: The percentiles set side by side.
PERCENTILES = (50, 95, 99)
#: A simulated percentile within this share of the observed one is judged close.
TOLERANCE = 0.05
#: The attempt error of a provider's 429 (actors.failures.Failure.RATE_LIMITED).
RATE_LIMITED = "rate_limited"
#: Confidence of an observed percentile's interval.
INTERVAL = 0.95


@attrs.frozen
class Figures:
    """One side's figures: over requests (overall) or over one account's attempts."""

    #: Requests, or attempts sent to the account.
    calls: int
    #: Of them, answered.
    answered: int
    #: Seconds each answered one took, sorted.
    latency: np.ndarray = attrs.field(eq=False)
    #: Seconds to the first token of each answered one that had one, sorted.
    ttft: np.ndarray = attrs.field(eq=False)
    #: Attempts a provider answered with a 429.
    rate_limited: int
    #: Attempts sent after another to the same account.
    retries: int
    #: Attempts sent after another to a different account.
    failovers: int
    #: Runs pooled into these figures (the counts are their sums).
    runs: int = 1

    @property
    def success_rate(self) -> float:
        return self.answered / self.calls if self.calls else float("nan")

    def _values(self, figure: str) -> np.ndarray:
        return self.latency if figure == "latency" else self.ttft

    def percentile(self, figure: str, point: int) -> float:
        values = self._values(figure)
        return float(np.percentile(values, point)) if len(values) else float("nan")

    def interval(self, figure: str, point: int) -> tuple[float, float]:
        """Where the true percentile lies with :data:`INTERVAL` confidence, whatever the
        distribution: the order statistics whose ranks the binomial law of a sample of
        this size brackets it by (nan where the sample is too small to say)."""
        values = self._values(figure)
        n = len(values)
        if not n:
            return float("nan"), float("nan")
        share, tail = point / 100, (1 - INTERVAL) / 2
        low = int(stats.binom.ppf(tail, n, share)) - 1  # 0-based ranks
        high = int(stats.binom.ppf(1 - tail, n, share))
        below = float(values[low]) if low >= 0 else float("nan")
        above = float(values[high]) if high < n else float("nan")
        return below, above


def _sorted(values: Iterable[float]) -> np.ndarray:
    return np.sort(np.fromiter(values, dtype=float))


def _followers(attempts: Sequence[ObservedAttempt]) -> Iterable[tuple[ObservedAttempt, bool]]:
    """Each attempt after the first, with whether it went to the account before it."""
    for previous, attempt in itertools.pairwise(attempts):
        yield attempt, attempt.account == previous.account


def request_figures(requests: Sequence[ObservedRequest]) -> Figures:
    """The figures of a set of requests (the overall row)."""
    answered = [r for r in requests if r.outcome == "ok"]
    attempts = [a for r in requests for a in r.attempts]
    followers = [same for r in requests for _, same in _followers(r.attempts)]
    return Figures(
        calls=len(requests),
        answered=len(answered),
        latency=_sorted(r.end - r.start for r in answered),
        ttft=_sorted(r.ttft for r in answered if r.ttft is not None),
        rate_limited=sum(a.error == RATE_LIMITED for a in attempts),
        retries=sum(followers),
        failovers=len(followers) - sum(followers),
    )


def account_figures(requests: Sequence[ObservedRequest]) -> dict[str, Figures]:
    """Each account's figures over the attempts sent to it, by account name."""
    attempts: dict[str, list[ObservedAttempt]] = {}
    retries: dict[str, int] = {}
    failovers: dict[str, int] = {}
    for request in requests:
        for attempt in request.attempts:
            attempts.setdefault(attempt.account, []).append(attempt)
        for attempt, same in _followers(request.attempts):
            tally = retries if same else failovers
            tally[attempt.account] = tally.get(attempt.account, 0) + 1
    figures = {}
    for account in sorted(attempts):
        sent = attempts[account]
        ok = [a for a in sent if a.error is None]
        figures[account] = Figures(
            calls=len(sent),
            answered=len(ok),
            latency=_sorted(a.end - a.start for a in ok),
            ttft=_sorted(a.ttft for a in ok if a.ttft is not None),
            rate_limited=sum(a.error == RATE_LIMITED for a in sent),
            retries=retries.get(account, 0),
            failovers=failovers.get(account, 0),
        )
    return figures


def pooled(runs: Sequence[Figures]) -> Figures:
    """Several runs' figures as one sample: counts summed, values merged."""
    return Figures(
        calls=sum(f.calls for f in runs),
        answered=sum(f.answered for f in runs),
        latency=np.sort(np.concatenate([f.latency for f in runs])),
        ttft=np.sort(np.concatenate([f.ttft for f in runs])),
        rate_limited=sum(f.rate_limited for f in runs),
        retries=sum(f.retries for f in runs),
        failovers=sum(f.failovers for f in runs),
        runs=sum(f.runs for f in runs),
    )


@attrs.frozen
class Side:
    """Observed and simulated figures of one scope: overall, or one account."""

    #: ``overall`` or the account's name.
    name: str
    observed: Figures
    simulated: Figures

    def difference(self, figure: str, point: int) -> float:
        """The simulated percentile's distance from the observed one, as a share of it."""
        observed = self.observed.percentile(figure, point)
        simulated = self.simulated.percentile(figure, point)
        return (simulated - observed) / observed if observed > 0 else float("nan")

    def within(self, figure: str, point: int) -> bool:
        return bool(abs(self.difference(figure, point)) <= TOLERANCE)

    def inside_interval(self, figure: str, point: int) -> bool:
        """Whether the simulated percentile lies in the observed one's interval."""
        low, high = self.observed.interval(figure, point)
        simulated = self.simulated.percentile(figure, point)
        return bool(low <= simulated <= high)


@attrs.frozen
class Comparison:
    """What ``callboard compare`` found: observed beside simulated, overall and per account."""

    scenario: Scenario
    traces: tuple[str, ...]
    #: ``callboard`` or ``genai`` (:attr:`sims.observed.Observed.source`).
    source: str
    overall: Side
    accounts: tuple[Side, ...]
    #: Accounts the traces name that the scenario lacks, and the other way round.
    missing_in_scenario: tuple[str, ...]
    missing_in_traces: tuple[str, ...]
    #: Requests replayed, and observed cache hits left out.
    replayed: int
    cached_left_out: int
    #: Traced accounts matched to a scenario's group of one account, and its account.
    by_group: tuple[tuple[str, str], ...]
    #: Seeds the simulated side pooled (the scenario's seed and the ones after it).
    runs: int
    #: The simulated run on the scenario's own seed (its report reuses the simulator's).
    run: RunData = attrs.field(eq=False, repr=False)
    wall_s: float = 0.0

    @property
    def sides(self) -> tuple[Side, ...]:
        return (self.overall, *self.accounts)

    @property
    def close(self) -> bool:
        """The issue's ground truth: latency p50 and p95 within 5%, overall and per account."""
        return all(s.within("latency", p) for s in self.sides for p in (50, 95))


def arrival(request: ObservedRequest) -> Arrival:
    """An observed request as the replay sends it: its prompt is its answer's input tokens,
    else the first attempt's bill, else unknown (the smallest prompt); its answer's length
    only when it was answered (else the account's model draws one)."""
    billed = [a.input_tokens for a in request.attempts if a.input_tokens is not None]
    input_tokens = (
        request.input_tokens if request.input_tokens is not None else next(iter(billed), 0)
    )
    return Arrival(
        start=request.start,
        kind=request.kind or "chat",
        session=request.session,
        input_tokens=input_tokens,
        output_tokens=request.output_tokens if request.outcome == "ok" else None,
    )


def _accounts(requests: Iterable[ObservedRequest]) -> list[str]:
    return sorted({a.account for r in requests for a in r.attempts})


def renamed(request: ObservedRequest, names: Mapping[str, str]) -> ObservedRequest:
    """``request`` with its attempts' accounts named as ``names`` says (others kept)."""
    attempts = tuple(
        attrs.evolve(a, account=names[a.account]) if a.account in names else a
        for a in request.attempts
    )
    return attrs.evolve(request, attempts=attempts)


def groups_of_one(
    scenario: Scenario, traced: Iterable[str], told: Mapping[str, str]
) -> dict[str, str]:
    """Traced accounts the scenario names as a group of one account: ``acct-1`` is the
    group ``acct-1``'s only account, ``acct-1-1`` (as ``callboard calibrate`` writes
    one group per observed account). A name the scenario has, or ``told`` maps, stays."""
    ours = {spec.name for spec in scenario.account_specs()}
    single = {
        group.prefix: specs[0].name
        for group in scenario.accounts
        if len(specs := group.specs()) == 1
    }
    return {
        name: single[name]
        for name in traced
        if name not in ours and name not in told and name in single
    }


def replay_observed(
    observed: Observed,
    scenario: Scenario,
    paths: Sequence[str],
    names: Mapping[str, str] | None = None,
    runs: int = 1,
) -> Comparison:
    """Replay ``observed`` through ``scenario``'s simulated fleet, on ``runs`` seeds from
    the scenario's own; both sides' figures, the simulated pooled over the runs.

    ``names`` maps an account of the traces to the scenario's account it is (when the
    scenario names them otherwise); other accounts are matched by name, or as a group of
    one (:func:`groups_of_one`), never by guess.
    """
    if runs < 1:
        raise InvalidSetting("--runs", runs, "a whole number of simulated runs, 1 or more")
    replayed = [r for r in observed.requests if not r.cached]
    names = dict(names or {})
    unknown = sorted(set(names) - set(_accounts(replayed)))
    if unknown:
        raise InvalidSetting(
            "--account", unknown, f"accounts of the traces: {', '.join(_accounts(replayed))}"
        )
    by_group = groups_of_one(scenario, _accounts(replayed), names)
    names |= by_group
    if names:
        replayed = [renamed(r, names) for r in replayed]
    shown = ", ".join(paths)
    if not replayed:
        raise InvalidSetting(
            "traces",
            shown,
            "traces with a request that reached a provider; these have "
            f"{len(observed.requests)} requests, every one a cache hit",
        )
    seen = _accounts(replayed)
    ours = [spec.name for spec in scenario.account_specs()]
    if seen and not set(seen) & set(ours):
        raise InvalidSetting(
            "scenario accounts",
            ours,
            f"a scenario with at least one of the traces' accounts ({', '.join(seen)}), "
            "named alike, or --account TRACES_NAME=SCENARIO_NAME for each",
        )
    workload = TraceWorkload(
        tuple(arrival(r) for r in replayed),
        stream=scenario.workload.stream,
        max_tokens=scenario.workload.max_tokens,
    )
    # Long enough for every observed request, and each its scenario's time to end; its
    # conversations counted as the interviews the simulator's summary speaks of.
    scenario = attrs.evolve(
        scenario,
        duration=replayed[-1].start + scenario.duration,
        workload=attrs.evolve(scenario.workload, interviews=workload.conversations),
    )
    began = time.perf_counter()
    overall: list[Figures] = []
    per_account: list[dict[str, Figures]] = []
    reported: RunData | None = None  # the scenario's own seed's run, for its report
    for seed in range(scenario.seed, scenario.seed + runs):
        recorder = ObservingRecorder()
        run = simulate(attrs.evolve(scenario, seed=seed), workload=workload, recorders=[recorder])
        reported = reported or run
        overall.append(request_figures(recorder.requests))
        per_account.append(account_figures(recorder.requests))
    assert reported is not None  # runs >= 1
    observed_accounts = account_figures(replayed)
    common = [name for name in seen if name in ours]
    return Comparison(
        scenario=scenario,
        traces=tuple(paths),
        source=observed.source,
        overall=Side("overall", request_figures(replayed), pooled(overall)),
        accounts=tuple(
            Side(
                name,
                observed_accounts[name],
                pooled([each.get(name) or request_figures(()) for each in per_account]),
            )
            for name in common
        ),
        missing_in_scenario=tuple(name for name in seen if name not in ours),
        missing_in_traces=tuple(name for name in ours if name not in seen),
        replayed=len(replayed),
        cached_left_out=len(observed.requests) - len(replayed),
        by_group=tuple(sorted(by_group.items())),
        runs=runs,
        run=reported,
        wall_s=time.perf_counter() - began,
    )


def compare(
    traces: Sequence[str | Path],
    ref: str,
    seed: int | None = None,
    overrides: Sequence[str] = (),
    names: Mapping[str, str] | None = None,
    runs: int = 1,
) -> Comparison:
    """Read ``traces``, load scenario ``ref`` (a built-in or a file, with ``overrides`` and
    ``seed``), and replay the one through the other (``names``, ``runs``:
    :func:`replay_observed`)."""
    scenario, _ = load(ref, list(overrides), seed=seed)
    paths = [str(p) for p in traces]
    return replay_observed(read_traces(paths), scenario, paths, names, runs)
