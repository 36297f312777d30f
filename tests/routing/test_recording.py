"""Recording: the router tells its recorder how every request ended, as one RequestRecord."""

from __future__ import annotations

import pytest
import trio

from actors.cache import CacheConfig
from actors.messages import ChatMessage, ChatRequest
from engine.routing.errors import InvalidRequest
from engine.routing.fleet import RouterConfig, open_fleet
from engine.routing.recording import (
    OUTCOMES,
    AttemptRecord,
    Recorder,
    RequestRecord,
    RequestRecorder,
)
from engine.routing.retry import RetryConfig
from tests.conftest import virtual_account


class Outcomes:
    """A recorder that keeps the records themselves."""

    def __init__(self) -> None:
        self.seen: list[RequestRecord] = []

    def record(self, outcome: RequestRecord) -> None:
        self.seen.append(outcome)

    def record_attempt(self, attempt: AttemptRecord) -> None:
        pass


def ask(text: str = "hello", **fields: object) -> ChatRequest:
    return ChatRequest(messages=(ChatMessage("user", text),), **fields)


async def test_one_outcome_per_request_whatever_its_fate(virtual_clock):
    account, _ = virtual_account("a", seconds=1.5)
    recorder: Recorder = Outcomes()
    config = RouterConfig(retry=RetryConfig(jitter=0.0), cache=CacheConfig(enabled=True))
    async with open_fleet([account], config, recorder=recorder) as fleet:
        answer = await fleet.router.complete(ask())
        await trio.sleep(1.0)  # the cache actor stores the answer
        await fleet.router.complete(ask())
        with pytest.raises(InvalidRequest):
            await fleet.router.complete(ChatRequest(messages=()))
        with trio.move_on_after(0.5):
            await fleet.router.complete(ask("impatient"))
    ok, hit, invalid, cancelled = recorder.seen
    assert ok == RequestRecord("chat", 0.0, 1.5, answer.ttft, 1, "a", "ok", False, 0.0, 0.0)
    assert (hit.code, hit.cached, hit.provider, hit.attempts, hit.latency) == (
        "ok",
        True,
        None,
        0,
        0.0,
    )
    assert (invalid.code, invalid.attempts, invalid.provider) == ("invalid_request", 0, None)
    assert (cancelled.code, cancelled.start, cancelled.latency) == ("cancelled", 2.5, 0.5)


def test_request_recorder_keeps_one_row_per_outcome():
    recorder = RequestRecorder(["a", "b"])
    recorder.record(RequestRecord("chat", 1.0, 2.0, 0.5, 1, "b", "ok", False, 0.25, 0.05, 0.1, 0.3))
    recorder.record(RequestRecord("question", 3.0, 0.0, 0.0, 0, None, "no_provider", False, 0.0))
    recorder.record(RequestRecord("chat", 4.0, 0.0, 0.0, 0, None, "some_new_code", False, 0.0))
    arrays = recorder.arrays()
    assert len(recorder) == 3
    assert recorder.kinds == ["chat", "question"]
    assert arrays["kind"].tolist() == [0, 1, 0]
    assert arrays["provider"].tolist() == [1, -1, -1]
    assert [OUTCOMES[i] for i in arrays["outcome"]] == ["ok", "no_provider", "error"]
    assert arrays["slot_wait"].tolist() == [0.1, 0.0, 0.0]
    assert arrays["limit_wait"].tolist() == [0.3, 0.0, 0.0]
    assert arrays["cost"].tolist() == [0.25, 0.0, 0.0]
    assert arrays["wasted"].tolist() == [0.05, 0.0, 0.0]
    recorder.record_attempt(AttemptRecord("b", "timeout", 0.05))
    recorder.record_attempt(AttemptRecord("a", "rejected", 0.0))  # never sent: not an attempt
    recorder.record_attempt(AttemptRecord("b", "ok", 0.2))
    attempts = recorder.attempt_arrays()
    assert recorder.attempt_codes == ["timeout", "ok"]
    assert attempts["provider"].tolist() == [1, 1] and attempts["code"].tolist() == [0, 1]
    assert attempts["cost"].tolist() == [0.05, 0.2]
