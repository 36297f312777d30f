"""What each upstream API expects and answers: OpenAI chat completions and Anthropic Messages.

A dialect builds the URL, headers and body of one call, and reads a reply or
one server-sent event. It does no I/O, so each API's quirks are tested on plain
dicts. "openai" covers every OpenAI-compatible server (OpenAI, Groq, Together,
vLLM, Ollama, HuggingFace's router, ``callboard mock-provider``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

import attrs

from actors.backends.answers import openai_answer
from actors.backends.anthropic_wire import MessagesEvents, messages_answer, messages_body
from actors.messages import Answer, ChatRequest

KINDS = ("openai", "anthropic")


class StreamFault(Exception):
    """The upstream reported an error inside its stream (an ``error`` event)."""

    def __init__(self, message: str, overloaded: bool = False) -> None:
        super().__init__(message)
        #: Whether the event says the provider is overloaded (:func:`is_overload`).
        self.overloaded = overloaded


@attrs.frozen
class StreamStep:
    """What one event adds: an OpenAI-shaped chunk, or the end of the stream."""

    chunk: dict[str, Any] | None = None
    done: bool = False


NOTHING = StreamStep()
DONE = StreamStep(done=True)

#: Reads one stream's events in order: (event name, data) -> what it adds.
StreamReader = Callable[[str | None, str], StreamStep]


class Dialect(Protocol):
    def url(self, base_url: str) -> str: ...

    def headers(self, api_key: str | None) -> dict[str, str]: ...

    def body(self, request: ChatRequest, model: str, stream: bool) -> dict[str, Any]: ...

    def reply(self, data: Any) -> Answer: ...

    def stream_reader(self) -> StreamReader: ...


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


#: Anthropic's status for an API short of capacity for everyone (not a 5xx of HTTP's own).
OVERLOADED_STATUS = 529


def is_overload(status: int, data: Any) -> bool:
    """Whether an error says the provider is short of capacity for everyone, which is no
    fault of the account: HTTP 529 (Anthropic), an error whose type or code names an
    overload (Anthropic's ``overloaded_error``, Moonshot's ``engine_overloaded_error``),
    or a 503 saying so (OpenAI's "That model is currently overloaded ...")."""
    if status == OVERLOADED_STATUS:
        return True
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return False
    for field in ("type", "code"):
        value = error.get(field)
        if isinstance(value, str) and "overloaded" in value.lower():
            return True
    return status == 503 and "overloaded" in error_message(data).lower()


def _json(data: str) -> Any:
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise ValueError(f"event is not JSON: {exc}") from None


@attrs.frozen
class OpenAIChat:
    """``POST {base_url}/chat/completions``; streams ``data: {chunk}`` then ``data: [DONE]``.

    A client's body goes upstream as it was sent, with the account's model; only
    ``stream`` follows how the router reads the answer, and ``stream_usage`` (an
    operator's choice) asks for the usage chunk when the client did not.
    """

    stream_usage: bool = False

    def url(self, base_url: str) -> str:
        return base_url.rstrip("/") + "/chat/completions"

    def headers(self, api_key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"} if api_key else {}

    def body(self, request: ChatRequest, model: str, stream: bool) -> dict[str, Any]:
        if request.body is not None:
            body = {**request.body, "model": model}
            if stream or "stream" in body:
                body["stream"] = stream
            if not stream:
                body.pop("stream_options", None)  # only valid beside stream: true
        else:
            body = {
                "model": model,
                "messages": [{"role": m.role, "content": m.content} for m in request.messages],
                "stream": stream,
            }
            if request.temperature is not None:
                body["temperature"] = request.temperature
            if request.max_tokens is not None:
                body["max_tokens"] = request.max_tokens
        if stream and self.stream_usage:
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return body

    def reply(self, data: Any) -> Answer:
        return openai_answer(data)

    def stream_reader(self) -> StreamReader:
        return self._event

    @staticmethod
    def _event(event: str | None, data: str) -> StreamStep:
        if data.strip() == "[DONE]":
            return DONE
        chunk = _json(data)
        if not isinstance(chunk, dict):
            raise ValueError("event is not a JSON object")
        if "error" in chunk:
            raise StreamFault(error_message(chunk) or "error event", is_overload(0, chunk))
        return StreamStep(chunk)


@attrs.frozen
class AnthropicMessages:
    """``POST {base_url}/v1/messages``; system prompts travel apart; max_tokens is required.

    Requests and answers are translated by :mod:`actors.backends.anthropic_wire`.
    """

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
        body = request.body
        if body is None:
            body = {"messages": [{"role": m.role, "content": m.content} for m in request.messages]}
            if request.temperature is not None:
                body["temperature"] = request.temperature
            if request.max_tokens is not None:
                body["max_tokens"] = request.max_tokens
        return messages_body(body, model, stream, self.default_max_tokens)

    def reply(self, data: Any) -> Answer:
        return messages_answer(data)

    def stream_reader(self) -> StreamReader:
        events = MessagesEvents()

        def read(event: str | None, data: str) -> StreamStep:
            payload = _json(data)
            if not isinstance(payload, dict):
                raise ValueError("event is not a JSON object")
            kind = payload.get("type", event)
            if kind == "message_stop":
                return DONE
            if kind == "error":
                message = error_message(payload) or "error event"
                raise StreamFault(message, is_overload(0, payload))
            chunk = events.chunk(kind, payload)
            return NOTHING if chunk is None else StreamStep(chunk)

        return read


def dialect_for(kind: str, **options: Any) -> Dialect:
    if kind == "openai":
        return OpenAIChat(**options)
    if kind == "anthropic":
        return AnthropicMessages(**options)
    raise ValueError(f"kind: got {kind!r}; allowed: {' | '.join(KINDS)}")
