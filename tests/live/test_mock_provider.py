"""``callboard mock-provider``: each profile over HTTP, switched at run time."""

from __future__ import annotations

import httpx
import pytest
import trio

from actors.backends.ratelimit_headers import parse_rate_limit_headers
from actors.runtime.errors import InvalidSetting
from sims.mock_provider import go_duration, mock_profiles
from tests.live.conftest import start_mock

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


async def test_profiles_switch_at_run_time_through_the_admin_endpoint(nursery):
    up = await start_mock(nursery, "m")
    async with httpx.AsyncClient(base_url=up.url) as http:
        with trio.fail_after(10):
            ok = await http.post("/v1/chat/completions", json=CHAT)
            limits = parse_rate_limit_headers(ok.headers, 0.0).limits
            assert ok.status_code == 200 and ok.json()["usage"]["completion_tokens"] == 5
            assert limits[0].dimension == "requests" and limits[0].remaining == 599

            switched = await http.post("/admin/profile", json={"profile": "rate-limited"})
            assert switched.json() == {"profile": "rate-limited"}
            limited = await http.post("/v1/chat/completions", json=CHAT)
            assert limited.status_code == 429 and limited.headers["retry-after"] == "10"
            assert limited.json()["error"]["code"] == "rate_limit_exceeded"

            await http.post("/admin/profile", json={"profile": "down"})
            assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 500

            await http.post("/admin/profile", json={"profile": "hang"})
            with pytest.raises(httpx.ReadTimeout):
                await http.post("/v1/chat/completions", json=CHAT, timeout=0.3)

            bad = await http.post("/admin/profile", json={"profile": "sideways"})
            assert bad.status_code == 400 and "healthy | slow" in bad.json()["error"]["message"]
            described = (await http.get("/admin/profile")).json()
    assert described["profile"] == "hang"
    assert described["calls"] == {"200": 1, "429": 1, "500": 1}
    assert set(described["profiles"]) == set(mock_profiles())


async def test_a_key_protected_mock_refuses_a_wrong_key(nursery):
    up = await start_mock(nursery, "m", api_key="sk-right")
    async with httpx.AsyncClient(base_url=up.url) as http:
        wrong = await http.post(
            "/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer sk-wrong"}
        )
        right = await http.post(
            "/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer sk-right"}
        )
    assert (wrong.status_code, right.status_code) == (401, 200)
    assert "sk-" not in wrong.text


def test_durations_are_written_as_openai_writes_them():
    assert [go_duration(s) for s in (0.02, 1.5, 60.0, 360.0, 75.25)] == [
        "20ms",
        "1.5s",
        "1m0s",
        "6m0s",
        "1m15.25s",
    ]
    with pytest.raises(InvalidSetting, match="speed"):
        mock_profiles(0)
