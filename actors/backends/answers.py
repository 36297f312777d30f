"""A provider's whole answer in OpenAI's shape, read from a reply or put together from chunks.

Tool calls come with ``content: null``, refusals in their own field, logprobs and the
provider's usage (cached tokens included) beside the text: all of it is kept, so the
client gets the answer as the provider gave it. A stream's chunks are merged as the
OpenAI SDK merges them: strings by concatenation, tool calls by their ``index``.
"""

from __future__ import annotations

from typing import Any

import attrs

from actors.messages import Answer

#: Message fields an answer may carry instead of text.
_NOT_TEXT = ("tool_calls", "function_call", "refusal", "audio")


def reported(usage: Any, field: str) -> int | None:
    """A usage figure the provider gave (a non-negative integer), else None."""
    value = usage.get(field) if isinstance(usage, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def openai_answer(data: Any) -> Answer:
    """The answer in a ``chat.completion`` body; raises ValueError/KeyError/TypeError if none."""
    choice = data["choices"][0]
    message = choice["message"]
    if not isinstance(message, dict):
        raise TypeError(f"choices[0].message is {type(message).__name__}, not an object")
    content = message.get("content")
    if content is None:
        if not any(message.get(field) for field in _NOT_TEXT):
            raise ValueError("choices[0].message has neither content nor tool_calls")
    elif not isinstance(content, str):
        raise TypeError(f"choices[0].message.content is {type(content).__name__}, not text")
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    return Answer(
        message={"role": "assistant", **message},
        finish_reason=choice.get("finish_reason"),
        logprobs=choice.get("logprobs"),
        system_fingerprint=data.get("system_fingerprint"),
        usage=usage,
        prompt_tokens=reported(usage, "prompt_tokens"),
        completion_tokens=reported(usage, "completion_tokens"),
    )


def answer_chars(answer: Answer) -> int:
    """Characters generated: the text, a refusal and every tool call's arguments."""
    message = answer.message
    size = len(answer.text) + len(message.get("refusal") or "")
    for call in message.get("tool_calls") or ():
        size += len(str((call.get("function") or {}).get("arguments") or ""))
    return size


@attrs.frozen
class Piece:
    """What one chunk adds that a client streaming the answer must see."""

    text: str
    delta: dict[str, Any]
    logprobs: Any = None


class AnswerBuilder:
    """Merges a stream's OpenAI-shaped chunks into one :class:`Answer`."""

    def __init__(self) -> None:
        self._strings: dict[str, list[str]] = {}
        self._other: dict[str, Any] = {}
        self._calls: dict[int, dict[str, Any]] = {}
        self._logprobs: dict[str, list[Any]] = {}
        self.finish_reason: str | None = None
        self._fingerprint: str | None = None
        self._usage: dict[str, Any] = {}

    def feed(self, chunk: dict[str, Any]) -> Piece | None:
        """Take one chunk; return what it shows the client, if anything."""
        if isinstance(chunk.get("usage"), dict):
            self._usage.update(chunk["usage"])
        if isinstance(chunk.get("system_fingerprint"), str):
            self._fingerprint = chunk["system_fingerprint"]
        choices = chunk.get("choices") or []
        if not choices:
            return None
        choice = choices[0]
        if choice.get("finish_reason") is not None:
            self.finish_reason = choice["finish_reason"]
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict):
            raise TypeError(f"choices[0].delta is {type(delta).__name__}, not an object")
        for field, value in delta.items():
            if field == "role" or value is None:
                continue
            if field == "tool_calls":
                self._merge_calls(value)
            elif isinstance(value, str):
                self._strings.setdefault(field, []).append(value)
            else:
                self._other[field] = value
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict):
            for field, items in logprobs.items():
                if isinstance(items, list):
                    self._logprobs.setdefault(field, []).extend(items)
        shown = {k: v for k, v in delta.items() if k != "role" and v not in (None, "")}
        if not shown and not logprobs:
            return None
        text = delta.get("content")
        return Piece(text if isinstance(text, str) else "", shown, logprobs)

    def _merge_calls(self, calls: Any) -> None:
        for position, part in enumerate(calls if isinstance(calls, list) else []):
            index = part.get("index", position)
            call = self._calls.setdefault(index, {"function": {"arguments": ""}})
            for key in ("id", "type"):
                if part.get(key):
                    call[key] = part[key]
            function = part.get("function") or {}
            if function.get("name"):
                call["function"]["name"] = function["name"]
            call["function"]["arguments"] += function.get("arguments") or ""

    def answer(self) -> Answer:
        message: dict[str, Any] = {"role": "assistant"}
        for field, parts in self._strings.items():
            message[field] = "".join(parts)
        message.update(self._other)
        if self._calls:
            message["tool_calls"] = [
                {"type": "function", **self._calls[i]} for i in sorted(self._calls)
            ]
        message.setdefault("content", None if self._calls or "refusal" in message else "")
        usage = self._usage
        prompt, completion = reported(usage, "prompt_tokens"), reported(usage, "completion_tokens")
        if prompt is not None and completion is not None:
            usage.setdefault("total_tokens", prompt + completion)
        return Answer(
            message=message,
            finish_reason=self.finish_reason,
            logprobs=dict(self._logprobs) or None,
            system_fingerprint=self._fingerprint,
            usage=usage,
            prompt_tokens=prompt,
            completion_tokens=completion,
        )


def whole_delta(answer: Answer) -> dict[str, Any]:
    """The whole answer as one chunk's delta (a cached or unstreamed answer, streamed)."""
    delta = {k: v for k, v in answer.message.items() if k != "role" and v is not None}
    if "tool_calls" in delta:
        delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(delta["tool_calls"])]
    return delta
