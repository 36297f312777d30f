"""``WS /interview/stream/{candidate_id}``: an interview as a WebSocket, streamed turn by turn.

The candidate's session (its history) lives in the router, not in the
connection or with a provider: when a provider fails, the router moves the
turn to another one with the whole history, and the candidate sees only the
answer. If the swap happens after part of an answer was streamed, the client
gets ``{"type": "restart"}`` and the new answer from its start. A reconnect
with the same candidate id resumes the same history.

Protocol (JSON text frames)::

    -> {"type": "message", "content": "...", "max_tokens": 200}   (or plain text)
    <- {"type": "ready", "session_id": "...", "turns": 0}
    <- {"type": "delta", "text": "..."} ...
    <- {"type": "done", "content": "...", "provider": "...", "request_id": "...", ...}
    <- {"type": "error", "error": {"message", "type", "param", "code"}}  (history unchanged)
"""

from __future__ import annotations

import json
import logging
from typing import Any

import trio
from starlette.websockets import WebSocket

from actors.backends.sink import Delta, Restart
from actors.runtime.errors import CallboardError
from engine.routing.decision_log import log_value
from engine.routing.errors import InvalidRequest
from engine.serve.callers.gate import Meter
from engine.serve.live_router import LiveRouter
from engine.serve.openai_format import error_body
from engine.serve.reply_stream import Done

logger = logging.getLogger("callboard.ws")

#: Messages a candidate may send ahead while an answer is streaming.
PENDING_LIMIT = 16


def _parse(frame: dict[str, Any]) -> tuple[str, int | None]:
    text = frame.get("text")
    if text is None:
        data = frame.get("bytes") or b""
        text = data.decode("utf-8", "replace")
    content: Any = text
    max_tokens: Any = None
    if text.lstrip().startswith("{"):
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            where = f"line {exc.lineno}, column {exc.colno}"
            message = f"message: not valid JSON ({where}); send a JSON object or plain text"
            raise InvalidRequest(
                "message", text[:60], "JSON or plain text", message=message
            ) from None
        content, max_tokens = body.get("content"), body.get("max_tokens")
    if not isinstance(content, str) or not content.strip():
        raise InvalidRequest("content", content, "the candidate's message, a non-empty string")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)):
        raise InvalidRequest("max_tokens", max_tokens, "an integer >= 1")
    return content, max_tokens


async def interview_socket(
    live: LiveRouter, websocket: WebSocket, candidate_id: str, meter: Meter | None = None
) -> None:
    """Serve one interview socket; ``meter`` admits and bills each turn to a caller key."""
    first = await websocket.receive()
    if first["type"] != "websocket.connect":
        return
    try:
        session = await live.session(candidate_id, websocket.query_params.get("system", ""))
    except CallboardError as exc:
        await websocket.close(1008, str(exc)[:120])
        return
    await websocket.accept()
    turns = sum(1 for m in session.history if m.role == "user")
    await websocket.send_json({"type": "ready", "session_id": candidate_id, "turns": turns})
    logger.info("session_id=%s event=connected turns=%d", log_value(candidate_id), turns)
    inbox_send, inbox = trio.open_memory_channel[dict[str, Any]](PENDING_LIMIT)
    async with trio.open_nursery() as nursery:

        async def read() -> None:
            # Reads ahead while an answer streams, so a hang-up cancels the turn at once.
            async with inbox_send:
                while True:
                    frame = await websocket.receive()
                    if frame["type"] == "websocket.disconnect":
                        nursery.cancel_scope.cancel()
                        return
                    if frame["type"] == "websocket.receive":
                        await inbox_send.send(dict(frame))

        nursery.start_soon(read)
        async for frame in inbox:
            await _turn(live, websocket, candidate_id, frame, meter)
        nursery.cancel_scope.cancel()
    logger.info("session_id=%s event=disconnected", log_value(candidate_id))


async def _turn(
    live: LiveRouter,
    websocket: WebSocket,
    candidate_id: str,
    frame: dict[str, Any],
    meter: Meter | None,
) -> None:
    try:
        content, max_tokens = _parse(frame)
        ticket = None if meter is None else await meter.admit()
        async with live.stream_turn(candidate_id, content, max_tokens=max_tokens) as reply:
            while True:
                event = await reply.next_event()
                if isinstance(event, Delta):
                    await websocket.send_json({"type": "delta", "text": event.text})
                elif isinstance(event, Restart):
                    await websocket.send_json({"type": "restart"})
                elif isinstance(event, Done):
                    c = event.completion
                    if meter is not None and ticket is not None:
                        meter.settle(ticket, c)
                    session = live.sessions.get(candidate_id)
                    await websocket.send_json(
                        {
                            "type": "done",
                            "content": c.text,
                            "provider": c.provider,
                            "request_id": c.request_id,
                            "attempts": c.attempts,
                            "total_latency_ms": round(c.latency * 1000, 3),
                            "turns": sum(1 for m in session.history if m.role == "user"),
                        },
                    )
                    logger.info(
                        "session_id=%s request_id=%s event=turn provider=%s attempts=%d",
                        log_value(candidate_id),
                        log_value(c.request_id),
                        c.provider,
                        c.attempts,
                    )
                    return
    except CallboardError as exc:
        _, body, _ = error_body(exc)
        await websocket.send_json({"type": "error", **body})
