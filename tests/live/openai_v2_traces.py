"""Traces written by the official OpenTelemetry OpenAI instrumentation (openai-v2), with no
callboard in the request's path: the `openai` client, instrumented, calls a mock provider
over loopback; its spans are written as an OTLP JSON file (the collector's format).

``python -m tests.live.openai_v2_traces PATH`` regenerates the committed fixture
(tests/calibrate/fixtures/openai-v2.jsonl).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import openai
import trio
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from engine.traces.otlp_json import otlp_json
from tests.live.conftest import start_mock

#: The mock: 30% of calls fail with HTTP 500; answers take 0.3 s / SPEED to the first token.
PROFILE, SPEED = "flaky", 20.0


def _calls(base_url: str, calls: int) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    for n in range(calls):
        messages = [{"role": "user", "content": f"Question {n}?"}]
        try:
            if n % 2:
                stream = client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=messages,  # type: ignore[arg-type]
                    stream=True,
                    stream_options={"include_usage": True},
                )
                for _ in stream:
                    pass
            else:
                client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
        except openai.APIError:
            pass  # the span records it (error.type)


async def write_traces(path: Path, calls: int = 60, seed: int = 1) -> None:
    """``calls`` chat calls through the instrumented client, their spans written to ``path``."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        async with trio.open_nursery() as nursery:
            mock = await start_mock(nursery, "a", PROFILE, speed=SPEED, seed=seed)
            await trio.to_thread.run_sync(_calls, f"{mock.url}/v1", calls)
            nursery.cancel_scope.cancel()
    finally:
        instrumentor.uninstrument()
    spans = exporter.get_finished_spans()
    path.write_text(json.dumps(otlp_json(spans), separators=(",", ":")) + "\n")


if __name__ == "__main__":
    trio.run(write_traces, Path(sys.argv[1]))
