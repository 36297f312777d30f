"""The status page of ``callboard serve`` over real HTTP: its files, its figures (one
snapshot, and a stream of them), and who may read them.

The page itself is drawn by a browser in tests/browser/test_status_page.py."""

from __future__ import annotations

import json

import httpx
import pytest
import trio

from engine.serve.status_feed import status_events
from tests.live.conftest import live_config, start_mock, start_router

ASK = {"model": "auto", "messages": [{"role": "user", "content": "Hello?"}], "max_tokens": 5}
OPS = "cb-ops-0123456789abcdef0123456789abcdef00"
WEB = "cb-web-0123456789abcdef0123456789abcdef00"


async def _router(nursery, *, profile: str = "healthy", env=None, **tables) -> str:
    a = await start_mock(nursery, "a", profile)
    b = await start_mock(nursery, "b")
    tables.setdefault("routing", {"policy": "round_robin"})
    return await start_router(nursery, live_config([a, b], **tables), env=env)


async def _events(http: httpx.AsyncClient, count: int, **params) -> list[dict]:
    """The first ``count`` snapshots of ``/status/events``."""
    snapshots = []
    with trio.fail_after(30):
        async with http.stream("GET", "/status/events", params=params) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    snapshots.append(json.loads(line[6:]))
                    if len(snapshots) == count:
                        break
    return snapshots


async def test_the_page_and_its_files_are_served_from_the_package(nursery):
    url = await _router(nursery)
    async with httpx.AsyncClient(base_url=url) as http:
        page = await http.get("/status")
        script = await http.get("/status/status.js")
        style = await http.get("/status/status.css")
        missing = await http.get("/status/secrets.txt")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/status/status.js"' in page.text and "/status/status.css" in page.text
    # Nothing is fetched from anywhere else, and the browser is told so.
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http" not in page.text.replace("http-equiv", "")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "/status/events" in script.text
    assert style.headers["content-type"].startswith("text/css")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


async def test_the_snapshot_names_each_accounts_breaker_limits_and_recent_errors(nursery):
    url = await _router(
        nursery,
        profile="down",
        breaker={"failure_threshold": 2, "open_for": 30, "max_open_for": 60},
        routing={"policy": "priority"},
    )
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        for _ in range(3):
            assert (await http.post("/v1/chat/completions", json=ASK)).status_code == 200
        snapshot = (await http.get("/status.json")).json()
    accounts = {p["name"]: p for p in snapshot["providers"]}
    assert snapshot["status"] == "degraded" and snapshot["draining"] is False
    assert accounts["a"]["breaker"] == "open" and accounts["a"]["state"] == "unavailable"
    assert accounts["a"]["reasons"][0].startswith("breaker open: quarantined for")
    assert [e["code"] for e in accounts["a"]["recent_errors"]] == ["upstream_error"] * 2
    assert all(e["ago_s"] >= 0 for e in accounts["a"]["recent_errors"])
    assert accounts["b"]["breaker"] == "closed" and accounts["b"]["recent_errors"] == []
    assert accounts["b"]["latency_ms"]["p50"] > 0
    assert snapshot["line"]["answered"] == 3 and snapshot["line"]["queued"] == 0
    assert snapshot["callers"] is None  # no caller key: no budget to show
    assert snapshot["store"] == {"store": "local", "status": "up"}


async def test_the_stream_sends_a_snapshot_at_once_and_then_every_interval(nursery):
    url = await _router(nursery)
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        first, second, third = await _events(http, 3, every="0.2")
        await http.post("/v1/chat/completions", json=ASK)
        (after,) = await _events(http, 1)
        refused = await http.get("/status/events", params={"every": "0"})
    assert first["at"] <= second["at"] <= third["at"]
    assert after["line"]["answered"] == 1
    assert refused.status_code == 400
    assert "every" in refused.json()["error"]["message"]
    assert "0.2 to 60" in refused.json()["error"]["message"]


async def test_the_stream_ends_when_the_server_drains():
    draining = False

    def snapshot() -> dict:
        return {"draining": draining}

    stream = status_events(snapshot, 0.01, lambda: draining)
    assert await stream.__anext__() == b'event: status\ndata: {"draining":false}\n\n'
    assert await stream.__anext__() == b'event: status\ndata: {"draining":false}\n\n'
    draining = True
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


async def test_with_caller_keys_only_an_admin_key_reads_the_figures(nursery):
    env = {"CALLBOARD_KEYS": f"ops={OPS},web={WEB}"}
    url = await _router(
        nursery,
        env=env,
        callers={"admins": ["ops"], "budget": {"requests_per_day": 100}},
    )
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        answered = await http.post("/v1/chat/completions", json=ASK, headers=_bearer(WEB))
        page = await http.get("/status")  # the page holds no figure: open
        anonymous = await http.get("/status.json")
        caller = await http.get("/status.json", headers=_bearer(WEB))
        stream = await http.get("/status/events", headers=_bearer(WEB))
        admin = await http.get("/status.json", headers=_bearer(OPS))
    assert answered.status_code == 200 and page.status_code == 200
    assert anonymous.status_code == 401
    assert caller.status_code == stream.status_code == 403
    error = caller.json()["error"]
    assert error["code"] == "not_admin"
    assert "'web'" in error["message"] and "callers.admins" in error["message"]
    assert admin.status_code == 200
    callers = {c["id"]: c for c in admin.json()["callers"]}
    assert callers["web"]["admitted"] == 1 and callers["ops"]["admitted"] == 0
    (used,) = callers["web"]["budget"]
    assert used == {"name": "requests_per_day", "unit": "requests", "limit": 100, "used": 1}


async def test_a_public_status_route_needs_no_key(nursery):
    env = {"CALLBOARD_KEYS": f"web={WEB}"}
    url = await _router(nursery, env=env, callers={"public": ["status"]})
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        snapshot = await http.get("/status.json")
        stream = await http.get("/status/events")
    assert snapshot.status_code == 200 and snapshot.json()["callers"][0]["id"] == "web"
    assert stream.status_code == 401  # not listed: still an admin's


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}
