"""The HTTP backend against scripted upstreams: both APIs, streamed or not, every failure mapped."""

from __future__ import annotations

import json
from typing import Any

import attrs
import httpx
import pytest
import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from actors.backends import Usage
from actors.backends.http import (
    ConnectionFailed,
    Endpoint,
    HttpBackend,
    Secret,
    StreamBroken,
    Unreachable,
    UpstreamRejected,
)
from actors.backends.sink import Delta, StreamSink
from actors.errors import (
    AuthFailed,
    MalformedReply,
    ProviderOverloaded,
    RateLimited,
    UpstreamError,
)
from actors.messages import ChatMessage, ChatRequest
from tests.live.conftest import _serve_until_killed

KEY = "sk-test-0123456789abcdef-SECRET"
REQUEST = ChatRequest(
    messages=(ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")), max_tokens=20
)


@attrs.define
class Scripted:
    """An upstream that answers each call with the next scripted reply and records requests."""

    replies: list[dict[str, Any]]
    seen: list[dict[str, Any]] = attrs.Factory(list)

    app: Starlette = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.app = Starlette(routes=[Route("/{path:path}", self.answer, methods=["POST"])])

    async def __call__(self, scope, receive, send) -> None:
        await self.app(scope, receive, send)

    async def answer(self, request: Request) -> Response:
        body = json.loads(await request.body())
        headers = dict(request.headers)
        self.seen.append({"path": request.url.path, "headers": headers, "body": body})
        reply = self.replies.pop(0)
        extra = reply.get("headers", {})
        if "events" not in reply:
            payload = reply.get("json", {})
            if callable(payload):
                payload = payload(headers)
            raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            status = reply.get("status", 200)
            return Response(raw, status, extra, media_type="application/json")

        async def events():
            for event in reply["events"]:
                yield event.encode()
                await trio.sleep(reply.get("pause", 0.001))

        return StreamingResponse(events(), headers=extra, media_type="text/event-stream")


@pytest.fixture
async def client():
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


async def backend_for(
    nursery, client, app, kind: str = "openai", key: str | None = KEY, on_limits=None
) -> HttpBackend:
    url = await nursery.start(_serve_until_killed, app, trio.CancelScope())
    base = f"{url}/v1" if kind == "openai" else url
    endpoint = Endpoint("up", kind, base, "model-x", Secret(key) if key else None)
    return HttpBackend(endpoint, client, on_limits=on_limits)


def sse(*events: tuple[str | None, Any]) -> list[str]:
    out = []
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        out.append((f"event: {name}\n" if name else "") + f"data: {text}\n\n")
    return out


async def collect(backend: HttpBackend, *, restartable: bool = False):
    send, receive = trio.open_memory_channel(100)
    sink = StreamSink(send, restartable=restartable)
    try:
        reply = await backend.complete(REQUEST, "r-1", Usage(), sink)
    except Exception as exc:
        reply = exc
    send.close()
    return reply, [e.text async for e in receive if isinstance(e, Delta)]


async def test_anthropic_messages_plain_and_streamed(nursery, client):
    reset = "2030-01-01T00:00:00Z"
    app = Scripted(
        [
            {
                "json": {
                    "content": [{"type": "text", "text": "Hello there"}],
                    "usage": {"output_tokens": 3},
                },
                "headers": {
                    "anthropic-ratelimit-requests-limit": "50",
                    "anthropic-ratelimit-requests-remaining": "49",
                    "anthropic-ratelimit-requests-reset": reset,
                },
            },
            {
                "events": sse(
                    ("message_start", {"type": "message_start", "message": {}}),
                    ("ping", {"type": "ping"}),
                    (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "delta": {"type": "text_delta", "text": "Hel"},
                        },
                    ),
                    (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "delta": {"type": "text_delta", "text": "lo"},
                        },
                    ),
                    ("message_delta", {"type": "message_delta", "usage": {"output_tokens": 2}}),
                    ("message_stop", {"type": "message_stop"}),
                )
            },
        ]
    )
    seen_limits = []
    backend = await backend_for(nursery, client, app, "anthropic", on_limits=seen_limits.append)
    reply = await backend.complete(REQUEST, "r-1", Usage())
    assert (reply.content, reply.completion_tokens) == ("Hello there", 3)
    call = app.seen[0]
    assert call["path"] == "/v1/messages"
    assert call["headers"]["x-api-key"] == KEY
    assert call["headers"]["anthropic-version"] == "2023-06-01"
    assert call["body"]["system"] == "Be brief."
    assert call["body"]["messages"] == [{"role": "user", "content": "Hi"}]
    assert call["body"]["max_tokens"] == 20
    assert seen_limits[0].limits[0].remaining == 49
    streamed, deltas = await collect(backend)
    assert deltas == ["Hel", "lo"]
    assert (streamed.content, streamed.completion_tokens) == ("Hello", 2)
    assert app.seen[1]["body"]["stream"] is True


async def test_openai_streaming_without_usage_estimates_tokens(nursery, client):
    def chunk(text: str, finish: str | None = None) -> dict:
        return {"choices": [{"delta": {"content": text}, "finish_reason": finish}]}

    app = Scripted(
        [{"events": sse((None, chunk("abcd")), (None, chunk("efgh", "stop")), (None, "[DONE]"))}]
    )
    backend = await backend_for(nursery, client, app)
    reply, deltas = await collect(backend)
    assert deltas == ["abcd", "efgh"]
    assert reply.content == "abcdefgh" and reply.completion_tokens == 2
    assert app.seen[0]["headers"]["authorization"] == f"Bearer {KEY}"
    assert app.seen[0]["path"] == "/v1/chat/completions"


async def test_a_stream_asked_without_a_sink_is_streamed_and_its_first_token_timed(nursery, client):
    """As the virtual providers time it: a request that asks for a stream (a replayed
    interview's turn) is timed by its first token, even with nobody reading the text."""

    def chunk(text: str, finish: str | None = None) -> dict:
        return {"choices": [{"delta": {"content": text}, "finish_reason": finish}]}

    events = sse((None, chunk("abcd")), (None, chunk("efgh", "stop")), (None, "[DONE]"))
    app = Scripted([{"events": events, "pause": 0.2}])
    backend = await backend_for(nursery, client, app)
    started = trio.current_time()
    reply = await backend.complete(attrs.evolve(REQUEST, stream=True), "r-1", Usage())
    whole = trio.current_time() - started
    assert app.seen[0]["body"]["stream"] is True
    assert reply.content == "abcdefgh" and reply.completion_tokens == 2
    # Two pauses of 0.2 s come after the first token: it was timed before them.
    assert 0 < reply.ttft <= whole - 0.4


async def test_a_stream_without_a_sink_broken_part_way_may_fail_over(nursery, client):
    """Nobody saw its first part, so the router may try another account."""
    chunk = {"choices": [{"delta": {"content": "partial"}, "finish_reason": None}]}
    broken = sse((None, chunk), (None, {"error": {"message": "overloaded"}}))
    backend = await backend_for(nursery, client, Scripted([{"events": broken}]))
    with pytest.raises(UpstreamError) as caught:
        await backend.complete(attrs.evolve(REQUEST, stream=True), "r-1", Usage())
    assert type(caught.value) is not StreamBroken and caught.value.retryable


@pytest.mark.parametrize(
    ("reply", "error", "check"),
    [
        ({"status": 401, "json": {"error": {"message": "bad key"}}}, AuthFailed, None),
        ({"status": 403, "json": {}}, AuthFailed, None),
        (
            {"status": 429, "json": {}, "headers": {"retry-after-ms": "250"}},
            RateLimited,
            lambda e: e.retry_after == 0.25,
        ),
        ({"status": 429, "json": {}}, RateLimited, lambda e: e.retry_after == 1.0),
        ({"status": 404, "json": {"error": {"message": "no such model"}}}, UpstreamRejected, None),
        ({"status": 503, "json": {}}, UpstreamError, lambda e: e.upstream_status == 503),
        # Overload, in each provider's words: no fault of the account (it cools down).
        ({"status": 529, "json": {}}, ProviderOverloaded, lambda e: e.retry_after is None),
        (
            {
                "status": 529,
                "json": {"type": "error", "error": {"type": "overloaded_error"}},
                "headers": {"retry-after": "7"},
            },
            ProviderOverloaded,
            lambda e: e.retry_after == 7.0 and "HTTP 529" in str(e),
        ),
        (
            {"status": 503, "json": {"error": {"message": "That model is currently overloaded"}}},
            ProviderOverloaded,
            None,
        ),
        (
            {"status": 429, "json": {"error": {"type": "engine_overloaded_error"}}},
            ProviderOverloaded,
            None,
        ),
        (
            {"status": 503, "json": {"error": {"message": "upstream connect error"}}},
            UpstreamError,
            None,
        ),
        ({"status": 200, "json": {"choices": []}}, MalformedReply, None),
        ({"status": 200, "json": b"<html>oops</html>"}, MalformedReply, None),
    ],
)
async def test_each_upstream_outcome_is_a_named_attempt_error(nursery, client, reply, error, check):
    backend = await backend_for(nursery, client, Scripted([reply]))
    with pytest.raises(error) as caught:
        await backend.complete(REQUEST, "r-1", Usage())
    assert check is None or check(caught.value)


async def test_refused_connection_is_unreachable_and_reported(nursery, client):
    scope = trio.CancelScope()
    url = await nursery.start(_serve_until_killed, Scripted([]), scope)
    scope.cancel()
    await trio.sleep(0.05)
    reports: list[str] = []
    endpoint = Endpoint("gone", "openai", f"{url}/v1", "m")
    backend = HttpBackend(endpoint, client, on_reach=reports.append)
    with pytest.raises(ConnectionFailed) as caught:
        await backend.complete(REQUEST, "r-1", Usage())
    assert type(caught.value) is Unreachable and caught.value.retryable
    assert (caught.value.code, caught.value.status) == ("unreachable", 502)
    (reason,) = reports
    assert reason.startswith("ConnectError (127.0.0.1:") and reason in str(caught.value)


async def test_a_key_echoed_by_the_upstream_never_reaches_an_error_or_repr(nursery, client):
    def echo(headers):
        return {"error": {"message": f"Incorrect API key provided: {headers['authorization']}"}}

    backend = await backend_for(nursery, client, Scripted([{"status": 401, "json": echo}]))
    with pytest.raises(AuthFailed) as caught:
        await backend.complete(REQUEST, "r-1", Usage())
    assert KEY not in str(caught.value) and "***" in str(caught.value)
    for shown in (repr(backend), repr(backend.endpoint), str(backend.endpoint.api_key)):
        assert KEY not in shown


async def test_failure_after_streamed_text_is_final_unless_the_stream_can_restart(nursery, client):
    chunk = {"choices": [{"delta": {"content": "partial"}, "finish_reason": None}]}
    broken = sse((None, chunk), (None, {"error": {"message": "overloaded"}}))
    backend = await backend_for(nursery, client, Scripted([{"events": broken}, {"events": broken}]))
    error, deltas = await collect(backend)
    assert deltas == ["partial"]
    assert isinstance(error, StreamBroken) and not error.retryable
    error, _ = await collect(backend, restartable=True)
    assert type(error) is UpstreamError and error.retryable


async def test_a_stream_cut_before_its_end_is_an_upstream_error(nursery, client):
    chunk = {"choices": [{"delta": {"content": "par"}, "finish_reason": None}]}
    backend = await backend_for(nursery, client, Scripted([{"events": sse((None, chunk))}]))
    error, _ = await collect(backend, restartable=True)
    assert isinstance(error, UpstreamError) and "ended before" in str(error)
