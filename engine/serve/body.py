"""A request body read whole, within the limits Starlette and hypercorn leave to the app.

Starlette reads a body as fast as the client sends it, for as long as it takes and as
large as it comes; hypercorn bounds each read only if told to (and that bound would also
cut a client that quietly waits for a long answer). So the whole body is bounded here,
in size and in time, each limit a named error; a JSON body nested too deeply for the
parser is a 400 naming the body, not a crash.
"""

from __future__ import annotations

import json
from typing import Any

import trio
from starlette.requests import Request

from actors.runtime.errors import CallboardError
from engine.routing.errors import InvalidRequest

#: The default of ``server.body_timeout``.
BODY_TIMEOUT = 30.0


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


async def read_body(request: Request, limit: int, timeout: float = BODY_TIMEOUT) -> bytes:
    """The whole body, at most ``limit`` bytes, within ``timeout`` seconds (a body trickled
    a byte at a time is bounded as a whole). A client that leaves raises Starlette's
    ``ClientDisconnect``."""
    chunks, size = [], 0
    with trio.move_on_after(timeout):
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(limit)
            chunks.append(chunk)
        return b"".join(chunks)
    raise BodyTimeout(timeout)


def parse_json(body: bytes) -> Any:
    """The body's JSON, or an :class:`InvalidRequest` that says where it is broken."""
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


async def read_json(request: Request, limit: int, timeout: float = BODY_TIMEOUT) -> Any:
    return parse_json(await read_body(request, limit, timeout))
