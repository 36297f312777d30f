"""The access line tells what happened to a request, answered or not: how many attempts,
at which providers in order, and the last error (engine/serve/context.py)."""

from __future__ import annotations

import logging
import re

import httpx
import pytest

from tests.live.conftest import live_config, start_mock, start_raw, start_router
from tests.live.test_upstream_faults import stream_then

CHAT = {"messages": [{"role": "user", "content": "Hello?"}], "max_tokens": 5}


@pytest.fixture
def access(caplog):
    """The access lines logged so far, as {field: value} each."""
    caplog.set_level(logging.INFO, logger="callboard")  # before the router decides what to log

    def lines() -> list[dict[str, str]]:
        return [
            dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', record.getMessage()))
            for record in caplog.records
            if record.name == "callboard.http" and " method=" in record.getMessage()
        ]

    return lines


async def test_a_502_after_failovers_names_every_attempt_in_order(nursery, access):
    a, b = await start_mock(nursery, "a", "down"), await start_mock(nursery, "b", "down")
    config = live_config(
        [a, b],
        routing={"policy": "priority"},
        breaker={"failure_threshold": 100},
        retry={"max_attempts": 3},
    )
    url = await start_router(nursery, config)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        reply = await http.post("/v1/chat/completions", json=CHAT)
    assert reply.status_code == 502
    tried = [attempt["provider"] for attempt in reply.json()["error"]["attempts"]]
    assert tried == ["a", "b", "a"]  # a first, b on failover, a again after a backoff
    (line,) = [line for line in access() if line["path"] == "/v1/chat/completions"]
    assert (line["status"], line["provider"]) == ("502", "-")
    assert (line["attempts"], line["providers"], line["error"]) == ("3", "a,b,a", "upstream_error")


async def test_a_503_names_the_attempts_it_made_or_why_it_made_none(nursery, access):
    down = await start_mock(nursery, "a", "down")
    config = live_config(
        [down], breaker={"failure_threshold": 1, "open_for": 60.0}, retry={"deadline": 5.0}
    )
    url = await start_router(nursery, config)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        after_one = await http.post("/v1/chat/completions", json=CHAT)  # opens a's breaker
        at_once = await http.post("/v1/chat/completions", json=CHAT)  # a is quarantined
    assert (after_one.status_code, at_once.status_code) == (503, 503)
    first, second = [line for line in access() if line["path"] == "/v1/chat/completions"]
    assert (first["attempts"], first["providers"], first["error"]) == ("1", "a", "upstream_error")
    assert (second["attempts"], second["providers"], second["error"]) == ("0", "-", "no_provider")


async def test_an_answer_after_a_failover_names_both_providers(nursery, access):
    a, b = await start_mock(nursery, "a", "down"), await start_mock(nursery, "b")
    config = live_config([a, b], routing={"policy": "priority"})
    url = await start_router(nursery, config)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        reply = await http.post("/v1/chat/completions", json=CHAT)
        await http.get("/v1/models")
    assert reply.status_code == 200 and reply.json()["attempts"] == 2
    answered, listed = access()
    assert (answered["status"], answered["provider"], answered["attempts"]) == ("200", "b", "2")
    # error: why it failed over (the last failed attempt's code).
    assert (answered["providers"], answered["error"]) == ("a,b", "upstream_error")
    assert (listed["attempts"], listed["providers"], listed["error"]) == ("0", "-", "-")


async def test_a_stream_broken_mid_answer_names_its_attempt(nursery, access):
    bad = await start_raw(nursery, stream_then(True, "reset"))
    config = live_config(
        [], providers=[{"name": "bad", "base_url": f"{bad.url}/v1"}], retry={"max_attempts": 1}
    )
    url = await start_router(nursery, config)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        reply = await http.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert reply.status_code == 200 and '"code":"request_failed"' in reply.text
    (line,) = access()
    assert (line["status"], line["attempts"], line["providers"]) == ("200", "1", "bad")
    assert line["error"] == "upstream_error"
