"""``callboard mock-provider``: each profile over HTTP, switched at run time."""

from __future__ import annotations

import itertools
import math

import httpx
import pytest
import trio

from actors.backends.ratelimit_headers import parse_rate_limit_headers
from actors.backends.virtual import LatencyModel
from actors.messages import ChatMessage, ChatRequest
from actors.runtime import clock
from actors.runtime.distributions import Constant
from actors.runtime.errors import InvalidSetting
from sims.mock_fleet import MIN_PIECE_GAP_S
from sims.mock_provider import MockProfile, MockProvider, _Wire, go_duration, mock_profiles
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


@pytest.mark.parametrize("speed", [1.0, 60.0])
def test_a_streams_pieces_keep_the_models_pace_behind_a_slow_reader(speed: float):
    """Each piece leaves when its tokens are due, however late the reader came back for
    it: the answer ends when the model says (its first token, then ``tokens / pace``), as
    the simulator's virtual provider times it, not a lateness per piece later. Sped up
    (a replay's time scale), pieces carry more tokens, never closer than the least gap
    a replay's mocks keep."""
    tokens = 401

    async def read() -> tuple[list[float], float]:
        mock = MockProvider("m", "healthy", speed=speed, min_piece_gap=MIN_PIECE_GAP_S)
        pace = mock.profile.latency.tokens_per_s
        request = ChatRequest(
            messages=(ChatMessage("user", "hi"),), expected_output_tokens=tokens, stream=True
        )
        began = clock.now()
        sent: list[float] = []
        async for _ in mock._events(request, "first", _Wire(False, request, "r-1", "m")):
            sent.append(clock.now() - began)
            await clock.sleep(0.5 / pace)  # back half a token's time later: within each gap
        return sent, pace

    sent, pace = clock.run_virtual(read)
    per_piece = max(4, math.ceil(pace * MIN_PIECE_GAP_S))
    pieces = math.ceil((tokens - 1) / per_piece)
    due = [i * per_piece / pace for i in range(pieces)] + [tokens / pace]
    assert sent[: pieces + 1] == pytest.approx(due)
    full = due[:-1]  # (the last piece carries what is left)
    assert min(b - a for a, b in itertools.pairwise(full)) >= MIN_PIECE_GAP_S - 1e-12
    assert per_piece > 4 if speed > 1 else per_piece == 4


def test_a_model_of_the_whole_service_time_streams_its_answer_at_once():
    """As the virtual provider models it: the answer is done when its first byte comes, so
    no piece waits on a decoding pace after the first (which took the whole service)."""

    async def read() -> list[float]:
        whole = LatencyModel(service=Constant(0.5), tokens_per_s=10.0)
        mock = MockProvider("m", "svc", profiles=[MockProfile("svc", "whole", whole)])
        request = ChatRequest(
            messages=(ChatMessage("user", "hi"),), expected_output_tokens=41, stream=True
        )
        began = clock.now()
        sent = []
        async for _ in mock._events(request, "first", _Wire(False, request, "r-1", "m")):
            sent.append(clock.now() - began)
        return sent

    sent = clock.run_virtual(read)
    assert len(sent) > 10 and set(sent) == {0.0}
