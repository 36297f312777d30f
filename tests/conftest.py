"""Shared fixtures: the virtual clock and a small fleet of virtual providers."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from actors.backends import BackendReply, Usage
from actors.backends.sink import StreamSink
from actors.backends.virtual import ErrorRates, LatencyModel, VirtualBackend
from actors.faults import Fault, FaultSchedule
from actors.messages import ChatRequest
from actors.provider import ProviderSpec
from actors.runtime.clock import VirtualClock
from actors.runtime.distributions import Constant
from actors.runtime.randomness import RandomStreams
from actors.timeouts import AnswerWatch
from engine.routing.fleet import Account


@pytest.fixture
def virtual_clock() -> VirtualClock:
    """pytest-trio runs a test on this clock when the test asks for it."""
    return VirtualClock()


class RecordingBackend:
    """A virtual backend that also remembers every request it was sent."""

    def __init__(self, inner: VirtualBackend) -> None:
        self.inner = inner
        self.requests: list[ChatRequest] = []

    async def complete(
        self,
        request: ChatRequest,
        request_id: str,
        usage: Usage,
        sink: StreamSink | None = None,
        watch: AnswerWatch | None = None,
    ) -> BackendReply:
        self.requests.append(request)
        return await self.inner.complete(request, request_id, usage, sink, watch)


def virtual_account(
    name: str,
    *,
    seconds: float = 1.0,
    faults: Sequence[Fault] = (),
    errors: ErrorRates | None = None,
    seed: int = 0,
    latency: LatencyModel | None = None,
    **spec: object,
) -> tuple[Account, RecordingBackend]:
    """An account whose calls take ``seconds`` (constant; or as ``latency`` models them)
    and obey ``faults``."""
    backend = RecordingBackend(
        VirtualBackend(
            name,
            latency or LatencyModel(service=Constant(seconds), error_ttft=Constant(0.1)),
            errors or ErrorRates(),
            FaultSchedule(faults),
            RandomStreams(seed),
        )
    )
    return Account(ProviderSpec(name=name, **spec), backend), backend
