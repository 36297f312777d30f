"""The OpenAPI document against the app it describes: the same routes, the same required fields.

The document is written in one place (engine/serve/openapi.py), the validators in
others; these tests fail as soon as the two disagree: a route added, removed or given
another method without the document, or a field the document calls required that the
server does not refuse a request without (or the other way round).
"""

from __future__ import annotations

from typing import Any

import httpx
from starlette.routing import Route, WebSocketRoute

from engine.serve.app import RouterApp
from engine.serve.live_router import open_router
from engine.serve.metrics import LiveMetrics
from engine.serve.openapi import openapi_document
from tests.live.conftest import live_config, start_mock, start_router

#: A valid value for each field a documented request body may require.
EXAMPLES: dict[str, Any] = {
    "messages": [{"role": "user", "content": "Hi"}],
    "model": "auto",
    "max_tokens": 8,
    "content": "Hello",
}


async def test_every_route_is_documented_with_its_methods_and_every_path_is_a_route(nursery):
    upstream = await start_mock(nursery, "m", "unlimited")
    async with open_router(live_config([upstream]), env={}) as live:
        app = RouterApp(live, LiveMetrics(), max_body_bytes=1 << 20)
    routes = app.app.routes
    # Starlette answers HEAD wherever GET is routed; OpenAPI documents no WebSocket.
    routed = {r.path: sorted(r.methods - {"HEAD"}) for r in routes if isinstance(r, Route)}
    paths = openapi_document()["paths"]
    documented = {path: sorted(m.upper() for m in operations) for path, operations in paths.items()}
    assert routed == documented
    assert [r.path for r in routes if isinstance(r, WebSocketRoute)] == ["/interview/stream/{cid}"]


def _request_bodies() -> list[tuple[str, dict[str, Any]]]:
    document = openapi_document()
    schemas = document["components"]["schemas"]
    bodies = []
    for path, operations in document["paths"].items():
        body = operations.get("post", {}).get("requestBody")
        if body is None:
            continue
        schema = body["content"]["application/json"]["schema"]
        if "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
        bodies.append((path, schema))
    return bodies


def _error_param(reply: httpx.Response) -> Any:
    return reply.json()["error"].get("param")


async def test_each_request_body_needs_exactly_the_fields_the_document_requires(nursery, user):
    upstream = await start_mock(nursery, "m", "unlimited")
    url = await start_router(nursery, live_config([upstream]))
    bodies = _request_bodies()
    assert {path for path, _ in bodies} == {
        "/v1/chat/completions",
        "/v1/messages",
        "/sessions",
        "/sessions/{session_id}/messages",
        "/api/models/{provider}/report-failure",
    }
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        created = await client.post("/sessions", json={"session_id": "s-openapi"})
        assert created.status_code == 201
        for path, schema in bodies:
            target = path.format(session_id="s-openapi", provider="m")
            required = schema.get("required", [])
            minimal = {field: EXAMPLES[field] for field in required}
            # Only the required fields: the server takes the request.
            reply = await client.post(target, json=minimal)
            assert reply.status_code < 300, (path, reply.text)
            # Any one of them left out: refused, the error naming it (a missing model is
            # OpenAI's 404 model_not_found, as the document says; the rest 400).
            for field in required:
                lacking = {k: v for k, v in minimal.items() if k != field}
                reply = await client.post(target, json=lacking)
                assert reply.status_code == (404 if field == "model" else 400), (path, field)
                assert _error_param(reply) == field, (path, field, reply.text)
