"""The attempt's timeouts and a provider's overload on the real HTTP path, in virtual time.

Each upstream is an httpx ``MockTransport`` in the test's own process, pacing its bytes
with trio's clock; the router, its HttpBackend, httpx and the caps run as in production.
On the virtual clock a 35 s stream takes no real time, and no limit here depends on how
busy the machine is.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import trio

import engine
from actors.errors import AnswerCapReached, AttemptTimeout
from actors.runtime import clock
from engine.routing.errors import NoProviderAvailable, RequestFailed
from engine.serve.live_config import structure_config

USER = [{"role": "user", "content": "Tell me about a hard problem you solved."}]
SSE = {"content-type": "text/event-stream"}


def _event(text: str) -> bytes:
    data = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    return f"data: {json.dumps(data)}\n\n".encode()


_END = (
    b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'
)


def streaming(
    seconds: float, gap: float = 0.01, silent_at: float | None = None, silence: float = 0.0
) -> Callable[[httpx.Request], Any]:
    """An upstream streaming a word every ``gap`` seconds for ``seconds`` (falling silent
    for ``silence`` seconds at ``silent_at``, if given)."""

    words = round(seconds / gap)
    pause_at = None if silent_at is None else round(silent_at / gap)

    async def handler(request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            for i in range(words):
                yield _event("word ")
                await trio.sleep(silence if i == pause_at else gap)
            yield _END

        return httpx.Response(200, headers=SSE, content=body())

    return handler


def late(seconds: float) -> Callable[[httpx.Request], Any]:
    """An upstream whose response starts after ``seconds``."""

    async def handler(request: httpx.Request) -> httpx.Response:
        await trio.sleep(seconds)
        return _json(200, _completion("late"))

    return handler


def answering(calls: list[float]) -> Callable[[httpx.Request], Any]:
    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(clock.now())
        await trio.sleep(0.2)
        return _json(200, _completion("hello"))

    return handler


def overloaded(calls: list[float], headers: dict[str, str] | None = None) -> Callable:
    """Anthropic's 529 ``overloaded_error`` (OpenAI-compatible path: same status and body)."""

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(clock.now())
        body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        return _json(529, body, headers)

    return handler


def _json(status: int, data: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    """A JSON response whose body streams as a server's does (httpx reads a ``json=``
    body at once, and the backend reads every body as a stream)."""

    async def body() -> AsyncIterator[bytes]:
        yield json.dumps(data).encode()

    kind = {"content-type": "application/json"}
    return httpx.Response(status, headers={**kind, **(headers or {})}, content=body())


def _completion(text: str) -> dict[str, Any]:
    return {
        "id": "c-1",
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
        "finish_reason": "stop",
    }


def router_over(upstreams: dict[str, Callable], **tables: Any):
    """A live router over in-process upstreams (first listed, first tried)."""
    routes = {f"{name}.test": handler for name, handler in upstreams.items()}

    async def dispatch(request: httpx.Request) -> httpx.Response:
        return await routes[request.url.host](request)

    raw = {
        "providers": [
            {"name": name, "base_url": f"http://{name}.test/v1", "priority": i}
            for i, name in enumerate(upstreams)
        ],
        "routing": {"policy": "priority"},
        "health": {"ping_every": None},
        "cache": {"enabled": False},
        "breaker": {"failure_threshold": 3},
        **tables,
    }
    client = httpx.AsyncClient(transport=httpx.MockTransport(dispatch))
    return engine.open_router(structure_config(raw, "test"), env={}, http_client=client)


async def _stream(router: Any) -> str:
    return "".join([text async for text in router.stream(USER, max_tokens=4000)])


async def test_a_stream_longer_than_the_first_byte_timeout_is_never_cut(virtual_clock):
    # A reasoning model's long answer: 35 s, a word every 10 ms; first byte due in 3 s.
    upstreams = {"a": streaming(35.0)}
    async with router_over(upstreams, timeouts={"first_byte": 3, "idle": 1}) as router:
        for _ in range(5):
            text = await _stream(router)
            assert text.count("word") == 3500
        # Five long answers are five answers: the healthy provider's breaker never moved.
        status = router.status()[0]
        assert status.breaker == "closed" and router.router.stats.answered == 5
        assert router.fleet.health.health("a").failures == 0


async def test_the_routers_total_cap_cuts_an_answer_without_blaming_the_provider(virtual_clock):
    backup: list[float] = []
    upstreams = {"a": streaming(35.0), "b": answering(backup)}
    async with router_over(upstreams, timeouts={"total": 20}) as router:
        for _ in range(3):
            with pytest.raises(RequestFailed) as caught:
                await _stream(router)
            assert [type(a) for a in caught.value.attempts] == [AnswerCapReached]
            assert "the router's cap of 20 s (timeouts.total)" in str(caught.value)
        assert router.status()[0].breaker == "closed"
        assert router.fleet.health.health("a").failures == 0
    assert backup == []  # not retried elsewhere: another answer would be as long


async def test_a_stream_that_falls_silent_is_cut_at_the_idle_limit_and_not_retried(
    virtual_clock,
):
    backup: list[float] = []
    upstreams = {"a": streaming(10.0, silent_at=1.0, silence=60.0), "b": answering(backup)}
    async with router_over(upstreams, timeouts={"idle": 2}) as router:
        words = []
        with pytest.raises(RequestFailed) as caught:
            async for text in router.stream(USER, max_tokens=4000):
                words.append(text)
    assert words and [type(a) for a in caught.value.attempts] == [AttemptTimeout]
    assert "no byte for 2 s within the response (timeouts.idle)" in str(caught.value)
    assert backup == []  # text had reached the client: no second provider is charged


async def test_a_response_that_does_not_start_in_time_fails_over(virtual_clock):
    backup: list[float] = []
    upstreams = {"a": late(10.0), "b": answering(backup)}
    async with router_over(upstreams, timeouts={"first_byte": 4}) as router:
        answer = await router.complete(USER, max_tokens=5)
    assert (answer.provider, answer.attempts) == ("b", 2)
    assert backup == [pytest.approx(4.0)]  # b asked the moment a's first byte was due


async def test_overload_cools_the_account_and_fails_over_at_once(virtual_clock):
    hits: list[float] = []
    backup: list[float] = []
    upstreams = {"a": overloaded(hits), "b": answering(backup)}
    async with router_over(upstreams, retry={"overload_cooldown": 8}) as router:
        for _ in range(10):
            answer = await router.complete(USER, max_tokens=5)
            assert answer.provider == "b"
        status = router.status()[0]
        # The overloaded account rests 8 s (no Retry-After), then is tried again: no
        # backoff before the failover, no breaker opening (threshold 3), no fault in health.
        assert backup[0] == pytest.approx(0.0)
        assert status.breaker == "closed" and router.fleet.health.health("a").failures == 0
        assert len(hits) == 1 and router.fleet.provider("a").cooling_until == pytest.approx(8.0)
        await trio.sleep(8.0)
        await router.complete(USER, max_tokens=5)
        assert len(hits) == 2  # back after its cool-down


async def test_when_every_account_is_overloaded_the_client_gets_a_503_with_retry_after(
    virtual_clock,
):
    hits: list[float] = []
    upstreams = {"a": overloaded(hits, {"retry-after": "30"}), "b": overloaded(hits)}
    async with router_over(upstreams, retry={"overload_cooldown": 12, "deadline": 10}) as router:
        with pytest.raises(NoProviderAvailable) as caught:
            await router.complete(USER, max_tokens=5)
    # a rests 30 s (its Retry-After), b 12 s (the cool-down): the client may retry in 12 s.
    assert len(hits) == 2 and [a.code for a in caught.value.attempts] == ["overloaded"] * 2
    assert caught.value.status == 503 and caught.value.retry_after == pytest.approx(12.0)


def overloaded_stream(calls: list[float]) -> Callable[[httpx.Request], Any]:
    """A stream that starts, then says overloaded before any text (Anthropic does so in its
    event stream, where a whole answer would get a 529)."""

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(clock.now())

        async def body() -> AsyncIterator[bytes]:
            error = {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
            }
            yield f"data: {json.dumps(error)}\n\n".encode()

        return httpx.Response(200, headers=SSE, content=body())

    return handler


async def test_an_overload_event_before_any_text_cools_the_account_and_fails_over(
    virtual_clock,
):
    hits: list[float] = []
    upstreams = {"a": overloaded_stream(hits), "b": streaming(1.0)}
    async with router_over(upstreams) as router:
        text = await _stream(router)
        assert text.count("word") == 100 and len(hits) == 1
        assert router.fleet.provider("a").stats.failures["overloaded"] == 1
        assert router.fleet.provider("a").breaker.consecutive_failures == 0
