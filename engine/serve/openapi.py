"""The OpenAPI 3.1 description of ``callboard serve``'s HTTP API, served at ``GET /openapi.json``.

Kept in this one place, beside the validators it describes (``parse_chat_body``,
``chat_body`` and the handlers of :mod:`engine.serve.app`), which hand-written checks
keep more precise than a schema could (a field's allowed values named in the error).
Tests keep the two in step: ``tests/live/test_openapi.py`` checks that every route of
the app is documented with its methods and every documented path is a route, and that
each request body's required fields are exactly those the validators refuse a request
without; the schemathesis test (``tests/live/test_fuzz_api.py``) fuzzes the server from
this document and fails when a response leaves it (an undocumented status, body or
content type).
"""

from __future__ import annotations

from typing import Any

from actors.messages import ROLES

_ERROR = {"$ref": "#/components/schemas/Error"}
_JSON = "application/json"


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _text(media_type: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


def _errors(*statuses: int) -> dict[str, Any]:
    meaning = {
        400: "a bad field, named in error.param",
        404: "unknown model, session, provider or route",
        403: "a caller key not in callers.admins",
        409: "the session is still answering its previous message",
        413: "the body is larger than server.max_body_bytes",
        502: "every attempt failed; error.attempts lists them",
        503: "no provider can answer before the deadline, the router sheds load, or the "
        "server is shutting down; Retry-After says when to try again",
        504: "the request's deadline passed",
    }
    responses = {}
    for status in statuses:
        response = _json(_ERROR, meaning[status])
        if status == 503:
            response["headers"] = {
                "Retry-After": {"schema": {"type": "string"}, "description": "seconds"}
            }
        responses[str(status)] = response
    return responses


_ROUTED = (400, 404, 413, 502, 503, 504)

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "param", "code"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": {"type": ["string", "null"]},
                    "code": {"type": "string"},
                    "retry_after": {"type": "number"},
                    "request_id": {"type": "string"},
                    "attempts": {"type": "array", "items": {"type": "object"}},
                },
            }
        },
    },
    "Message": {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"enum": list(ROLES)},
            "content": {
                "oneOf": [
                    {"type": "string"},
                    {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["type", "text"],
                            "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
                        },
                    },
                ]
            },
        },
    },
    "ChatMessage": {
        "description": "a message as OpenAI's API takes it: text, content parts, tool calls",
        "oneOf": [
            {
                "type": "object",
                "required": ["role", "content"],
                "properties": {
                    "role": {"enum": list(ROLES)},
                    "content": {
                        "oneOf": [
                            {"type": "string"},
                            {"type": "array", "items": {"$ref": "#/components/schemas/Part"}},
                        ]
                    },
                    "tool_calls": {"type": "array", "items": {"type": "object"}},
                },
            },
            {
                "type": "object",
                "required": ["role", "content", "tool_calls"],
                "properties": {
                    "role": {"const": "assistant"},
                    "content": {"type": "null"},
                    "tool_calls": {"type": "array", "minItems": 1, "items": {"type": "object"}},
                },
            },
        ],
    },
    "Part": {
        "oneOf": [
            {
                "type": "object",
                "required": ["type", "text"],
                "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
            },
            {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"enum": ["image_url", "input_audio", "file"]}},
            },
        ]
    },
    "ChatRequest": {
        "type": "object",
        "required": ["messages"],
        "description": "OpenAI's Chat Completions request: every field not listed here is "
        "passed upstream untouched (server.unknown_fields = refuse: only OpenAI's own)",
        "properties": {
            "messages": {
                "type": "array",
                "minItems": 1,
                "items": {"$ref": "#/components/schemas/ChatMessage"},
            },
            "model": {"type": "string", "minLength": 1, "description": "'auto' or a model"},
            # Every optional field may also be null (unset), as OpenAI's clients send them.
            **{
                field: {"anyOf": [schema, {"type": "null"}]}
                for field, schema in {
                    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                    "max_tokens": {"type": "integer", "minimum": 1},
                    "max_completion_tokens": {"type": "integer", "minimum": 1},
                    "stream": {"type": "boolean"},
                    "n": {"const": 1},
                    "request_id": {
                        "type": "string",
                        "maxLength": 128,
                        "pattern": "^[\\x20-\\x7e]*$",
                    },
                    "kind": {"type": "string", "description": "turn kind, e.g. question"},
                    "deadline": {"type": "number", "exclusiveMinimum": 0, "description": "s"},
                    "bypass_cache": {"type": "boolean"},
                    "cache_key": {"type": "string"},
                    "priority": {"type": "integer", "minimum": 0, "description": "0 goes first"},
                    "tools": {"type": "array", "minItems": 1, "items": {"type": "object"}},
                    "functions": {"type": "array", "minItems": 1, "items": {"type": "object"}},
                    "response_format": {
                        "type": "object",
                        "required": ["type"],
                        "properties": {"type": {"enum": ["text", "json_object", "json_schema"]}},
                    },
                    "stream_options": {"type": "object"},
                }.items()
            },
        },
    },
    "MessagesRequest": {
        "type": "object",
        "required": ["model", "max_tokens", "messages"],
        "additionalProperties": False,
        "description": "Anthropic's Messages API request; a field with no OpenAI counterpart "
        "is refused with a 400 naming it",
        "properties": {
            "model": {"type": "string", "description": "'auto' or a model"},
            "max_tokens": {"type": "integer", "minimum": 1},
            "system": {"type": "string"},
            "messages": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["role", "content"],
                    "properties": {
                        "role": {"enum": ["user", "assistant"]},
                        "content": {
                            "oneOf": [
                                {"type": "string"},
                                {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["type", "text"],
                                        "properties": {
                                            "type": {"const": "text"},
                                            "text": {"type": "string"},
                                        },
                                    },
                                },
                            ]
                        },
                    },
                },
            },
            "temperature": {"type": "number", "minimum": 0, "maximum": 1},
            "top_p": {"type": "number", "minimum": 0, "maximum": 1},
            "stop_sequences": {"type": "array", "items": {"type": "string"}},
            "stream": {"type": "boolean"},
            "tools": {"type": "array", "minItems": 1, "items": {"type": "object"}},
            "tool_choice": {"type": "object"},
            "metadata": {"type": "object", "properties": {"user_id": {"type": "string"}}},
        },
    },
    "MessagesReply": {
        "type": "object",
        "required": ["id", "type", "role", "model", "content", "stop_reason", "usage"],
        "properties": {
            "id": {"type": "string"},
            "type": {"const": "message"},
            "role": {"const": "assistant"},
            "model": {"type": "string"},
            "content": {"type": "array", "items": {"type": "object"}},
            "stop_reason": {"type": "string"},
            "usage": {"type": "object"},
            "provider": {"type": "string"},
        },
    },
    "MessagesError": {
        "type": "object",
        "required": ["type", "error"],
        "properties": {
            "type": {"const": "error"},
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {
                    "type": {"type": "string"},
                    "message": {"type": "string"},
                    "param": {"type": ["string", "null"]},
                },
            },
        },
    },
    "ModelList": {
        "type": "object",
        "required": ["object", "data"],
        "properties": {
            "object": {"const": "list"},
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "object"],
                    "properties": {
                        "id": {"type": "string"},
                        "object": {"const": "model"},
                        "providers": {"type": "array", "items": {"type": "string"}},
                        "capabilities": {"type": "array", "items": {"type": "string"}},
                        "context_window": {"type": "integer"},
                    },
                },
            },
        },
    },
    "Completion": {
        "type": "object",
        "required": ["id", "object", "model", "choices", "usage", "request_id", "provider"],
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "chat.completion"},
            "created": {"type": "integer"},
            "model": {"type": "string"},
            "choices": {"type": "array", "items": {"type": "object"}},
            "usage": {"type": "object"},
            "request_id": {"type": "string"},
            "provider": {"type": "string"},
            "attempts": {"type": "integer"},
            "total_latency_ms": {"type": "number"},
            "cached": {"type": "boolean"},
        },
    },
    "Session": {
        "type": "object",
        "required": ["session_id", "history", "providers_used"],
        "properties": {
            "session_id": {"type": "string"},
            "history": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}},
            "providers_used": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Books": {
        "type": "object",
        "required": ["received", "queued", "in_flight", "answered", "failed", "cancelled"],
        "properties": {
            "received": {"type": "integer"},
            "queued": {"type": "integer"},
            "in_flight": {"type": "integer"},
            "answered": {"type": "integer"},
            "failed": {"type": "object", "additionalProperties": {"type": "integer"}},
            "cancelled": {"type": "integer"},
            "balanced": {"type": "boolean"},
            "draining": {"type": "boolean"},
        },
    },
}

_SESSION_ID = {
    "name": "session_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {_JSON: {"schema": schema}}}


def _object(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


def openapi_document() -> dict[str, Any]:
    """The API's description (OpenAPI 3.1)."""
    session = {"$ref": "#/components/schemas/Session"}
    anything = _json({"type": "object"}, "see the README's HTTP surface")
    paths: dict[str, Any] = {
        "/v1/chat/completions": {
            "post": {
                "summary": "OpenAI-compatible chat completion (server-sent events with stream)",
                "requestBody": _body({"$ref": "#/components/schemas/ChatRequest"}),
                "responses": {
                    "200": {
                        "description": "the answer, and who gave it",
                        "content": {
                            _JSON: {"schema": {"$ref": "#/components/schemas/Completion"}},
                            "text/event-stream": {
                                "schema": {
                                    "type": "object",
                                    "required": ["data"],
                                    "properties": {"data": {"type": "string"}},
                                    "description": "chat.completion.chunk events, then [DONE]",
                                }
                            },
                        },
                    },
                    **_errors(*_ROUTED),
                },
            }
        },
        "/v1/messages": {
            "post": {
                "summary": "Anthropic-compatible Messages API on the same router "
                "(server-sent events with stream)",
                "requestBody": _body({"$ref": "#/components/schemas/MessagesRequest"}),
                "responses": {
                    "200": {
                        "description": "the answer in Anthropic's shape, and who gave it",
                        "content": {
                            _JSON: {"schema": {"$ref": "#/components/schemas/MessagesReply"}},
                            "text/event-stream": {
                                "schema": {"type": "string"},
                                "description": "message_start ... message_stop events",
                            },
                        },
                    },
                    **{
                        str(status): _json(
                            {"$ref": "#/components/schemas/MessagesError"},
                            "the error in Anthropic's shape; error.param names a bad field",
                        )
                        for status in _ROUTED
                    },
                },
            }
        },
        "/v1/models": {
            "get": {
                "summary": "The models clients may ask for ('auto' first), with capabilities",
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/ModelList"}, "the models")
                },
            }
        },
        "/sessions": {
            "post": {
                "summary": "Start (or find) an interview session",
                "requestBody": _body(
                    _object(
                        session_id={
                            "anyOf": [
                                {
                                    "type": "string",
                                    "minLength": 1,
                                    "maxLength": 128,
                                    "pattern": "^[^/]+$",
                                },
                                {"type": "null"},
                            ],
                            "description": "unset or null: the router names it",
                        },
                        system_prompt={"type": "string"},
                    )
                ),
                "responses": {
                    "200": _json(session, "the session already existed"),
                    "201": _json(session, "a new session"),
                    **_errors(400, 413, 503),
                },
            }
        },
        "/sessions/{session_id}": {
            "get": {
                "summary": "A session's history",
                "parameters": [_SESSION_ID],
                "responses": {"200": _json(session, "the session"), **_errors(400, 404)},
            }
        },
        "/sessions/{session_id}/messages": {
            "post": {
                "summary": "One candidate message in a session; the router answers it",
                "parameters": [_SESSION_ID],
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["content"],
                        "properties": {
                            "content": {"type": "string", "minLength": 1},
                            "max_tokens": {
                                "anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]
                            },
                            "priority": {
                                "anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}],
                                "description": "default: 1 for a session's first turn, then 0",
                            },
                        },
                    }
                ),
                "responses": {
                    "200": _json({"type": "object"}, "the answer, with the session's turns"),
                    **_errors(400, 404, 409, 413, 502, 503, 504),
                },
            }
        },
        "/health": {
            "get": {
                "summary": "ok, degraded, saturated or down, with each provider's state and why",
                "responses": {
                    "200": anything,
                    "503": _json({"type": "object"}, "down: no provider is available"),
                },
            }
        },
        "/health/live": {
            "get": {
                "summary": "Liveness: 200 while the process serves, draining included",
                "responses": {"200": _json({"type": "object"}, "the process serves")},
            }
        },
        "/health/ready": {
            "get": {
                "summary": "Readiness: 200 while a provider is available (ok or busy)",
                "responses": {
                    "200": _json({"type": "object"}, "ready"),
                    "503": {
                        **_json(
                            {"type": "object"},
                            "no provider is available, or the server is shutting down",
                        ),
                        "headers": {
                            "Retry-After": {
                                "schema": {"type": "string"},
                                "description": "seconds, when a quarantine's end is known",
                            }
                        },
                    },
                },
            }
        },
        "/stats": {
            "get": {
                "summary": "The books: every request that entered, by state",
                "responses": {"200": _json({"$ref": "#/components/schemas/Books"}, "counts")},
            }
        },
        "/api/models/health": {
            "get": {"summary": "Per-provider health", "responses": {"200": anything}}
        },
        "/api/models/best": {
            "get": {
                "summary": "The provider the weighted score prefers now",
                "responses": {"200": anything, **_errors(503)},
            }
        },
        "/api/models/{provider}/report-failure": {
            "post": {
                "summary": "Report a failure seen outside the router",
                "parameters": [
                    {
                        "name": "provider",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "requestBody": _body(_object(reason={"type": "string"}), required=False),
                "responses": {
                    "202": _json({"type": "object"}, "recorded"),
                    **_errors(400, 404, 413),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": anything}}},
        "/status": {
            "get": {
                "summary": "The status page, for a browser (it reads /status/events)",
                "responses": {"200": _text("text/html", "the page")},
            }
        },
        "/status/{name}": {
            "get": {
                "summary": "The status page's script and style",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {
                        "description": "status.js or status.css",
                        "content": {
                            "text/javascript": {"schema": {"type": "string"}},
                            "text/css": {"schema": {"type": "string"}},
                        },
                    },
                    **_errors(404),
                },
            }
        },
        "/status.json": {
            "get": {
                "summary": "Each account's state, breaker, limits and recent errors; the "
                "waiting line; the caller keys' budget use",
                "responses": {
                    "200": _json({"type": "object"}, "the snapshot"),
                    **_errors(403),
                },
            }
        },
        "/status/events": {
            "get": {
                "summary": "The same snapshot as server-sent events (`event: status`), one "
                "at once and one every `every` seconds",
                "parameters": [
                    {
                        "name": "every",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "number", "minimum": 0.2, "maximum": 60},
                    }
                ],
                "responses": {
                    "200": _text("text/event-stream", "snapshots until the client leaves"),
                    **_errors(400, 403),
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "callboard serve", "version": "0.1.0"},
        "paths": paths,
        "components": {"schemas": _SCHEMAS},
    }
