"""The router's HTTP/1.1 client over loopback: keep-alive, framing, encodings, TLS, timeouts."""

from __future__ import annotations

import gzip
import json
import ssl
import zlib

import pytest
import trio
import trustme

from actors.backends.http1 import (
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    HttpClient,
    ProtocolError,
    ReadTimeout,
    TLSError,
    split_url,
)
from tests.live.conftest import LOOPBACK, RawConnection, http_response, start_raw

KEY = "sk-test-http1-SECRET-0123456789"


async def answer_each(conn: RawConnection, reply: bytes) -> None:
    """Keep-alive: the same reply to every request on this connection."""
    while await conn.read_request() is not None:
        await conn.send(reply)


@pytest.fixture
async def client():
    async with HttpClient(connect_timeout=2.0, read_timeout=2.0) as client:
        yield client


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(LOOPBACK, "localhost").configure_cert(context)
    return context


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_keep_alive_reuses_one_connection_and_headers_are_case_insensitive(nursery, client):
    reply = http_response(
        200,
        {"ok": 1},
        {"X-RateLimit-Remaining-Requests": "41", "Vary": "a", "vary": "b"},
    )

    async def answer(conn):
        await answer_each(conn, reply)

    up = await start_raw(nursery, answer)
    for _ in range(3):
        response = await client.request(
            "POST", f"{up.url}/v1/x", headers={"Authorization": f"Bearer {KEY}"}, body=b"{}"
        )
        assert (response.status, json.loads(response.content)) == (200, {"ok": 1})
    assert up.connections == 1 and len(up.requests) == 3
    assert response.headers["x-ratelimit-remaining-requests"] == "41"
    assert response.headers.get("X-RATELIMIT-REMAINING-REQUESTS") == "41"
    assert response.headers["vary"] == "a, b"
    sent = up.requests[0].decode()
    assert sent.startswith("POST /v1/x HTTP/1.1\r\n")
    assert f"host: {LOOPBACK}:" in sent and "accept-encoding: identity" in sent
    assert "content-length: 2\r\n" in sent and sent.endswith("\r\n\r\n{}")
    assert client.idle_connections(up.url) == 1


async def test_chunked_with_extensions_and_trailers_then_the_connection_is_reused(nursery, client):
    body = b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nx-trailer: 1\r\n\r\n"
    reply = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + body

    async def answer(conn):
        while await conn.read_request() is not None:
            for i in range(0, len(reply), 7):  # in small pieces: every boundary split
                await conn.send(reply[i : i + 7])
                await trio.sleep(0)

    up = await start_raw(nursery, answer)
    for _ in range(2):
        assert (await client.request("GET", up.url)).content == b"hello world"
    assert up.connections == 1


async def test_a_streamed_body_arrives_line_by_line(nursery, client):
    async def answer(conn):
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for piece in (b"data: one\r\n", b"\r\ndata: t", b"wo\n\n"):
            await conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            await trio.sleep(0.01)
        await conn.send(b"0\r\n\r\n")

    up = await start_raw(nursery, answer)
    async with client.stream("POST", up.url, body=b"{}") as response:
        lines = [line async for line in response.iter_lines()]
    assert lines == ["data: one", "", "data: two", ""]

    async def endless_line(conn):
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\n\r\n")
        while True:
            await conn.send(b"x" * 65536)

    up = await start_raw(nursery, endless_line)
    with trio.fail_after(5), pytest.raises(ProtocolError, match="a line over 1048576 bytes"):
        async with client.stream("GET", up.url) as response:
            async for _ in response.iter_lines():
                pass


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compressed_body_is_decoded_though_identity_was_asked(nursery, client, encoding):
    packed = gzip.compress(b'{"a": 1}') if encoding == "gzip" else zlib.compress(b'{"a": 1}')

    async def answer(conn):
        await answer_each(conn, http_response(200, packed, {"content-encoding": encoding}))

    up = await start_raw(nursery, answer)
    assert (await client.request("GET", up.url)).content == b'{"a": 1}'
    assert b"accept-encoding: identity" in up.requests[0]


async def test_an_unknown_encoding_or_broken_framing_is_a_protocol_error(nursery, client):
    replies = iter(
        [
            http_response(200, b"xx", {"content-encoding": "br"}),
            b"HTTP/1.1 200 OK\r\ncontent-length: nope\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
        ]
    )

    async def answer(conn):
        await conn.read_request()
        await conn.send(next(replies))

    up = await start_raw(nursery, answer)
    for fragment in ("content-encoding 'br'", "content-length", "chunk size", "not an HTTP"):
        with pytest.raises(ProtocolError, match=fragment):
            await client.request("GET", up.url)


async def test_a_body_read_until_close_ends_the_connection(nursery, client):
    async def answer(conn):
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it")

    up = await start_raw(nursery, answer)
    assert (await client.request("GET", up.url)).content == b"all of it"
    assert client.idle_connections(up.url) == 0


async def test_a_kept_alive_connection_the_server_closed_is_not_reused(nursery, client):
    async def answer(conn):
        await conn.read_request()
        await conn.send(http_response(200, {"n": conn.upstream.connections}))
        # and close: a server's idle timeout

    up = await start_raw(nursery, answer)
    first = await client.request("GET", up.url)
    await trio.sleep(0.05)
    second = await client.request("GET", up.url)
    assert json.loads(first.content) == {"n": 1} and json.loads(second.content) == {"n": 2}
    assert len(up.requests) == 2  # noticed before sending, not by a failed request


async def test_a_request_lost_on_a_stale_connection_is_sent_once_more_on_a_fresh_one(
    nursery, client
):
    async def answer(conn):
        await conn.read_request()
        await conn.send(http_response(200, {"ok": 1}))
        if conn.upstream.connections == 1:
            await conn.read_request()  # the second request arrives, then the server closes

    up = await start_raw(nursery, answer)
    await client.request("GET", up.url)
    assert (await client.request("POST", up.url, body=b"{}")).status == 200
    assert up.connections == 2 and len(up.requests) == 3


async def test_no_second_send_once_part_of_an_answer_arrived_or_on_a_fresh_connection(
    nursery, client
):
    async def answer(conn):
        await conn.read_request()
        if conn.upstream.connections == 1:
            await conn.send(http_response(200, {"ok": 1}))
            await conn.read_request()
            await conn.send(b"HTTP/1.1 200 OK\r\ncontent-le")  # part of a head, then gone

    up = await start_raw(nursery, answer)
    await client.request("GET", up.url)
    with pytest.raises(ConnectionLost, match="closed the connection mid-answer"):
        await client.request("POST", up.url, body=b"{}")
    with pytest.raises(ConnectionLost):  # a fresh connection closed at once: not retried
        await client.request("POST", up.url, body=b"{}")
    assert up.connections == 2 and len(up.requests) == 3


async def test_connections_per_origin_are_bounded(nursery):
    async def answer(conn):
        while await conn.read_request() is not None:
            await trio.sleep(0.02)
            await conn.send(http_response(200, {"ok": 1}))

    up = await start_raw(nursery, answer)
    async with HttpClient(max_connections=2) as client, trio.open_nursery() as callers:
        for _ in range(6):
            callers.start_soon(client.request, "GET", up.url)
    assert up.most_open == 2 and len(up.requests) == 6


async def test_read_and_connect_timeouts_fire(nursery, ca):
    async def trickle(conn):
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n")
        for _ in range(50):
            await conn.send(b"x")
            await trio.sleep(1)

    async def silent(conn):
        await trio.sleep_forever()  # accepts TCP, never answers the TLS handshake

    slow = await start_raw(nursery, trickle)
    mute = await start_raw(nursery, silent)
    async with HttpClient(connect_timeout=0.2, read_timeout=0.2) as client:
        with trio.fail_after(3), pytest.raises(ReadTimeout, match=r"no byte for 0\.2 s"):
            await client.request("GET", slow.url)
        https = mute.url.replace("http://", "https://")
        with trio.fail_after(3), pytest.raises(ConnectTimeout, match=r"took over 0\.2 s"):
            await client.request("GET", https)


async def test_https_with_a_trusted_ca_and_every_tls_failure_named(nursery, ca):
    async def answer(conn):
        await answer_each(conn, http_response(200, {"tls": True}))

    async def http_only(conn):
        await conn.stream.receive_some(1024)  # a TLS ClientHello: not HTTP
        await conn.send(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n")

    secure = await start_raw(nursery, answer, tls=server_context(ca))
    plain = await start_raw(nursery, http_only)
    async with HttpClient(ssl_context=trusting(ca), connect_timeout=2) as client:
        for _ in range(2):
            assert json.loads((await client.request("GET", secure.url)).content) == {"tls": True}
        assert secure.connections == 1
        with pytest.raises(TLSError, match=r"TLS handshake with 127\.0\.0\.1"):
            await client.request("GET", plain.url.replace("http://", "https://"))
    async with HttpClient(connect_timeout=2) as client:  # the system's CAs only
        with pytest.raises(TLSError, match="certificate verify failed"):
            await client.request("GET", secure.url)
    other = trustme.CA().issue_cert("elsewhere.example")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    other.configure_cert(context)
    mismatched = await start_raw(nursery, answer, tls=context)
    async with HttpClient(ssl_context=trusting(ca), connect_timeout=2) as client:
        with pytest.raises(TLSError, match="certificate verify failed"):
            await client.request("GET", mismatched.url)


async def test_connect_errors_are_named_and_never_quote_headers(client):
    with trio.socket.socket() as sock:
        await sock.bind((LOOPBACK, 0))
        port = sock.getsockname()[1]
    headers = {"authorization": f"Bearer {KEY}"}
    with pytest.raises(ConnectError, match=rf"cannot connect to 127\.0\.0\.1:{port}") as refused:
        await client.request("POST", f"http://{LOOPBACK}:{port}/v1", headers=headers)
    with pytest.raises(ConnectError, match=r"cannot resolve 'nonexistent\.invalid'") as unknown:
        await client.request("POST", "https://nonexistent.invalid/v1", headers=headers)
    for caught in (refused, unknown):
        assert KEY not in str(caught.value) and KEY not in repr(caught.value)


async def test_bad_requests_are_refused_before_any_io(client):
    with pytest.raises(ValueError, match="'authorization' contains a line break") as caught:
        await client.request("GET", "http://127.0.0.1:1/", headers={"authorization": KEY + "\r\n"})
    assert KEY not in str(caught.value)
    with pytest.raises(ValueError, match="outside latin-1") as caught:
        await client.request("GET", "http://127.0.0.1:1/", headers={"x-key": KEY + "€"})
    assert KEY not in str(caught.value)
    with pytest.raises(ValueError, match="scheme must be http or https"):
        await client.request("GET", "ftp://127.0.0.1/")
    assert split_url("https://api.example.com/v1/chat?x=1")[1:] == (
        "/v1/chat?x=1",
        "api.example.com",
    )
    assert split_url("http://[::1]:8080/")[2] == "[::1]:8080"
    with pytest.raises(ValueError, match="max_connections must be >= 1"):
        HttpClient(max_connections=0)


async def test_interim_answers_empty_bodies_http10_and_the_body_limit(nursery, client):
    replies = iter(
        [
            b"HTTP/1.1 100 Continue\r\n\r\n" + http_response(200, b"after 100"),
            b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.0 200 OK\r\ncontent-length: 4\r\n\r\nold!",  # 1.0: not kept alive
            http_response(200, b"x" * 100),
        ]
    )

    async def answer(conn):
        while await conn.read_request() is not None:
            await conn.send(next(replies))

    up = await start_raw(nursery, answer)
    assert (await client.request("GET", up.url)).content == b"after 100"
    assert (await client.request("GET", up.url)).status == 204
    assert client.idle_connections(up.url) == 1
    assert (await client.request("GET", up.url)).content == b"old!"
    assert client.idle_connections(up.url) == 0 and up.connections == 1
    with pytest.raises(ProtocolError, match="body of 100 bytes, over 10"):
        await client.request("GET", up.url, limit=10)
    assert client.idle_connections(up.url) == 0  # a body left unread is not reused


async def test_an_idle_connection_past_its_keepalive_expiry_is_closed(nursery):
    async def answer(conn):
        await answer_each(conn, http_response(200, b"ok"))

    up = await start_raw(nursery, answer)
    async with HttpClient(keepalive_expiry=0.05) as client:
        await client.request("GET", up.url)
        await client.request("GET", up.url)
        await trio.sleep(0.1)
        await client.request("GET", up.url)
    assert up.connections == 2


async def test_cancelled_requests_leak_no_connection_slot(nursery):
    async def answer(conn):
        while await conn.read_request() is not None:
            await trio.sleep(0.01)
            await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
            await trio.sleep(0.01)
            await conn.send(b"0\r\n\r\n")

    up = await start_raw(nursery, answer)
    async with HttpClient(max_connections=3) as client:

        async def cut(after: float) -> None:
            with trio.move_on_after(after):
                await client.request("GET", up.url)

        async with trio.open_nursery() as callers:
            for i in range(30):  # cancelled while waiting for a slot, the head, or the body
                callers.start_soon(cut, 0.002 * (i % 15))
        assert client.connections_in_use(up.url) == 0
        with trio.fail_after(2):
            async with trio.open_nursery() as callers:
                for _ in range(6):
                    callers.start_soon(client.request, "GET", up.url)
        assert client.connections_in_use(up.url) == 0 and client.idle_connections(up.url) == 3
