"""What each upstream API expects and answers: OpenAI chat completions and Anthropic Messages.

A dialect builds the URL, headers and body of one call, and reads a reply or
one server-sent event. It does no I/O, so each API's quirks are tested on plain
dicts. "openai" covers every OpenAI-compatible server (OpenAI, Groq, Together,
vLLM, Ollama, HuggingFace's router, ``callboard mock-provider``).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import attrs

from actors.messages import ChatRequest

KINDS = ("openai", "anthropic")


class StreamFault(Exception):
    """The upstream reported an error inside its stream (an ``error`` event)."""


@attrs.frozen
class StreamStep:
    """What one event adds: text, a token count, a finish reason, or the end of the stream."""

    text: str = ""
    completion_tokens: int | None = None
    done: bool = False
    finished: bool = False


NOTHING = StreamStep()


class Dialect(Protocol):
    def url(self, base_url: str) -> str: ...

    def headers(self, api_key: str | None) -> dict[str, str]: ...

    def body(self, request: ChatRequest, model: str, stream: bool) -> dict[str, Any]: ...

    def reply(self, data: Any) -> tuple[str, int | None]: ...

    def stream_event(self, event: str | None, data: str) -> StreamStep: ...


def error_message(data: Any) -> str:
    """The human part of an error body in either API's shape, else ''."""
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str):
            return error
        if isinstance(data.get("message"), str):
            return data["message"]
    return ""


def _json(data: str) -> Any:
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise ValueError(f"event is not JSON: {exc}") from None


@attrs.frozen
class OpenAIChat:
    """``POST {base_url}/chat/completions``; streams ``data: {chunk}`` then ``data: [DONE]``."""

    stream_usage: bool = False

    def url(self, base_url: str) -> str:
        return base_url.rstrip("/") + "/chat/completions"

    def headers(self, api_key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"} if api_key else {}

    def body(self, request: ChatRequest, model: str, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": request.temperature,
            "stream": stream,
        }
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if stream and self.stream_usage:
            body["stream_options"] = {"include_usage": True}
        return body

    def reply(self, data: Any) -> tuple[str, int | None]:
        content = data["choices"][0]["message"]["content"]
        if not isinstance(content, str):
            raise ValueError(f"choices[0].message.content is {type(content).__name__}, not text")
        usage = data.get("usage") or {}
        return content, usage.get("completion_tokens")

    def stream_event(self, event: str | None, data: str) -> StreamStep:
        if data.strip() == "[DONE]":
            return StreamStep(done=True)
        chunk = _json(data)
        if not isinstance(chunk, dict):
            raise ValueError("event is not a JSON object")
        if "error" in chunk:
            raise StreamFault(error_message(chunk) or "error event")
        usage = chunk.get("usage") or {}
        tokens = usage.get("completion_tokens")
        choices = chunk.get("choices") or []
        if not choices:
            return StreamStep(completion_tokens=tokens)
        text = (choices[0].get("delta") or {}).get("content") or ""
        # The end marker is [DONE]; a finish_reason also completes the answer, for
        # servers that close the stream without [DONE] (usage may still follow it).
        return StreamStep(text, tokens, finished=choices[0].get("finish_reason") is not None)


@attrs.frozen
class AnthropicMessages:
    """``POST {base_url}/v1/messages``; system prompts travel apart; max_tokens is required."""

    version: str = "2023-06-01"
    default_max_tokens: int = 1024

    def url(self, base_url: str) -> str:
        base = base_url.rstrip("/")
        return base + ("/messages" if base.endswith("/v1") else "/v1/messages")

    def headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": self.version}
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    def body(self, request: ChatRequest, model: str, stream: bool) -> dict[str, Any]:
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        messages = [
            {"role": "assistant" if m.role == "assistant" else "user", "content": m.content}
            for m in request.messages
            if m.role != "system"
        ]
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "max_tokens": request.max_tokens or self.default_max_tokens,
            # Anthropic takes temperatures in [0, 1]; OpenAI's scale goes to 2.
            "temperature": min(float(request.temperature), 1.0),
            "stream": stream,
        }
        if system:
            body["system"] = system
        return body

    def reply(self, data: Any) -> tuple[str, int | None]:
        blocks = data["content"]
        if not isinstance(blocks, list):
            raise ValueError("content is not a list of blocks")
        text = "".join(b["text"] for b in blocks if b.get("type") == "text")
        usage = data.get("usage") or {}
        return text, usage.get("output_tokens")

    def stream_event(self, event: str | None, data: str) -> StreamStep:
        payload = _json(data)
        kind = payload.get("type", event) if isinstance(payload, dict) else event
        if kind == "content_block_delta":
            delta = payload.get("delta") or {}
            return StreamStep(delta.get("text", "") if delta.get("type") == "text_delta" else "")
        if kind == "message_delta":
            return StreamStep(completion_tokens=(payload.get("usage") or {}).get("output_tokens"))
        if kind == "message_stop":
            return StreamStep(done=True)
        if kind == "error":
            raise StreamFault(error_message(payload) or "error event")
        return NOTHING  # message_start, content_block_start/stop, ping


def dialect_for(kind: str, **options: Any) -> Dialect:
    if kind == "openai":
        return OpenAIChat(**options)
    if kind == "anthropic":
        return AnthropicMessages(**options)
    raise ValueError(f"kind: got {kind!r}; allowed: {' | '.join(KINDS)}")
