"""Server-sent events on Starlette: the stream response, and one event's bytes."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import trio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


def event(data: Any, name: str | None = None) -> bytes:
    """One event: ``data`` as given if text, else as compact JSON."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    prefix = f"event: {name}\n" if name else ""
    return f"{prefix}data: {text}\n\n".encode()


class EventStream(StreamingResponse):
    """A stream of server-sent events from ``events``.

    Starlette stops the stream when the client hangs up; the generator is then closed
    at once (not when the garbage collector finds it), so the work it holds, a routed
    request, is cancelled and counted while the client is known to be gone.
    """

    media_type = "text/event-stream"

    def __init__(
        self, events: AsyncGenerator[bytes, None], headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(events, headers={"cache-control": "no-cache", **(headers or {})})
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with trio.CancelScope(shield=True):
                await self._events.aclose()
