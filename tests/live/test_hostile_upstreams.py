"""Hostile upstreams: every one costs its provider a failed attempt, never a 500, unbounded
memory, a reused poisoned connection or a provider benched for years.

Each upstream is a loopback server written with trio sockets that sends the bad bytes
of an audit of the router's HTTP path. Each is checked twice: the HTTP backend (httpx
and the caps of :mod:`actors.backends.caps`) names the fault as an
:class:`~actors.errors.AttemptError`, and the live router, with a healthy mock provider
behind the hostile one, answers from the healthy one while the hostile one's breaker
and health count the failure. Arbitrary exceptions raised by a backend are checked the
same way.
"""

from __future__ import annotations

import gzip
import json
import math

import httpx
import openai
import pytest
import trio
import trustme

import engine
from actors.backends import Usage
from actors.backends.caps import (
    EventReader,
    EventTooLarge,
    InflatedTooLarge,
    LineTooLong,
    ReplyTooLarge,
    StreamTooLarge,
    UpstreamCaps,
)
from actors.backends.http import ConnectionFailed, Endpoint, HttpBackend, StreamBroken
from actors.errors import AttemptError, AttemptTimeout, BackendFailed, MalformedReply, RateLimited
from actors.messages import ChatMessage, ChatRequest
from engine.routing.errors import RequestFailed
from engine.serve.live_config import ConfigError, structure_config
from tests.live.conftest import (
    RawConnection,
    completion,
    http_response,
    server_context,
    start_mock,
    start_raw,
    start_router,
    trusting,
)
from tests.live.test_http_backend import collect as collect_backend

USER = [{"role": "user", "content": "Tell me about yourself."}]
REQUEST = ChatRequest(messages=(ChatMessage("user", "Hi"),), max_tokens=5)
CAPS = {
    "max_reply_bytes": 64 * 1024,
    "max_stream_bytes": 256 * 1024,
    "max_line_bytes": 16 * 1024,
    "max_event_bytes": 32 * 1024,
    "max_inflated_bytes": 1024 * 1024,
}
SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
CHUNKED = b"transfer-encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def replying(raw: bytes):
    """An upstream that answers every request with ``raw``, then keeps the line open."""

    async def answer(conn: RawConnection) -> None:
        while await conn.read_request() is not None:
            await conn.send(raw)

    return answer


def endless(head: bytes, piece: bytes):
    """An upstream that sends ``head``, then ``piece`` forever as fast as it is read."""

    async def answer(conn: RawConnection) -> None:
        await conn.read_request()
        await conn.send(head)
        while True:
            await conn.send(piece)

    return answer


def trickled(head: bytes, piece: bytes):
    """``head``, then ``piece`` one byte per write, forever: a line assembled byte by byte."""

    async def answer(conn: RawConnection) -> None:
        await conn.read_request()
        await conn.send(head)
        while True:
            for byte in piece:
                await conn.send(bytes([byte]))

    return answer


async def continues_forever(conn: RawConnection) -> None:
    await conn.read_request()
    while True:
        await conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        await trio.sleep(0.001)


def bomb() -> bytes:
    body = gzip.compress(b"\0" * (64 * 1024 * 1024), 9)  # ~64 KiB inflating to 64 MiB
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n"
    return head + b"content-length: %d\r\n\r\n" % len(body) + body


def framed(content_length: bytes) -> bytes:
    body = json.dumps(completion()).encode()
    return b"HTTP/1.1 200 OK\r\ncontent-length: " + content_length + b"\r\n\r\n" + body


def chunk_size(size: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    return head + CHUNKED + size + b"\r\n{}}\r\n0\r\n\r\n"


EMPTY_EVENT = b'data: {"choices": [{"delta": {}, "finish_reason": null}]}\n\n'

#: name, upstream, streamed, what the backend raises, what its message says.
HOSTILE = [
    (
        "superscript_length",
        replying(framed("²".encode())),
        False,
        ConnectionFailed,
        "Content-Length",
    ),
    ("hex_chunk_size", replying(chunk_size(b"0x3")), False, ConnectionFailed, "chunk"),
    ("plus_chunk_size", replying(chunk_size(b"+3")), False, ConnectionFailed, "chunk"),
    ("underscore_chunk_size", replying(chunk_size(b"0_3")), False, ConnectionFailed, "chunk"),
    (
        "nul_in_header",
        replying(http_response(200, completion(), {"x-note": "a\0b"})),
        False,
        ConnectionFailed,
        "RemoteProtocolError",
    ),
    ("gzip_bomb", replying(bomb()), False, InflatedTooLarge, "upstream.max_inflated_bytes"),
    (
        "endless_body",
        endless(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" + CHUNKED, chunk(b" " * 4096)
        ),
        False,
        ReplyTooLarge,
        "upstream.max_reply_bytes = 65536",
    ),
    (
        "huge_content_length",
        replying(framed(b"99999999999")),
        False,
        ReplyTooLarge,
        "upstream.max_reply_bytes",
    ),
    ("continue_forever", continues_forever, False, AttemptTimeout, "no first byte within 2 s"),
    (
        "data_lines_without_end",
        endless(SSE_HEAD + CHUNKED, chunk(b"data: " + b"x" * 1000 + b"\n")),
        True,
        EventTooLarge,
        "upstream.max_event_bytes = 32768",
    ),
    (
        "endless_event_stream",
        endless(SSE_HEAD + CHUNKED, chunk(EMPTY_EVENT)),
        True,
        StreamTooLarge,
        "upstream.max_stream_bytes = 262144",
    ),
    (
        "one_endless_line",
        endless(SSE_HEAD + b"\r\n", b"data: " + b"y" * 4096),
        True,
        LineTooLong,
        "upstream.max_line_bytes = 16384",
    ),
    (
        "line_byte_by_byte",
        trickled(SSE_HEAD + b"\r\n", b"z" * 64),
        True,
        LineTooLong,
        "upstream.max_line_bytes = 16384",
    ),
]


def two_providers(bad_url: str, good_url: str, **tables: object):
    """The hostile provider first (priority policy), a healthy one behind it."""
    raw = {
        "providers": [
            # Its first byte is due within 2 s (one upstream never sends one); its silences
            # and total keep the defaults, which a loaded machine never reaches.
            {"name": "bad", "base_url": f"{bad_url}/v1", "timeouts": {"first_byte": 2.0}},
            {"name": "good", "base_url": f"{good_url}/v1", "priority": 1},
        ],
        "routing": {"policy": "priority"},
        "retry": {"backoff_base": 0.01, "deadline": 10.0},
        "health": {"ping_every": None},
        "cache": {"enabled": False},
        "upstream": CAPS,
        **tables,
    }
    return structure_config(raw, "test")


def backend_at(url: str, client: httpx.AsyncClient) -> HttpBackend:
    endpoint = Endpoint("bad", "openai", f"{url}/v1", "m")
    return HttpBackend(endpoint, client, caps=UpstreamCaps(**CAPS))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "upstream", "streamed", "error", "message"), HOSTILE, ids=[h[0] for h in HOSTILE]
)
async def test_each_hostile_upstream_is_a_named_error_and_the_healthy_provider_answers(
    nursery, name, upstream, streamed, error, message
):
    bad = await start_raw(nursery, upstream)
    if error is not AttemptTimeout:  # an attempt's timeout is the provider's, not the backend's
        async with httpx.AsyncClient(timeout=5.0) as client:
            backend = backend_at(bad.url, client)
            with trio.fail_after(10):
                if streamed:
                    caught, _ = await collect_backend(backend)
                else:
                    with pytest.raises(AttemptError) as raised:
                        await backend.complete(REQUEST, "r-1", Usage())
                    caught = raised.value
        assert type(caught) is error and caught.retryable
        assert message in str(caught) and str(caught).startswith("bad: ")

    good = await start_mock(nursery, "good")
    async with engine.open_router(two_providers(bad.url, good.url), env={}) as router:
        for _ in range(2):
            with trio.fail_after(10):
                if streamed:
                    stream = router.stream(USER, max_tokens=5)
                    async for _ in stream:
                        pass
                    answer = stream.completion
                else:
                    answer = await router.complete(USER, max_tokens=5)
            assert answer.provider == "good"
        bad_status = next(s for s in router.status() if s.name == "bad")
        assert bad_status.last_error in ("malformed_reply", "upstream_error", "timeout")
        assert router.fleet.provider("bad").stats.failures[bad_status.last_error] >= 1
        assert router.router.stats.cancelled == 0


@pytest.mark.slow
async def test_a_cap_passed_after_text_ends_a_plain_stream_with_the_cap_named(nursery):
    text = b'data: {"choices": [{"delta": {"content": "la"}, "finish_reason": null}]}\n\n'
    bad = await start_raw(nursery, endless(SSE_HEAD + CHUNKED, chunk(text)))
    good = await start_mock(nursery, "good")
    async with engine.open_router(two_providers(bad.url, good.url), env={}) as router:
        with trio.fail_after(10), pytest.raises(RequestFailed) as caught:
            async for _ in router.stream(USER, max_tokens=5):
                pass
        assert [type(a) for a in caught.value.attempts] == [StreamBroken]
        assert "upstream.max_stream_bytes = 262144" in str(caught.value)
        # An interview's stream restarts on the healthy provider instead.
        await router.session("c-1")
        turn = router.stream_turn("c-1", "Hello", max_tokens=5)
        with trio.fail_after(10):
            async for _ in turn:
                pass
        assert turn.completion is not None and turn.completion.provider == "good"


class Exploding:
    """A backend that raises ``error`` on every call."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.calls = 0

    async def complete(
        self, request: ChatRequest, request_id: str, usage: Usage, sink=None, watch=None
    ):
        self.calls += 1
        raise self.error


@pytest.mark.slow
@pytest.mark.parametrize(
    "error",
    [
        ValueError("invalid literal for int() with base 10: '²'"),
        KeyError("choices"),
        RuntimeError(""),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        ExceptionGroup("inner nursery", [OSError(104, "Connection reset"), TypeError("x")]),
        httpx.DecodingError("bad gzip"),
        trio.BrokenResourceError("gone"),
        MemoryError(),
        RecursionError("maximum recursion depth exceeded"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_whatever_a_backend_raises_is_that_providers_failed_attempt(nursery, error):
    good = await start_mock(nursery, "good")
    config = two_providers("http://127.0.0.1:9", good.url, breaker={"failure_threshold": 2})
    async with engine.open_router(config, env={}) as router:
        bad = router.fleet.provider("bad")
        bad.backend = Exploding(error)
        for _ in range(3):
            with trio.fail_after(5):
                answer = await router.complete(USER, max_tokens=5)
            assert (answer.provider, answer.attempts) in (("good", 2), ("good", 1))
        assert bad.backend.calls == 2  # then its breaker opened
        assert bad.breaker.state.value == "open"
        assert bad.stats.failures == {"upstream_error": 2}
        assert next(s for s in router.status() if s.name == "bad").last_error == "upstream_error"
        books = router.router.stats
        assert (books.answered, books.cancelled, sum(books.failed.values())) == (3, 0, 0)
    # Alone, the provider's failure is the request's named error, naming the exception.
    alone = structure_config(
        {
            "providers": [{"name": "bad", "base_url": "http://127.0.0.1:9/v1"}],
            "retry": {"max_attempts": 1},
            "health": {"ping_every": None},
        },
        "test",
    )
    async with engine.open_router(alone, env={}) as router:
        router.fleet.provider("bad").backend = Exploding(error)
        with trio.fail_after(5), pytest.raises(RequestFailed) as caught:
            await router.complete(USER, max_tokens=5)
    assert [type(a) for a in caught.value.attempts] == [BackendFailed]
    assert f"bad: backend raised {type(error).__name__}" in str(caught.value)


# --- a poisoned idle connection, and hints that would bench a provider for years -------------
async def test_bytes_written_to_an_idle_tls_connection_are_never_taken_for_the_next_answer(
    nursery,
):
    ca = trustme.CA()
    forged = http_response(200, completion("FORGED"))

    async def answer_then_forge(conn: RawConnection) -> None:
        first = conn.upstream.connections == 1
        while await conn.read_request() is not None:
            await conn.send(http_response(200, completion("first" if first else "second")))
            if first:
                await trio.sleep(0.05)
                await conn.send(forged)  # written while the connection is idle in the pool

    up = await start_raw(nursery, answer_then_forge, tls=server_context(ca))
    async with httpx.AsyncClient(verify=trusting(ca), timeout=5.0) as client:
        backend = HttpBackend(Endpoint("tls", "openai", f"{up.url}/v1", "m"), client)
        assert (await backend.complete(REQUEST, "r-1", Usage())).content == "first"
        await trio.sleep(0.2)
        assert (await backend.complete(REQUEST, "r-2", Usage())).content == "second"
    assert up.connections == 2


@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after": "1e9"},
        {"retry-after-ms": "1e12"},
        {"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"},
        {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "9999999h"},
    ],
    ids=["seconds", "milliseconds", "date", "reset"],
)
async def test_a_providers_wait_hints_are_capped_at_max_retry_after(nursery, headers):
    status = 429 if "x-ratelimit-reset-requests" not in headers else 200
    body = {"error": {"message": "slow down"}} if status == 429 else completion()
    up = await start_raw(nursery, replying(http_response(status, body, headers)))
    config = structure_config(
        {
            "providers": [{"name": "only", "base_url": f"{up.url}/v1"}],
            "retry": {"max_retry_after": 30.0, "max_attempts": 1, "deadline": 5.0},
            "health": {"ping_every": None},
            "cache": {"enabled": False},
        },
        "test",
    )
    url = await start_router(nursery, config)
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        chat = {"model": "auto", "messages": USER, "max_tokens": 5}
        first = await client.post("/v1/chat/completions", json=chat)
        refused = await client.post("/v1/chat/completions", json=chat)
    # After the 429 (one attempt allowed) the only account cools down: that request and
    # the next are refused with a 503 for the capped wait, not for 31.7 years.
    assert first.status_code == 200 or first.headers["retry-after"] == "30"
    assert first.status_code == (200 if status == 200 else 503)
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "no_provider"
    assert refused.headers["retry-after"] == "30"


def test_capped_hints_keep_what_is_within_the_cap():
    from actors.backends.ratelimit_headers import parse_rate_limit_headers

    info = parse_rate_limit_headers(
        {
            "retry-after": "12",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "6m0s",
        },
        0.0,
    )
    capped = info.capped(60.0)
    assert capped.retry_after == 12.0 and capped.limits[0].reset_in == 60.0
    assert info.capped(1000.0) is info
    with pytest.raises(ConfigError, match=r"retry.max_retry_after = inf is not allowed"):
        structure_config(
            {
                "providers": [{"name": "a", "base_url": "http://x/v1"}],
                "retry": {"max_retry_after": math.inf},
            },
            "test",
        )


async def test_a_429_with_retry_after_1e9_reaches_the_router_capped(nursery):
    up = await start_raw(nursery, replying(http_response(429, {}, {"retry-after": "1e9"})))
    async with httpx.AsyncClient() as client:
        backend = HttpBackend(Endpoint("x", "openai", f"{up.url}/v1", "m"), client)
        with pytest.raises(RateLimited) as caught:
            await backend.complete(REQUEST, "r-1", Usage())
    assert caught.value.retry_after == 300.0  # retry.max_retry_after's default


# --- the event reader by itself -----------------------------------------------------------
def test_events_split_on_every_line_ending_in_any_chunking():
    raw = b": hi\r\nevent: a\r\ndata: 1\r\ndata: 2\r\n\r\ndata: 3\r\rdata: 4\n\ndata: 5"
    expected = [("a", "1\n2"), (None, "3"), (None, "4"), (None, "5")]
    for size in (1, 2, 3, 7, len(raw)):
        reader = EventReader("p", UpstreamCaps())
        events = []
        for at in range(0, len(raw), size):
            events += reader.feed(raw[at : at + size])
        assert events + reader.finish() == expected, size


def test_a_line_fed_byte_by_byte_is_scanned_once_and_capped():
    reader = EventReader("p", UpstreamCaps(max_line_bytes=1000))
    for _ in range(1000):
        assert reader.feed(b"x") == []
        assert reader._scanned == len(reader._buffer)  # the checkpoint: nothing rescanned
    with pytest.raises(LineTooLong, match=r"p: event stream line past upstream\.max_line_bytes"):
        reader.feed(b"x")


def test_a_body_in_an_encoding_not_asked_for_is_malformed():
    from actors.backends.caps import Inflater

    with pytest.raises(MalformedReply, match="content-encoding 'br' was not asked for"):
        Inflater("p", "br", UpstreamCaps())


async def test_through_callboard_serve_a_hostile_upstream_is_never_a_500(nursery):
    bad = await start_raw(nursery, replying(framed("²".encode())))
    good = await start_mock(nursery, "good")
    url = await start_router(nursery, two_providers(bad.url, good.url))
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="not-used", max_retries=0)
    try:
        for _ in range(4):
            with trio.fail_after(10):
                answer = await client.chat.completions.create(
                    model="auto", messages=USER, max_tokens=5
                )
            assert answer.choices[0].message.content
    finally:
        await client.close()
