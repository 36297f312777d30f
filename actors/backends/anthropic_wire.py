"""OpenAI's Chat Completions in Anthropic's Messages API, and Anthropic's answers back.

Requests arrive in OpenAI's shape; for an Anthropic account each field with a
Messages counterpart is translated (system and developer messages, images, tools
and tool calls, tool results, tool_choice, parallel_tool_calls, stop, max_tokens,
temperature, top_p, user) and :func:`untranslatable` names the others, which only
OpenAI-compatible accounts take. Answers and stream events come back in OpenAI's
shape (:mod:`actors.backends.answers`), so the rest of the router sees one format.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from actors.backends.answers import reported
from actors.messages import Answer

#: OpenAI request fields with a Messages API counterpart.
TRANSLATED = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "stream",
        "stream_options",  # Anthropic always streams usage
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "user",
        "n",  # 1 only (the router takes no other)
    }
)
_MESSAGE_FIELDS = frozenset({"role", "content", "tool_calls", "tool_call_id"})
_PART_TYPES = ("text", "image_url")

#: Messages API stop reasons as OpenAI's finish reasons, and back.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def untranslatable(body: Mapping[str, Any]) -> list[str]:
    """The fields of an OpenAI body that have no Messages API counterpart, by name."""
    fields = [name for name in body if name not in TRANSLATED]
    messages = body.get("messages")
    for i, message in enumerate(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict):
            continue
        if not message.keys() <= _MESSAGE_FIELDS:
            fields += [f"messages[{i}].{k}" for k in message if k not in _MESSAGE_FIELDS]
        content = message.get("content")
        if type(content) is str:  # the common case, checked in one step
            continue
        for j, part in enumerate(content if isinstance(content, list) else []):
            if not (isinstance(part, dict) and part.get("type") in _PART_TYPES):
                fields.append(f"messages[{i}].content[{j}]")
    return fields


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return "".join(p.get("text", "") for p in parts if isinstance(p, dict))


def _image(url: str) -> dict[str, Any]:
    """An ``image_url`` as a Messages image source: base64 for a data: URL, else the URL."""
    if url.startswith("data:") and ";base64," in url:
        media_type, _, data = url[5:].partition(";base64,")
        source = {"type": "base64", "media_type": media_type, "data": data}
        return {"type": "image", "source": source}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content if isinstance(content, list) else []:
        if part.get("type") == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url", "") if isinstance(image, dict) else str(image)
            blocks.append(_image(url))
    return blocks


def _arguments(text: Any) -> Any:
    if not text:
        return {}
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return {"arguments": text}  # not JSON: kept whole rather than lost


def tool_use_blocks(tool_calls: Any) -> list[dict[str, Any]]:
    """OpenAI ``tool_calls`` as Messages ``tool_use`` blocks."""
    blocks = []
    for call in tool_calls or ():
        function = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id", ""),
                "name": function.get("name", ""),
                "input": _arguments(function.get("arguments")),
            }
        )
    return blocks


def _turn(message: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """One OpenAI message as a Messages role and content blocks."""
    role = message.get("role")
    if role == "tool":
        result = {
            "type": "tool_result",
            "tool_use_id": message.get("tool_call_id", ""),
            "content": _text(message.get("content")),
        }
        return "user", [result]
    blocks = _blocks(message.get("content"))
    if role == "assistant":
        return "assistant", blocks + tool_use_blocks(message.get("tool_calls"))
    return "user", blocks


def _tool_choice(body: Mapping[str, Any]) -> dict[str, Any] | None:
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name", "")
        translated: dict[str, Any] = {"type": "tool", "name": name}
    elif choice in ("none", "auto", "required"):
        translated = {"type": {"required": "any"}.get(choice, choice)}
    else:
        translated = {"type": "auto"}
    if body.get("parallel_tool_calls") is False and translated["type"] != "none":
        translated["disable_parallel_tool_use"] = True
    elif choice is None:
        return None
    return translated


def messages_body(
    body: Mapping[str, Any], model: str, stream: bool, default_max_tokens: int
) -> dict[str, Any]:
    """A Messages API body for an OpenAI Chat Completions body (its untranslatable
    fields never get here: the router sends those to OpenAI-compatible accounts)."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in body.get("messages") or ():
        if message.get("role") in ("system", "developer"):
            system.append(_text(message.get("content")))
            continue
        role, blocks = _turn(message)
        content = message.get("content")
        plain = (
            isinstance(content, str)
            and not message.get("tool_calls")
            and message.get("role") != "tool"
        )
        if turns and turns[-1]["role"] == role:  # the Messages API alternates roles
            earlier = turns[-1]["content"]
            if isinstance(earlier, str):
                earlier = turns[-1]["content"] = _blocks(earlier)
            earlier.extend(blocks)
        else:
            turns.append({"role": role, "content": content if plain else blocks})
    out: dict[str, Any] = {
        "model": model,
        "messages": turns,
        "max_tokens": body.get("max_completion_tokens")
        or body.get("max_tokens")
        or default_max_tokens,
        "stream": stream,
    }
    if system:
        out["system"] = "\n\n".join(system)
    if body.get("temperature") is not None:
        # Anthropic takes temperatures in [0, 1]; OpenAI's scale goes to 2.
        out["temperature"] = min(float(body["temperature"]), 1.0)
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    tools = body.get("tools")
    if tools:
        out["tools"] = [_tool(tool) for tool in tools]
    choice = _tool_choice(body)
    if choice is not None and tools:
        out["tool_choice"] = choice
    if body.get("user"):
        out["metadata"] = {"user_id": body["user"]}
    return out


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = tool.get("function") or {}
    translated = {
        "name": function.get("name", ""),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        translated["description"] = function["description"]
    return translated


def openai_usage(usage: Any) -> dict[str, Any]:
    """A Messages usage object in OpenAI's terms: the prompt includes cached tokens."""
    if not isinstance(usage, dict):
        return {}
    out: dict[str, Any] = {}
    prompt = reported(usage, "input_tokens")
    if prompt is not None:
        read = reported(usage, "cache_read_input_tokens") or 0
        written = reported(usage, "cache_creation_input_tokens") or 0
        out["prompt_tokens"] = prompt + read + written
        out["prompt_tokens_details"] = {"cached_tokens": read}
    completion = reported(usage, "output_tokens")
    if completion is not None:
        out["completion_tokens"] = completion
    if prompt is not None and completion is not None:
        out["total_tokens"] = out["prompt_tokens"] + completion
    return out


def messages_answer(data: Any) -> Answer:
    """The answer in a Messages API reply, in OpenAI's shape."""
    blocks = data["content"]
    if not isinstance(blocks, list):
        raise TypeError("content is not a list of blocks")
    text = "".join(b["text"] for b in blocks if b.get("type") == "text")
    calls = [
        {
            "id": b.get("id", ""),
            "type": "function",
            "function": {"name": b.get("name", ""), "arguments": json.dumps(b.get("input", {}))},
        }
        for b in blocks
        if b.get("type") == "tool_use"
    ]
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    usage = openai_usage(data.get("usage"))
    return Answer(
        message=message,
        finish_reason=FINISH_REASONS.get(data.get("stop_reason") or "end_turn", "stop"),
        usage=usage,
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
    )


class MessagesEvents:
    """One Messages stream's events as OpenAI chunks (None: nothing to pass on)."""

    def __init__(self) -> None:
        self._tools: dict[int, int] = {}  # content block index -> tool call index

    def chunk(self, kind: str | None, payload: dict[str, Any]) -> dict[str, Any] | None:
        if kind == "message_start":
            usage = openai_usage((payload.get("message") or {}).get("usage"))
            # Its output count is only a start: message_delta gives the real one.
            usage.pop("completion_tokens", None)
            usage.pop("total_tokens", None)
            return {"choices": [], "usage": usage} if usage else None
        if kind == "content_block_start":
            block = payload.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self._tools[payload.get("index", 0)] = len(self._tools)
                call = {
                    "index": index,
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {"name": block.get("name", ""), "arguments": ""},
                }
                return _delta({"tool_calls": [call]})
            if block.get("type") == "text" and block.get("text"):
                return _delta({"content": block["text"]})
            return None
        if kind == "content_block_delta":
            delta = payload.get("delta") or {}
            if delta.get("type") == "text_delta":
                return _delta({"content": delta.get("text", "")})
            if delta.get("type") == "input_json_delta":
                index = self._tools.get(payload.get("index", 0), 0)
                arguments = {"index": index, "function": {"arguments": delta.get("partial_json")}}
                return _delta({"tool_calls": [arguments]})
            return None  # thinking and signature deltas have no OpenAI counterpart
        if kind == "message_delta":
            stop = (payload.get("delta") or {}).get("stop_reason")
            chunk = _delta({}, FINISH_REASONS.get(stop, "stop") if stop else None)
            usage = payload.get("usage") or {}
            if reported(usage, "output_tokens") is not None:
                chunk["usage"] = {"completion_tokens": usage["output_tokens"]}
            return chunk
        return None  # content_block_stop, ping


def _delta(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
