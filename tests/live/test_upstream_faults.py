"""Upstreams that misbehave on the wire: each ends in a failover or a named error, never a hang.

Every misbehaving upstream is a loopback server written with trio sockets
(``tests.live.conftest.start_raw``). Each fault is checked twice: the HTTP
backend turns it into a named :class:`~actors.errors.AttemptError` whose
message says what happened, and the live router, with a healthy mock provider
behind the faulty one, answers from the healthy one.

Streams: before any text reached the caller, a broken stream is an ordinary
failed attempt and the router fails over; once text reached an OpenAI-style
stream, the failure is final and ends the caller's stream with a named error
(appending another provider's answer would corrupt it); an interview's
restartable stream is told to discard the partial text and gets the other
provider's whole answer.
"""

from __future__ import annotations

import json
import ssl

import httpx
import openai
import pytest
import trio
import trustme

import engine
from actors.backends import Usage
from actors.backends.http import ConnectionFailed, Endpoint, HttpBackend, StreamBroken, Unreachable
from actors.backends.sink import Delta, Restart
from actors.errors import AttemptError, AttemptTimeout, MalformedReply, RateLimited, UpstreamError
from actors.messages import ChatMessage, ChatRequest
from engine.routing.errors import RequestFailed
from engine.serve.live_config import ConfigError, structure_config
from engine.serve.live_router import client_for
from tests.live.conftest import (
    LOOPBACK,
    RawConnection,
    completion,
    http_response,
    start_mock,
    start_raw,
    start_router,
)
from tests.live.test_http_backend import collect as collect_backend

USER = [{"role": "user", "content": "Tell me about yourself."}]
REQUEST = ChatRequest(messages=(ChatMessage("user", "Hi"),), max_tokens=5)
READ_TIMEOUT = 0.3


def sse_chunk(text: str) -> bytes:
    data = json.dumps({"choices": [{"delta": {"content": text}, "finish_reason": None}]})
    return f"data: {data}\n\n".encode()


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


# --- the faults: one handler per misbehaviour ----------------------------------------------
async def invalid_json(conn: RawConnection) -> None:
    await conn.read_request()
    await conn.send(http_response(200, b'{"choices": [{"message": '))


async def html_page(conn: RawConnection) -> None:
    await conn.read_request()
    await conn.send(http_response(200, "<html>Gateway login</html>", content_type="text/html"))


async def error_body(conn: RawConnection) -> None:
    await conn.read_request()
    await conn.send(http_response(200, {"error": {"message": "model overloaded", "code": 503}}))


async def closed_mid_body(conn: RawConnection) -> None:
    await conn.read_request()
    await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n" + b'{"choices": [')


async def reset_mid_body(conn: RawConnection) -> None:
    await conn.read_request()
    await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n" + b'{"choices": [')
    await trio.sleep(0.01)
    conn.reset()


async def trickle(conn: RawConnection) -> None:
    """One byte a second, forever."""
    await conn.read_request()
    await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
    while True:
        await conn.send(b" ")
        await trio.sleep(1)


async def http_only(conn: RawConnection) -> None:
    """A plain HTTP server behind an https:// URL: the TLS hello gets a 400."""
    await conn.stream.receive_some(1024)
    await conn.send(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n")


async def healthy(conn: RawConnection) -> None:
    while await conn.read_request() is not None:
        await conn.send(http_response(200, completion()))


def self_signed() -> ssl.SSLContext:
    """A server context whose certificate no client here trusts."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert(LOOPBACK).configure_cert(context)
    return context


async def refused_url(nursery: trio.Nursery) -> str:
    with trio.socket.socket() as sock:
        await sock.bind((LOOPBACK, 0))
        return f"http://{LOOPBACK}:{sock.getsockname()[1]}"


async def fault_url(nursery: trio.Nursery, fault: str) -> str:
    """The base URL of an upstream that shows ``fault``."""
    if fault == "dns":
        return "https://nonexistent.invalid"
    if fault == "refused":
        return await refused_url(nursery)
    if fault == "untrusted_tls":
        return (await start_raw(nursery, healthy, tls=self_signed())).url
    if fault == "http_on_https":
        return (await start_raw(nursery, http_only)).url.replace("http://", "https://")
    handlers = {
        "invalid_json": invalid_json,
        "html_200": html_page,
        "error_body_200": error_body,
        "closed_mid_body": closed_mid_body,
        "reset_mid_body": reset_mid_body,
        "trickle": trickle,
    }
    return (await start_raw(nursery, handlers[fault])).url


FAULTS = [
    # fault, error class, health code, what the message says
    ("invalid_json", MalformedReply, "malformed_reply", "reply is not JSON: application/json"),
    ("html_200", MalformedReply, "malformed_reply", "reply is not JSON: text/html: <html>"),
    ("error_body_200", UpstreamError, "upstream_error", "error body: model overloaded"),
    ("closed_mid_body", ConnectionFailed, "upstream_error", "closed connection without sending"),
    ("reset_mid_body", ConnectionFailed, "upstream_error", "Connection reset by peer"),
    # An app's own client with a read timeout names it; the router's watch names its idle.
    ("trickle", ConnectionFailed, "timeout", "no byte for 0.3 s (read timeout)"),
    # No connection made at all: the account is unreachable (its own code).
    ("untrusted_tls", Unreachable, "unreachable", "certificate verify failed"),
    ("http_on_https", Unreachable, "unreachable", "TLS: WRONG_VERSION_NUMBER"),
    ("dns", Unreachable, "unreachable", "ConnectError (nonexistent.invalid:443)"),
    ("refused", Unreachable, "unreachable", "ConnectError (127.0.0.1:"),
]


def two_providers(bad_url: str, good_url: str, **server: object):
    """The faulty provider first (priority policy), a healthy one behind it. Only the
    faulty one has short timeouts: the healthy one's are the defaults, which no loopback
    answer comes near however loaded the machine."""
    bad_timeouts = {"connect": 2.0, "first_byte": 2.0, "idle": READ_TIMEOUT}
    return structure_config(
        {
            "providers": [
                {"name": "bad", "base_url": f"{bad_url}/v1", "timeouts": bad_timeouts},
                {"name": "good", "base_url": f"{good_url}/v1", "priority": 1},
            ],
            "routing": {"policy": "priority"},
            "retry": {"backoff_base": 0.01, "deadline": 10.0},
            "health": {"ping_every": None},
            "cache": {"enabled": False},
            "server": dict(server),
        },
        "test",
    )


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "error", "code", "message"), FAULTS, ids=[f[0] for f in FAULTS])
async def test_each_fault_is_a_named_error_and_the_router_fails_over(
    nursery, fault, error, code, message
):
    bad_url = await fault_url(nursery, fault)
    async with httpx.AsyncClient(timeout=httpx.Timeout(2.0, read=READ_TIMEOUT)) as client:
        backend = HttpBackend(Endpoint("bad", "openai", f"{bad_url}/v1", "m"), client)
        with trio.fail_after(3), pytest.raises(error) as caught:
            await backend.complete(REQUEST, "r-1", Usage())
    assert type(caught.value) is error and caught.value.retryable
    assert message in str(caught.value) and "bad" in str(caught.value)

    good = await start_mock(nursery, "good")
    async with engine.open_router(two_providers(bad_url, good.url), env={}) as router:
        with trio.fail_after(5):
            answer = await router.complete(USER, max_tokens=5)
        assert (answer.provider, answer.attempts) == ("good", 2)
        assert next(s for s in router.status() if s.name == "bad").last_error == code


@pytest.mark.slow
async def test_a_trickle_is_cut_by_the_idle_timeout_and_named(nursery):
    bad = await start_raw(nursery, trickle)
    good = await start_mock(nursery, "good")
    config = two_providers(bad.url, good.url)
    async with engine.open_router(config, env={}) as router:
        with trio.fail_after(3):
            answer = await router.complete(USER, max_tokens=5)
        assert (answer.provider, answer.attempts) == ("good", 2)
        assert next(s for s in router.status() if s.name == "bad").last_error == "timeout"
    # Alone, the trickle ends at its idle timeout (a byte a second; 0.3 s allowed), named.
    config = structure_config(
        {
            "providers": [{"name": "bad", "base_url": f"{bad.url}/v1"}],
            "timeouts": {"idle": 0.3},
            "retry": {"max_attempts": 1, "deadline": 5.0},
            "health": {"ping_every": None},
            "cache": {"enabled": False},
        },
        "test",
    )
    async with engine.open_router(config, env={}) as router:
        with trio.fail_after(3), pytest.raises(RequestFailed) as caught:
            await router.complete(USER, max_tokens=5)
    assert [type(a) for a in caught.value.attempts] == [AttemptTimeout]
    assert "no byte for 0.3 s within the response (timeouts.idle)" in str(caught.value)


# --- streams ---------------------------------------------------------------------------------
def stream_then(after_text: bool, ending: str):
    """An SSE answer with (or without) text first, then ``ending``: close, reset or junk.

    "close" ends the connection before ``data: [DONE]`` and the body's last chunk.
    """

    async def answer(conn: RawConnection) -> None:
        await conn.read_request()
        await conn.send(SSE_HEAD + chunk(b": keep-alive comment\n\n"))
        if after_text:
            await conn.send(chunk(sse_chunk("partial")))
        await trio.sleep(0.02)
        if ending == "reset":
            conn.reset()
        elif ending == "junk":
            await conn.send(chunk(b"data: {not json\n\n") + b"0\r\n\r\n")

    return answer


async def html_stream(conn: RawConnection) -> None:
    await conn.read_request()
    await conn.send(http_response(200, "<html>maintenance</html>", content_type="text/html"))


async def collect(stream) -> tuple[list[str], BaseException | None]:
    texts: list[str] = []
    try:
        with trio.fail_after(5):
            async for text in stream:
                texts.append(text)
    except RequestFailed as exc:
        return texts, exc
    return texts, None


@pytest.mark.slow
@pytest.mark.parametrize("ending", ["close", "reset", "junk"])
async def test_a_stream_broken_before_any_text_fails_over(nursery, ending):
    bad = await start_raw(nursery, stream_then(False, ending))
    good = await start_mock(nursery, "good")
    async with engine.open_router(two_providers(bad.url, good.url), env={}) as router:
        stream = router.stream(USER, max_tokens=5)
        texts, error = await collect(stream)
    assert error is None and texts and stream.completion.provider == "good"
    assert stream.completion.attempts == 2


async def test_a_streamed_reply_that_is_no_event_stream_fails_over(nursery):
    bad = await start_raw(nursery, html_stream)
    good = await start_mock(nursery, "good")
    async with engine.open_router(two_providers(bad.url, good.url), env={}) as router:
        stream = router.stream(USER, max_tokens=5)
        texts, error = await collect(stream)
        assert error is None and texts and stream.completion.provider == "good"
        assert next(s for s in router.status() if s.name == "bad").last_error == "malformed_reply"
    async with httpx.AsyncClient() as client:
        backend = HttpBackend(Endpoint("bad", "openai", f"{bad.url}/v1", "m"), client)
        reply, _ = await collect_backend(backend)
    assert isinstance(reply, MalformedReply)
    assert "a stream must be text/event-stream, not text/html: <html>maintenance" in str(reply)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("ending", "message"),
    [
        ("close", "closed connection without sending complete message body"),
        ("reset", "Connection reset"),
        ("junk", "unreadable event"),
    ],
)
async def test_a_stream_broken_after_text_ends_the_callers_stream_with_a_named_error(
    nursery, ending, message
):
    bad = await start_raw(nursery, stream_then(True, ending))
    good = await start_mock(nursery, "good")
    async with engine.open_router(two_providers(bad.url, good.url), env={}) as router:
        texts, error = await collect(router.stream(USER, max_tokens=5))
    assert texts == ["partial"]
    assert isinstance(error, RequestFailed)
    assert [type(a) for a in error.attempts] == [StreamBroken]
    assert message in str(error) and not error.attempts[0].retryable


async def test_an_interview_stream_broken_after_text_restarts_on_another_provider(nursery):
    bad = await start_raw(nursery, stream_then(True, "reset"))
    good = await start_mock(nursery, "good")
    async with engine.open_router(two_providers(bad.url, good.url), env={}) as router:
        await router.session("candidate-1", system_prompt="You interview.")
        stream = router.stream_turn("candidate-1", "Hello", max_tokens=5)
        events = []
        with trio.fail_after(5):
            while True:
                try:
                    events.append(await stream.next_event())
                except StopAsyncIteration:
                    break
    assert events[0] == Delta("partial") and events[1] == Restart("good")
    assert stream.completion is not None and stream.completion.provider == "good"
    session = await router.sessions.open("candidate-1", "")
    assert "partial" not in session.history[-1].content


def test_every_fault_error_is_an_attempt_error():
    assert all(issubclass(error, AttemptError) for _, error, _, _ in FAULTS)


# --- what a well-behaved upstream over TLS, a 429, and a stream's tail look like ----------
async def test_the_router_over_https_with_the_apps_tls_context(nursery):
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(LOOPBACK).configure_cert(context)
    up = await start_raw(nursery, healthy, tls=context)
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    config = structure_config(
        {
            "providers": [{"name": "tls", "base_url": f"{up.url}/v1"}],
            "health": {"ping_every": None},
            "cache": {"enabled": False},
        },
        "test",
    )
    async with (
        httpx.AsyncClient(verify=trusting) as client,
        engine.open_router(config, env={}, http_client=client) as router,
    ):
        for _ in range(2):
            with trio.fail_after(5):
                answer = await router.complete(USER, max_tokens=5)
            assert (answer.provider, answer.content) == ("tls", "Hello there.")
    assert up.connections == 1


async def test_a_429s_mixed_case_headers_reach_the_limiter(nursery):
    async def limited(conn: RawConnection) -> None:
        await conn.read_request()
        headers = {"Retry-After": "7", "X-RateLimit-Remaining-Requests": "0"}
        await conn.send(http_response(429, {"error": {"message": "slow down"}}, headers))

    up = await start_raw(nursery, limited)
    async with httpx.AsyncClient() as client:
        seen = []
        endpoint = Endpoint("bad", "openai", f"{up.url}/v1", "m")
        backend = HttpBackend(endpoint, client, on_limits=seen.append)
        with pytest.raises(RateLimited) as caught:
            await backend.complete(REQUEST, "r-1", Usage())
    assert caught.value.retry_after == 7.0
    assert seen[0].limits[0].dimension == "requests" and seen[0].limits[0].remaining == 0


def done_stream(ends: bool):
    """A whole SSE answer; the body then ends (``ends``) or the server keeps it open."""

    async def answer(conn: RawConnection) -> None:
        while await conn.read_request() is not None:
            await conn.send(SSE_HEAD + chunk(sse_chunk("Hi.")) + chunk(b"data: [DONE]\n\n"))
            if not ends:
                await trio.sleep_forever()
            await conn.send(b"0\r\n\r\n")

    return answer


@pytest.mark.slow
@pytest.mark.parametrize("ends", [True, False])
async def test_after_done_the_connection_is_kept_or_given_up_never_waited_on(
    nursery, monkeypatch, ends
):
    monkeypatch.setattr("actors.backends.http._DRAIN_AFTER_DONE", 0.1)
    up = await start_raw(nursery, done_stream(ends))
    async with httpx.AsyncClient() as client:
        backend = HttpBackend(Endpoint("up", "openai", f"{up.url}/v1", "m"), client)
        for _ in range(2):
            with trio.fail_after(2):
                reply, deltas = await collect_backend(backend)
            assert deltas == ["Hi."] and reply.content == "Hi."
    assert up.connections == (1 if ends else 2)


async def test_through_callboard_serve_a_stream_broken_after_text_ends_with_an_error_event(
    nursery,
):
    bad = await start_raw(nursery, stream_then(True, "reset"))
    good = await start_mock(nursery, "good")
    url = await start_router(nursery, two_providers(bad.url, good.url))
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="not-used", max_retries=0)
    texts = []
    try:
        with trio.fail_after(5), pytest.raises(openai.APIError) as caught:
            stream = await client.chat.completions.create(
                model="auto", messages=USER, max_tokens=5, stream=True
            )
            async for part in stream:
                if part.choices and part.choices[0].delta.content:
                    texts.append(part.choices[0].delta.content)
    finally:
        await client.close()
    assert texts == ["partial"]
    assert "Connection reset" in str(caught.value)


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("timeouts.connect", "inf", "> 0 seconds"),
        ("timeouts.idle", 0.0, "> 0 seconds or inf"),
        ("server.max_connections", 0, ">= 1"),
    ],
)
def test_the_clients_settings_are_validated(key, value, allowed):
    raw = {"providers": [{"name": "a", "base_url": "http://127.0.0.1:1/v1"}]}
    table, field = key.split(".")
    with pytest.raises(ConfigError) as caught:
        structure_config({**raw, table: {field: value}}, "test")
    shown = "inf" if value == "inf" else value
    assert f"{key} = {shown} is not allowed; allowed: {allowed}" in str(caught.value)
    config = structure_config({**raw, "timeouts": {"connect": 2.5}}, "t")
    client = client_for(config)
    # httpx bounds the connect alone; the attempt's watch bounds the rest.
    assert (client.timeout.connect, client.timeout.read, client.timeout.pool) == (2.5, None, None)


@pytest.mark.parametrize(
    ("table", "key", "instead"),
    [
        ("retry", "attempt_timeout", "[timeouts] instead: first_byte"),
        ("server", "read_timeout", "[timeouts] idle instead"),
        ("server", "connect_timeout", "[timeouts] connect instead"),
    ],
)
def test_a_moved_timeout_is_refused_with_what_to_write_instead(table, key, instead):
    raw = {"providers": [{"name": "a", "base_url": "http://127.0.0.1:1/v1"}], table: {key: 3}}
    with pytest.raises(ConfigError) as caught:
        structure_config(raw, "router.toml")
    assert f"{table}.{key}: got 3; allowed: {instead}" in str(caught.value)
