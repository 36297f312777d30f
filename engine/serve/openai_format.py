"""OpenAI's wire format: chat request bodies in, completions, chunks and error bodies out.

Parsing checks every field's type and names the bad one with an
:class:`~engine.routing.errors.InvalidRequest`, so a malformed request fails in
microseconds without reaching the router's providers; semantic checks
(roles, ranges, the model, the context window) stay in the router's own
validation, where the simulator's requests meet them too.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

from actors.messages import ChatMessage, ChatRequest, Completion
from actors.runtime.errors import CallboardError
from engine.routing.errors import InvalidRequest, RequestFailed

#: Body fields accepted and ignored: they do not change what callboard does.
IGNORED_FIELDS = frozenset(
    {"user", "stream_options", "seed", "top_p", "presence_penalty", "frequency_penalty", "stop"}
)
_KNOWN_FIELDS = frozenset(
    {
        "messages",
        "model",
        "temperature",
        "max_tokens",
        "max_completion_tokens",
        "stream",
        "n",
        "request_id",
        "kind",
        "deadline",
        "bypass_cache",
        "cache_key",
        "priority",
    }
)


REQUEST_ID_ALLOWED = "up to 128 printable ASCII characters"
_REQUEST_ID = re.compile(r"[\x20-\x7e]{0,128}")


def _absent(field: str, container: dict[str, Any], key: str, allowed: str) -> InvalidRequest:
    """A null or missing JSON field, said in JSON's words rather than Python's ``None``."""
    got = "null" if key in container else "missing"
    return InvalidRequest(field, None, allowed, message=f"{field}: {got}; allowed: {allowed}")


def _content(index: int, content: Any) -> str:
    """Text content, from a string or a list of ``{"type": "text", "text": ...}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if not (isinstance(part, dict) and part.get("type") == "text"):
                raise InvalidRequest(
                    f"messages[{index}].content[{j}]", part, 'a {"type": "text", "text": ...} part'
                )
            if not isinstance(part.get("text"), str):
                raise InvalidRequest(
                    f"messages[{index}].content[{j}].text", part.get("text"), "a string"
                )
            texts.append(part["text"])
        return "".join(texts)
    raise InvalidRequest(f"messages[{index}].content", content, "a string or a list of text parts")


def chat_messages(raw: Any) -> tuple[ChatMessage, ...]:
    """``[{"role": ..., "content": ...}, ...]`` (or ChatMessage objects) as ChatMessages."""
    if not isinstance(raw, list | tuple):
        raise InvalidRequest("messages", raw, "a list of {role, content} messages")
    messages = []
    for i, item in enumerate(raw):
        if isinstance(item, ChatMessage):
            messages.append(item)
            continue
        if not isinstance(item, dict):
            raise InvalidRequest(f"messages[{i}]", item, "a {role, content} object")
        role, content = item.get("role"), item.get("content")
        roles = "system | user | assistant | tool"
        if role is None:
            raise _absent(f"messages[{i}].role", item, "role", roles)
        if not isinstance(role, str):
            raise InvalidRequest(f"messages[{i}].role", role, roles)
        if content is None:
            raise _absent(
                f"messages[{i}].content", item, "content", "a string or a list of text parts"
            )
        messages.append(ChatMessage(role, _content(i, content)))
    return tuple(messages)


def _optional(body: dict[str, Any], field: str, kinds: tuple[type, ...], allowed: str) -> Any:
    value = body.get(field)
    if value is None:
        return None
    if int in kinds and isinstance(value, float) and value.is_integer():
        return int(value)  # JSON's 3.0 is the integer 3 (as JSON Schema counts it)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise InvalidRequest(field, value, allowed)
    return value


def parse_chat_body(body: Any) -> tuple[ChatRequest, bool]:
    """(request, stream?) from a ``POST /v1/chat/completions`` body."""
    if not isinstance(body, dict):
        raise InvalidRequest("body", body, "a JSON object")
    unsupported = sorted(set(body) - _KNOWN_FIELDS - IGNORED_FIELDS)
    if unsupported:
        field = unsupported[0]
        allowed = ", ".join(sorted(_KNOWN_FIELDS | IGNORED_FIELDS))
        # An empty or unprintable key is named by its repr, so the error still shows it.
        name = field if field.isprintable() and field.strip() == field and field else repr(field)
        raise InvalidRequest(name, body[field], f"a field callboard supports: {allowed}")
    if body.get("messages") is None:
        raise _absent("messages", body, "messages", "a list of {role, content} messages (required)")
    messages = chat_messages(body["messages"])
    model = body.get("model", "auto")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model", model, "a model name, or 'auto'")
    n = _optional(body, "n", (int,), "1 (one choice per request)")
    if n is not None and n != 1:
        raise InvalidRequest("n", n, "1 (one choice per request)")
    temperature = _optional(body, "temperature", (int, float), "a number in [0, 2]")
    max_tokens = _optional(body, "max_tokens", (int,), "an integer >= 1")
    if max_tokens is None:
        max_tokens = _optional(body, "max_completion_tokens", (int,), "an integer >= 1")
    deadline = _optional(body, "deadline", (int, float), "> 0 seconds")
    request_id = _optional(body, "request_id", (str,), REQUEST_ID_ALLOWED)
    if request_id is not None and not _REQUEST_ID.fullmatch(request_id):
        # It is echoed in the x-request-id header and the logs: printable ASCII only.
        raise InvalidRequest("request_id", request_id, REQUEST_ID_ALLOWED)
    kind = _optional(body, "kind", (str,), "a turn kind, e.g. chat | question | evaluation")
    cache_key = _optional(body, "cache_key", (str,), "a string")
    bypass = _optional(body, "bypass_cache", (bool,), "true or false")
    stream = _optional(body, "stream", (bool,), "true or false")
    priority = _optional(body, "priority", (int,), "an integer >= 0 (0 first)")
    if priority is not None and priority < 0:
        raise InvalidRequest("priority", priority, "an integer >= 0 (0 first)")
    request = ChatRequest(
        messages=messages,
        model=model,
        temperature=1.0 if temperature is None else temperature,
        max_tokens=max_tokens,
        request_id=request_id,
        kind=kind or "chat",
        cache_key=cache_key,
        bypass_cache=bool(bypass),
        deadline=deadline,
        priority=priority or 0,
    )
    return request, bool(stream)


def _extras(completion: Completion) -> dict[str, Any]:
    return {
        "request_id": completion.request_id,
        "provider": completion.provider,
        "attempts": completion.attempts,
        "total_latency_ms": round(completion.latency * 1000, 3),
        "cached": completion.cached,
    }


def _usage(completion: Completion) -> dict[str, int]:
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": completion.prompt_tokens + completion.completion_tokens,
    }


def completion_body(completion: Completion, created: int | None = None) -> dict[str, Any]:
    """A ``chat.completion`` object, plus who answered and how."""
    return {
        "id": f"chatcmpl-{completion.request_id}",
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": completion.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": completion.content},
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(completion),
        **_extras(completion),
    }


def chunk_body(
    request_id: str, model: str, created: int, text: str | None, first: bool = False
) -> dict[str, Any]:
    """One ``chat.completion.chunk`` carrying ``text``."""
    delta: dict[str, Any] = {"content": text}
    if first:
        delta["role"] = "assistant"
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }


def final_chunk_body(completion: Completion, created: int) -> dict[str, Any]:
    """The last chunk: finish reason, usage, and who answered."""
    return {
        "id": f"chatcmpl-{completion.request_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": completion.model,
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": _usage(completion),
        **_extras(completion),
    }


def _error_type(status: int) -> str:
    if status == 404:
        return "not_found_error"
    if status == 409:
        return "conflict_error"
    if status == 429:
        return "rate_limit_error"
    if status < 500:
        return "invalid_request_error"
    return "server_error"


def error_body(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, ``{"error": {message, type, param, code}}``, headers) for any failure."""
    headers: dict[str, str] = {}
    if isinstance(exc, InvalidRequest):
        status, param, code = 400, exc.field, exc.code
        if exc.field == "model":
            status, code = 404, "model_not_found"
    elif isinstance(exc, CallboardError):
        status, param, code = exc.status, None, exc.code
    else:
        status, param, code = 500, None, "internal_error"
    error: dict[str, Any] = {
        "message": str(exc) if isinstance(exc, CallboardError) else "internal error",
        "type": "invalid_request_error" if isinstance(exc, InvalidRequest) else _error_type(status),
        "param": param,
        "code": code,
    }
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float) and math.isfinite(retry_after) and retry_after >= 0:
        headers["retry-after"] = str(max(1, math.ceil(retry_after)))
        error["retry_after"] = round(retry_after, 3)
    if isinstance(exc, RequestFailed):
        error["request_id"] = exc.request_id
        error["attempts"] = [
            {"provider": a.provider, "code": a.code, "message": str(a)} for a in exc.attempts
        ]
    return status, {"error": error}, headers
