"""Live-world fixtures: mock providers and ``callboard serve`` in-process, on loopback ports.

Every server runs in the test's own nursery on 127.0.0.1 with an ephemeral
port and stops with the test. Mock providers run at ``SPEED`` times their
real-time profiles, so a whole exchange takes milliseconds.
"""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import pytest
import trio

from engine.serve.asgi import serve_app
from engine.serve.live_config import LiveConfig, structure_config
from engine.serve.server import serve_router
from sims.mock_provider import MockProvider

SPEED = 50.0
LOOPBACK = "127.0.0.1"


@attrs.define
class Upstream:
    """A mock provider served over HTTP; ``kill()`` makes its port refuse connections."""

    mock: MockProvider
    url: str
    scope: trio.CancelScope

    @property
    def name(self) -> str:
        return self.mock.name

    def kill(self) -> None:
        self.scope.cancel()


async def _serve_until_killed(
    app: Any,
    scope: trio.CancelScope,
    port: int = 0,
    *,
    task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED,
) -> None:
    with scope:
        await serve_app(app, LOOPBACK, port, graceful_timeout=0.1, task_status=task_status)


async def start_mock(
    nursery: trio.Nursery, name: str, profile: str = "healthy", *, port: int = 0, **options: Any
) -> Upstream:
    """A mock provider on ``port`` (0: any free one)."""
    options.setdefault("speed", SPEED)
    mock = MockProvider(name, profile, **options)
    scope = trio.CancelScope()
    url = await nursery.start(_serve_until_killed, mock, scope, port)
    return Upstream(mock, url, scope)


def closed_port() -> socket.socket:
    """A loopback socket bound but not listening: connections to its port are refused, and
    no other server takes the port until it is closed (then :func:`start_mock` may)."""
    sock = socket.socket()
    sock.bind((LOOPBACK, 0))
    return sock


#: The timeouts of an upstream a test expects to fall silent: short, so the test is quick.
#: Every other upstream keeps the default timeouts (30 s), which no answer of a loopback
#: mock comes near however loaded the machine, so load never turns into a failover.
QUICK_TIMEOUTS = {"first_byte": 0.5, "idle": 0.5}


def live_config(
    upstreams: list[Upstream], *, silent: Sequence[Upstream] = (), **tables: Any
) -> LiveConfig:
    """A config over ``upstreams`` with quick test settings; ``tables`` override them.
    The ``silent`` ones (a hanging upstream) get :data:`QUICK_TIMEOUTS`."""
    quick = {u.name for u in silent}
    raw: dict[str, Any] = {
        "providers": [
            {"name": u.name, "base_url": f"{u.url}/v1"}
            | ({"timeouts": QUICK_TIMEOUTS} if u.name in quick else {})
            for u in upstreams
        ],
        "retry": {"backoff_base": 0.05, "deadline": 10.0},
        "health": {"ping_every": None},
        "cache": {"enabled": False},
        "server": {"graceful_timeout": 0.1},
    }
    for key, value in tables.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return structure_config(raw, "test")


async def start_router(
    nursery: trio.Nursery, config: LiveConfig, env: dict[str, str] | None = None
) -> str:
    """Start ``callboard serve`` for ``config``; returns its base URL."""
    return await nursery.start(
        functools.partial(serve_router, config, env=env or {}, host=LOOPBACK, port=0)
    )


@pytest.fixture
def user() -> list[dict[str, str]]:
    return [{"role": "user", "content": "Tell me about yourself."}]


# --- raw upstreams: misbehaving servers written with trio sockets ---------------------------
@attrs.define
class RawConnection:
    """One accepted connection of a :class:`RawUpstream`, with helpers to misbehave on."""

    stream: trio.abc.Stream
    upstream: RawUpstream
    buffer: bytearray = attrs.Factory(bytearray)

    async def read_request(self) -> bytes | None:
        """The next request (head and Content-Length body), or None at the end of the stream."""
        buffer = self.buffer
        while b"\r\n\r\n" not in buffer:
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            buffer += data
        end = buffer.index(b"\r\n\r\n")
        length = 0
        for line in bytes(buffer[:end]).decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        while len(buffer) < end + 4 + length:
            buffer += await self.stream.receive_some(65536)
        request = bytes(buffer[: end + 4 + length])
        del buffer[: end + 4 + length]
        self.upstream.requests.append(request)
        return request

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    def reset(self) -> None:
        """Abort the connection: the peer gets a TCP RST, not a clean end."""
        stream = self.stream
        sock = (stream.transport_stream if isinstance(stream, trio.SSLStream) else stream).socket
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


@attrs.define
class RawUpstream:
    url: str = ""
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    requests: list[bytes] = attrs.Factory(list)


Answer = Callable[[RawConnection], Awaitable[None]]


async def start_raw(
    nursery: trio.Nursery, answer: Answer, *, tls: ssl.SSLContext | None = None
) -> RawUpstream:
    """A loopback server that runs ``answer`` on every connection (TLS if ``tls``)."""
    upstream = RawUpstream()

    async def handle(stream: trio.abc.Stream) -> None:
        upstream.connections += 1
        upstream.open_now += 1
        upstream.most_open = max(upstream.most_open, upstream.open_now)
        try:
            await answer(RawConnection(stream, upstream))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # the client went away, or the test's upstream broke the stream on purpose
        finally:
            upstream.open_now -= 1
            with contextlib.suppress(Exception):
                await trio.aclose_forcefully(stream)

    if tls is None:
        serve = functools.partial(trio.serve_tcp, handle, 0, host=LOOPBACK)
    else:
        serve = functools.partial(
            trio.serve_ssl_over_tcp, handle, 0, tls, host=LOOPBACK, https_compatible=True
        )
    listeners = await nursery.start(serve)
    raw = listeners[0].transport_listener if tls is not None else listeners[0]
    port = raw.socket.getsockname()[1]
    upstream.url = f"{'https' if tls is not None else 'http'}://{LOOPBACK}:{port}"
    return upstream


def http_response(
    status: int = 200,
    body: bytes | dict | str = b"",
    headers: dict[str, str] | None = None,
    *,
    content_type: str = "application/json",
) -> bytes:
    """A whole HTTP/1.1 response with a Content-Length body."""
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    head = f"HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return (head + f"content-length: {len(body)}\r\n\r\n").encode() + body


def completion(text: str = "Hello there.") -> dict[str, Any]:
    """An OpenAI chat completion answering ``text``."""
    return {
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3},
    }


async def answer_each(conn: RawConnection, reply: bytes) -> None:
    """Keep-alive: the same reply to every request on this connection."""
    while await conn.read_request() is not None:
        await conn.send(reply)


def server_context(ca: Any) -> ssl.SSLContext:
    """A server's TLS context with a certificate of ``ca`` (a trustme.CA) for loopback."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(LOOPBACK, "localhost").configure_cert(context)
    return context


def trusting(ca: Any) -> ssl.SSLContext:
    """A client's TLS context that trusts ``ca`` (a trustme.CA) alone."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context
