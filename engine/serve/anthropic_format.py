"""Anthropic's Messages API as an entrance: ``POST /v1/messages`` on the same router.

A Messages request becomes an OpenAI Chat Completions body (the router's one
format: :mod:`engine.serve.openai_format` then reads it), and the answer goes back
as a Messages reply or its stream of events. Fields with an OpenAI counterpart are
translated (system, images, tools, tool_use and tool_result blocks, tool_choice,
stop_sequences, max_tokens, temperature, top_p, metadata.user_id); the others are
refused with a 400 naming them. ``cache_control`` marks are dropped: they change
what a cached prompt costs, not the answer. Streams are written by
:mod:`engine.serve.messages_stream`.
"""

from __future__ import annotations

import json
from typing import Any

from actors.backends.anthropic_wire import STOP_REASONS, tool_use_blocks
from actors.messages import Completion
from engine.routing.errors import InvalidRequest
from engine.serve.openai_format import error_body, shown_field, usage_body

_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "temperature",
        "top_p",
        "stop_sequences",
        "stream",
        "tools",
        "tool_choice",
        "metadata",
    }
)
#: callboard's own fields, as on the chat API.
_ROUTER_FIELDS = ("request_id", "kind", "deadline", "bypass_cache", "cache_key", "priority")


def _refuse(field: str, value: Any) -> InvalidRequest:
    return InvalidRequest(field, value, "a Messages API field with an OpenAI counterpart")


def _text_of(where: str, content: Any) -> str:
    """Text from a string or a list of text blocks (a system prompt, a tool result)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(where, content, "a string or a list of text blocks")
    texts = []
    for j, block in enumerate(content):
        if not (isinstance(block, dict) and block.get("type") == "text"):
            raise InvalidRequest(f"{where}[{j}]", block, 'a {"type": "text", "text": ...} block')
        if not isinstance(block.get("text"), str):
            raise InvalidRequest(f"{where}[{j}].text", block.get("text"), "a string")
        texts.append(block["text"])
    return "".join(texts)


def _image(where: str, block: dict[str, Any]) -> dict[str, Any]:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "base64":
        url = f"data:{source.get('media_type', '')};base64,{source.get('data', '')}"
    elif isinstance(source, dict) and source.get("type") == "url":
        url = source.get("url", "")
    else:
        raise InvalidRequest(f"{where}.source", source, "a base64 or url image source")
    return {"type": "image_url", "image_url": {"url": url}}


def _user(i: int, content: list[Any]) -> list[dict[str, Any]]:
    """A user turn's blocks as OpenAI messages: tool results first, then the rest."""
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        where = f"messages[{i}].content[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": _text_of(where, [block])})
        elif kind == "image":
            parts.append(_image(where, block))
        elif kind == "tool_result":
            text = _text_of(f"{where}.content", block.get("content", ""))
            results.append(
                {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text}
            )
        else:
            raise _refuse(where, block)
    return results + ([{"role": "user", "content": parts}] if parts else [])


def _assistant(i: int, content: list[Any]) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(_text_of(f"messages[{i}].content[{j}]", [block]))
        elif kind == "tool_use":
            arguments = json.dumps(block.get("input", {}))
            function = {"name": block.get("name", ""), "arguments": arguments}
            calls.append({"id": block.get("id", ""), "type": "function", "function": function})
        else:
            raise _refuse(f"messages[{i}].content[{j}]", block)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _messages(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("messages", raw, "a non-empty list of {role, content} messages")
    out: list[dict[str, Any]] = []
    for i, message in enumerate(raw):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{i}]", message, "a {role, content} object")
        role, content = message.get("role"), message.get("content")
        if role not in ("user", "assistant"):
            raise InvalidRequest(f"messages[{i}].role", role, "user | assistant")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
        elif isinstance(content, list):
            out += _user(i, content) if role == "user" else [_assistant(i, content)]
        else:
            raise InvalidRequest(f"messages[{i}].content", content, "a string or content blocks")
    return out


def _tools(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("tools", raw, "a non-empty list of {name, input_schema} tools")
    tools = []
    for i, tool in enumerate(raw):
        if not (isinstance(tool, dict) and isinstance(tool.get("name"), str)):
            raise InvalidRequest(f"tools[{i}]", tool, "a {name, input_schema} tool")
        if tool.get("type") not in (None, "custom"):
            raise _refuse(f"tools[{i}].type", tool.get("type"))  # server tools: no counterpart
        function = {"name": tool["name"], "parameters": tool.get("input_schema") or {}}
        if tool.get("description"):
            function["description"] = tool["description"]
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(raw: Any, chat: dict[str, Any]) -> None:
    if not isinstance(raw, dict) or raw.get("type") not in ("auto", "any", "tool", "none"):
        raise InvalidRequest("tool_choice", raw, '{"type": "auto" | "any" | "tool" | "none"}')
    kind = raw["type"]
    if kind == "tool":
        chat["tool_choice"] = {"type": "function", "function": {"name": raw.get("name")}}
    else:
        chat["tool_choice"] = {"any": "required"}.get(kind, kind)
    if raw.get("disable_parallel_tool_use") is True:
        chat["parallel_tool_calls"] = False


def chat_body(body: Any) -> dict[str, Any]:
    """The OpenAI Chat Completions body for a Messages API request body."""
    if not isinstance(body, dict):
        raise InvalidRequest("body", body, "a JSON object")
    for field in body:
        if field not in _FIELDS and field not in _ROUTER_FIELDS:
            raise _refuse(shown_field(field), body[field])
    if "max_tokens" not in body:
        raise InvalidRequest("max_tokens", None, "an integer >= 1 (required)")
    if not isinstance(body.get("model"), str):
        raise InvalidRequest("model", body.get("model"), "a model name, or 'auto' (required)")
    messages = _messages(body.get("messages"))
    system = body.get("system")
    if system is not None:
        messages.insert(0, {"role": "system", "content": _text_of("system", system)})
    chat: dict[str, Any] = {"model": body["model"], "messages": messages}
    for field in ("max_tokens", "temperature", "top_p", "stream", *_ROUTER_FIELDS):
        if field in body:
            chat[field] = body[field]
    if "stop_sequences" in body:
        chat["stop"] = body["stop_sequences"]
    if "tools" in body:
        chat["tools"] = _tools(body["tools"])
    if "tool_choice" in body:
        _tool_choice(body["tool_choice"], chat)
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict) or set(metadata) - {"user_id"}:
            raise _refuse("metadata", metadata)
        if metadata.get("user_id") is not None:
            chat["user"] = metadata["user_id"]
    return chat


def content_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    """An OpenAI assistant message as Messages content blocks."""
    blocks: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, str) and text:
        blocks.append({"type": "text", "text": text})
    if message.get("refusal"):
        blocks.append({"type": "text", "text": message["refusal"]})
    return blocks + tool_use_blocks(message.get("tool_calls"))


def messages_usage(completion: Completion) -> dict[str, int]:
    """Usage in Messages terms: input tokens exclude those read from the prompt cache."""
    usage = usage_body(completion)
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    cached = cached if isinstance(cached, int) else 0
    return {
        "input_tokens": max(0, completion.prompt_tokens - cached),
        "output_tokens": completion.completion_tokens,
        "cache_read_input_tokens": cached,
    }


def stop_reason(completion: Completion) -> str:
    finish = completion.answer.finish_reason if completion.answer is not None else None
    return STOP_REASONS.get(finish or "stop", "end_turn")


def extras(completion: Completion) -> dict[str, Any]:
    return {
        "request_id": completion.request_id,
        "provider": completion.provider,
        "attempts": completion.attempts,
        "cached": completion.cached,
    }


def messages_reply(completion: Completion) -> dict[str, Any]:
    """A Messages API reply for the router's answer, plus who answered and how."""
    answer = completion.answer
    message = answer.message if answer is not None else {"content": completion.text}
    return {
        "id": f"msg_{completion.request_id}",
        "type": "message",
        "role": "assistant",
        "model": completion.model,
        "content": content_blocks(message),
        "stop_reason": stop_reason(completion),
        "stop_sequence": None,
        "usage": messages_usage(completion),
        **extras(completion),
    }


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


def messages_error(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, Anthropic's ``{"type": "error", "error": {...}}``, headers) for a failure;
    the error keeps the OpenAI shape's param and code, which name the bad field."""
    status, body, headers = error_body(exc)
    error = {**body["error"], "type": _ERROR_TYPES.get(status, "api_error")}
    return status, {"type": "error", "error": error}, headers
