"""Numeric views of a :class:`Results`, shared by the figures and the tables.

The figures and tables read a run's columns and series through here as float arrays,
so each figure and table sees the same floats, and a report never disagrees with itself.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import attrs
import numpy as np

from actors.breaker import Transition
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
    return Requests(
        start=np.asarray(raw.start, dtype=float),
        latency=np.asarray(raw.latency, dtype=float),
        ttft=np.asarray(raw.ttft, dtype=float),
        attempts=np.asarray(raw.attempts, dtype=int),
        provider=np.asarray(raw.provider, dtype=int),
        outcome=np.asarray(raw.outcome, dtype=int),
        cached=np.asarray(raw.cached, dtype=bool),
        cost=np.asarray(raw.cost, dtype=float),
        facing=np.isin(raw.kind, results.meta.candidate_facing),
    )


@attrs.frozen
class ProviderSampled:
    """One account's sampled series (:class:`sims.sampler.ProviderSeries`) as floats."""

    in_use: np.ndarray
    queued: np.ndarray
    calls: np.ndarray
    rate_limited: np.ndarray
    breaker: np.ndarray
    power: np.ndarray


@attrs.frozen
class Sampled:
    """The sampler's series: router-wide, and per provider keyed by account name."""

    t: np.ndarray
    in_flight: np.ndarray
    received: np.ndarray
    answered: np.ndarray
    failed: np.ndarray
    cache_hits: np.ndarray
    providers: dict[str, ProviderSampled]


def sampled(results: Results) -> Sampled:
    raw = results.series
    return Sampled(
        t=float_array(raw.t),
        in_flight=float_array(raw.in_flight),
        received=float_array(raw.received),
        answered=float_array(raw.answered),
        failed=float_array(raw.failed),
        cache_hits=float_array(raw.cache_hits),
        providers={
            name: ProviderSampled(
                **{key: float_array(values) for key, values in attrs.asdict(own).items()}
            )
            for name, own in raw.providers.items()
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
    return {row.name: row.family or row.name.rsplit("-", 1)[0] for row in results.providers}


def max_concurrency_of(results: Results) -> dict[str, float]:
    return {row.name: float(row.max_concurrency) for row in results.providers}


def breaker_spans(results: Results) -> dict[str, list[tuple[float, float, str]]]:
    """Per account with at least one transition: (start, end, state) spans over the run.

    Built from the exact transition times rather than the 10-second samples, which
    would miss a short half-open trial.
    """
    end = as_float(results.summary.simulated_s)
    moves: dict[str, list[Transition]] = defaultdict(list)
    for move in sorted(results.transitions, key=lambda m: m.time):
        moves[move.provider].append(move)
    spans: dict[str, list[tuple[float, float, str]]] = {}
    for name, own in moves.items():
        last = max(m.time for m in own)
        stop = end if math.isfinite(end) and end >= last else last
        state, since = own[0].source.value, 0.0
        out = []
        for move in own:
            at = move.time
            if at > since:
                out.append((since, at, state))
            state, since = move.target.value, at
        if stop > since:
            out.append((since, stop, state))
        spans[name] = out
    return spans
