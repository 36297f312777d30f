"""Streamed answers through the routing core: failover before, during and after the first text."""

from __future__ import annotations

import pytest
import trio

from actors.backends import BackendReply, Usage
from actors.backends.sink import Delta, Restart, StreamSink
from actors.errors import UpstreamError
from actors.messages import ChatMessage, ChatRequest
from actors.provider import ProviderSpec
from engine.routing.books import Books
from engine.routing.errors import RequestFailed
from engine.routing.fleet import Account, RouterConfig, open_fleet
from engine.routing.policies import PolicyConfig
from engine.routing.retry import RetryConfig
from engine.serve.reply_stream import Done, ReplyStream

REQUEST = ChatRequest(messages=(ChatMessage("user", "hi"),), bypass_cache=True)
CONFIG = RouterConfig(PolicyConfig("priority"), RetryConfig(jitter=0.0, backoff_base=0.0))


class Streamer:
    """Streams ``parts`` into the caller's sink (if any); fails before part ``fail_at``."""

    def __init__(self, name: str, parts: list[str], fail_at: int | None = None) -> None:
        self.name, self.parts, self.fail_at = name, parts, fail_at
        self.cancelled = False

    async def complete(
        self,
        request: ChatRequest,
        request_id: str,
        usage: Usage,
        sink: StreamSink | None = None,
        watch: object = None,
    ) -> BackendReply:
        if sink is not None:
            await sink.start_attempt(self.name)
        try:
            for i, part in enumerate(self.parts):
                if i == self.fail_at:
                    raise UpstreamError(self.name, 503)
                await trio.sleep(0.001)
                if sink is not None:
                    await sink.text(part)
        except trio.Cancelled:
            self.cancelled = True
            raise
        return BackendReply("".join(self.parts), len(self.parts), 0.001)


def accounts(*backends: Streamer) -> list[Account]:
    return [Account(ProviderSpec(name=b.name, priority=i), b) for i, b in enumerate(backends)]


async def events_of(stream: ReplyStream) -> list:
    out = []
    while True:
        try:
            out.append(await stream.next_event())
        except StopAsyncIteration:
            return out


async def test_failover_before_the_first_text_is_invisible(nursery):
    fleet_accounts = accounts(Streamer("a", ["x"], fail_at=0), Streamer("b", ["Hel", "lo"]))
    async with open_fleet(fleet_accounts, CONFIG) as fleet:
        stream = ReplyStream(nursery, lambda sink: fleet.router.complete(REQUEST, sink=sink))
        texts = [text async for text in stream]
    assert texts == ["Hel", "lo"]
    assert (stream.completion.provider, stream.completion.attempts) == ("b", 2)


async def test_a_restartable_stream_restarts_on_the_next_provider(nursery):
    fleet_accounts = accounts(Streamer("a", ["Hel", "lo"], fail_at=1), Streamer("b", ["Hi"]))
    async with open_fleet(fleet_accounts, CONFIG) as fleet:
        stream = ReplyStream(
            nursery, lambda sink: fleet.router.complete(REQUEST, sink=sink), restartable=True
        )
        events = await events_of(stream)
    assert events[:3] == [Delta("Hel"), Restart("b"), Delta("Hi")]
    assert isinstance(events[3], Done) and events[3].completion.content == "Hi"


async def test_a_plain_stream_that_broke_after_text_asks_no_other_provider(nursery):
    fleet_accounts = accounts(Streamer("a", ["Hel", "lo"], fail_at=1), Streamer("b", ["Hi"]))
    async with open_fleet(fleet_accounts, CONFIG) as fleet:
        stream = ReplyStream(nursery, lambda sink: fleet.router.complete(REQUEST, sink=sink))
        assert await stream.__anext__() == "Hel"
        with pytest.raises(RequestFailed) as failed:
            await stream.__anext__()
        stats = fleet.router.stats
    # One attempt, a's: b's answer could not be appended to "Hel", so b is not asked,
    # neither charged nor counted, and the books say one attempt.
    assert [a.code for a in failed.value.attempts] == ["upstream_error"]
    assert "the answer broke off after it had begun" in str(failed.value)
    b = fleet.provider("b")
    assert (b.stats.calls, b.stats.cost, stats.attempts) == (0, 0.0, 1)
    assert b.breaker.consecutive_failures == 0 and fleet.health.health("b").calls == 0


async def test_an_answer_that_was_not_streamed_arrives_whole(nursery):
    class Plain:
        async def complete(self, request, request_id, usage, sink=None, watch=None):
            return BackendReply("all at once", 3, 0.0)

    async with open_fleet([Account(ProviderSpec(name="p"), Plain())], CONFIG) as fleet:
        stream = ReplyStream(nursery, lambda sink: fleet.router.complete(REQUEST, sink=sink))
        assert [text async for text in stream] == ["all at once"]


async def test_closing_a_stream_early_cancels_the_request(nursery):
    slow = Streamer("a", ["x"] * 1000)
    async with open_fleet(accounts(slow), CONFIG) as fleet:
        stream = ReplyStream(nursery, lambda sink: fleet.router.complete(REQUEST, sink=sink))
        async with stream:
            assert await stream.__anext__() == "x"
        await trio.sleep(0.01)
        stats = fleet.router.stats
    assert slow.cancelled
    assert (stats.cancelled, stats.in_flight) == (1, 0) and Books.of(fleet.router).balanced()
