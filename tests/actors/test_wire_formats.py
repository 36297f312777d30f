"""The wire formats on plain dicts: OpenAI answers merged whole, Anthropic's translated both ways.

The Anthropic bodies and events here are written as the Messages API documents them,
not produced by callboard's own translator, so a mistake is not hidden by its mirror.
"""

from __future__ import annotations

import json

import attrs
import pytest

from actors.backends.answers import AnswerBuilder, openai_answer, whole_delta
from actors.backends.anthropic_wire import (
    MessagesEvents,
    messages_answer,
    messages_body,
    untranslatable,
)

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_an_openai_conversation_in_the_messages_api():
    body = {
        "model": "auto",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "No jokes."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this, and the weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
            {"role": "user", "content": "Thanks."},
        ],
        "tools": [TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "stop": "END",
        "max_completion_tokens": 50,
        "temperature": 1.5,
        "top_p": 0.9,
        "user": "u-1",
    }
    assert untranslatable(body) == []
    assert messages_body(body, "claude-x", stream=False, default_max_tokens=1024) == {
        "model": "claude-x",
        "system": "Be brief.\n\nNo jokes.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this, and the weather?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                    },
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.com/a.jpg"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "call_1",
                        "name": "get_weather",
                        "input": {"city": "Oslo"},
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "rain"},
                    {"type": "text", "text": "Thanks."},
                ],
            },
        ],
        "tools": [
            {
                "name": "get_weather",
                "description": "The weather",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            }
        ],
        "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        "stop_sequences": ["END"],
        "max_tokens": 50,
        "temperature": 1.0,  # Anthropic's scale ends at 1
        "top_p": 0.9,
        "metadata": {"user_id": "u-1"},
        "stream": False,
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("auto", {"type": "auto"}), ("required", {"type": "any"}), ("none", {"type": "none"})],
)
def test_tool_choice_in_the_messages_api(choice, expected):
    body = {"messages": [{"role": "user", "content": "Hi"}], "tools": [TOOL], "tool_choice": choice}
    assert messages_body(body, "m", False, 10)["tool_choice"] == expected


def test_fields_with_no_messages_counterpart_are_named():
    body = {
        "messages": [
            {"role": "user", "content": "Hi", "name": "ann"},
            {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]},
        ],
        "seed": 1,
        "logprobs": True,
        "response_format": {"type": "json_object"},
        "max_tokens": 5,
    }
    assert untranslatable(body) == [
        "seed",
        "logprobs",
        "response_format",
        "messages[0].name",
        "messages[1].content[0]",
    ]


def test_a_messages_reply_as_an_openai_answer():
    reply = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 20, "cache_read_input_tokens": 100, "output_tokens": 9},
    }
    answer = messages_answer(reply)
    assert answer.message == {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            }
        ],
    }
    assert answer.finish_reason == "tool_calls"
    assert (answer.prompt_tokens, answer.completion_tokens) == (120, 9)
    assert answer.usage["prompt_tokens_details"] == {"cached_tokens": 100}


# A Messages stream as the API documents it: text, then a tool call whose input arrives
# in pieces, then the stop reason and the output count.
EVENTS = [
    (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude-x",
                "stop_reason": None,
                "usage": {"input_tokens": 472, "output_tokens": 2},
            },
        },
    ),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ),
    ("ping", {"type": "ping"}),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Okay"},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "get_weather",
                "input": {},
            },
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"city": "'},
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": 'Oslo"}'},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 89},
        },
    ),
]


def test_a_messages_stream_as_openai_chunks_merged_whole():
    events, builder = MessagesEvents(), AnswerBuilder()
    shown = []
    for kind, payload in EVENTS:
        chunk = events.chunk(kind, payload)
        piece = builder.feed(chunk) if chunk is not None else None
        if piece is not None:
            shown.append(piece.delta)
    assert shown[0] == {"content": "Okay"}
    assert shown[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": ""}
    answer = builder.answer()
    assert answer.message["content"] == "Okay"
    call = answer.message["tool_calls"][0]
    assert call["id"] == "toolu_1" and json.loads(call["function"]["arguments"]) == {"city": "Oslo"}
    assert answer.finish_reason == "tool_calls"
    assert (answer.prompt_tokens, answer.completion_tokens) == (472, 89)
    assert answer.usage["total_tokens"] == 561


def test_openai_chunks_merge_as_the_sdk_merges_them():
    """Two tool calls streamed interleaved by index, a refusal, logprobs, the usage chunk."""

    def chunk(delta, finish=None, logprobs=None):
        return {
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": logprobs}]
        }

    def call(index, **fields):
        return {"tool_calls": [{"index": index, **fields}]}

    token = {"token": "a", "logprob": -0.5, "bytes": [97]}
    chunks = [
        chunk({"role": "assistant"}),
        chunk(call(0, id="c0", type="function", function={"name": "f", "arguments": ""})),
        chunk(call(1, id="c1", type="function", function={"name": "g", "arguments": "{"})),
        chunk(call(0, function={"arguments": '{"x": 1}'})),
        chunk(call(1, function={"arguments": "}"})),
        chunk({"refusal": "partly"}, logprobs={"refusal": [token]}),
        chunk({}, finish="tool_calls"),
        {
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7},
            "system_fingerprint": "fp",
        },
    ]
    builder = AnswerBuilder()
    pieces = [builder.feed(c) for c in chunks]
    assert pieces[0] is None and pieces[-1] is None  # the role alone, the usage: nothing to show
    answer = builder.answer()
    calls = answer.message["tool_calls"]
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        ("c0", "f", '{"x": 1}'),
        ("c1", "g", "{}"),
    ]
    assert answer.message["content"] is None and answer.message["refusal"] == "partly"
    assert answer.logprobs == {"refusal": [token]}
    assert answer.system_fingerprint == "fp" and answer.usage["total_tokens"] == 12
    # Streamed again whole (a cache hit), each call keeps its index.
    assert [c["index"] for c in whole_delta(answer)["tool_calls"]] == [0, 1]


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"role": "assistant", "content": None}, "neither content nor tool_calls"),
        ({"role": "assistant", "content": 3}, "not text"),
        ("text", "not an object"),
    ],
)
def test_an_openai_reply_without_an_answer_is_refused(message, error):
    with pytest.raises((ValueError, TypeError), match=error):
        openai_answer({"choices": [{"message": message}]})


def test_tool_calls_with_null_content_are_an_answer():
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }
    reply = {"choices": [{"message": message, "finish_reason": "tool_calls"}], "usage": {}}
    answer = openai_answer(reply)
    assert answer.message == message and answer.text == ""
    assert answer.prompt_tokens is None  # the provider gave no figure: the router estimates


def test_a_completion_keeps_its_answer_through_the_shared_caches_encoding():
    """Routers sharing a cache copy entries as JSON (``attrs.asdict``): the answer survives,
    and the failed attempts of the request that got it are left out."""
    from actors.messages import Completion
    from engine.serve.state.shared import decode_answer, encode_answer

    answer = openai_answer(
        {
            "choices": [{"message": {"role": "assistant", "content": None, "refusal": "no"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1},
        }
    )
    completion = Completion("r-1", "", "m", "a", 3, 1, 0.1, 0.1, answer=answer)
    copied = decode_answer(encode_answer(completion))
    assert copied == completion and copied.answer == answer
    failed_over = attrs.evolve(completion, attempts=2, failed_attempts=(("b", "unreachable"),))
    assert "unreachable" not in encode_answer(failed_over)
    assert decode_answer(encode_answer(failed_over)).failed_attempts == ()
