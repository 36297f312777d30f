"""Traces of the live router, received over OTLP/HTTP on loopback and read from a file:
a span per request, one per attempt under it, named and attributed by the GenAI
conventions; no message content unless asked; the last spans sent as the server stops."""

from __future__ import annotations

import functools
import json

import attrs
import httpx
import trio
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine import open_router
from engine.serve.server import serve_router
from tests.live.conftest import LOOPBACK, live_config, start_mock
from tests.live.test_caller_keys import WEB, keys_file
from tests.traces.otlp import Span, read_json_file, spans_of

CHAT = {
    "model": "auto",
    "messages": [{"role": "user", "content": "Why this job?"}],
    "max_tokens": 8,
}
CLIENT, INTERNAL, ERROR = 3, 1, 2


class Collector:
    """An OTLP/HTTP trace receiver: what a collector's ``otlp`` receiver takes on
    ``POST /v1/traces``, parsed with opentelemetry-proto."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.content_types: set[str] = set()
        self.app = Starlette(routes=[Route("/v1/traces", self.traces, methods=["POST"])])

    async def traces(self, request: Request) -> Response:
        self.content_types.add(request.headers["content-type"])
        received = ExportTraceServiceRequest.FromString(await request.body())
        self.spans.extend(spans_of(received))
        body = ExportTraceServiceResponse().SerializeToString()
        return Response(body, media_type="application/x-protobuf")


async def start_collector(nursery: trio.Nursery) -> tuple[Collector, str]:
    from engine.serve.asgi import serve_app

    collector = Collector()
    url = await nursery.start(functools.partial(serve_app, collector.app, LOOPBACK, 0))
    return collector, url


async def _down_then_up(nursery, profile: str = "down", **tables):
    """Mock a (``profile``: 500s by default, tried first) and b (healthy), and a config."""
    a = await start_mock(nursery, "a", profile)
    b = await start_mock(nursery, "b")
    config = live_config([a, b], routing={"policy": "priority"}, **tables)
    return attrs.evolve(
        config, providers=(config.providers[0], attrs.evolve(config.providers[1], priority=1))
    )


async def test_spans_reach_a_collector_and_the_last_leave_as_the_server_stops(nursery, tmp_path):
    collector, otlp = await start_collector(nursery)
    config = await _down_then_up(
        nursery,
        traces={"otlp_endpoint": otlp},
        callers={"keys_file": keys_file(tmp_path), "reload_every": 0.001},
    )
    stop = trio.Event()
    async with trio.open_nursery() as server:
        url = await server.start(
            functools.partial(
                serve_router,
                config,
                env={"CALLBOARD_KEYS": f"web={WEB}"},
                host=LOOPBACK,
                port=0,
                shutdown_trigger=stop.wait,
                grace=1.0,
            )
        )
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            headers = {"authorization": f"Bearer {WEB}"}
            reply = await http.post("/v1/chat/completions", json=CHAT, headers=headers)
        assert reply.json()["provider"] == "b"
        stop.set()
    # serve_router returned: the server stopped and flushed its spans (no timer waited).
    assert collector.content_types == {"application/x-protobuf"}
    [request] = [s for s in collector.spans if not s.parent_id]
    failed, answered = sorted(
        (s for s in collector.spans if s.parent_id), key=lambda s: s.attributes["callboard.attempt"]
    )
    assert request.name == "chat auto" and request.kind == INTERNAL
    assert (failed.name, failed.kind, answered.kind) == ("chat default", CLIENT, CLIENT)
    for attempt in (failed, answered):
        assert (attempt.trace_id, attempt.parent_id) == (request.trace_id, request.span_id)
        assert request.start <= attempt.start <= attempt.end <= request.end
    assert failed.end <= answered.start
    r = request.attributes
    assert r["gen_ai.operation.name"] == "chat"
    assert (r["gen_ai.request.model"], r["gen_ai.response.model"]) == ("auto", "default")
    assert r["gen_ai.provider.name"] == "openai"
    assert r["gen_ai.request.max_tokens"] == 8
    assert r["gen_ai.response.id"] == reply.json()["id"].removeprefix("chatcmpl-")
    assert r["gen_ai.usage.output_tokens"] == reply.json()["usage"]["completion_tokens"]
    assert r["gen_ai.response.finish_reasons"] == ("stop",)
    assert (r["callboard.outcome"], r["callboard.account"], r["callboard.attempts"]) == (
        "ok",
        "b",
        2,
    )
    assert r["callboard.caller.key_id"] == "web"
    assert "error.type" not in r and request.status != ERROR
    f = failed.attributes
    assert f["error.type"] == f["callboard.outcome"] != "ok" and failed.status == ERROR
    assert (f["callboard.account"], f["callboard.attempt"], f["callboard.failover"]) == (
        "a",
        1,
        False,
    )
    assert f["server.address"] == LOOPBACK and isinstance(f["server.port"], int)
    assert f["callboard.breaker.state"] == "closed"
    a = answered.attributes
    assert (a["callboard.account"], a["callboard.attempt"], a["callboard.failover"]) == (
        "b",
        2,
        True,
    )
    assert a["callboard.outcome"] == "ok" and "error.type" not in a
    assert a["gen_ai.usage.input_tokens"] > 0
    # A whole answer (not streamed): its first token is its end, not a time the router saw.
    assert "callboard.ttft" not in a and "callboard.ttft" not in r
    assert a["callboard.ratelimit.requests.limit"] > 0  # the mock's x-ratelimit-* headers
    assert "callboard.ratelimit.requests.remaining" in a
    # No message content unless asked, and never the caller's key.
    everything = json.dumps([attrs.asdict(s) for s in collector.spans])
    assert "Why this job?" not in everything and "gen_ai.input.messages" not in everything
    assert WEB not in everything


async def test_content_is_recorded_only_when_turned_on_and_the_file_is_otlp_json(nursery, tmp_path):
    path = tmp_path / "traces.jsonl"
    config = await _down_then_up(nursery, traces={"file": str(path), "capture_content": True})
    async with open_router(config, env={}) as live:
        await live.complete([{"role": "user", "content": "Why this job?"}], max_tokens=8)
        assert live.tracing is not None
        await trio.to_thread.run_sync(live.tracing.flush)
        spans = read_json_file(path)
    [request] = [s for s in spans if not s.parent_id]
    assert len(spans) == 3 and {s.parent_id for s in spans} == {"", request.span_id}
    messages = json.loads(request.attributes["gen_ai.input.messages"])
    assert messages == [{"role": "user", "parts": [{"type": "text", "content": "Why this job?"}]}]
    [output] = json.loads(request.attributes["gen_ai.output.messages"])
    assert output["role"] == "assistant" and output["parts"][0]["content"]
    # OTLP JSON: hex ids, lowerCamelCase keys, enums as integers.
    line = json.loads(path.read_text().splitlines()[0])
    span = line["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert len(span["traceId"]) == 32 and int(span["traceId"], 16)
    assert len(span["spanId"]) == 16 and isinstance(span["kind"], int)
    assert "startTimeUnixNano" in span


async def test_a_sample_ratio_of_zero_records_nothing(nursery, tmp_path):
    path = tmp_path / "traces.jsonl"
    config = await _down_then_up(nursery, traces={"file": str(path), "sample_ratio": 0.0})
    async with open_router(config, env={}) as live:
        await live.complete([{"role": "user", "content": "Hello?"}], max_tokens=8)
        assert live.tracing is not None
        await trio.to_thread.run_sync(live.tracing.flush)
        assert path.read_text() == ""


async def test_traces_off_by_default(nursery):
    config = await _down_then_up(nursery)
    async with open_router(config, env={}) as live:
        assert live.tracing is None
        assert not live.router.providers[0].attempts.detailed  # no details built per attempt


async def test_a_429_attempt_carries_its_retry_after(nursery, tmp_path):
    path = tmp_path / "traces.jsonl"
    config = await _down_then_up(nursery, "rate-limited", traces={"file": str(path)})
    async with open_router(config, env={}) as live:
        await live.complete([{"role": "user", "content": "Hello?"}], max_tokens=8)
        assert live.tracing is not None
        await trio.to_thread.run_sync(live.tracing.flush)
    [limited] = [s for s in read_json_file(path) if s.attributes.get("callboard.account") == "a"]
    assert limited.attributes["error.type"] == "rate_limited"
    assert limited.attributes["callboard.retry_after"] == 10.0
    assert limited.attributes["callboard.ratelimit.retry_after"] == 10.0
