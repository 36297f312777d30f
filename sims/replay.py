"""``callboard replay``: a scenario through the live router in real time, beside its simulation.

A process of their own serves one mock provider per account of the scenario on
a loopback port (:mod:`sims.mock_fleet`: the account's own latency model and its
share of the fault schedule, both run ``time_scale`` times faster than the
scenario says); this one runs the live router (``engine.open_router``) over them
with the scenario's routing, retry, breaker, cache and health settings, every
duration divided by the time scale. The scenario's interviews (their arrivals,
think times and answers drawn from the same named streams as in the simulation)
play through the router's sessions on the real clock, sped up by the same factor.
The requests are recorded as in the simulator, latencies multiplied back into
scenario seconds, and summarised by the same code; then the simulator runs the same scenario,
overrides and seed, and both sets of figures are set side by side.

The live run is real time, scaled: real sockets, real HTTP and trio's real
scheduling, whose own costs are multiplied by the time scale too. Its figures
agree with the simulation's in shape (where the outage bites, that the router
fails over and quarantines the provider), not byte for byte.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from actors.runtime import clock
from actors.runtime.errors import InvalidSetting
from actors.runtime.randomness import RandomStreams
from engine.routing.config import CONVERTER
from engine.routing.recording import RequestRecorder
from engine.serve.live_config import LiveConfig, structure_config
from engine.serve.live_router import client_for, open_router
from sims.cache_use import CacheLedger
from sims.interview import InterviewTally, play_interviews
from sims.mock_fleet import LOOPBACK, mock_fleet
from sims.router_file import CARRIED
from sims.runner import RunData, provider_totals, router_counts
from sims.sampler import Series
from sims.scenario import Scenario, load, structure

DEFAULT_TIME_SCALE = 60.0
DEFAULT_INTERVIEWS = 20

#: The headline figures set side by side: (summary key, label, kind).
FIGURES: tuple[tuple[str, str, str], ...] = (
    ("interviews", "interviews", "count"),
    ("requests", "requests", "count"),
    ("success_rate", "success rate", "share"),
    ("p50", "p50 latency, answered candidate-facing turns (s)", "seconds"),
    ("p95", "p95 latency, answered candidate-facing turns (s)", "seconds"),
    ("retries", "retries", "count"),
    ("failovers", "failovers", "count"),
    ("breaker_openings", "breaker openings", "count"),
    ("upstream_calls", "upstream calls", "count"),
    ("interviews_without_error", "interviews without an error", "share"),
    ("simulated_s", "scenario time covered (s)", "seconds"),
)

#: Scenario keys that are durations (divided by the time scale) or rates per second
#: (multiplied by it), per router table.
_DURATIONS = {
    "retry": ("backoff_base", "backoff_max", "deadline", "max_retry_after", "overload_cooldown"),
    "timeouts": ("connect", "first_byte", "idle", "total"),
    "breaker": ("slow_call_s", "open_for", "max_open_for"),
    "cache": ("ttl", "sweep_every"),
    "health": ("ping_every", "ping_timeout"),
    "hedging": ("min_delay",),
    "line": ("rate_window",),
}

HONESTY = (
    "The live column is real time, scaled: real sockets, HTTP and scheduling on trio's "
    "real clock, with every scenario duration divided by the time scale and every "
    "measured latency multiplied back. Loopback and router overheads are multiplied "
    "too, timeouts shrink with the scale (a 30 s first-byte timeout is 0.1 s at 300x, so "
    "a busy machine can turn slowness into timeouts), and the order in which requests "
    "reach a provider is the OS's, not the seed's. The two columns agree in shape, not "
    "byte for byte."
)


def _slower(value: Any, scale: float) -> Any:
    """A duration ``scale`` times shorter (None and inf stay what they are)."""
    if value is None or value == "inf":
        return value
    return float(value) / scale


def live_config(
    scenario: Scenario, urls: Sequence[str], scale: float, traces: Path | None = None
) -> LiveConfig:
    """The live router's config: the scenario's accounts at ``urls``, its tables, scaled;
    with ``traces``, its spans written there (``[traces] file``)."""
    if scenario.autoscaler is not None:
        raise InvalidSetting("autoscaler", scenario.name, "a scenario without [autoscaler]")
    providers = []
    for spec, url in zip(scenario.account_specs(), urls, strict=True):
        limits = [
            {
                **CONVERTER.unstructure(limit),
                "per": limit.per / scale,
                "enforce_every": None
                if limit.enforce_every is None
                else limit.enforce_every / scale,
            }
            for limit in spec.limits
        ]
        providers.append(
            {
                "name": spec.name,
                "base_url": f"{url}/v1",
                "model": spec.model,
                "family": spec.family,
                "tier": spec.tier,
                "limits": limits,
                "max_concurrency": spec.max_concurrency,
                "queue_limit": spec.queue_limit,
                "context_window": spec.context_window,
                "input_cost_per_mtok": spec.input_cost_per_mtok,
                "output_cost_per_mtok": spec.output_cost_per_mtok,
                "priority": spec.priority,
                "timeouts": None
                if spec.timeouts is None
                else {
                    name: _slower(value, scale)
                    for name, value in CONVERTER.unstructure(spec.timeouts).items()
                },
            }
        )
    raw: dict[str, Any] = {"providers": providers, "seed": scenario.seed}
    body = CONVERTER.unstructure(scenario)
    for table in CARRIED:
        values = dict(body[table])
        for key in _DURATIONS.get(table, ()):
            values[key] = _slower(values[key], scale)
        raw[table] = values
    budget = dict(raw["retry"]["budget"])
    budget["window"] = _slower(budget["window"], scale)
    budget["min_per_second"] = budget["min_per_second"] * scale
    raw["retry"]["budget"] = budget
    raw["server"] = {"graceful_timeout": 0.5}
    if traces is not None:
        raw["traces"] = {"file": str(traces)}
    return structure_config(raw, f"{scenario.name} (replayed {scale:g}x)")


@attrs.frozen
class LiveRun:
    data: RunData
    urls: tuple[str, ...]
    wall_s: float
    #: The median real round trip of a bare loopback HTTP call, in seconds.
    round_trip_s: float


async def play_live(scenario: Scenario, scale: float, traces: Path | None = None) -> LiveRun:
    """Play ``scenario`` through the live router over loopback mocks, ``scale`` x faster;
    with ``traces``, the router writes its spans there (on the real clock)."""
    if not (isinstance(scale, int | float) and 0 < scale < math.inf):
        raise InvalidSetting("--time-scale", scale, "a number > 0")
    workload = scenario.workload
    streams = RandomStreams(scenario.seed)
    recorder = RequestRecorder([spec.name for spec in scenario.account_specs()])
    tally = InterviewTally()
    async with mock_fleet(scenario, scale) as mocks:
        urls = list(mocks.urls)
        config = live_config(scenario, urls, scale, traces)
        async with contextlib.AsyncExitStack() as stack:
            http = await stack.enter_async_context(client_for(config, env={}))  # no proxies
            round_trip = await _warm_up(http, urls)
            live = await stack.enter_async_context(
                open_router(config, env={}, http_client=http, recorder=recorder)
            )
            fleet = live.fleet
            started = clock.now()
            mocks.start()
            ledger = CacheLedger() if fleet.cache is not None else None
            await play_interviews(
                live.router,
                workload,
                streams,
                tally,
                scenario.duration / scale,
                started,
                scale,
                ledger=ledger,
            )
            ended = clock.now()
            providers = provider_totals(fleet, ended)
            for row in providers:
                row.busy_time *= scale
                row.powered_s *= scale
            data = RunData(
                scenario=scenario,
                seed=scenario.seed,
                simulated_s=(ended - started) * scale,
                wall_s=ended - started,
                recorder=_rescaled(recorder, started, scale),
                series=Series(),
                transitions=[
                    attrs.evolve(t, time=(t.time - started) * scale) for t in fleet.transitions
                ],
                providers=providers,
                tally=tally,
                timed_events=0,
                quota_alerts=list(fleet.quota.alerts),
                quotas=[],
                scaling=[],
                router=router_counts(fleet),
                cache=ledger,
            )
    return LiveRun(data, tuple(urls), data.wall_s, round_trip)


async def _warm_up(http: httpx.AsyncClient, urls: Sequence[str], rounds: int = 5) -> float:
    """Open a kept-alive connection to every mock (so no first call pays the connect) and
    return the median real round trip of a bare HTTP call, in seconds."""
    times = []
    for _ in range(rounds):
        for url in urls:
            began = clock.now()
            response = await http.get(f"{url}/health")
            if response.status_code != 200:
                raise RuntimeError(f"mock provider {url}: HTTP {response.status_code} on /health")
            times.append(clock.now() - began)
    return statistics.median(times)


def _rescaled(recorder: RequestRecorder, origin: float, scale: float) -> RequestRecorder:
    """Real-clock times and durations back into scenario seconds."""
    recorder.start = array("d", [(t - origin) * scale for t in recorder.start])
    recorder.latency = array("d", [v * scale for v in recorder.latency])
    recorder.ttft = array("d", [v * scale for v in recorder.ttft])
    recorder.slot_wait = array("d", [v * scale for v in recorder.slot_wait])
    recorder.limit_wait = array("d", [v * scale for v in recorder.limit_wait])
    return recorder


# --- the whole command -----------------------------------------------------------------


def load_replay(
    ref: str,
    interviews: int | None = DEFAULT_INTERVIEWS,
    seed: int | None = None,
    overrides: Sequence[str] = (),
) -> Scenario:
    """The scenario to replay: a built-in, a file, or an experiment's control variant."""
    from sims.experiment import builtin_experiments, is_experiment_file, load_experiment

    extra = [*overrides]
    if interviews is not None:
        if interviews < 1:
            raise InvalidSetting("--interviews", interviews, ">= 1")
        extra.append(f"workload.interviews={interviews}")
    if ref in builtin_experiments() or is_experiment_file(ref):
        prepared = load_experiment(ref, seeds=1, overrides=extra)
        raw = dict(prepared.raws[0])
        if seed is not None:
            raw["seed"] = seed
        return structure(raw, f"{prepared.scenario_source} [{prepared.spec.variants[0].name}]")
    scenario, _ = load(ref, extra, seed=seed)
    return scenario


@attrs.frozen
class Comparison:
    scenario: Scenario
    time_scale: float
    live: dict[str, Any]
    simulation: dict[str, Any]
    live_wall_s: float
    simulation_wall_s: float
    urls: tuple[str, ...]
    #: The median real round trip of a bare loopback HTTP call, in seconds.
    round_trip_s: float

    @property
    def overhead_s(self) -> float:
        """That round trip in scenario seconds: roughly what the live column adds per call."""
        return self.round_trip_s * self.time_scale

    def rows(self) -> list[tuple[str, str, str]]:
        return [
            (label, _show(self.live.get(key), kind), _show(self.simulation.get(key), kind))
            for key, label, kind in FIGURES
        ]

    def as_json(self) -> dict[str, Any]:
        keys = [key for key, _, _ in FIGURES]
        return {
            "scenario": self.scenario.name,
            "seed": self.scenario.seed,
            "time_scale": self.time_scale,
            "interviews": self.scenario.workload.interviews,
            "live": {k: self.live.get(k) for k in keys},
            "simulation": {k: self.simulation.get(k) for k in keys},
            "live_wall_s": round(self.live_wall_s, 3),
            "simulation_wall_s": round(self.simulation_wall_s, 3),
            "providers": list(self.urls),
            "round_trip_ms": round(self.round_trip_s * 1000, 3),
            "overhead_s": round(self.overhead_s, 3),
        }


def finite(value: Any) -> Any:
    """``value`` with every figure that does not exist (NaN, inf) as None, for strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def _show(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if kind == "share":
        return f"{100 * value:.1f}%"
    if kind == "seconds":
        return f"{value:.2f}"
    return f"{int(value):,}"


def replay(
    ref: str,
    time_scale: float = DEFAULT_TIME_SCALE,
    interviews: int | None = DEFAULT_INTERVIEWS,
    seed: int | None = None,
    overrides: Sequence[str] = (),
    traces: Path | None = None,
) -> Comparison:
    """Replay ``ref`` live at ``time_scale``, then simulate it; both summaries side by side.

    With ``traces``, the live router writes its spans there, in real seconds: at a time
    scale of 1 they are the scenario's, ready for ``callboard calibrate`` and ``compare``.
    """
    from sims.results import summary_subset
    from sims.runner import simulate
    from sims.summarise import summarise

    if not (isinstance(time_scale, int | float) and 0 < time_scale < math.inf):
        raise InvalidSetting("--time-scale", time_scale, "a number > 0")
    scenario = load_replay(ref, interviews, seed, overrides)
    live_config(scenario, [f"http://{LOOPBACK}:1"] * len(scenario.account_specs()), time_scale)
    run = trio.run(play_live, scenario, float(time_scale), traces)
    keys = [key for key, _, _ in FIGURES]
    live = summary_subset(summarise(run.data).summary, keys)
    began = time.perf_counter()
    simulated = simulate(scenario)
    simulation = summary_subset(summarise(simulated).summary, keys)
    return Comparison(
        scenario,
        float(time_scale),
        live,
        simulation,
        run.wall_s,
        time.perf_counter() - began,
        run.urls,
        run.round_trip_s,
    )


def overhead_note(comparison: Comparison) -> str:
    return (
        f"A bare loopback HTTP round trip took {comparison.round_trip_s * 1000:.1f} ms, "
        f"{comparison.overhead_s:.2f} scenario s at {comparison.time_scale:g}x: the live "
        "latencies carry that much (and the router's own time) more per call."
    )


def markdown(comparison: Comparison) -> str:
    scenario = comparison.scenario
    lines = [
        f"# Live replay of `{scenario.name}` beside its simulation",
        "",
        f"{scenario.workload.interviews} interviews, seed {scenario.seed}, "
        f"replayed {comparison.time_scale:g}x faster than real time through the live "
        f"router over {len(comparison.urls)} loopback mock providers "
        f"({comparison.live_wall_s:.1f} s of wall time; the simulation took "
        f"{comparison.simulation_wall_s:.2f} s). Latencies are in scenario seconds.",
        "",
        overhead_note(comparison),
        "",
        "| figure | live replay | simulation |",
        "|---|---:|---:|",
        *(f"| {label} | {live} | {sim} |" for label, live, sim in comparison.rows()),
        "",
        HONESTY,
        "",
    ]
    return "\n".join(lines)


def write_report(comparison: Comparison, out: Path) -> Path:
    import json

    out.mkdir(parents=True, exist_ok=True)
    body = finite(comparison.as_json())
    (out / "replay.json").write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
    path = out / "replay.md"
    path.write_text(markdown(comparison))
    return path
