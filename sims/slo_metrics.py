"""The SLO metrics of one run, named for what they measure.

A latency objective is about every request it covers, not only the answered ones: a
failed request missed it (it never got an answer), so it counts as infinitely slow.
A percentile is the smallest latency within which that share of the covered requests
was answered (no interpolation: "95% of turns were answered within 2.1 s" is then
literally true), and infinite when more than the rest failed.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

#: Which requests each latency metric covers, as the reports say it.
COVERS = {
    "answer": "candidate-facing turns, cache hits included",
    "provider": "candidate-facing turns that needed a provider (not cache hits)",
    "ttft": "candidate-facing turns that needed a provider, to their first token",
}
QUANTILES = (50, 95, 99)


def slo_percentile(latency: np.ndarray, failed: np.ndarray, q: float) -> float:
    """The ``q``-th percentile of ``latency`` with failed requests counted as infinite
    (nan when nothing is covered)."""
    if len(latency) == 0:
        return float("nan")
    values = np.where(failed, np.inf, latency)
    return float(np.percentile(values, q, method="inverted_cdf"))


class RequestOutcomes(Protocol):
    """The request columns the metrics read (``sims.results.RequestColumns``); read-only,
    as the frozen record's fields are."""

    @property
    def latency(self) -> np.ndarray: ...
    @property
    def ttft(self) -> np.ndarray: ...
    @property
    def outcome(self) -> np.ndarray: ...
    @property
    def cached(self) -> np.ndarray: ...


def slo_metrics(
    requests: RequestOutcomes, facing: np.ndarray, success: float, without_error: float
) -> dict[str, float]:
    """``answer_p*``, ``provider_p*`` and ``ttft_p*`` of one run's requests, beside the
    run's ``success`` and ``interviews_without_error`` shares."""
    failed = requests.outcome != 0
    needed_provider = facing & ~requests.cached
    metrics: dict[str, float] = {}
    for q in QUANTILES:
        metrics[f"answer_p{q}"] = slo_percentile(requests.latency[facing], failed[facing], q)
        metrics[f"provider_p{q}"] = slo_percentile(
            requests.latency[needed_provider], failed[needed_provider], q
        )
        metrics[f"ttft_p{q}"] = slo_percentile(
            requests.ttft[needed_provider], failed[needed_provider], q
        )
    metrics["success"] = success
    metrics["interviews_without_error"] = without_error
    return metrics
