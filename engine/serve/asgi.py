"""The few ASGI pieces callboard's HTTP servers need, and serving an app with hypercorn on trio.

Two small apps (the router's API and the mock provider) do not pay for a web
framework: these helpers read a bounded body, answer JSON, stream server-sent
events, notice a client that went away, and run hypercorn inside the caller's
nursery so tests start a server on an ephemeral loopback port in milliseconds.
"""

from __future__ import annotations

import errno
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from actors.runtime.errors import CallboardError, leaves
from engine.routing.errors import InvalidRequest

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class BodyTooLarge(CallboardError):
    code = "body_too_large"
    status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"body: larger than {limit} bytes")
        self.limit = limit


class BodyTimeout(CallboardError):
    code = "body_timeout"
    status = 408

    def __init__(self, timeout: float) -> None:
        super().__init__(f"body: not received whole within server.body_timeout = {timeout:g} s")
        self.timeout = timeout


class ClientGone(Exception):
    """The client disconnected before the answer was sent."""


#: The default of ``server.body_timeout``.
BODY_TIMEOUT = 30.0


async def read_body(receive: Receive, limit: int, timeout: float = BODY_TIMEOUT) -> bytes:
    """The whole request body, at most ``limit`` bytes, within ``timeout`` seconds.

    hypercorn bounds each read only if told to (and that bound would also cut a client
    that quietly waits for a long answer), so a body trickled a byte at a time is
    bounded here, as a whole.
    """
    chunks, size = [], 0
    with trio.move_on_after(timeout):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
    raise BodyTimeout(timeout)


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        message = f"body: not valid JSON (line {exc.lineno}, column {exc.colno})"
    except UnicodeDecodeError as exc:
        message = f"body: not valid JSON (not UTF-8 at byte {exc.start})"
    except RecursionError:
        message = "body: JSON nested too deeply"
    shown = body[:60].decode("utf-8", "replace")
    raise InvalidRequest("body", shown, "a JSON object", message=message) from None


def _header_list(headers: Mapping[str, str] | None) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]


def encode_json(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    headers: Mapping[str, str] | None = None,
) -> None:
    raw = [(b"content-type", content_type), *_header_list(headers)]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def send_json(
    send: Send, status: int, payload: Any, headers: Mapping[str, str] | None = None
) -> None:
    await send_bytes(send, status, encode_json(payload), b"application/json", headers)


async def start_sse(send: Send, headers: Mapping[str, str] | None = None) -> None:
    raw = [
        (b"content-type", b"text/event-stream"),
        (b"cache-control", b"no-cache"),
        *_header_list(headers),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": raw})


async def send_sse(send: Send, data: Any, event: str | None = None) -> None:
    text = data if isinstance(data, str) else encode_json(data).decode()
    prefix = f"event: {event}\n" if event else ""
    await send(
        {
            "type": "http.response.body",
            "body": f"{prefix}data: {text}\n\n".encode(),
            "more_body": True,
        }
    )


async def end_body(send: Send) -> None:
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def wait_for_disconnect(receive: Receive) -> None:
    """Return once the client has gone (after the request body was read)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def lifespan(receive: Receive, send: Send) -> None:
    """Answer hypercorn's startup and shutdown; the apps need no hooks."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


@attrs.frozen
class Listening:
    """How a server takes its clients' connections (``[server]`` keys of the same names)."""

    backlog: int = 4096
    keep_alive_timeout: float = 10.0
    max_header_bytes: int = 16 * 1024


def hypercorn_config(
    host: str, port: int, graceful_timeout: float = 5.0, listening: Listening = Listening()
) -> Config:
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.graceful_timeout = graceful_timeout
    config.backlog = listening.backlog
    # Also bounds how long a new connection may take to send its first request's headers.
    config.keep_alive_timeout = listening.keep_alive_timeout
    config.h11_max_incomplete_size = listening.max_header_bytes
    config.accesslog = None
    config.errorlog = logging.getLogger("callboard.hypercorn")
    return config


class AddressInUse(CallboardError):
    """The address to listen on is taken (another server, or this one already running)."""

    code = "address_in_use"

    def __init__(self, host: str, port: int) -> None:
        super().__init__(f"cannot listen on {host}:{port}: address already in use")


async def serve_app(
    app: Callable[..., Awaitable[None]],
    host: str,
    port: int,
    *,
    graceful_timeout: float = 5.0,
    listening: Listening = Listening(),
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` with hypercorn; ``task_status`` gets the bound URL (port 0: any free one).

    A taken address is an :class:`AddressInUse` naming it, not hypercorn's traceback.
    """
    config = hypercorn_config(host, port, graceful_timeout, listening)

    # hypercorn reports the sockets it bound as a list; hand on the first URL.
    class _Status:
        def started(self, binds: list[str] | None = None) -> None:
            task_status.started((binds or [""])[0])

    try:
        await serve(app, config, shutdown_trigger=shutdown_trigger, task_status=_Status())  # type: ignore[arg-type]
    except (OSError, BaseExceptionGroup) as error:
        if any(getattr(e, "errno", None) == errno.EADDRINUSE for e in leaves(error)):
            raise AddressInUse(host, port) from None
        raise
