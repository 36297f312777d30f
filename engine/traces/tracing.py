"""The SDK wired for each world: a tracer provider, its exporters, and the recorder.

Live, spans leave through the SDK's batch processor, whose thread does the encoding and
the I/O, so the trio loop never waits on a collector or a disk; only flushing and
shutting down block, and the server runs them in a worker thread. A simulation writes
its file synchronously, with ids from the seed and times from a fixed epoch, so the
same run writes the same bytes.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased

from engine.traces.config import TracesConfig
from engine.traces.ids import SeededIds
from engine.traces.otlp_json import OtlpJsonFile
from engine.traces.spans import SpanRecorder, Upstream

#: The instrumentation scope every span is under.
SCOPE = "callboard"

#: Where a simulation's clock starts: 2026-01-01T00:00:00Z, in Unix nanoseconds.
SIMULATED_EPOCH_NS = calendar.timegm((2026, 1, 1, 0, 0, 0)) * 1_000_000_000

#: Spans a line of a simulation's traces file holds (the last line the rest).
SIMULATED_BATCH = 512


class Tracing:
    """A tracer provider and the recorder that feeds it; shut down to flush and close."""

    def __init__(self, provider: TracerProvider, recorder: SpanRecorder) -> None:
        self.provider = provider
        self.recorder = recorder

    def flush(self) -> bool:
        """Export every ended span now (blocks: live, call it from a worker thread)."""
        return self.provider.force_flush()

    def shutdown(self) -> None:
        """Flush, stop the exporters and close the file (blocks, like :meth:`flush`)."""
        self.provider.shutdown()


def live_tracing(
    config: TracesConfig, accounts: Mapping[str, Upstream], clock_now: float
) -> Tracing:
    """Tracing for the live router; ``clock_now`` is the router's clock read now, which
    maps its seconds to wall time."""
    # The environment's OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME apply, and name
    # the service "callboard" when they do not.
    resource = Resource.create({"callboard.world": "live"})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "callboard"}))
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)), resource=resource
    )
    url = config.traces_url
    if url is not None:
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    if config.file is not None:
        provider.add_span_processor(BatchSpanProcessor(OtlpJsonFile(config.file)))
    epoch_ns = time.time_ns() - round(clock_now * 1e9)
    recorder = SpanRecorder(
        provider.get_tracer(SCOPE), accounts, epoch_ns, capture_content=config.capture_content
    )
    return Tracing(provider, recorder)


def simulated_tracing(
    path: str | Path,
    accounts: Mapping[str, Upstream],
    seed: int,
    *,
    resource: Mapping[str, Any] = {},
    capture_content: bool = False,
) -> Tracing:
    """Tracing for a simulation: every request, ids from ``seed``, virtual seconds
    counted from :data:`SIMULATED_EPOCH_NS`."""
    provider = TracerProvider(
        sampler=ALWAYS_ON,
        # Only what the run decides: no host or process attributes, which would differ.
        resource=Resource({"service.name": "callboard", "callboard.world": "sim", **resource}),
        id_generator=SeededIds(seed),
    )
    provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFile(path, SIMULATED_BATCH)))
    recorder = SpanRecorder(
        provider.get_tracer(SCOPE), accounts, SIMULATED_EPOCH_NS, capture_content=capture_content
    )
    return Tracing(provider, recorder)
