"""A streamed answer as the Messages API streams it: ``message_start``, content blocks, the end.

The router streams OpenAI-shaped pieces (text, tool-call deltas by index); this turns
them into Anthropic's events: a text block or a ``tool_use`` block opened as its first
piece arrives, ``input_json_delta`` for a call's arguments, and ``message_delta`` with
the stop reason and usage before ``message_stop``.
"""

from __future__ import annotations

from typing import Any

from actors.messages import Completion
from engine.serve.anthropic_format import extras, messages_usage, stop_reason

Event = tuple[str, dict[str, Any]]


class MessagesStream:
    """Turns the router's streamed pieces (OpenAI deltas) into Messages API events."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self._index = -1
        self._open: str | None = None  # "text" or "tool_use": the block being written
        self._calls: dict[int, int] = {}  # tool call index -> block index
        self.started = False

    def start(self, model: str, prompt_tokens: int) -> list[Event]:
        self.started = True
        message: dict[str, Any] = {
            "id": f"msg_{self.request_id}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": prompt_tokens, "output_tokens": 0},
        }
        return [("message_start", {"type": "message_start", "message": message})]

    def _close(self) -> list[Event]:
        if self._open is None:
            return []
        self._open = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self._index})]

    def _begin(self, block: dict[str, Any]) -> list[Event]:
        events = self._close()
        self._index += 1
        self._open = block["type"]
        start = {"type": "content_block_start", "index": self._index, "content_block": block}
        return [*events, ("content_block_start", start)]

    def _delta(self, index: int, delta: dict[str, Any]) -> Event:
        return (
            "content_block_delta",
            {"type": "content_block_delta", "index": index, "delta": delta},
        )

    def delta(self, delta: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        for field in ("content", "refusal"):
            text = delta.get(field)
            if isinstance(text, str) and text:
                if self._open != "text":
                    events += self._begin({"type": "text", "text": ""})
                events.append(self._delta(self._index, {"type": "text_delta", "text": text}))
        for position, part in enumerate(delta.get("tool_calls") or ()):
            call = part.get("index", position)
            function = part.get("function") or {}
            if call not in self._calls:
                block = {
                    "type": "tool_use",
                    "id": part.get("id", ""),
                    "name": function.get("name", ""),
                    "input": {},
                }
                events += self._begin(block)
                self._calls[call] = self._index
            if function.get("arguments"):
                json_delta = {"type": "input_json_delta", "partial_json": function["arguments"]}
                events.append(self._delta(self._calls[call], json_delta))
        return events

    def finish(self, completion: Completion) -> list[Event]:
        delta = {"stop_reason": stop_reason(completion), "stop_sequence": None}
        end = {
            "type": "message_delta",
            "delta": delta,
            "usage": messages_usage(completion),
            **extras(completion),
        }
        return [*self._close(), ("message_delta", end), ("message_stop", {"type": "message_stop"})]
