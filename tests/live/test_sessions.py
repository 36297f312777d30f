"""Interview sessions over HTTP and WebSocket: the history survives a provider dying."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from tests.live.conftest import live_config, start_mock, start_router

pytestmark = pytest.mark.slow  # every test here takes seconds: out of `pytest -m "not slow"`


async def _frames_until_done(ws) -> list[dict]:
    frames = []
    while True:
        frame = json.loads(await ws.get_message())
        frames.append(frame)
        if frame["type"] in ("done", "error"):
            return frames


async def test_websocket_interview_survives_a_provider_dying_with_its_history(nursery):
    a = await start_mock(nursery, "a")
    b = await start_mock(nursery, "b")
    config = live_config([a, b], routing={"policy": "sticky"})
    url = await start_router(nursery, config)
    ws_url = url.replace("http://", "ws://") + "/interview/stream/cand-7?system=You%20interview."
    seen: list[dict] = []
    with trio.fail_after(10):
        async with open_websocket_url(ws_url) as ws:
            assert json.loads(await ws.get_message()) == {
                "type": "ready",
                "session_id": "cand-7",
                "turns": 0,
            }
            for turn, text in enumerate(["Hi, I'm Ana.", "I like trio."], start=1):
                await ws.send_message(json.dumps({"content": text, "max_tokens": 20}))
                frames = await _frames_until_done(ws)
                seen += frames
                assert frames[-1]["provider"] == "a" and frames[-1]["turns"] == turn
                streamed = "".join(f["text"] for f in frames if f["type"] == "delta")
                assert streamed == frames[-1]["content"]
            a.kill()  # the provider serving this interview dies between two turns
            await ws.send_message("What's next?")  # plain text works too
            frames = await _frames_until_done(ws)
            seen += frames
    done = frames[-1]
    assert (done["type"], done["provider"], done["attempts"], done["turns"]) == ("done", "b", 2, 3)
    # The candidate saw answers only: no error, no restart.
    assert {f["type"] for f in seen} == {"delta", "done"}
    # b received the whole interview, word for word as the candidate saw it.
    answers = [f["content"] for f in seen if f["type"] == "done"]
    history = [(m.role, m.content) for m in b.mock.recent[-1].messages]
    assert history == [
        ("system", "You interview."),
        ("user", "Hi, I'm Ana."),
        ("assistant", answers[0]),
        ("user", "I like trio."),
        ("assistant", answers[1]),
        ("user", "What's next?"),
    ]
    async with httpx.AsyncClient(base_url=url) as http:
        session = (await http.get("/sessions/cand-7")).json()
    assert session["providers_used"] == ["a", "b"]
    assert len(session["history"]) == 7
    # A reconnect resumes the same interview.
    with trio.fail_after(5):
        async with open_websocket_url(ws_url) as ws:
            assert json.loads(await ws.get_message())["turns"] == 3


async def test_websocket_reports_a_failed_turn_and_keeps_the_history_unchanged(nursery):
    a = await start_mock(nursery, "a", "down")
    url = await start_router(nursery, live_config([a], retry={"max_attempts": 1}))
    ws_url = url.replace("http://", "ws://") + "/interview/stream/cand-8"
    with trio.fail_after(10):
        async with open_websocket_url(ws_url) as ws:
            await ws.get_message()
            await ws.send_message(json.dumps({"content": ""}))
            invalid = json.loads(await ws.get_message())
            await ws.send_message('{"content": "Hi",')
            broken = json.loads(await ws.get_message())
            await ws.send_message("Hello?")
            failed = json.loads(await ws.get_message())
    assert invalid["type"] == "error" and invalid["error"]["param"] == "content"
    assert broken["error"]["message"] == (
        "message: not valid JSON (line 1, column 18); send a JSON object or plain text"
    )
    assert failed["type"] == "error" and failed["error"]["code"] == "request_failed"
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/sessions/cand-8")).json()["history"] == []


async def test_http_sessions_keep_history_across_a_provider_swap(nursery):
    a = await start_mock(nursery, "a")
    b = await start_mock(nursery, "b")
    url = await start_router(nursery, live_config([a, b], routing={"policy": "sticky"}))
    async with httpx.AsyncClient(base_url=url) as http:
        with trio.fail_after(10):
            created = await http.post("/sessions", json={"session_id": "s1", "system_prompt": "Hi"})
            first = (await http.post("/sessions/s1/messages", json={"content": "one"})).json()
            a.mock.set_profile("down")
            second = (await http.post("/sessions/s1/messages", json={"content": "two"})).json()
            again = await http.post("/sessions", json={"session_id": "s1"})
            missing = await http.post("/sessions/nope/messages", json={"content": "x"})
    assert created.status_code == 201 and again.status_code == 200
    assert (first["provider"], second["provider"], second["attempts"]) == ("a", "b", 2)
    assert second["providers_used"] == ["a", "b"] and second["turns"] == 2
    roles = [m.role for m in b.mock.recent[-1].messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "session_not_found"


async def test_a_second_message_while_one_is_answering_is_refused(nursery):
    a = await start_mock(nursery, "a", "hang")
    b = await start_mock(nursery, "b")
    url = await start_router(nursery, live_config([a, b], silent=[a]))
    async with httpx.AsyncClient(base_url=url) as http:
        await http.post("/sessions", json={"session_id": "s2"})
        results = {}
        with trio.fail_after(10):
            async with trio.open_nursery() as inner:

                async def first() -> None:
                    results["first"] = await http.post(
                        "/sessions/s2/messages", json={"content": "a"}
                    )

                inner.start_soon(first)
                await trio.sleep(0.1)
                results["second"] = await http.post("/sessions/s2/messages", json={"content": "b"})
    assert results["second"].status_code == 409
    assert results["second"].json()["error"]["code"] == "session_busy"
    assert results["first"].status_code == 200
