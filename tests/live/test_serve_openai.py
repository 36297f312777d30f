"""``callboard serve`` through the official openai client: plain, streamed, errors, metrics."""

from __future__ import annotations

import attrs
import httpx
import openai
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.live.conftest import Upstream, live_config, start_mock, start_router


@attrs.frozen
class Served:
    url: str
    client: openai.AsyncOpenAI
    a: Upstream
    b: Upstream


@pytest.fixture
async def served(nursery):
    """Two healthy mock providers behind ``callboard serve``, and an openai client for it."""
    a = await start_mock(nursery, "a")
    b = await start_mock(nursery, "b")
    url = await start_router(nursery, live_config([a, b], routing={"policy": "priority"}))
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="not-used", max_retries=0)
    yield Served(url, client, a, b)
    await client.close()


async def test_chat_completion_with_the_openai_client(served, user):
    with trio.fail_after(10):
        reply = await served.client.chat.completions.create(
            model="auto", messages=user, max_tokens=12
        )
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content.startswith("[a] answer to ")
    assert reply.usage.completion_tokens == 12
    extra = reply.model_extra
    assert extra["provider"] == "a" and extra["attempts"] == 1
    assert extra["request_id"].startswith("r-") and extra["total_latency_ms"] > 0
    # The upstream saw the same conversation.
    assert [m.content for m in served.a.mock.recent[-1].messages] == [user[0]["content"]]


async def test_streamed_chat_with_the_openai_client(served, user):
    with trio.fail_after(10):
        stream = await served.client.chat.completions.create(
            model="auto", messages=user, max_tokens=30, stream=True
        )
        chunks = [chunk async for chunk in stream]
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(texts) > 3  # it really streamed, in several pieces
    assert "".join(texts).startswith("[a] answer to ")
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.model_extra["provider"] == "a" and last.model_extra["attempts"] == 1
    assert last.usage.completion_tokens == 30


async def test_unknown_model_and_bad_fields_raise_the_clients_own_errors(served, user):
    with trio.fail_after(10):
        with pytest.raises(openai.NotFoundError) as missing:
            await served.client.chat.completions.create(model="gpt-9", messages=user)
        with pytest.raises(openai.BadRequestError) as bad:
            await served.client.chat.completions.create(model="auto", messages=user, temperature=7)
    assert (
        missing.value.body["code"] == "model_not_found" and missing.value.body["param"] == "model"
    )
    assert bad.value.body["param"] == "temperature"
    assert not served.a.mock.recent and not served.b.mock.recent


async def test_metrics_count_every_request_once(served, user):
    with trio.fail_after(10):
        await served.client.chat.completions.create(model="auto", messages=user, max_tokens=5)
        with pytest.raises(openai.BadRequestError):
            await served.client.chat.completions.create(model="auto", messages=[])
        async with httpx.AsyncClient(base_url=served.url) as http:
            await http.post("/v1/chat/completions", content=b"not json")
            text = (await http.get("/metrics")).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("callboard_requests_total", (("outcome", "ok"), ("provider", "a")))] == 1
    invalid = (("outcome", "invalid_request"), ("provider", "none"))
    assert samples[("callboard_requests_total", invalid)] == 2  # one by the router, one unparsed
    assert samples[("callboard_provider_health_score", (("provider", "a"),))] == 1.0
    breaker = (("provider", "b"), ("state", "closed"))
    assert samples[("callboard_provider_breaker_state", breaker)] == 1.0


BAD_BODIES = [
    ({"messages": "hi"}, 400, "messages"),
    ({"model": "auto"}, 400, "messages"),
    ({"messages": [{"role": "robot", "content": "x"}]}, 400, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 42}]}, 400, "messages[0].content"),
    ({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, 400, "temperature"),
    ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, 400, "max_tokens"),
    ({"messages": [{"role": "user", "content": "x"}], "n": 3}, 400, "n"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": []}, 400, "tools"),
    ({"messages": [{"role": "user", "content": "x"}], "model": "nope"}, 404, "model"),
    ({"messages": [{"role": "user", "content": "x" * 40_000}]}, 400, "messages"),
    ([1, 2], 400, "body"),
]


async def test_bad_requests_fail_fast_with_openai_errors_and_no_provider_call(served):
    async with httpx.AsyncClient(base_url=served.url) as http:
        for body, status, param in BAD_BODIES:
            response = await http.post("/v1/chat/completions", json=body)
            error = response.json()["error"]
            assert response.status_code == status, body
            assert error["param"] == param, body
            assert set(error) >= {"message", "type", "param", "code"}
            assert error["type"] == "invalid_request_error"
        response = await http.post("/v1/chat/completions", content=b"{oops")
        assert response.status_code == 400 and response.json()["error"]["param"] == "body"
    assert not served.a.mock.recent and not served.b.mock.recent  # no provider was called


@pytest.mark.slow
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"model": "auto"}', "messages: missing; allowed: a list of {role, content} messages"),
        (b'{"messages": null}', "messages: null; allowed: a list of {role, content} messages"),
        (b'{"messages": [{"content": "x"}]}', "messages[0].role: missing; allowed: system |"),
        (b'{"messages": [{"role": "user", "content": null}]}', "messages[0].content: null;"),
        (b"not json", "body: not valid JSON (line 1, column 1)"),
        (b'{"messages": [],\n}', "body: not valid JSON (line 2, column 1)"),
    ],
)
async def test_error_messages_speak_json_not_python(served, content, message):
    async with httpx.AsyncClient(base_url=served.url) as http:
        response = await http.post("/v1/chat/completions", content=content)
    error = response.json()["error"]
    assert response.status_code == 400
    assert error["message"].startswith(message), error
    assert "None" not in error["message"] and "char " not in error["message"]


async def test_a_cached_answer_says_so_in_the_body_and_bypass_cache_goes_upstream(nursery, user):
    a = await start_mock(nursery, "a")
    url = await start_router(nursery, live_config([a], cache={"enabled": True}))
    body = {"model": "auto", "messages": user, "max_tokens": 8}
    async with httpx.AsyncClient(base_url=url) as http:
        first = (await http.post("/v1/chat/completions", json=body)).json()
        again = (await http.post("/v1/chat/completions", json=body)).json()
        fresh = await http.post("/v1/chat/completions", json={**body, "bypass_cache": True})
        text = (await http.get("/metrics")).text
    assert (first["provider"], first["attempts"], first["cached"]) == ("a", 1, False)
    # Who wrote the answer, and that it came from the cache: no upstream call was made.
    assert (again["provider"], again["attempts"], again["cached"]) == ("a", 0, True)
    assert again["choices"] == first["choices"]
    assert (fresh.json()["cached"], fresh.json()["attempts"]) == (False, 1)
    assert len(a.mock.recent) == 2
    samples = {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "callboard_requests_total"
    }
    assert samples[(("outcome", "ok"), ("provider", "cache"))] == 1
    assert samples[(("outcome", "ok"), ("provider", "a"))] == 2
