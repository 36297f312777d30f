"""The workload from observed requests: conversations by session, think times, turn
kinds, and a curve over the day when the traces cover one."""

from __future__ import annotations

import numpy as np
import pytest

from sims.observed import ObservedRequest
from sims.workload_fit import fit_workload


def _request(n: int, start: float, session: str | None, kind: str | None = None):
    return ObservedRequest(
        request_id=f"r{n:05d}",
        start=start,
        end=start + 1.0,
        ttft=0.2,
        session=session,
        kind=kind,
        outcome="ok",
        cached=n % 10 == 0,
        input_tokens=100 + n % 7,
        output_tokens=50 + n % 13,
        attempts=(),
    )


def test_conversations_think_times_and_plan():
    rng = np.random.default_rng(3)
    requests = []
    for c in range(60):
        t = c * 30.0
        for kind in ("question", "follow_up", "follow_up"):
            requests.append(_request(len(requests), t, f"s{c}", kind))
            t += 1.0 + float(rng.lognormal(np.log(8.0), 0.5))
    requests.sort(key=lambda r: r.start)
    workload = fit_workload(requests)
    assert (workload.conversations, workload.requests) == (60, 180)
    assert workload.plan == ("question", "follow_up", "follow_up") and workload.plan_share == 1
    assert workload.turns_median == 3 and workload.think_times == 120
    assert workload.think_time.best.family == "lognormal"
    assert workload.think_time.median.low <= 8.0 <= workload.think_time.median.high
    assert workload.rate_per_minute.estimate == pytest.approx(2.0)
    assert [k.kind for k in workload.kinds] == ["follow_up", "question"]
    assert workload.cache_hits.estimate == pytest.approx(18 / 180)
    assert workload.daily_curve is None


def test_a_day_of_traces_gives_a_curve_and_lone_requests_are_conversations():
    # Two days: 10 requests an hour, 30 in hour 9 of each day; no sessions.
    starts = [
        day * 86400 + hour * 3600 + i * 3600 / count
        for day in range(2)
        for hour in range(24)
        for count in [30 if hour == 9 else 10]
        for i in range(count)
    ]
    requests = [_request(n, s, None) for n, s in enumerate(starts)]
    workload = fit_workload(requests)
    assert workload.conversations == len(requests) and workload.turns_median == 1
    assert workload.plan == () and workload.think_times == 0
    curve = workload.daily_curve
    assert len(curve) == 24 and curve[9] == 30.0 and curve[8] == 10.0
