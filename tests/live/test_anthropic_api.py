"""Anthropic's wire format both ways, with the official clients over loopback.

The entrance: the ``anthropic`` client through ``POST /v1/messages`` (plain, streamed, a
tool round trip), answered by OpenAI-compatible and Anthropic upstreams alike. The
upstream: the ``openai`` client through ``callboard serve`` in front of an account of
kind ``anthropic`` (a mock that speaks the Messages API), fields translated both ways,
those without a counterpart refused naming the field or sent to an OpenAI account.
"""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest
import trio

from tests.live.conftest import live_config, start_mock, start_router
from tests.live.test_chat_api import WEATHER

CITY_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def _providers(*entries: tuple[str, str, str]) -> list[dict[str, str]]:
    """(name, url, kind) -> [[providers]] tables; an anthropic mock is reached at its root."""
    return [
        {"name": name, "base_url": url if kind == "anthropic" else f"{url}/v1", "kind": kind}
        for name, url, kind in entries
    ]


@pytest.fixture(params=["openai", "anthropic"])
async def entrance(request, nursery):
    """``callboard serve`` in front of one upstream of each wire format, and an anthropic
    client for its ``/v1/messages``."""
    up = await start_mock(nursery, "up")
    config = live_config([], providers=_providers(("up", up.url, request.param)))
    url = await start_router(nursery, config)
    client = anthropic.AsyncAnthropic(base_url=url, api_key="not-used", max_retries=0)
    client.mock = up.mock  # type: ignore[attr-defined]
    yield client
    await client.close()


async def test_the_anthropic_client_through_v1_messages(entrance):
    with trio.fail_after(10):
        reply = await entrance.messages.create(
            model="default",
            max_tokens=12,
            system="You are an interviewer.",
            messages=[{"role": "user", "content": "Tell me about yourself."}],
        )
    assert reply.type == "message" and reply.role == "assistant"
    assert reply.model == "default" and reply.stop_reason == "end_turn"
    assert reply.content[0].type == "text"
    assert reply.content[0].text.startswith("[up] answer to ")
    assert reply.usage.output_tokens == 12 and reply.usage.input_tokens > 0
    sent = entrance.mock.recent[-1]
    assert [(m.role, m.content) for m in sent.messages] == [
        ("system", "You are an interviewer."),
        ("user", "Tell me about yourself."),
    ]


async def test_the_anthropic_client_streams_through_v1_messages(entrance):
    with trio.fail_after(10):
        async with entrance.messages.stream(
            model="default",
            max_tokens=30,
            messages=[{"role": "user", "content": "Tell me about yourself."}],
        ) as stream:
            texts = [text async for text in stream.text_stream]
            final = await stream.get_final_message()
    assert len(texts) > 3  # it really streamed, in several pieces
    assert "".join(texts).startswith("[up] answer to ")
    assert final.content[0].text == "".join(texts)
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 30
    assert final.model == "default"


async def test_a_tool_round_trip_through_v1_messages(entrance):
    question = {"role": "user", "content": "Weather in Oslo?"}
    with trio.fail_after(10):
        first = await entrance.messages.create(
            model="default",
            max_tokens=100,
            tools=[CITY_TOOL],
            tool_choice={"type": "tool", "name": "get_weather"},
            messages=[question],
        )
        use = first.content[0]
        assert (first.stop_reason, use.type, use.name) == ("tool_use", "tool_use", "get_weather")
        assert use.input == {"city": "mock"}
        async with entrance.messages.stream(
            model="default",
            max_tokens=100,
            tools=[CITY_TOOL],
            messages=[
                question,
                {"role": "assistant", "content": [block.model_dump() for block in first.content]},
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}],
                },
            ],
        ) as stream:
            final = await stream.get_final_message()
    assert final.content[0].text == "[up] the tool said: sunny"
    sent = entrance.mock.recent[-1].body
    assert sent["tools"][0]["function"]["name"] == "get_weather"


async def test_a_streamed_tool_use_through_v1_messages(entrance):
    with trio.fail_after(10):
        async with entrance.messages.stream(
            model="default",
            max_tokens=100,
            tools=[CITY_TOOL],
            tool_choice={"type": "any"},
            messages=[{"role": "user", "content": "Weather in Oslo?"}],
        ) as stream:
            final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "tool_use" and final.content[0].input == {"city": "mock"}


async def test_v1_messages_errors_in_anthropics_shape_naming_the_field(nursery):
    up = await start_mock(nursery, "up")
    url = await start_router(nursery, live_config([up]))
    async with anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0) as client:
        with pytest.raises(anthropic.BadRequestError) as refused:
            await client.messages.create(
                model="default",
                max_tokens=10,
                extra_body={"top_k": 5},
                messages=[{"role": "user", "content": "Hi"}],
            )
        with pytest.raises(anthropic.NotFoundError):
            await client.messages.create(
                model="claude-nope", max_tokens=10, messages=[{"role": "user", "content": "Hi"}]
            )
    error = refused.value.body
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert error["error"]["param"] == "top_k"
    assert not up.mock.recent


@pytest.fixture
async def anthropic_upstream(nursery):
    """``callboard serve`` in front of one account of kind anthropic, and an openai client."""
    claude = await start_mock(nursery, "claude")
    config = live_config([], providers=_providers(("claude", claude.url, "anthropic")))
    url = await start_router(nursery, config)
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    client.mock = claude.mock  # type: ignore[attr-defined]
    client.url = url  # type: ignore[attr-defined]
    yield client
    await client.close()


async def test_an_openai_tool_round_trip_on_an_anthropic_account(anthropic_upstream, user):
    client = anthropic_upstream
    with trio.fail_after(10):
        first = await client.chat.completions.create(
            model="auto",
            messages=[{"role": "system", "content": "Be brief."}, *user],
            tools=[WEATHER],
            tool_choice="required",
            parallel_tool_calls=False,
            stop="END",
            max_tokens=50,
        )
        call = first.choices[0].message.tool_calls[0]
        history = [
            *user,
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "rain"},
        ]
        stream = await client.chat.completions.create(
            model="auto",
            messages=history,
            tools=[WEATHER],
            stream=True,
            stream_options={"include_usage": True},
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert first.choices[0].finish_reason == "tool_calls"
    assert first.choices[0].message.content is None
    assert json.loads(call.function.arguments) == {"city": "mock", "days": 1}
    assert text == "[claude] the tool said: rain"
    # What the Anthropic account was sent, read back by the mock from the Messages API.
    translated = client.mock.recent[0].body
    assert translated["messages"][0] == {"role": "system", "content": "Be brief."}
    assert translated["tool_choice"] == "required"
    assert translated["parallel_tool_calls"] is False
    assert translated["stop"] == ["END"]
    assert translated["tools"][0]["function"]["parameters"] == WEATHER["function"]["parameters"]
    result = client.mock.recent[-1].body["messages"][-1]
    assert result == {"role": "tool", "tool_call_id": call.id, "content": "rain"}


async def test_a_field_with_no_messages_counterpart_is_refused_naming_it(anthropic_upstream, user):
    client = anthropic_upstream
    for field, value in (
        ("seed", 1),
        ("logprobs", True),
        ("response_format", {"type": "json_object"}),
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.create(model="auto", messages=user, **{field: value})
        assert refused.value.body["param"] == field
    assert not client.mock.recent


async def test_a_mixed_fleet_sends_openai_only_fields_to_openai_accounts(nursery, user):
    claude = await start_mock(nursery, "claude")
    gpt = await start_mock(nursery, "gpt")
    providers = _providers(("claude", claude.url, "anthropic"), ("gpt", gpt.url, "openai"))
    config = live_config([], providers=providers, routing={"policy": "priority"})
    url = await start_router(nursery, config)
    async with httpx.AsyncClient(base_url=url) as http:
        plain = (await http.post("/v1/chat/completions", json={"messages": user})).json()
        seeded = await http.post("/v1/chat/completions", json={"messages": user, "seed": 3})
    assert plain["provider"] == "claude"  # the priority policy's first
    assert seeded.json()["provider"] == "gpt" and gpt.mock.recent[-1].body["seed"] == 3


@pytest.mark.parametrize(("field", "named"), [("seed", "seed"), ("", "''"), (" x", "' x'")])
def test_the_messages_api_names_a_field_it_cannot_translate_even_an_empty_one(field, named):
    from engine.routing.errors import InvalidRequest
    from engine.serve.anthropic_format import chat_body

    body = {"model": "auto", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(InvalidRequest) as refused:
        chat_body({**body, field: None})
    assert refused.value.field == named and str(refused.value).startswith(named)
