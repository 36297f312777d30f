"""What the mock provider's model says to a request that asks for more than text.

A request with tools is answered with a call to one of them (the one
``tool_choice`` names, else the first), its arguments filled in from the tool's
JSON Schema; once the conversation holds the tool's result, with text quoting it.
A request for JSON (``response_format``) gets a JSON object: one that fits the
schema when ``json_schema`` gives one. Every answer is a function of the request,
so tests can tell that each field reached the provider and came back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from actors.messages import Answer

_SAMPLES = {"string": "mock", "integer": 1, "number": 1.5, "boolean": True, "array": []}


def _sample(schema: Any) -> Any:
    """A value of the JSON Schema ``schema`` (objects filled in property by property)."""
    if not isinstance(schema, dict):
        return None
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        return {name: _sample(sub) for name, sub in properties.items()}
    return _SAMPLES.get(kind if isinstance(kind, str) else "")


def _tool(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The tool to call now: none once a tool's result is in, or when told not to."""
    tools = body.get("tools") or []
    choice = body.get("tool_choice", "auto")
    messages = body.get("messages") or []
    if not tools or choice == "none" or (messages and messages[-1].get("role") == "tool"):
        return None
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        for tool in tools:
            if (tool.get("function") or {}).get("name") == wanted:
                return tool
    return tools[0]


def special_answer(body: Mapping[str, Any] | None, request_id: str, name: str) -> Answer | None:
    """The answer to a request that needs more than text, else None."""
    if body is None:
        return None
    tool = _tool(body)
    if tool is not None:
        function = tool.get("function") or {}
        arguments = json.dumps(_sample(function.get("parameters") or {"type": "object"}))
        call = {
            "id": f"call_{request_id}",
            "type": "function",
            "function": {"name": function.get("name", ""), "arguments": arguments},
        }
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        return Answer(message=message, finish_reason="tool_calls")
    messages = body.get("messages") or []
    if messages and messages[-1].get("role") == "tool":
        result = messages[-1].get("content")
        text = (
            f"[{name}] the tool said: {result if isinstance(result, str) else json.dumps(result)}"
        )
        return Answer(message={"role": "assistant", "content": text})
    mode = body.get("response_format") or {}
    if mode.get("type") == "json_schema":
        schema = (mode.get("json_schema") or {}).get("schema") or {"type": "object"}
        return Answer(message={"role": "assistant", "content": json.dumps(_sample(schema))})
    if mode.get("type") == "json_object":
        content = json.dumps({"provider": name, "answer": f"answer to {request_id}"})
        return Answer(message={"role": "assistant", "content": content})
    return None
