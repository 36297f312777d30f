"""OpenAI's wire format: chat request bodies in, completions, chunks and error bodies out.

Parsing checks every field's type and names the bad one with an
:class:`~engine.routing.errors.InvalidRequest`, so a malformed request fails in
microseconds without reaching the router's providers; semantic checks
(roles, ranges, the model, the context window) stay in the router's own
validation, where the simulator's requests meet them too.
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

from actors.backends.anthropic_wire import untranslatable
from actors.messages import OPENAI_FIELDS as OPENAI_WIRE
from actors.messages import ROLES, ChatMessage, ChatRequest, Completion
from actors.runtime.errors import CallboardError
from engine.routing.errors import InvalidRequest, RequestFailed

#: Fields of a request body that address callboard, not the model: never sent upstream.
ROUTER_FIELDS = frozenset(
    {"request_id", "kind", "deadline", "bypass_cache", "cache_key", "priority"}
)
#: The fields of OpenAI's Chat Completions request. Those the router reads are checked
#: here; the others pass upstream untouched (the provider checks them), as do fields
#: this list does not know unless ``server.unknown_fields = "refuse"``.
CHAT_FIELDS = frozenset(
    {
        "messages",
        "model",
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "metadata",
        "modalities",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)
#: What ``server.unknown_fields`` may say of a field in neither list.
UNKNOWN_FIELDS = ("pass", "refuse")
_JSON_MODES = ("json_object", "json_schema")


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
        role, content = _role(i, item), item.get("content")
        if content is None:
            raise _absent(
                f"messages[{i}].content", item, "content", "a string or a list of text parts"
            )
        messages.append(ChatMessage(role, _content(i, content)))
    return tuple(messages)


_ROLES = " | ".join(ROLES)


def _role(index: int, item: Any) -> str:
    if not isinstance(item, dict):
        raise InvalidRequest(f"messages[{index}]", item, "a {role, content} object")
    role = item.get("role")
    if role is None:
        raise _absent(f"messages[{index}].role", item, "role", _ROLES)
    if not isinstance(role, str):
        raise InvalidRequest(f"messages[{index}].role", role, _ROLES)
    return role


_PARTS = "a string, a list of content parts, or null beside tool_calls"


def _parts_text(index: int, content: list[Any], needs: list[tuple[str, str]]) -> str:
    """The text of a list of content parts; an image part makes the request need vision."""
    texts = []
    for j, part in enumerate(content):
        where = f"messages[{index}].content[{j}]"
        if not (isinstance(part, dict) and isinstance(part.get("type"), str)):
            raise InvalidRequest(where, part, 'a content part: {"type": "text", "text": ...} ...')
        if part["type"] == "text":
            if not isinstance(part.get("text"), str):
                raise InvalidRequest(f"{where}.text", part.get("text"), "a string")
            texts.append(part["text"])
        elif part["type"] == "image_url":
            needs.append(("vision", where))
    return "".join(texts)


def wire_messages(raw: Any, needs: list[tuple[str, str]]) -> tuple[ChatMessage, ...]:
    """The messages of a client's body as text (for sizes, sessions and logs), checking
    what the router reads; tool calls, tool results and images stay in the body."""
    if not isinstance(raw, list):
        raise InvalidRequest("messages", raw, "a list of {role, content} messages")
    messages = []
    for i, item in enumerate(raw):
        role, content = _role(i, item), item.get("content")
        if isinstance(content, str):
            text = content
        elif isinstance(content, list):
            text = _parts_text(i, content, needs)
        elif (
            content is None
            and role == "assistant"
            and (item.get("tool_calls") or item.get("function_call"))
        ):
            text = ""
        elif content is None:
            raise _absent(f"messages[{i}].content", item, "content", _PARTS)
        else:
            raise InvalidRequest(f"messages[{i}].content", content, _PARTS)
        calls = item.get("tool_calls")
        if calls is not None:
            if not isinstance(calls, list):
                raise InvalidRequest(f"messages[{i}].tool_calls", calls, "a list of tool calls")
            # Their arguments are prompt too, for sizes and limits.
            text += "".join(json.dumps(call) for call in calls)
        messages.append(ChatMessage(role, text))
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


def _needs(body: dict[str, Any], needs: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """What the body needs of a provider: tools, JSON mode, vision (already in ``needs``),
    then OpenAI's wire format for every field Anthropic's Messages API has no room for."""
    for field in ("tools", "functions"):
        value = body.get(field)
        if value is None:
            continue
        if not (isinstance(value, list) and value and all(isinstance(t, dict) for t in value)):
            raise InvalidRequest(field, value, "a non-empty list of tool objects")
        needs.insert(0, ("tools", field))
    mode = body.get("response_format")
    if mode is not None:
        kind = mode.get("type") if isinstance(mode, dict) else None
        if kind not in ("text", *_JSON_MODES):
            raise InvalidRequest(
                "response_format", mode, '{"type": "text" | "json_object" | "json_schema"}'
            )
        if kind in _JSON_MODES:
            needs.append(("json_mode", "response_format"))
    needs += [(OPENAI_WIRE, field) for field in untranslatable(body)]
    return tuple(needs)


def parse_chat_body(body: Any, *, unknown_fields: str = "pass") -> tuple[ChatRequest, bool]:
    """(request, stream?) from a ``POST /v1/chat/completions`` body.

    The fields the router reads are checked and the rest kept as sent, to pass
    upstream untouched (``unknown_fields = "refuse"``: a field OpenAI's API does not
    have is refused, naming it).
    """
    if not isinstance(body, dict):
        raise InvalidRequest("body", body, "a JSON object")
    if unknown_fields == "refuse":
        unknown = sorted(set(body) - CHAT_FIELDS - ROUTER_FIELDS)
        if unknown:
            field = unknown[0]
            allowed = "a field of OpenAI's Chat Completions API or callboard's own"
            raise InvalidRequest(
                shown_field(field), body[field], f"{allowed} (server.unknown_fields = refuse)"
            )
    if body.get("messages") is None:
        raise _absent("messages", body, "messages", "a list of {role, content} messages (required)")
    needs: list[tuple[str, str]] = []
    messages = wire_messages(body["messages"], needs)
    model = body.get("model", "auto")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model", model, "a model name, or 'auto'")
    n = _optional(body, "n", (int,), "1 (one choice per request)")
    if n is not None and n != 1:
        raise InvalidRequest("n", n, "1 (one choice per request)")
    temperature = _optional(body, "temperature", (int, float), "a number in [0, 2]")
    max_tokens = _optional(body, "max_completion_tokens", (int,), "an integer >= 1")
    if max_tokens is None:
        max_tokens = _optional(body, "max_tokens", (int,), "an integer >= 1")
    deadline = _optional(body, "deadline", (int, float), "> 0 seconds")
    request_id = _optional(body, "request_id", (str,), REQUEST_ID_ALLOWED)
    if request_id is not None and not _REQUEST_ID.fullmatch(request_id):
        # It is echoed in the x-request-id header and the logs: printable ASCII only.
        raise InvalidRequest("request_id", request_id, REQUEST_ID_ALLOWED)
    kind = _optional(body, "kind", (str,), "a turn kind, e.g. chat | question | evaluation")
    cache_key = _optional(body, "cache_key", (str,), "a string")
    bypass = _optional(body, "bypass_cache", (bool,), "true or false")
    stream = _optional(body, "stream", (bool,), "true or false")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("stream_options", options, '{"include_usage": true | false}')
    priority = _optional(body, "priority", (int,), "an integer >= 0 (0 first)")
    if priority is not None and priority < 0:
        raise InvalidRequest("priority", priority, "an integer >= 0 (0 first)")
    wire = {k: v for k, v in body.items() if k not in ROUTER_FIELDS}
    request = ChatRequest(
        messages=messages,
        model=model,
        temperature=temperature,
        max_tokens=max_tokens,
        request_id=request_id,
        kind=kind or "chat",
        cache_key=cache_key,
        bypass_cache=bool(bypass),
        deadline=deadline,
        priority=priority or 0,
        body=wire,
        needs=_needs(wire, needs),
        stream=bool(stream),
    )
    return request, bool(stream)


def include_usage(request: ChatRequest) -> bool:
    """Whether the client asked for the usage chunk at the end of a stream."""
    options = (request.body or {}).get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _extras(completion: Completion) -> dict[str, Any]:
    return {
        "request_id": completion.request_id,
        "provider": completion.provider,
        "attempts": completion.attempts,
        "total_latency_ms": round(completion.latency * 1000, 3),
        "cached": completion.cached,
        "usage_source": usage_source(completion),
    }


def usage_source(completion: Completion) -> dict[str, str]:
    """Where each usage figure came from: the provider's reply, or the router's estimate
    (~4 characters a token) when the provider gave none."""
    answer = completion.answer

    def source(figure: int | None) -> str:
        return "estimate" if figure is None else "provider"

    return {
        "prompt_tokens": source(answer.prompt_tokens if answer else None),
        "completion_tokens": source(answer.completion_tokens if answer else None),
    }


def usage_body(completion: Completion) -> dict[str, Any]:
    """The provider's usage object (cached tokens and other details included), with the
    figures the router settled on."""
    usage = dict(completion.answer.usage) if completion.answer is not None else {}
    usage["prompt_tokens"] = completion.prompt_tokens
    usage["completion_tokens"] = completion.completion_tokens
    usage["total_tokens"] = completion.prompt_tokens + completion.completion_tokens
    return usage


def _message(completion: Completion) -> dict[str, Any]:
    if completion.answer is None:
        return {"role": "assistant", "content": completion.text}
    return {"role": "assistant", **completion.answer.message}


def _finish(completion: Completion) -> str:
    answer = completion.answer
    return (answer.finish_reason if answer is not None else None) or "stop"


def completion_body(completion: Completion, created: int | None = None) -> dict[str, Any]:
    """A ``chat.completion`` object, as the provider answered it, plus who answered and how."""
    answer = completion.answer
    choice = {
        "index": 0,
        "message": _message(completion),
        "logprobs": answer.logprobs if answer is not None else None,
        "finish_reason": _finish(completion),
    }
    body: dict[str, Any] = {
        "id": f"chatcmpl-{completion.request_id}",
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": completion.model,
        "choices": [choice],
        "usage": usage_body(completion),
    }
    if answer is not None and answer.system_fingerprint is not None:
        body["system_fingerprint"] = answer.system_fingerprint
    return {**body, **_extras(completion)}


def chunk_body(
    request_id: str,
    model: str,
    created: int,
    delta: dict[str, Any],
    first: bool = False,
    logprobs: Any = None,
) -> dict[str, Any]:
    """One ``chat.completion.chunk`` carrying ``delta`` (text, tool calls, a refusal)."""
    if first:
        delta = {"role": "assistant", **delta}
    choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": None}
    if logprobs is not None:
        choice["logprobs"] = logprobs
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [choice],
    }


def final_chunks(completion: Completion, created: int, usage_chunk: bool) -> list[dict[str, Any]]:
    """The last chunks: the finish reason, then usage and who answered.

    With ``usage_chunk`` (the client's ``stream_options.include_usage``) the usage comes
    in a chunk of its own with no choices, as OpenAI sends it; else beside the finish.
    """
    base = {
        "id": f"chatcmpl-{completion.request_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": completion.model,
    }
    answer = completion.answer
    if answer is not None and answer.system_fingerprint is not None:
        base["system_fingerprint"] = answer.system_fingerprint
    finish = {
        **base,
        "choices": [{"index": 0, "delta": {}, "finish_reason": _finish(completion)}],
    }
    tail = {"usage": usage_body(completion), **_extras(completion)}
    if usage_chunk:
        return [finish, {**base, "choices": [], **tail}]
    return [{**finish, **tail}]


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


def shown_field(field: str) -> str:
    """A client's field name as an error names it: an empty or unprintable key by its repr,
    so that the error still shows which one it was."""
    return field if field and field.isprintable() and field.strip() == field else repr(field)


#: The code of a request for a model no account serves (OpenAI's, with its 404).
MODEL_NOT_FOUND = "model_not_found"
#: The code of an exception that is no :class:`CallboardError` (a bug; its text is not sent).
INTERNAL_ERROR = "internal_error"


def _status_param_code(exc: BaseException) -> tuple[int, str | None, str]:
    if isinstance(exc, InvalidRequest):
        if exc.field == "model":
            return 404, exc.field, MODEL_NOT_FOUND
        return 400, exc.field, exc.code
    if isinstance(exc, CallboardError):
        return exc.status, None, exc.code
    return 500, None, INTERNAL_ERROR


def error_code(exc: BaseException) -> str:
    """The ``code`` an error body names for ``exc`` (what the access line logs too)."""
    return _status_param_code(exc)[2]


def error_body(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, ``{"error": {message, type, param, code}}``, headers) for any failure."""
    headers: dict[str, str] = {}
    status, param, code = _status_param_code(exc)
    error: dict[str, Any] = {
        "message": str(exc) if isinstance(exc, CallboardError) else "internal error",
        "type": "invalid_request_error" if isinstance(exc, InvalidRequest) else _error_type(status),
        "param": param,
        "code": code,
    }
    retry_after = exc.retry_after if isinstance(exc, CallboardError) else None
    if retry_after is not None and math.isfinite(retry_after) and retry_after >= 0:
        headers["retry-after"] = str(max(1, math.ceil(retry_after)))
        error["retry_after"] = round(retry_after, 3)
    if isinstance(exc, RequestFailed):
        error["request_id"] = exc.request_id
        error["attempts"] = [
            {"provider": a.provider, "code": a.code, "message": str(a)} for a in exc.attempts
        ]
    return status, {"error": error}, headers
