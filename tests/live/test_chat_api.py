"""The chat API as the SDKs send it, through ``callboard serve`` with the official openai client.

Function calling with a tool round trip, JSON mode, streaming with include_usage,
fields passed upstream untouched (and nothing added), answers passed back whole, usage
with its sources, ``GET /v1/models``, and requests routed only to the providers whose
model has what they need.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest
import trio

from sims.mock_provider import FINGERPRINT
from tests.live.conftest import (
    answer_each,
    http_response,
    live_config,
    start_mock,
    start_raw,
    start_router,
)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
async def client(nursery):
    a = await start_mock(nursery, "a")
    url = await start_router(nursery, live_config([a]))
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="not-used", max_retries=0)
    client.mock = a.mock  # type: ignore[attr-defined]
    yield client
    await client.close()


async def test_a_tool_round_trip(client, user):
    with trio.fail_after(10):
        first = await client.chat.completions.create(
            model="auto", messages=user, tools=[WEATHER], tool_choice="required"
        )
        call = first.choices[0].message.tool_calls[0]
        assert first.choices[0].finish_reason == "tool_calls"
        assert first.choices[0].message.content is None  # a normal answer, not a malformed one
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "mock", "days": 1}
        history = [
            *user,
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "clear"}'},
        ]
        second = await client.chat.completions.create(
            model="auto", messages=history, tools=[WEATHER]
        )
    assert second.choices[0].message.content == '[a] the tool said: {"sky": "clear"}'
    sent = client.mock.recent[-1].body
    # The upstream saw the tool call and its result as the client sent them.
    assert sent["messages"][1]["tool_calls"][0]["id"] == call.id
    assert sent["messages"][2] == history[2]
    assert sent["tools"] == [WEATHER]


async def test_streamed_tool_call_with_include_usage(client, user):
    with trio.fail_after(10):
        stream = await client.chat.completions.create(
            model="auto",
            messages=user,
            tools=[WEATHER],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    calls = [c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta]
    parts = [part for call in calls if call for part in call]
    assert parts[0].function.name == "get_weather" and parts[0].id
    arguments = "".join(p.function.arguments or "" for p in parts)
    assert json.loads(arguments) == {"city": "mock", "days": 1}
    finish = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finish[-1] == "tool_calls"
    # include_usage: the last chunk has no choices and carries the usage, as OpenAI sends it.
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens >= 1
    assert {c.model for c in chunks} == {"default"}  # the real model, never "auto"
    assert client.mock.recent[-1].body["stream_options"] == {"include_usage": True}


async def test_json_mode_and_json_schema(client, user):
    schema = {
        "name": "verdict",
        "schema": {
            "type": "object",
            "properties": {"hire": {"type": "boolean"}, "score": {"type": "integer"}},
            "required": ["hire", "score"],
        },
        "strict": True,
    }
    with trio.fail_after(10):
        plain = await client.chat.completions.create(
            model="auto", messages=user, response_format={"type": "json_object"}
        )
        shaped = await client.chat.completions.create(
            model="auto",
            messages=user,
            response_format={"type": "json_schema", "json_schema": schema},
        )
    assert json.loads(plain.choices[0].message.content)["provider"] == "a"
    assert json.loads(shaped.choices[0].message.content) == {"hire": True, "score": 1}
    assert client.mock.recent[-1].body["response_format"]["json_schema"] == schema


async def test_every_field_passes_untouched_and_nothing_is_added(client, user):
    fields = {
        "stop": ["\n\n"],
        "seed": 7,
        "top_p": 0.5,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "logit_bias": {"50256": -100},
        "logprobs": True,
        "top_logprobs": 2,
        "max_completion_tokens": 9,
        "parallel_tool_calls": False,
        "tools": [WEATHER],
        "tool_choice": "none",
        "user": "candidate-17",
        "metadata": {"team": "hiring"},
    }
    with trio.fail_after(10):
        await client.chat.completions.create(
            model="auto", messages=user, extra_body={"vendor_knob": {"x": 1}}, **fields
        )
    sent = dict(client.mock.recent[-1].body)
    assert sent.pop("vendor_knob") == {"x": 1}  # a field callboard does not know, passed on
    assert sent.pop("messages") == user
    assert sent.pop("model") == "default"  # the account's model, for "auto"
    assert sent == fields  # no temperature, no stream: nothing the client did not send


async def test_answers_pass_back_whole_with_the_providers_usage(nursery, user):
    """A raw upstream's answer (a refusal, logprobs, a fingerprint, cached tokens) reaches
    the client as it was sent, with the provider's token counts, not the router's."""
    logprobs = {"content": [{"token": "No", "logprob": -0.1, "bytes": [78, 111]}]}
    reply = {
        "id": "chatcmpl-up",
        "object": "chat.completion",
        "created": 1,
        "model": "upstream-model-2025",
        "system_fingerprint": "fp_up",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "refusal": "I can't."},
                "logprobs": logprobs,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 311,
            "completion_tokens": 3,
            "total_tokens": 314,
            "prompt_tokens_details": {"cached_tokens": 256},
        },
    }
    raw = await start_raw(nursery, lambda conn: answer_each(conn, http_response(200, reply)))
    config = live_config([], providers=[{"name": "raw", "base_url": raw.url}])
    url = await start_router(nursery, config)
    async with httpx.AsyncClient(base_url=url) as http:
        body = (
            await http.post("/v1/chat/completions", json={"messages": user, "logprobs": True})
        ).json()
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": None, "refusal": "I can't."}
    assert choice["logprobs"] == logprobs
    assert body["system_fingerprint"] == "fp_up"
    assert body["usage"] == reply["usage"]
    assert body["usage_source"] == {"prompt_tokens": "provider", "completion_tokens": "provider"}


async def test_usage_says_which_figures_are_estimates(nursery, user):
    reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there."}}]}
    raw = await start_raw(nursery, lambda conn: answer_each(conn, http_response(200, reply)))
    url = await start_router(
        nursery, live_config([], providers=[{"name": "r", "base_url": raw.url}])
    )
    async with httpx.AsyncClient(base_url=url) as http:
        body = (await http.post("/v1/chat/completions", json={"messages": user})).json()
    assert body["usage_source"] == {"prompt_tokens": "estimate", "completion_tokens": "estimate"}
    assert body["usage"]["completion_tokens"] == 2  # "Hi there." at ~4 characters a token


async def test_streamed_text_chunks_name_the_real_model_and_the_fingerprint(client, user):
    with trio.fail_after(10):
        stream = await client.chat.completions.create(
            model="auto",
            messages=user,
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert {c.model for c in chunks} == {"default"}
    assert chunks[-1].usage.completion_tokens == 12 and chunks[-1].choices == []
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].system_fingerprint == FINGERPRINT


async def test_models_lists_what_clients_may_ask_for(nursery):
    a = await start_mock(nursery, "a")
    b = await start_mock(nursery, "b")
    providers = [
        {"name": "a", "base_url": f"{a.url}/v1", "model": "big", "context_window": 128000},
        {"name": "b", "base_url": f"{b.url}/v1", "model": "small", "capabilities": ["tools"]},
    ]
    url = await start_router(nursery, live_config([], providers=providers))
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as client:
        models = {m.id: m.model_extra for m in (await client.models.list()).data}
    assert list(models) == ["auto", "big", "small"]
    assert models["big"]["capabilities"] == ["json_mode", "tools", "vision"]
    assert models["big"]["context_window"] == 128000
    assert models["small"]["capabilities"] == ["tools"]
    assert models["auto"]["providers"] == ["a", "b"]


IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


async def test_requests_go_only_to_providers_whose_model_can_answer(nursery, user):
    text_only = await start_mock(nursery, "text-only")
    able = await start_mock(nursery, "able")
    providers = [
        {"name": "text-only", "base_url": f"{text_only.url}/v1", "capabilities": []},
        {"name": "able", "base_url": f"{able.url}/v1"},
    ]
    url = await start_router(
        nursery, live_config([], providers=providers, routing={"policy": "priority"})
    )
    look = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, IMAGE]}]
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as client:
        with trio.fail_after(10):
            plain = await client.chat.completions.create(model="auto", messages=user)
            for needs in (
                {"tools": [WEATHER]},
                {"response_format": {"type": "json_object"}},
                {"messages": look},
            ):
                reply = await client.chat.completions.create(
                    **{"model": "auto", "messages": user, **needs}
                )
                assert reply.model_extra["provider"] == "able", needs
    assert plain.model_extra["provider"] == "text-only"  # the priority policy's first
    assert len(text_only.mock.recent) == 1
    # The image reached the provider as sent.
    assert able.mock.recent[-1].body["messages"][0]["content"][1] == IMAGE


async def test_a_need_no_provider_meets_is_a_400_naming_the_field(nursery, user):
    a = await start_mock(nursery, "a")
    providers = [{"name": "a", "base_url": f"{a.url}/v1", "capabilities": ["tools"]}]
    url = await start_router(nursery, live_config([], providers=providers))
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.create(
                model="auto", messages=user, response_format={"type": "json_object"}
            )
    assert refused.value.body["param"] == "response_format"
    assert "json_mode" in refused.value.body["message"]
    assert not a.mock.recent


async def test_the_context_window_is_each_providers_own(nursery):
    small = await start_mock(nursery, "small")
    large = await start_mock(nursery, "large")
    providers = [
        {"name": "small", "base_url": f"{small.url}/v1", "context_window": 100},
        {"name": "large", "base_url": f"{large.url}/v1", "context_window": 100_000},
    ]
    url = await start_router(
        nursery, live_config([], providers=providers, routing={"policy": "priority"})
    )
    long = [{"role": "user", "content": "word " * 400}]  # ~500 tokens: too many for "small"
    async with httpx.AsyncClient(base_url=url) as http:
        body = (await http.post("/v1/chat/completions", json={"messages": long})).json()
    assert body["provider"] == "large" and not small.mock.recent


async def test_unknown_fields_refused_when_configured(nursery, user):
    a = await start_mock(nursery, "a")
    url = await start_router(nursery, live_config([a], server={"unknown_fields": "refuse"}))
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.post(
            "/v1/chat/completions", json={"messages": user, "vendor_knob": 1}
        )
        known = await http.post("/v1/chat/completions", json={"messages": user, "seed": 1})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "vendor_knob"
    assert known.status_code == 200 and a.mock.recent[-1].body["seed"] == 1


async def test_the_cache_key_covers_every_field_that_shapes_the_answer(nursery, user):
    a = await start_mock(nursery, "a")
    url = await start_router(nursery, live_config([a], cache={"enabled": True}))
    base = {"messages": user, "max_tokens": 8}
    async with httpx.AsyncClient(base_url=url) as http:
        bodies = [
            base,
            {**base, "tools": [WEATHER], "tool_choice": "none"},
            {**base, "response_format": {"type": "json_object"}},
            {**base, "seed": 1},
            {**base, "stop": ["x"]},
            {**base, "user": "someone"},  # changes who asks, not the answer: a hit
            {**base, "stream_options": {"include_usage": True}, "stream": False},
        ]
        cached = [
            (await http.post("/v1/chat/completions", json=body)).json()["cached"] for body in bodies
        ]
    assert cached == [False, False, False, False, False, True, True]


async def test_a_cached_tool_call_streams_whole(nursery, user):
    """A cache hit has no stream to pass on: its tool calls come as one delta, indexed."""
    a = await start_mock(nursery, "a")
    url = await start_router(nursery, live_config([a], cache={"enabled": True}))
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as client:
        with trio.fail_after(10):
            first = await client.chat.completions.create(
                model="auto", messages=user, tools=[WEATHER]
            )
            stream = await client.chat.completions.create(
                model="auto", messages=user, tools=[WEATHER], stream=True
            )
            chunks = [chunk async for chunk in stream]
    parts = [p for c in chunks if c.choices for p in c.choices[0].delta.tool_calls or ()]
    assert [(p.index, p.id, p.function.name, p.function.arguments) for p in parts] == [
        (0, call.id, call.function.name, call.function.arguments)
        for call in first.choices[0].message.tool_calls
    ]
    assert chunks[-1].model_extra["cached"] is True
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert len(a.mock.recent) == 1
