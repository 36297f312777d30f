"""SLO metrics cover every request they name: a failed turn counts as missing the objective."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from sims.slo import Slo
from sims.slo_metrics import slo_metrics, slo_percentile


def _arrays(rows: list[tuple[float, str, bool]]) -> tuple[SimpleNamespace, np.ndarray]:
    """(latency, "ok" | "failed" | "background", cached) per request."""
    return (
        SimpleNamespace(
            latency=np.array([r[0] for r in rows]),
            ttft=np.array([r[0] / 2 for r in rows]),
            outcome=np.array([1 if r[1] == "failed" else 0 for r in rows]),
            cached=np.array([r[2] for r in rows]),
        ),
        np.array([r[1] != "background" for r in rows]),
    )


# 10 cache hits at 0 s, 9 provider answers at 1..9 s, 1 failed turn, 5 background turns
# that take 100 s (not candidate-facing: in no latency metric).
RUN = [
    *[(0.0, "ok", True)] * 10,
    *[(float(s), "ok", False) for s in range(1, 10)],
    (120.0, "failed", False),
    *[(100.0, "background", False)] * 5,
]


def test_each_latency_covers_its_turns_and_a_failure_is_infinite():
    arrays, facing = _arrays(RUN)
    metrics = slo_metrics(arrays, facing, 24 / 25, 0.5)
    # 20 facing turns, sorted: ten 0 s, 1..9 s, inf. The 95th is the 19th (9 s).
    assert (metrics["answer_p50"], metrics["answer_p95"], metrics["answer_p99"]) == (
        0.0,
        9.0,
        math.inf,
    )
    # The 10 that needed a provider: 1..9 s and the failure.
    assert metrics["provider_p50"] == 5.0 and metrics["provider_p95"] == math.inf
    assert metrics["ttft_p50"] == 2.5
    assert metrics["success"] == pytest.approx(24 / 25)
    assert metrics["interviews_without_error"] == 0.5


def test_a_fleet_that_fails_turns_misses_a_latency_objective_however_fast_the_rest():
    objective = Slo.parse("provider_p95<=5s")
    fast_but_failing = [*[(0.5, "ok", False)] * 90, *[(1.0, "failed", False)] * 10]
    slow_but_answering = [*[(0.5, "ok", False)] * 96, *[(4.9, "ok", False)] * 4]
    for rows, met in ((fast_but_failing, False), (slow_but_answering, True)):
        arrays, facing = _arrays(rows)
        summary = {"slo_metrics": slo_metrics(arrays, facing, 1.0, 1.0)}
        assert objective.met(summary) is met


def test_a_percentile_is_a_latency_that_share_of_turns_was_answered_within():
    latency = np.arange(1.0, 101.0)
    failed = np.zeros(100, dtype=bool)
    assert slo_percentile(latency, failed, 95) == 95.0  # a sample, not an interpolation
    failed[-5:] = True
    assert slo_percentile(latency, failed, 95) == 95.0  # 95 answered within 95 s
    failed[-6] = True
    assert slo_percentile(latency, failed, 95) == math.inf
    assert math.isnan(slo_percentile(latency[:0], failed[:0], 95))
