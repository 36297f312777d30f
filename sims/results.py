"""The results of a run: typed records, written to a byte-stable results.json by cattrs.

A run's requests and attempts are stored as columns of the records the router hands
its recorder (:class:`engine.routing.recording.RequestRecord` and ``AttemptRecord``),
beside a :class:`RunSummary` of headline figures, per-account :class:`ProviderSummary`
rows, the sampler's series, the breakers' transitions and the cache's use. The classes
here are the one description of results.json: docs/results.schema.json is generated
from them (docs/results_schema.py) and :data:`RESULTS` writes and reads them
(:mod:`sims.summarise` builds them from a run).

No wall time, date or path goes in, floats are rounded to the microsecond, keys are
sorted, so the same run gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from typing import Any, NewType

import attrs
import cattrs
import numpy as np
from cattrs.gen import make_dict_unstructure_fn

from actors.autoscaler import ScalingEvent
from actors.breaker import Transition
from actors.quota import QuotaAlert
from sims.cache_use import CacheUse
from sims.interview import InterviewTally
from sims.runner import AccountCounts, QuotaUsage
from sims.sampler import Series

#: Columns of numbers, one value per request or attempt (numpy arrays in memory, lists
#: in results.json, where a non-finite float is the string "nan", "inf" or "-inf").
FloatColumn = NewType("FloatColumn", np.ndarray)
IntColumn = NewType("IntColumn", np.ndarray)
BoolColumn = NewType("BoolColumn", np.ndarray)


def _same_column(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.all((a == b) | ((a != a) & (b != b))))


def _column() -> Any:
    return attrs.field(eq=attrs.cmp_using(eq=_same_column))


def _nan_key(value: Any) -> Any:
    return "nan" if value != value else value


def _nan_equal(cls: type, fields: list[attrs.Attribute]) -> list[attrs.Attribute]:
    """Compare float fields with nan equal to nan, so a run's results read back from
    results.json are equal to themselves when a figure had no data."""
    return [f.evolve(eq_key=_nan_key) if f.type in (float, "float") else f for f in fields]


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


@attrs.frozen
class RequestColumns:
    """Every request that entered the router, whatever its fate, one row per
    :class:`~engine.routing.recording.RequestRecord` in the order they ended."""

    #: When it entered the router (seconds of simulated time).
    start: FloatColumn = _column()
    #: Seconds from ``start`` until it was answered or failed.
    latency: FloatColumn = _column()
    #: Seconds from ``start`` to the answer's first token.
    ttft: FloatColumn = _column()
    #: Seconds waiting for a concurrency slot.
    slot_wait: FloatColumn = _column()
    #: Seconds waiting for a limit (rate limits, cool-downs, quarantines).
    limit_wait: FloatColumn = _column()
    #: Attempts sent to providers for it.
    attempts: IntColumn = _column()
    #: The answering account, an index into ``meta.providers`` (-1: a cache hit or none).
    provider: IntColumn = _column()
    #: How it ended, an index into ``meta.outcomes`` (0: answered).
    outcome: IntColumn = _column()
    #: Answered from the cache.
    cached: BoolColumn = _column()
    #: What every attempt for it was billed.
    cost: FloatColumn = _column()
    #: The part of ``cost`` billed for attempts that gave no answer.
    wasted: FloatColumn = _column()
    #: Its turn kind, an index into ``meta.kinds``.
    kind: IntColumn = _column()


@attrs.frozen
class AttemptColumns:
    """Every attempt sent to a provider, one row per
    :class:`~engine.routing.recording.AttemptRecord` (attempts refused by an account's own
    limits before they were sent are not attempts)."""

    #: The codes attempts ended with, in the order they first occurred.
    codes: list[str]
    #: The account, an index into ``meta.providers``.
    provider: IntColumn = _column()
    #: How it ended, an index into ``codes``.
    code: IntColumn = _column()
    #: What the provider billed for it.
    cost: FloatColumn = _column()


@attrs.frozen(field_transformer=_nan_equal)
class ProviderSummary(AccountCounts):
    """One account's totals over the run."""

    #: Requests whose answer it gave.
    served_requests: int
    #: Its share of all accounts' calls.
    load_share: float
    #: Its busy slot-seconds over its slot-seconds in the run.
    utilisation: float
    #: 429s: refused by its limits, or rate limited by the provider.
    rate_limited: int
    #: Billed per token.
    usage_cost: float
    #: Hours it was powered (a self-hosted replica), or the whole run.
    powered_hours: float
    #: ``powered_hours`` times its hourly cost.
    hosting_cost: float
    #: ``usage_cost`` plus ``hosting_cost``.
    cost: float
    #: The lowest in-flight limit adaptive concurrency set (``max_concurrency`` when off).
    lowest_limit: int


@attrs.frozen(field_transformer=_nan_equal)
class SloMetrics:
    """What service-level objectives are judged on (``sims.slo``): latencies in seconds
    with a failed request as infinite (nan when a metric covers no request), and shares."""

    #: Median latency of every candidate-facing turn, cache hits included.
    answer_p50: float
    #: 95th percentile latency of every candidate-facing turn, cache hits included.
    answer_p95: float
    #: 99th percentile latency of every candidate-facing turn, cache hits included.
    answer_p99: float
    #: Median latency of the candidate-facing turns that needed a provider.
    provider_p50: float
    #: 95th percentile latency of the candidate-facing turns that needed a provider.
    provider_p95: float
    #: 99th percentile latency of the candidate-facing turns that needed a provider.
    provider_p99: float
    #: Median time to first token of the candidate-facing turns that needed a provider.
    ttft_p50: float
    #: 95th percentile time to first token of the same turns.
    ttft_p95: float
    #: 99th percentile time to first token of the same turns.
    ttft_p99: float
    #: The share of requests answered.
    success: float
    #: The share of interviews that completed without a failed turn.
    interviews_without_error: float


@attrs.frozen(field_transformer=_nan_equal)
class RunSummary:
    """A run's headline figures.

    ``p50``/``p95``/``p99`` are the latencies of the *answered* requests of the
    candidate-facing turn kinds, cache hits included (they are answered at once);
    ``upstream_*`` and ``ttft_*`` leave the cache hits out; ``background_*`` are the turns
    nobody waits for (the evaluation). ``slo_metrics`` are what objectives are judged on.
    """

    #: The scenario's name.
    scenario: str
    #: The seed it ran with.
    seed: int
    #: Interviews the workload planned.
    interviews: int
    #: Requests that entered the router.
    requests: int
    #: Requests answered (by a provider or the cache).
    answered: int
    #: ``answered`` over ``requests``.
    success_rate: float
    #: Requests that ended in an error, by outcome (only those that occurred).
    failures: dict[str, int]
    #: Median latency of the answered candidate-facing requests.
    p50: float
    #: 95th percentile latency of the answered candidate-facing requests.
    p95: float
    #: 99th percentile latency of the answered candidate-facing requests.
    p99: float
    #: Median latency of the candidate-facing requests a provider answered.
    upstream_p50: float
    #: 95th percentile latency of the candidate-facing requests a provider answered.
    upstream_p95: float
    #: 99th percentile latency of the candidate-facing requests a provider answered.
    upstream_p99: float
    #: Median latency of the answered background requests.
    background_p50: float
    #: 95th percentile latency of the answered background requests.
    background_p95: float
    #: Mean wait for a slot of the candidate-facing requests a provider answered.
    slot_wait_mean: float
    #: Mean wait for a limit of the same requests.
    limit_wait_mean: float
    #: Mean latency of the same requests less both waits (attempts and backoff).
    service_mean: float
    #: Median time to first token of the candidate-facing requests a provider answered.
    ttft_p50: float
    #: 95th percentile time to first token of the same requests.
    ttft_p95: float
    #: 99th percentile time to first token of the same requests.
    ttft_p99: float
    #: Answered requests per minute of simulated time.
    throughput_rpm: float
    #: 429s over all accounts.
    rate_limited: int
    #: Times a look at every account found one at a limit, by limit, over all accounts.
    held_back_by_limits: dict[str, int]
    #: Attempts beyond each request's first.
    retries: int
    #: Attempts sent to providers.
    attempts: int
    #: Requests answered from the cache over ``requests``.
    cache_hit_rate: float
    #: Usage billed for every attempt plus hosting.
    cost_total: float
    #: Billed for attempts that gave no answer: failed, timed out, cut off, a hedge's
    #: losing leg (the answering attempts of retried requests are not waste).
    wasted_cost: float
    #: ``wasted_cost`` by the code the attempts ended with (only those billed).
    wasted_cost_by_outcome: dict[str, float]
    #: The powered hours of self-hosted replicas times their hourly cost.
    hosting_cost: float
    #: Powered hours of the accounts that cost by the hour.
    replica_hours: float
    #: ``cost_total`` over the interviews started.
    cost_per_interview: float
    #: Interviews that reached their last turn (failed turns included).
    interviews_completed: int
    #: Interviews with at least one failed turn.
    interviews_with_error: int
    #: Share of the interviews started that completed without a failed turn.
    interviews_without_error: float
    #: Median interview length in minutes.
    interview_minutes_p50: float
    #: Seconds of simulated time the run took.
    simulated_s: float
    #: Times a breaker opened.
    breaker_openings: int
    #: Hedged attempts sent.
    hedges: int
    #: Hedged attempts that answered first.
    hedge_wins: int
    #: Retries the retry budget refused.
    retries_denied: int
    #: Requests shed.
    shed: int
    #: Times a request moved on to another account after a failed attempt.
    failovers: int
    #: Attempts sent to providers (as ``attempts``).
    upstream_calls: int
    #: What service-level objectives are judged on.
    slo_metrics: SloMetrics


@attrs.frozen
class RunMeta:
    """Which run this is: the scenario, seed and version, and the names the columns'
    indexes point into."""

    #: The callboard version that ran it.
    callboard_version: str
    #: The scenario's name.
    scenario: str
    #: The scenario's description.
    description: str
    #: A hash of the scenario as run, to tell apart runs of edited scenarios.
    scenario_hash: str
    #: The seed it ran with.
    seed: int
    #: The scenario as run, every key as in a scenario file (docs/reference.md).
    config: dict[str, Any]
    #: Outcome codes; ``requests.outcome`` indexes into them.
    outcomes: list[str]
    #: Turn kinds; ``requests.kind`` indexes into them.
    kinds: list[str]
    #: Account names; ``requests.provider`` and ``attempts.provider`` index into them.
    providers: list[str]
    #: Timed events the virtual clock processed.
    timed_events: int

    @property
    def candidate_facing(self) -> tuple[int, ...]:
        """Indexes into :attr:`kinds` of the turn kinds a candidate waits for."""
        facing = self.config["workload"]["candidate_facing"]
        return tuple(i for i, kind in enumerate(self.kinds) if kind in facing)


@attrs.frozen
class QuotaReport:
    """Quotas (limits over a day or longer): alerts as they were crossed, and where each
    stood at the end."""

    #: Each time an account's use of a quota crossed an alert level.
    alerts: list[QuotaAlert]
    #: Where each account's quota stood when the run ended.
    usage: list[QuotaUsage]


@attrs.frozen
class Results:
    """What a run found: results.json."""

    #: Which run this is.
    meta: RunMeta
    #: The headline figures.
    summary: RunSummary
    #: Each account's totals, in fleet order.
    providers: list[ProviderSummary]
    #: The sampler's series, router-wide and per account.
    series: Series
    #: Every breaker transition, in time order.
    transitions: list[Transition]
    #: What the candidates experienced.
    interviews: InterviewTally
    #: Every request.
    requests: RequestColumns
    #: Every attempt sent to a provider.
    attempts: AttemptColumns
    #: What the cache answered, per turn kind, and why it missed.
    cache: CacheUse
    #: Quota alerts and use.
    quotas: QuotaReport
    #: The autoscaler's actions.
    scaling: list[ScalingEvent]

    def to_json(self) -> str:
        return json.dumps(
            round_floats(RESULTS.unstructure(self)), sort_keys=True, separators=(",", ":")
        )

    @classmethod
    def from_json(cls, text: str) -> Results:
        return RESULTS.structure(json.loads(text), cls)


def summary_subset(summary: RunSummary, keys: Iterable[str]) -> dict[str, Any]:
    """Some of a summary's figures as plain data, for the compact runs sizing and
    experiments keep (and pickle across processes)."""
    plain = RESULTS.unstructure(summary)
    return {key: plain[key] for key in keys}


def _number(value: Any, _: type) -> float:
    """A float as results.json holds it: a number (an int stays an int, so a file reads
    back to the same bytes) or "nan", "inf", "-inf"."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected a number, got {value!r}")
    return value if isinstance(value, int) else float(value)


#: What each column holds in memory, as :class:`engine.routing.recording.RequestRecorder`
#: keeps it.
_DTYPES = {FloatColumn: float, IntColumn: np.int32, BoolColumn: bool}


def _structure_column(values: list[Any], column: Any) -> np.ndarray:
    return np.asarray(values, dtype=_DTYPES[column])  # numpy reads "nan" and "inf" itself


#: Classes whose fields at their default are left out of results.json (a run without a
#: cache has no cache counts).
SPARSE: tuple[type, ...] = (CacheUse,)


def _results_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(float, _number)
    for column in _DTYPES:
        converter.register_unstructure_hook(column, lambda array: array)  # round_floats lists it
        converter.register_structure_hook(column, _structure_column)
    for cls in SPARSE:
        converter.register_unstructure_hook(
            cls, make_dict_unstructure_fn(cls, converter, _cattrs_omit_if_default=True)
        )
    return converter


#: Writes :class:`Results` to results.json and reads it back.
RESULTS = _results_converter()
