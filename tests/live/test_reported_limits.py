"""A provider's reported limits beside the configured ones, end to end on loopback.

Account a declares 1,000 requests a minute; its upstream answers every request, in
OpenAI's or Anthropic's headers, "0 requests left, reset in 30 s". The stricter wins:
the router keeps off a until the reported reset, though its configured limiter has room,
and the status endpoint and /metrics say which limit binds and until when. A configured
limit stricter than the report still binds.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from engine.serve.live_config import structure_config
from tests.live.conftest import (
    RawUpstream,
    answer_each,
    http_response,
    start_mock,
    start_raw,
    start_router,
)

CHAT = {
    "model": "auto",
    "messages": [{"role": "user", "content": "Why this job?"}],
    "max_tokens": 8,
}
RPM_1000 = [{"name": "rpm", "unit": "requests", "limit": 1000, "per": 60}]
#: The provider's own clock, which Anthropic's reset timestamps are read against.
DATE = "Wed, 01 May 2024 12:00:00 GMT"


def _reported(family: str, remaining: int, reset_s: int) -> dict[str, str]:
    """Headers saying ``remaining`` of 1,000 requests are left until ``reset_s`` from now."""
    if family == "openai":
        return {
            "x-ratelimit-limit-requests": "1000",
            "x-ratelimit-remaining-requests": str(remaining),
            "x-ratelimit-reset-requests": f"{reset_s}s",
        }
    return {
        "date": DATE,
        "anthropic-ratelimit-requests-limit": "1000",
        "anthropic-ratelimit-requests-remaining": str(remaining),
        "anthropic-ratelimit-requests-reset": f"2024-05-01T12:00:{reset_s:02d}Z",
    }


async def _reporting_upstream(nursery, family: str, remaining: int, reset_s: int) -> RawUpstream:
    """An upstream of ``family``'s API whose every answer carries its limit headers."""
    if family == "openai":
        body: dict[str, Any] = {
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hi."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2},
        }
    else:
        body = {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": "Hi."}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 5, "output_tokens": 2},
        }
    reply = http_response(200, body, _reported(family, remaining, reset_s))

    async def answer(conn):
        await answer_each(conn, reply)

    return await start_raw(nursery, answer)


async def _router(nursery, family: str, up: RawUpstream, limits, *, with_b: bool = True) -> str:
    providers: list[dict[str, Any]] = [
        {
            "name": "a",
            "kind": family,
            "base_url": f"{up.url}/v1",
            "limits": limits,
        }
    ]
    if with_b:
        b = await start_mock(nursery, "b")
        providers.append(
            {"name": "b", "base_url": f"{b.url}/v1", "priority": 1, "limits": RPM_1000}
        )
    config = structure_config(
        {
            "providers": providers,
            "routing": {"policy": "priority"},
            "retry": {"backoff_base": 0.05, "deadline": 10.0},
            "health": {"ping_every": None},
            "cache": {"enabled": False},
            "server": {"graceful_timeout": 0.1},
        },
        "test",
    )
    return await start_router(nursery, config)


async def _chat(http: httpx.AsyncClient) -> httpx.Response:
    with trio.fail_after(10):
        return await http.post("/v1/chat/completions", json=CHAT)


def _gauges(metrics: str, name: str) -> dict[tuple[str, ...], float]:
    """The samples of gauge ``name`` for provider a, by their other labels' values."""
    (family,) = [f for f in text_string_to_metric_families(metrics) if f.name == name]
    return {
        tuple(v for k, v in sorted(s.labels.items()) if k != "provider"): s.value
        for s in family.samples
        if s.labels["provider"] == "a"
    }


@pytest.mark.parametrize("family", ["openai", "anthropic"])
async def test_a_reported_reset_keeps_the_router_off_despite_a_configured_limit(nursery, family):
    up = await _reporting_upstream(nursery, family, 0, 30)
    url = await _router(nursery, family, up, RPM_1000)
    async with httpx.AsyncClient(base_url=url) as http:
        answered = []
        for _ in range(6):
            answered.append((await _chat(http)).json()["provider"])
            # Past the configured limiter's refill of one request (60 ms): only the
            # reported window keeps the router off a.
            await trio.sleep(0.1)
        health = {p["name"]: p for p in (await http.get("/api/models/health")).json()["providers"]}
        metrics = (await http.get("/metrics")).text
    # a's first answer said "0 left until the reset": the configured 1,000 a minute
    # notwithstanding, every later request went to b.
    assert answered == ["a"] + ["b"] * 5
    assert len(up.requests) == 1
    a = health["a"]
    assert not a["available"] and 0 < a["wait_s"] <= 30
    (requests,) = a["limits"]
    assert requests["unit"] == "requests"
    assert requests["configured"] == [
        {"name": "rpm", "limit": 1000, "remaining": pytest.approx(999, abs=1)}
    ]
    reported = requests["reported"]
    assert (reported["limit"], reported["remaining"], reported["sent_since"]) == (1000, 0, 0)
    assert 0 < reported["reset_in_s"] <= 30
    assert requests["binding"] == "reported"
    assert requests["binding_until_s"] == reported["reset_in_s"]
    assert _gauges(metrics, "callboard_provider_limit_remaining") == {
        ("configured", "requests"): pytest.approx(999, abs=1),
        ("reported", "requests"): 0.0,
    }
    assert _gauges(metrics, "callboard_provider_limit_binding") == {
        ("configured", "requests"): 0.0,
        ("reported", "requests"): 1.0,
    }
    (reset,) = _gauges(metrics, "callboard_provider_limit_reset_seconds").values()
    assert 0 < reset <= 30


@pytest.mark.parametrize("family", ["openai", "anthropic"])
async def test_alone_the_account_is_not_sent_to_before_its_reported_reset(nursery, family):
    up = await _reporting_upstream(nursery, family, 0, 30)
    url = await _router(nursery, family, up, RPM_1000, with_b=False)
    async with httpx.AsyncClient(base_url=url) as http:
        first = await _chat(http)
        refused = await _chat(http)
    # The reset is past the request's 10 s deadline: refused at once, nothing sent.
    assert first.status_code == 200
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "no_provider"
    assert 1 < int(refused.headers["retry-after"]) <= 30  # the reset, not a 60 ms refill
    assert len(up.requests) == 1


async def test_a_configured_limit_stricter_than_the_report_still_binds(nursery):
    up = await _reporting_upstream(nursery, "openai", 999, 20)
    rpm_2 = [{"name": "rpm", "unit": "requests", "limit": 2, "per": 60}]
    url = await _router(nursery, "openai", up, rpm_2)
    async with httpx.AsyncClient(base_url=url) as http:
        answered = [(await _chat(http)).json()["provider"] for _ in range(4)]
        health = {p["name"]: p for p in (await http.get("/api/models/health")).json()["providers"]}
    assert answered == ["a", "a", "b", "b"]
    (requests,) = health["a"]["limits"]
    # The second answer's report replaced the first: 999 left, none sent since.
    assert requests["reported"]["remaining"] == 999
    assert requests["configured"][0]["remaining"] < 1
    assert (requests["binding"], requests["binding_until_s"]) == ("configured", None)
