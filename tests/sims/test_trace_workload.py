"""The trace-driven workload: observed arrivals sent again at their times, sized as seen."""

from __future__ import annotations

import pytest

from actors.runtime.errors import InvalidSetting
from engine.routing.recording import AttemptRecord, RequestRecord
from sims.runner import simulate
from sims.scenario import load
from sims.trace_workload import Arrival, TraceWorkload


class Attempts:
    """Every attempt's account and billed tokens, and every request's start and session."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, int, int]] = []
        self.requests: list[tuple[float, str | None, str]] = []

    def record(self, outcome: RequestRecord) -> None:
        self.requests.append((outcome.start, outcome.session, outcome.kind))

    def record_attempt(self, attempt: AttemptRecord) -> None:
        assert attempt.seen is not None
        self.attempts.append(
            (attempt.provider, attempt.seen.input_tokens, attempt.seen.output_tokens)
        )


ARRIVALS = (
    Arrival(0.0, "question", "a", 120, 40),
    Arrival(0.0, "chat", None, 500, 10),
    Arrival(2.5, "follow_up", "a", 300, 80),
    Arrival(7.0, "question", "b", 90, None),
)


def _run(arrivals: tuple[Arrival, ...]) -> tuple[Attempts, object]:
    scenario, _ = load("reference", [])
    seen = Attempts()
    data = simulate(scenario, workload=TraceWorkload(arrivals), recorders=[seen])
    return seen, data


def test_each_arrival_enters_at_its_time_with_its_kind_session_and_sizes() -> None:
    seen, data = _run(ARRIVALS)
    assert sorted(seen.requests, key=str) == [
        (0.0, "a", "question"),
        (0.0, None, "chat"),
        (2.5, "a", "follow_up"),
        (7.0, "b", "question"),
    ]
    billed = sorted((i, o) for _, i, o in seen.attempts)
    assert [i for i, _ in billed] == [90, 120, 300, 500]
    assert dict(billed)[120] == 40 and dict(billed)[300] == 80 and dict(billed)[500] == 10
    tally = data.tally  # type: ignore[attr-defined]
    assert (tally.started, tally.completed) == (3, 3)  # conversations a, b and the lone one


def test_the_same_arrivals_give_the_same_run() -> None:
    first, _ = _run(ARRIVALS)
    second, _ = _run(ARRIVALS)
    assert first.attempts == second.attempts and first.requests == second.requests


def test_no_arrivals_is_named() -> None:
    with pytest.raises(InvalidSetting, match="traces"):
        TraceWorkload(())
