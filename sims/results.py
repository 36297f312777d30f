"""The results of a run: one attrs object, serialised to a byte-stable results.json.

Everything here is a pure function of the run's data, which is a function of
(scenario, seed): no wall time, date or path goes in, floats are rounded to the
microsecond, keys are sorted, so the same inputs give the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import attrs
import numpy as np

from engine.routing.config import CONVERTER
from engine.routing.recording import OUTCOMES
from sims.cache_use import cache_use
from sims.runner import RunData
from sims.scenario import scenario_hash
from sims.slo_metrics import slo_metrics


def callboard_version() -> str:
    try:
        return version("callboard")
    except PackageNotFoundError:
        return "0+unknown"


def round_floats(value: Any) -> Any:
    """Round floats (also inside lists and dicts) to 6 decimals; inf/nan become strings."""
    if isinstance(value, float | np.floating):
        value = float(value)
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return round(value, 6)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f" and np.isfinite(value).all():
            return np.round(value, 6).tolist()  # one numpy call instead of one per element
        return [round_floats(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [round_floats(v) for v in value]
    if isinstance(value, dict):
        return {str(k): round_floats(v) for k, v in value.items()}
    return value


def _percentiles(values: np.ndarray, points: tuple[float, ...]) -> list[float]:
    if len(values) == 0:
        return [float("nan")] * len(points)
    return [float(v) for v in np.percentile(values, points)]


def _merge(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for count in counts:
        for key, value in count.items():
            total[key] = total.get(key, 0) + value
    return dict(sorted(total.items()))


@attrs.frozen
class Results:
    """What a run found; ``summary`` holds the headline figures.

    ``p50``/``p95``/``p99`` are the latencies of the *answered* requests of the
    candidate-facing turn kinds, cache hits included (they are answered at once);
    ``upstream_*`` and ``ttft_*`` leave the cache hits out; ``background_*`` are the
    turns nobody waits for (the evaluation). ``slo_metrics`` are what objectives are
    judged on: the same latencies over every request they cover, a failed one counted
    as missing the objective (:mod:`sims.slo_metrics`). ``cache`` has the cache's lookups, hits and
    misses by cause, per turn kind (:mod:`sims.cache_use`).
    """

    meta: dict[str, Any]
    summary: dict[str, Any]
    providers: list[dict[str, Any]]
    series: dict[str, Any]
    transitions: list[dict[str, Any]]
    interviews: dict[str, Any]
    requests: dict[str, Any]
    quotas: dict[str, Any] = attrs.Factory(dict)
    scaling: list[dict[str, Any]] = attrs.Factory(list)
    #: One row per attempt sent to a provider: ``provider`` and ``code`` (indexes into
    #: ``meta.providers`` and ``codes``) and the ``cost`` it was billed.
    attempts: dict[str, Any] = attrs.Factory(dict)
    cache: dict[str, Any] = attrs.Factory(dict)

    def to_json(self) -> str:
        return json.dumps(round_floats(attrs.asdict(self)), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Results:
        return cls(**json.loads(text))

    def request_arrays(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in self.requests.items() if isinstance(v, list)}


def summarise(data: RunData) -> Results:
    """Turn a run's raw data into :class:`Results`."""
    scenario = data.scenario
    arrays = data.recorder.arrays()
    outcome = arrays["outcome"]
    answered = outcome == 0
    cached = arrays["cached"]
    latency = arrays["latency"]
    ttft = arrays["ttft"]
    n = len(outcome)
    upstream = answered & ~cached
    # Latency objectives are about the turns a candidate waits for; the evaluation
    # turn runs after the candidate has left and is reported on its own.
    facing_kinds = [
        i
        for i, kind in enumerate(data.recorder.kinds)
        if kind in scenario.workload.candidate_facing
    ]
    facing = np.isin(arrays["kind"], facing_kinds)
    p50, p95, p99 = _percentiles(latency[answered & facing], (50, 95, 99))
    t50, t95, t99 = _percentiles(ttft[upstream & facing], (50, 95, 99))
    u50, u95, u99 = _percentiles(latency[upstream & facing], (50, 95, 99))
    # Where an answered upstream turn's time went: waiting for a slot, waiting for a
    # limit, and the rest (attempts and backoff); the three add up to its latency.
    served = upstream & facing
    slot_wait, limit_wait, mean_latency = (
        [float(arrays[key][served].mean()) for key in ("slot_wait", "limit_wait", "latency")]
        if served.any()
        else [float("nan")] * 3
    )
    background = answered & ~facing
    b50, b95, _ = _percentiles(latency[background], (50, 95, 99))
    busy_capacity = {p.name: p.max_concurrency * data.simulated_s for p in data.providers}
    calls_total = sum(p.calls for p in data.providers) or 1
    provider_rows = []
    for index, p in enumerate(data.providers):
        served = int(np.count_nonzero(arrays["provider"][upstream] == index))
        provider_rows.append(
            {
                "name": p.name,
                "family": p.family,
                "model": p.model,
                "tier": p.tier,
                "max_concurrency": p.max_concurrency,
                "calls": p.calls,
                "answered": p.answered,
                "served_requests": served,
                "load_share": p.calls / calls_total,
                "utilisation": p.busy_time / busy_capacity[p.name] if data.simulated_s else 0.0,
                "failures": p.failures,
                "rejections": p.rejections,
                "held_back": p.held_back,
                "rate_limited": sum(p.rejections.values()) + p.failures.get("rate_limited", 0),
                "tokens_in": p.tokens_in,
                "tokens_out": p.tokens_out,
                "usage_cost": p.cost,
                "powered_hours": p.powered_s / 3600,
                "hosting_cost": p.powered_s / 3600 * p.hourly_cost,
                "cost": p.cost + p.powered_s / 3600 * p.hourly_cost,
                "lowest_limit": p.lowest_limit,
            }
        )
    failures = {
        code: int(np.count_nonzero(outcome == i)) for i, code in enumerate(OUTCOMES) if i != 0
    }
    hosting_cost = sum(row["hosting_cost"] for row in provider_rows)
    cost_total = float(arrays["cost"].sum()) + hosting_cost
    attempts = data.recorder.attempt_arrays()
    codes = data.recorder.attempt_codes
    wasted_by_code = {
        code: float(attempts["cost"][attempts["code"] == i].sum())
        for i, code in enumerate(codes)
        if code != "ok"
    }
    tally = data.tally
    durations = np.asarray(tally.durations)
    summary = {
        "scenario": scenario.name,
        "seed": data.seed,
        "interviews": scenario.workload.interviews,
        "requests": n,
        "answered": int(answered.sum()),
        "success_rate": float(answered.mean()) if n else 0.0,
        "failures": {k: v for k, v in failures.items() if v},
        "p50": p50,
        "p95": p95,
        "p99": p99,
        "upstream_p50": u50,
        "upstream_p95": u95,
        "upstream_p99": u99,
        "background_p50": b50,
        "background_p95": b95,
        "slot_wait_mean": slot_wait,
        "limit_wait_mean": limit_wait,
        "service_mean": mean_latency - slot_wait - limit_wait,
        "ttft_p50": t50,
        "ttft_p95": t95,
        "ttft_p99": t99,
        "throughput_rpm": (
            float(answered.sum()) / (data.simulated_s / 60.0) if data.simulated_s > 0 else 0.0
        ),
        "rate_limited": sum(row["rate_limited"] for row in provider_rows),
        "held_back_by_limits": _merge(p.held_back for p in data.providers),
        "retries": int(np.maximum(arrays["attempts"] - 1, 0).sum()),
        "attempts": int(arrays["attempts"].sum()),
        "cache_hit_rate": float(cached.mean()) if n else 0.0,
        "cost_total": cost_total,
        # Billed for attempts that gave no answer: failed, timed out, cut off, a hedge's
        # losing leg (the answering attempts of retried requests are not waste).
        "wasted_cost": float(arrays["wasted"].sum()),
        "wasted_cost_by_outcome": {k: v for k, v in sorted(wasted_by_code.items()) if v},
        "hosting_cost": hosting_cost,
        "replica_hours": sum(
            row["powered_hours"]
            for row, p in zip(provider_rows, data.providers, strict=True)
            if p.hourly_cost > 0
        ),
        "cost_per_interview": cost_total / max(1, tally.started),
        "interviews_completed": tally.completed,
        "interviews_with_error": tally.with_error,
        "interviews_without_error": (
            (tally.completed - tally.with_error) / tally.started if tally.started else 0.0
        ),
        "interview_minutes_p50": float(np.median(durations)) / 60 if len(durations) else 0.0,
        "simulated_s": data.simulated_s,
        "breaker_openings": sum(1 for t in data.transitions if t.target.value == "open"),
        "hedges": data.router.get("hedges", 0),
        "hedge_wins": data.router.get("hedge_wins", 0),
        "retries_denied": data.router.get("retries_denied", 0),
        "shed": failures.get("shed", 0),
        "failovers": data.router.get("failovers", 0),
        "upstream_calls": sum(p.calls for p in data.providers),
    }
    summary["slo_metrics"] = slo_metrics(
        arrays, facing, summary["success_rate"], summary["interviews_without_error"]
    )
    series = data.series
    meta = {
        "callboard_version": callboard_version(),
        "scenario": scenario.name,
        "description": scenario.description.strip(),
        "scenario_hash": scenario_hash(scenario),
        "seed": data.seed,
        "config": CONVERTER.unstructure(scenario),
        "outcomes": list(OUTCOMES),
        "kinds": list(data.recorder.kinds),
        "providers": [p.name for p in data.providers],
        "timed_events": data.timed_events,
    }
    return Results(
        meta=meta,
        summary=summary,
        providers=provider_rows,
        series={
            "t": series.t,
            "in_flight": series.in_flight,
            "received": series.received,
            "answered": series.answered,
            "failed": series.failed,
            "cache_hits": series.cache_hits,
            "providers": {name: attrs.asdict(s) for name, s in series.providers.items()},
        },
        transitions=[
            {
                "time": t.time,
                "provider": t.provider,
                "source": t.source.value,
                "target": t.target.value,
                "reason": t.reason,
            }
            for t in data.transitions
        ],
        interviews={
            "started": tally.started,
            "completed": tally.completed,
            "with_error": tally.with_error,
            "errors": tally.errors,
            "durations": sorted(tally.durations),
        },
        requests={key: value for key, value in arrays.items()},
        attempts={"codes": list(codes), **attempts},
        scaling=[attrs.asdict(event) for event in data.scaling],
        cache=cache_use(data.cache) if data.cache is not None else {"enabled": False},
        quotas={
            "alerts": [attrs.asdict(alert) for alert in data.quota_alerts],
            "usage": [attrs.asdict(usage) for usage in data.quotas],
        },
    )
