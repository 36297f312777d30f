"""What traces say of the workload: when conversations start, how long they run, what
each turn sends and gets back, how long people think between turns, what repeats.

A conversation is the requests of one session id (a request without one is a
conversation of one turn). Arrivals are conversations starting, a rate per minute, or
an hour-of-day curve (a piecewise-constant, non-homogeneous Poisson rate) when the
traces cover a day.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence

import attrs
import numpy as np
from scipy import stats

from sims.fits import Fit, Interval, fit, rate
from sims.observed import ObservedRequest

#: Seconds of traces needed before arrivals are fitted as a curve over the day.
DAY = 86400.0
#: Values a per-kind size needs before it is fitted.
MIN_VALUES = 30


@attrs.frozen
class KindFit:
    """One turn kind's sizes: tokens in and out of its answered requests."""

    kind: str
    requests: int
    input_tokens: Fit | None
    output_tokens: Fit | None


@attrs.frozen
class WorkloadFit:
    """The workload the traces show."""

    requests: int
    conversations: int
    span: float  # seconds from the first request's start to the last one's
    rate_per_minute: Interval  # conversations starting per minute
    daily_curve: tuple[float, ...] | None  # conversations starting in each hour of the day
    turns: Fit | None  # requests per conversation
    turns_median: int
    plan: tuple[str, ...]  # the most common sequence of kinds
    plan_share: float  # conversations that followed it exactly
    think_time: Fit | None
    think_times: int
    kinds: tuple[KindFit, ...]
    cache_hits: Interval  # requests answered from the cache
    outcomes: dict[str, int]


def fit_workload(requests: Sequence[ObservedRequest]) -> WorkloadFit:
    """The workload of ``requests`` (sorted by start, as :func:`read_traces` gives them)."""
    sessions: dict[str, list[ObservedRequest]] = {}
    for request in requests:
        sessions.setdefault(request.session or f"request:{request.request_id}", []).append(request)
    conversations = list(sessions.values())
    starts = np.sort([c[0].start for c in conversations])
    span = max(r.start for r in requests) - min(r.start for r in requests)
    turns = [len(c) for c in conversations]
    sequences = Counter(tuple(r.kind or "" for r in c) for c in conversations)
    plan, followed = min(sequences.items(), key=lambda item: (-item[1], item[0]))
    thinks = [
        later.start - earlier.end
        for c in conversations
        for earlier, later in itertools.pairwise(c)
        if later.start > earlier.end
    ]
    return WorkloadFit(
        requests=len(requests),
        conversations=len(conversations),
        span=span,
        rate_per_minute=_rate_per_minute(len(conversations), float(starts[-1] - starts[0])),
        daily_curve=_daily_curve(starts) if span >= DAY else None,
        turns=fit(turns) if len(turns) >= MIN_VALUES else None,
        turns_median=int(np.median(turns)),
        plan=plan if all(plan) else (),
        plan_share=followed / len(conversations),
        think_time=fit(thinks) if len(thinks) >= MIN_VALUES else None,
        think_times=len(thinks),
        kinds=_kinds(requests),
        cache_hits=rate(sum(r.cached for r in requests), len(requests)),
        outcomes=dict(sorted(Counter(r.outcome for r in requests).items())),
    )


def _rate_per_minute(conversations: int, seconds: float) -> Interval:
    """Conversations per minute: (n - 1) gaps over the span, with the Poisson count's
    99% interval (exact, chi-square)."""
    if conversations < 2 or seconds <= 0:
        return Interval(0.0, 0.0, 0.0)
    gaps = conversations - 1
    minutes = seconds / 60.0
    low = float(stats.chi2.ppf(0.005, 2 * gaps)) / 2 / minutes
    high = float(stats.chi2.ppf(0.995, 2 * gaps + 2)) / 2 / minutes
    return Interval(gaps / minutes, low, high)


def _daily_curve(starts: np.ndarray) -> tuple[float, ...]:
    """Conversations starting in each hour of the day (hours from the first span), as
    weights: the scenario's ``daily_curve``."""
    hours = (starts // 3600).astype(int) % 24
    counts = np.bincount(hours, minlength=24)
    days = np.bincount(np.arange(int(starts[-1] // 3600) + 1) % 24, minlength=24)
    return tuple(round(float(c) / max(int(d), 1), 3) for c, d in zip(counts, days, strict=True))


def _kinds(requests: Sequence[ObservedRequest]) -> tuple[KindFit, ...]:
    by_kind: dict[str, list[ObservedRequest]] = {}
    for request in requests:
        by_kind.setdefault(request.kind or "", []).append(request)
    found = []
    for kind, group in sorted(by_kind.items()):
        answered = [r for r in group if r.outcome == "ok"]
        inputs = [r.input_tokens for r in answered if r.input_tokens]
        outputs = [r.output_tokens for r in answered if r.output_tokens]
        found.append(
            KindFit(
                kind=kind,
                requests=len(group),
                input_tokens=fit(inputs) if len(inputs) >= MIN_VALUES else None,
                output_tokens=fit(outputs) if len(outputs) >= MIN_VALUES else None,
            )
        )
    return tuple(found)
