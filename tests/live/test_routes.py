"""Routing on Starlette answers in the API's own shapes: 404, 405 with Allow, slashes, HEAD."""

from __future__ import annotations

import httpx
import pytest
from trio_websocket import ConnectionRejected, open_websocket_url

from tests.live.conftest import live_config, start_mock, start_router


async def test_unknown_routes_and_methods_answer_in_openais_shape(nursery):
    upstream = await start_mock(nursery, "m", "unlimited")
    url = await start_router(nursery, live_config([upstream]))
    async with httpx.AsyncClient(base_url=url, headers={"x-request-id": "req-7"}) as client:
        missing = await client.get("/v2/anything")
        assert missing.status_code == 404 and missing.headers["x-request-id"] == "req-7"
        assert missing.json()["error"] == {
            "message": "no route GET /v2/anything",
            "type": "not_found_error",
            "param": None,
            "code": "not_found",
        }
        wrong = await client.get("/v1/chat/completions")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
        assert wrong.json()["error"]["code"] == "method_not_allowed"
        # On the Anthropic entrance, Anthropic's shape.
        wrong = await client.put("/v1/messages")
        assert wrong.status_code == 405 and wrong.json()["type"] == "error"
        assert wrong.json()["error"]["code"] == "method_not_allowed"
        # Starlette answers HEAD wherever GET is routed, and says so.
        wrong = await client.post("/health")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, HEAD"
        assert (await client.head("/health")).status_code == 200
        # A trailing slash names the same route (no redirect).
        assert (await client.get("/health/")).status_code == 200
    with pytest.raises(ConnectionRejected):
        async with open_websocket_url(url.replace("http", "ws") + "/interview/nothing"):
            pass
