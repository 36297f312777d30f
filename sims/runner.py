"""Running a scenario in virtual time: build the fleet, play the interviews, collect.

The whole run is one ``trio.run`` on the virtual clock with trio's scheduling
pinned from the seed, so (scenario, seed) determines every byte of the results.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import attrs
import trio

from actors.autoscaler import ScalingEvent
from actors.backends.virtual import VirtualBackend
from actors.breaker import Transition
from actors.faults import FaultSchedule
from actors.quota import QuotaAlert
from actors.runtime import clock
from actors.runtime.clock import VirtualClock, run_virtual
from actors.runtime.randomness import RandomStreams
from engine.routing.fleet import Account, Fleet, open_fleet
from engine.routing.recording import Recorder, Recorders, RequestRecorder
from sims.cache_use import CacheLedger
from sims.interview import InterviewTally, play_interviews
from sims.sampler import Sampler, Series
from sims.scenario import Scenario

if TYPE_CHECKING:
    from engine.routing.router import Router
    from engine.traces.tracing import Tracing

Progress = Callable[[float, int], None]


class WorkloadSource(Protocol):
    """What sends a run's requests other than the scenario's interviews (observed
    arrivals: :class:`sims.trace_workload.TraceWorkload`)."""

    async def play(self, router: Router, tally: InterviewTally, duration: float) -> None: ...


@attrs.define
class AccountCounts:
    """Who an account is and what it counted over a run: the run's raw totals
    (:class:`ProviderTotals`) and the results' summary of it share these."""

    #: The account's name.
    name: str
    #: Its profile family (``openai``, ``self-hosted`` ...).
    family: str
    #: The model it serves.
    model: str
    #: Its tier (``strong``, ``fast`` ...).
    tier: str
    #: Requests it serves at once.
    max_concurrency: int
    #: Attempts sent to it.
    calls: int
    #: Attempts it answered (a hedge's losing leg included).
    answered: int
    #: Failed attempts by error code.
    failures: dict[str, int]
    #: Attempts its own limits refused before they were sent, by limit.
    rejections: dict[str, int]
    #: Times a look at every account found it at a limit, by limit: each look of a router
    #: under 24 accounts; on a larger one's board, a request no open account could take.
    held_back: dict[str, int]
    #: Input tokens billed.
    tokens_in: int
    #: Output tokens billed.
    tokens_out: int


@attrs.define
class ProviderTotals(AccountCounts):
    """An account's raw totals at the end of a run."""

    #: Slot-seconds it was busy.
    busy_time: float
    #: Billed per token.
    cost: float
    #: Seconds it was powered (a self-hosted replica), or the whole run.
    powered_s: float
    #: What a powered hour costs (0 for a pay-per-token account).
    hourly_cost: float
    #: The lowest in-flight limit adaptive concurrency set (max_concurrency when off).
    lowest_limit: int = 0


@attrs.define
class RunData:
    """Everything a run produced, before it is summarised."""

    scenario: Scenario
    seed: int
    simulated_s: float
    wall_s: float
    recorder: RequestRecorder
    series: Series
    transitions: list[Transition]
    providers: list[ProviderTotals]
    tally: InterviewTally
    timed_events: int
    quota_alerts: list[QuotaAlert]
    quotas: list[QuotaUsage]
    scaling: list[ScalingEvent]
    #: The router's own counters (hedges, retries denied by the budget, failovers ...).
    router: dict[str, int] = attrs.Factory(dict)
    #: Every request's cache key and ending, when the router has a cache.
    cache: CacheLedger | None = None


@attrs.frozen
class QuotaUsage:
    """Where one account's quota stood when the run ended, and where it was heading."""

    #: The account.
    provider: str
    #: The quota's name.
    limit: str
    #: What the quota allows per window.
    allowance: float
    #: What had been used of it.
    used: float
    #: The quota's window in seconds.
    window_s: float
    #: When its window resets.
    resets_at: float
    #: Seconds from the window's start until the quota runs dry at the run's pace.
    dry_after_s: float


def build_accounts(scenario: Scenario, streams: RandomStreams) -> list[Account]:
    accounts = []
    for group in scenario.accounts:
        latency, errors = group.behaviour()
        for spec in group.specs():
            faults = FaultSchedule(scenario.faults_for(spec.name))
            backend = VirtualBackend(spec.name, latency, errors, faults, streams)
            accounts.append(Account(spec, backend))
    return accounts


def provider_totals(fleet: Fleet, now: float) -> list[ProviderTotals]:
    return [
        ProviderTotals(
            name=p.spec.name,
            family=p.spec.family,
            model=p.spec.model,
            tier=p.spec.tier,
            max_concurrency=p.spec.max_concurrency,
            calls=p.stats.calls,
            answered=p.stats.answered,
            failures=dict(sorted(p.stats.failures.items())),
            rejections=dict(sorted(p.stats.rejections.items())),
            held_back=dict(sorted(p.stats.held_back.items())),
            busy_time=p.stats.busy_time,
            tokens_in=p.stats.tokens_in,
            tokens_out=p.stats.tokens_out,
            cost=p.stats.cost,
            powered_s=p.powered_seconds(now),
            hourly_cost=p.spec.hourly_cost,
            lowest_limit=p.adaptive.lowest if p.adaptive is not None else p.spec.max_concurrency,
        )
        for p in fleet.providers
    ]


def _quota_usage(fleet: Fleet, now: float) -> list[QuotaUsage]:
    usage = []
    for provider in fleet.providers:
        for quota in provider.quota_watch.quotas:
            used = quota.used(now)
            window_start = quota.resets_at(now) - quota.per
            elapsed = now - window_start
            pace = used / elapsed if elapsed > 0 else 0.0
            usage.append(
                QuotaUsage(
                    provider=provider.spec.name,
                    limit=quota.name,
                    allowance=quota.limit,
                    used=used,
                    window_s=quota.per,
                    resets_at=quota.resets_at(now),
                    dry_after_s=quota.limit / pace if pace > 0 else math.inf,
                )
            )
    return usage


def router_counts(fleet: Fleet) -> dict[str, int]:
    stats = fleet.router.stats
    return {
        "attempts": stats.attempts,
        "failovers": stats.failovers,
        "backoff_retries": stats.retries,
        "hedges": stats.hedges,
        "hedge_wins": stats.hedge_wins,
        "retries_denied": stats.retries_denied,
    }


def simulate(
    scenario: Scenario,
    progress: Progress | None = None,
    traces: Path | None = None,
    workload: WorkloadSource | None = None,
    recorders: Sequence[Recorder] = (),
) -> RunData:
    """Run ``scenario`` with its seed; ``progress(now, requests)`` is called as it goes.

    With ``traces``, every request and attempt is also written there as OpenTelemetry
    spans on virtual time (:func:`engine.traces.tracing.simulated_tracing`); the run
    itself is the same either way. ``workload`` sends the requests instead of the
    scenario's interviews; ``recorders`` are told every record too, attempts with their
    details (times, tokens), as tracing is.
    """
    seed = scenario.seed
    streams = RandomStreams(seed)
    accounts = build_accounts(scenario, streams)
    recorder = RequestRecorder([a.spec.name for a in accounts])
    tracing = None if traces is None else _tracing(scenario, accounts, traces)
    extra = [*recorders, *([] if tracing is None else [tracing.recorder])]
    told: Recorder = Recorders(recorder, *extra) if extra else recorder
    tally = InterviewTally()

    async def main() -> RunData:
        async with open_fleet(
            accounts,
            scenario.router_config,
            seed=seed,
            recorder=told,
            attempt_details=bool(extra),
        ) as fleet:
            sampler = Sampler(fleet, scenario.sample_every, progress)
            await fleet.supervisor.start(sampler)
            # Observed arrivals bypass the cache (sims.trace_workload): nothing to note.
            ledger = CacheLedger() if fleet.cache is not None and workload is None else None
            if workload is None:
                await play_interviews(
                    fleet.router,
                    scenario.workload,
                    streams,
                    tally,
                    scenario.duration,
                    ledger=ledger,
                )
            else:
                await workload.play(fleet.router, tally, scenario.duration)
            sampler.sample()
            virtual_clock = trio.lowlevel.current_clock()
            assert isinstance(virtual_clock, VirtualClock)
            return RunData(
                scenario=scenario,
                seed=seed,
                simulated_s=clock.now(),
                wall_s=0.0,
                recorder=recorder,
                series=sampler.series,
                transitions=list(fleet.transitions),
                providers=provider_totals(fleet, clock.now()),
                tally=tally,
                timed_events=virtual_clock.timed_events,
                quota_alerts=list(fleet.quota.alerts),
                quotas=_quota_usage(fleet, clock.now()),
                scaling=list(fleet.autoscaler.events) if fleet.autoscaler else [],
                router=router_counts(fleet),
                cache=ledger,
            )

    wall_start = time.perf_counter()
    try:
        with _fewer_collections():
            data = run_virtual(main, scheduling_seed=seed)
    finally:
        if tracing is not None:
            tracing.shutdown()
    data.wall_s = time.perf_counter() - wall_start
    return data


def _tracing(scenario: Scenario, accounts: list[Account], path: Path) -> Tracing:
    """Spans of the run to ``path``: each account named by its family and model."""
    # Imported here: the SDK costs an untraced run nothing, not even its import.
    from engine.traces.spans import Upstream
    from engine.traces.tracing import simulated_tracing

    upstreams = {a.spec.name: Upstream(a.spec.family, a.spec.model) for a in accounts}
    resource = {"callboard.scenario": scenario.name, "callboard.seed": scenario.seed}
    return simulated_tracing(path, upstreams, scenario.seed, resource=resource)


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Collect cyclic garbage less often during a run.

    Thousands of live interviews mean hundreds of thousands of live objects that
    every full collection rescans; with the default thresholds that made a
    20,000-interview run take twice as long. Freezing what exists at the start
    and collecting generation 0 every 100,000 allocations keeps memory bounded
    (cycles are still collected) at a fraction of the cost.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
