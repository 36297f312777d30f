"""Summarising a run's raw data (:class:`sims.runner.RunData`) into :class:`Results`.

Each part of the results is built by its own function from the recorder's columns and the
run's totals; :func:`summarise` puts them together. Everything here is a pure function of
the run's data, which is a function of (scenario, seed).
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from engine.routing.config import CONVERTER
from engine.routing.recording import OUTCOMES
from sims.cache_use import CacheUse, cache_use
from sims.interview import InterviewTally
from sims.results import (
    AttemptColumns,
    ProviderSummary,
    QuotaReport,
    RequestColumns,
    Results,
    RunMeta,
    RunSummary,
    SloMetrics,
    callboard_version,
)
from sims.runner import ProviderTotals, RunData
from sims.scenario import scenario_hash
from sims.slo_metrics import slo_metrics


def _percentiles(values: np.ndarray, points: tuple[float, ...]) -> list[float]:
    if len(values) == 0:
        return [float("nan")] * len(points)
    return [float(v) for v in np.percentile(values, points)]


def _merge(counts: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for count in counts:
        for key, value in count.items():
            total[key] = total.get(key, 0) + value
    return dict(sorted(total.items()))


_COPIED = {f.name for f in attrs.fields(ProviderSummary)} & {
    f.name for f in attrs.fields(ProviderTotals)
} - {"cost"}  # a provider's own ``cost`` is its usage; the summary's adds hosting


def provider_summaries(data: RunData, requests: RequestColumns) -> list[ProviderSummary]:
    """Each account's totals, with its share of the load and of its slots."""
    upstream = (requests.outcome == 0) & ~requests.cached
    calls_total = sum(p.calls for p in data.providers) or 1
    rows = []
    for index, p in enumerate(data.providers):
        hours = p.powered_s / 3600
        rows.append(
            ProviderSummary(
                **{name: getattr(p, name) for name in _COPIED},
                served_requests=int(np.count_nonzero(requests.provider[upstream] == index)),
                load_share=p.calls / calls_total,
                utilisation=(
                    p.busy_time / (p.max_concurrency * data.simulated_s)
                    if data.simulated_s
                    else 0.0
                ),
                rate_limited=sum(p.rejections.values()) + p.failures.get("rate_limited", 0),
                usage_cost=p.cost,
                powered_hours=hours,
                hosting_cost=hours * p.hourly_cost,
                cost=p.cost + hours * p.hourly_cost,
            )
        )
    return rows


def _latencies(requests: RequestColumns, facing: np.ndarray) -> dict[str, Any]:
    """The summary's latency figures: answered, upstream and background percentiles, and
    where an answered upstream turn's time went (waiting for a slot, waiting for a limit,
    and the rest, attempts and backoff; the three add up to its latency)."""
    answered = requests.outcome == 0
    upstream = answered & ~requests.cached
    p50, p95, p99 = _percentiles(requests.latency[answered & facing], (50, 95, 99))
    t50, t95, t99 = _percentiles(requests.ttft[upstream & facing], (50, 95, 99))
    u50, u95, u99 = _percentiles(requests.latency[upstream & facing], (50, 95, 99))
    b50, b95, _ = _percentiles(requests.latency[answered & ~facing], (50, 95, 99))
    served = upstream & facing
    slot_wait, limit_wait, mean_latency = (
        [float(column[served].mean()) for column in (requests.slot_wait, requests.limit_wait,
                                                     requests.latency)]
        if served.any()
        else [float("nan")] * 3
    )  # fmt: skip
    return {
        "p50": p50, "p95": p95, "p99": p99,
        "upstream_p50": u50, "upstream_p95": u95, "upstream_p99": u99,
        "background_p50": b50, "background_p95": b95,
        "slot_wait_mean": slot_wait, "limit_wait_mean": limit_wait,
        "service_mean": mean_latency - slot_wait - limit_wait,
        "ttft_p50": t50, "ttft_p95": t95, "ttft_p99": t99,
    }  # fmt: skip


def _costs(
    data: RunData, requests: RequestColumns, attempts: AttemptColumns,
    providers: list[ProviderSummary],
) -> dict[str, Any]:  # fmt: skip
    """What the run cost, and what of it bought no answer."""
    hosting_cost = sum(row.hosting_cost for row in providers)
    cost_total = float(requests.cost.sum()) + hosting_cost
    wasted_by_code = {
        code: float(attempts.cost[attempts.code == i].sum())
        for i, code in enumerate(attempts.codes)
        if code != "ok"
    }
    return {
        "cost_total": cost_total,
        "wasted_cost": float(requests.wasted.sum()),
        "wasted_cost_by_outcome": {k: v for k, v in sorted(wasted_by_code.items()) if v},
        "hosting_cost": hosting_cost,
        "replica_hours": sum(
            row.powered_hours
            for row, p in zip(providers, data.providers, strict=True)
            if p.hourly_cost > 0
        ),
        "cost_per_interview": cost_total / max(1, data.tally.started),
    }


def _interview_figures(tally: InterviewTally) -> dict[str, Any]:
    durations = np.asarray(tally.durations)
    return {
        "interviews_completed": tally.completed,
        "interviews_with_error": tally.with_error,
        "interviews_without_error": (
            (tally.completed - tally.with_error) / tally.started if tally.started else 0.0
        ),
        "interview_minutes_p50": float(np.median(durations)) / 60 if len(durations) else 0.0,
    }


def run_summary(
    data: RunData, requests: RequestColumns, attempts: AttemptColumns,
    providers: list[ProviderSummary], facing: np.ndarray,
) -> RunSummary:  # fmt: skip
    """The headline figures of a run.

    The parts come from small functions as keyword dicts: the constructor refuses a
    missing or unknown name, and tests/sims/test_results.py pins the fields' schema.
    """
    outcome = requests.outcome
    answered = outcome == 0
    n = len(outcome)
    failures = {
        code: int(np.count_nonzero(outcome == i)) for i, code in enumerate(OUTCOMES) if i != 0
    }
    success_rate = float(answered.mean()) if n else 0.0
    interviews = _interview_figures(data.tally)
    counters = data.router
    return RunSummary(
        scenario=data.scenario.name,
        seed=data.seed,
        interviews=data.scenario.workload.interviews,
        requests=n,
        answered=int(answered.sum()),
        success_rate=success_rate,
        failures={k: v for k, v in failures.items() if v},
        **_latencies(requests, facing),
        throughput_rpm=(
            float(answered.sum()) / (data.simulated_s / 60.0) if data.simulated_s > 0 else 0.0
        ),
        rate_limited=sum(row.rate_limited for row in providers),
        held_back_by_limits=_merge([p.held_back for p in data.providers]),
        retries=int(np.maximum(requests.attempts - 1, 0).sum()),
        attempts=int(requests.attempts.sum()),
        cache_hit_rate=float(requests.cached.mean()) if n else 0.0,
        **_costs(data, requests, attempts, providers),
        **interviews,
        simulated_s=data.simulated_s,
        breaker_openings=sum(1 for t in data.transitions if t.target.value == "open"),
        hedges=counters.get("hedges", 0),
        hedge_wins=counters.get("hedge_wins", 0),
        retries_denied=counters.get("retries_denied", 0),
        shed=failures.get("shed", 0),
        failovers=counters.get("failovers", 0),
        upstream_calls=sum(p.calls for p in data.providers),
        slo_metrics=SloMetrics(
            **slo_metrics(requests, facing, success_rate, interviews["interviews_without_error"])
        ),
    )


def run_meta(data: RunData) -> RunMeta:
    scenario = data.scenario
    return RunMeta(
        callboard_version=callboard_version(),
        scenario=scenario.name,
        description=scenario.description.strip(),
        scenario_hash=scenario_hash(scenario),
        seed=data.seed,
        config=CONVERTER.unstructure(scenario),
        outcomes=list(OUTCOMES),
        kinds=list(data.recorder.kinds),
        providers=[p.name for p in data.providers],
        timed_events=data.timed_events,
    )


def summarise(data: RunData) -> Results:
    """Turn a run's raw data into :class:`Results`."""
    meta = run_meta(data)
    # The recorder (a layer below) hands plain arrays; the columns' types name their dtype.
    columns: dict[str, Any] = data.recorder.arrays()
    attempt_columns: dict[str, Any] = data.recorder.attempt_arrays()
    requests = RequestColumns(**columns)
    attempts = AttemptColumns(list(data.recorder.attempt_codes), **attempt_columns)
    # Latency objectives are about the turns a candidate waits for; the evaluation
    # turn runs after the candidate has left and is reported on its own.
    facing = np.isin(requests.kind, meta.candidate_facing)
    providers = provider_summaries(data, requests)
    tally = data.tally
    return Results(
        meta=meta,
        summary=run_summary(data, requests, attempts, providers, facing),
        providers=providers,
        series=data.series,
        transitions=list(data.transitions),
        interviews=attrs.evolve(tally, durations=sorted(tally.durations)),
        requests=requests,
        attempts=attempts,
        cache=cache_use(data.cache) if data.cache is not None else CacheUse(enabled=False),
        quotas=QuotaReport(alerts=list(data.quota_alerts), usage=list(data.quotas)),
        scaling=list(data.scaling),
    )
