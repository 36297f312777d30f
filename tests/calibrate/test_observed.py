"""Reading traces: callboard's own (simulated here) and any app's GenAI spans, and clear
errors for files that are neither."""

from __future__ import annotations

import json

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from actors.runtime.errors import InvalidSetting
from engine.traces.otlp_json import otlp_json
from engine.traces.tracing import SIMULATED_EPOCH_NS
from sims.observed import read_traces
from sims.runner import simulate
from sims.scenario import load


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    path = tmp_path_factory.mktemp("traces") / "sim.jsonl"
    scenario, _ = load("chaos-quarantine", ["workload.interviews=4", "workload.turns=5"])
    simulate(scenario, traces=path)
    return path


def test_callboard_traces_read_as_requests_with_their_attempts(simulated):
    observed = read_traces([simulated])
    assert observed.source == "callboard"
    assert observed.epoch_ns >= SIMULATED_EPOCH_NS
    requests = observed.requests
    assert len(requests) == 20
    assert [r.start for r in requests] == sorted(r.start for r in requests)
    assert requests[0].start == 0.0
    assert {r.session for r in requests} == {f"interview-{n:05d}" for n in range(4)}
    for request in requests:
        assert request.end >= request.start and request.kind
        for attempt in request.attempts:
            assert request.start <= attempt.start <= attempt.end <= request.end + 1e-9
            assert attempt.account and attempt.model == "gpt-4o-mini"
        if request.outcome == "ok" and not request.cached:
            assert request.attempts[-1].error is None
            assert request.ttft is not None and request.output_tokens
    failed = [a for r in requests for a in r.attempts if a.error]
    assert failed and all(a.ttft is None for a in failed)


def test_a_pretty_printed_object_and_several_files(simulated, tmp_path):
    lines = simulated.read_text().splitlines()
    pretty = tmp_path / "one.json"
    pretty.write_text(json.dumps(json.loads(lines[0]), indent=2))
    assert len(read_traces([pretty]).requests) == len(read_traces([simulated]).requests)
    both = read_traces([simulated, pretty])
    assert len(both.requests) == 2 * len(read_traces([simulated]).requests)


def _genai_file(path, *, with_chat=True):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("app")
    base = 1_800_000_000_000_000_000
    for n in range(3):
        attributes = {
            "gen_ai.operation.name": "chat" if with_chat else "embeddings",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024",
            "gen_ai.response.id": f"chatcmpl-{n}",
            "gen_ai.usage.input_tokens": 10 + n,
            "gen_ai.usage.output_tokens": 20 + n,
            "server.address": "api.example.com",
            "server.port": 443,
        }
        if n == 2:
            attributes["error.type"] = "RateLimitError"
        span = tracer.start_span(
            "chat gpt-4o-mini",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=base + n * 2_000_000_000,
        )
        if n == 1:
            span.add_event("gen_ai.first_token", timestamp=base + n * 2_000_000_000 + 300_000_000)
        span.end(end_time=base + n * 2_000_000_000 + 1_000_000_000)
    path.write_text(json.dumps(otlp_json(exporter.get_finished_spans())) + "\n")
    return path


def test_bare_genai_spans_are_one_request_of_one_attempt_each(tmp_path):
    observed = read_traces([_genai_file(tmp_path / "app.jsonl")])
    assert observed.source == "genai" and observed.epoch_ns == 1_800_000_000_000_000_000
    assert [r.request_id for r in observed.requests] == ["chatcmpl-0", "chatcmpl-1", "chatcmpl-2"]
    assert [r.outcome for r in observed.requests] == ["ok", "ok", "RateLimitError"]
    first, second, third = observed.requests
    assert (first.start, first.end, first.input_tokens, first.output_tokens) == (0.0, 1.0, 10, 20)
    (attempt,) = second.attempts
    assert attempt.account == "api.example.com:443" and attempt.model == "gpt-4o-mini-2024"
    assert attempt.ttft == pytest.approx(0.3) and second.ttft == pytest.approx(0.3)
    assert first.ttft is None and third.attempts[0].error == "RateLimitError"


def test_bad_files_are_named_with_their_line(tmp_path):
    not_json = tmp_path / "bad.jsonl"
    not_json.write_text('{"resourceSpans": []}\nnot json\n')
    with pytest.raises(InvalidSetting, match=r"bad\.jsonl:2"):
        read_traces([not_json])
    not_otlp = tmp_path / "other.jsonl"
    not_otlp.write_text('{"hello": 1}\n')
    with pytest.raises(InvalidSetting, match=r"other\.jsonl:1.*resourceSpans"):
        read_traces([not_otlp])
    wrong_type = tmp_path / "typed.jsonl"
    wrong_type.write_text('{"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": "x"}]}]}]}\n')
    with pytest.raises(InvalidSetting, match=r"typed\.jsonl:1.*ExportTraceServiceRequest"):
        read_traces([wrong_type])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InvalidSetting, match="empty"):
        read_traces([empty])
    with pytest.raises(InvalidSetting, match="no-such"):
        read_traces([tmp_path / "no-such.jsonl"])


def test_files_without_a_genai_span_say_so(tmp_path):
    path = _genai_file(tmp_path / "embeddings.jsonl", with_chat=False)
    with pytest.raises(InvalidSetting, match=r"embeddings\.jsonl.*GenAI spans.*found 3 spans"):
        read_traces([path])


def test_ids_in_protobufs_own_base64_are_read_too(tmp_path):
    """protobuf's JSON mapping writes ids as base64 (OTLP JSON as hex): both are taken."""
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    hexed = read_traces([_genai_file(tmp_path / "hex.jsonl")])
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = provider.get_tracer("app").start_span(
        "chat m", kind=SpanKind.CLIENT, attributes={"gen_ai.operation.name": "chat"}
    )
    span.end()
    path = tmp_path / "base64.jsonl"
    path.write_text(json.dumps(MessageToDict(encode_spans(exporter.get_finished_spans()))))
    (request,) = read_traces([path]).requests
    assert len(request.request_id) == 16 and int(request.request_id, 16)  # the span id, hex
    assert len(hexed.requests) == 3
