"""Numeric views of a :class:`Results`, shared by the figures and the tables.

results.json stores non-finite floats as the strings "nan"/"inf" and, once reloaded,
every array as a list; reading everything through here means each figure and table
sees the same floats, and a report never disagrees with itself.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import attrs
import numpy as np

from sims.results import Results

# Fewer answered requests than this in a time window and its percentiles are noise:
# the window is left blank rather than drawn.
MIN_PER_WINDOW = 5

BREAKER_STATES = ("closed", "half_open", "open")


def as_float(value: Any) -> float:
    """A float from a summary value that may be a number, "nan", "inf" or missing."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def float_array(values: Any) -> np.ndarray:
    return np.asarray(values if values is not None else [], dtype=float)


@attrs.frozen
class Requests:
    """Per-request arrays, one row per request that entered the router."""

    start: np.ndarray
    latency: np.ndarray
    ttft: np.ndarray
    attempts: np.ndarray
    provider: np.ndarray
    outcome: np.ndarray
    cached: np.ndarray
    cost: np.ndarray
    #: Turns a candidate waits for (not the background evaluation): latency is about these.
    facing: np.ndarray

    @property
    def answered(self) -> np.ndarray:
        """Answered requests of every turn kind: what success and failure counts are of,
        as in the summary's "Answered" and the report's failure table."""
        return self.outcome == 0

    @property
    def failed(self) -> np.ndarray:
        """Requests that ended in an error, of every turn kind."""
        return ~self.answered

    @property
    def answered_facing(self) -> np.ndarray:
        """Answered candidate-facing requests, the ones latency figures describe."""
        return self.answered & self.facing

    @property
    def upstream(self) -> np.ndarray:
        """Answered by a provider, not from the cache (candidate-facing)."""
        return self.answered_facing & ~self.cached

    def __len__(self) -> int:
        return len(self.start)


def requests(results: Results) -> Requests:
    raw = results.requests
    n = len(raw.get("start", []))

    def column(key: str, dtype: type, fill: float) -> np.ndarray:
        values = raw.get(key)
        if values is None or len(values) != n:
            return np.full(n, fill, dtype=dtype)
        return np.asarray(values, dtype=dtype)

    return Requests(
        start=column("start", float, math.nan),
        latency=column("latency", float, math.nan),
        ttft=column("ttft", float, math.nan),
        attempts=column("attempts", int, 0),
        provider=column("provider", int, -1),
        outcome=column("outcome", int, 0),
        cached=column("cached", bool, False),
        cost=column("cost", float, 0.0),
        facing=_facing(results, column("kind", int, -1)),
    )


def _facing(results: Results, kind: np.ndarray) -> np.ndarray:
    """Which requests are of a candidate-facing turn kind (all, if the run does not say)."""
    kinds = results.meta.get("kinds") or []
    workload = (results.meta.get("config") or {}).get("workload") or {}
    facing_kinds = workload.get("candidate_facing")
    if not kinds or facing_kinds is None:
        return np.ones(len(kind), dtype=bool)
    indices = [i for i, name in enumerate(kinds) if name in facing_kinds]
    return np.isin(kind, indices)


@attrs.frozen
class Sampled:
    """The sampler's series: router-wide, and per provider keyed by account name."""

    t: np.ndarray
    in_flight: np.ndarray
    received: np.ndarray
    answered: np.ndarray
    failed: np.ndarray
    cache_hits: np.ndarray
    providers: dict[str, dict[str, np.ndarray]]


def sampled(results: Results) -> Sampled:
    raw = results.series
    t = float_array(raw.get("t"))

    def column(values: Any) -> np.ndarray:
        array = float_array(values)
        return array if len(array) == len(t) else np.zeros(len(t))

    return Sampled(
        t=t,
        in_flight=column(raw.get("in_flight")),
        received=column(raw.get("received")),
        answered=column(raw.get("answered")),
        failed=column(raw.get("failed")),
        cache_hits=column(raw.get("cache_hits")),
        providers={
            name: {key: column(values) for key, values in own.items()}
            for name, own in (raw.get("providers") or {}).items()
        },
    )


def window_width(span_s: float) -> float:
    """A window for over-time figures: a minute, coarser for long runs, finer for short."""
    if span_s < 300:
        return 10.0
    if span_s < 600:
        return 30.0
    for width in (60.0, 120.0, 300.0, 600.0, 1800.0):
        if span_s / width <= 120:
            return width
    return 3600.0


def window_edges(end_s: float, width: float) -> np.ndarray:
    count = max(1, math.ceil(end_s / width))
    return np.arange(count + 1) * width


def rate_per_minute(
    t: np.ndarray, cumulative: np.ndarray, width: float
) -> tuple[np.ndarray, np.ndarray]:
    """(edges, events per minute) from a cumulative count sampled at ``t``.

    Samples are taken ``width`` apart (the last one is always kept), and each rate
    divides by the actual time between samples, so a short final step is not diluted.
    """
    if len(t) < 2:
        return np.asarray([0.0, max(width, 1.0)]), np.zeros(1)
    step = float(np.median(np.diff(t))) or 1.0
    stride = max(1, round(width / step))
    index = np.arange(0, len(t), stride)
    if index[-1] != len(t) - 1:
        index = np.append(index, len(t) - 1)
    edges = t[index]
    dt = np.diff(edges)
    counts = np.diff(cumulative[index])
    with np.errstate(divide="ignore", invalid="ignore"):
        rates = np.where(dt > 0, counts / dt * 60.0, 0.0)
    return edges, rates


def binned(start: np.ndarray, edges: np.ndarray) -> list[np.ndarray]:
    """Indices of the requests that started in each window."""
    which = np.clip(np.searchsorted(edges, start, side="right") - 1, 0, len(edges) - 2)
    order = np.argsort(which, kind="stable")
    bounds = np.searchsorted(which[order], np.arange(len(edges)))
    return [order[bounds[i] : bounds[i + 1]] for i in range(len(edges) - 1)]


def windowed_percentiles(
    values: np.ndarray, groups: list[np.ndarray], points: tuple[float, ...]
) -> np.ndarray:
    """Percentiles per window, NaN where a window has fewer than MIN_PER_WINDOW values."""
    out = np.full((len(groups), len(points)), np.nan)
    for i, index in enumerate(groups):
        chosen = values[index]
        chosen = chosen[np.isfinite(chosen)]
        if len(chosen) >= MIN_PER_WINDOW:
            out[i] = np.percentile(chosen, points)
    return out


def family_of(results: Results) -> dict[str, str]:
    """Account name -> profile family (the account's name prefix if there is none)."""
    out = {}
    for row in results.providers:
        name = str(row.get("name", "?"))
        out[name] = str(row.get("family") or name.rsplit("-", 1)[0])
    return out


def max_concurrency_of(results: Results) -> dict[str, float]:
    return {str(row["name"]): as_float(row.get("max_concurrency")) for row in results.providers}


def breaker_spans(results: Results) -> dict[str, list[tuple[float, float, str]]]:
    """Per account with at least one transition: (start, end, state) spans over the run.

    Built from the exact transition times rather than the 10-second samples, which
    would miss a short half-open trial.
    """
    end = as_float(results.summary.get("simulated_s"))
    moves: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for move in sorted(results.transitions, key=lambda m: as_float(m.get("time"))):
        moves[str(move["provider"])].append(move)
    spans: dict[str, list[tuple[float, float, str]]] = {}
    for name, own in moves.items():
        last = max(as_float(m.get("time")) for m in own)
        stop = end if math.isfinite(end) and end >= last else last
        state, since = str(own[0].get("source", "closed")), 0.0
        out = []
        for move in own:
            at = as_float(move.get("time"))
            if at > since:
                out.append((since, at, state))
            state, since = str(move.get("target", state)), at
        if stop > since:
            out.append((since, stop, state))
        spans[name] = out
    return spans
