"""Reading OTLP in tests: protobuf export requests and OTLP JSON files, as plain spans."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import attrs
from google.protobuf.json_format import ParseDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@attrs.frozen
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: int
    start: int
    end: int
    attributes: dict[str, Any]
    status: int


def value(any_value: AnyValue) -> Any:
    which = any_value.WhichOneof("value")
    if which == "array_value":
        return tuple(value(v) for v in any_value.array_value.values)
    return getattr(any_value, which)


def spans_of(request: ExportTraceServiceRequest) -> list[Span]:
    return [
        Span(
            span.trace_id.hex(),
            span.span_id.hex(),
            span.parent_span_id.hex(),
            span.name,
            span.kind,
            span.start_time_unix_nano,
            span.end_time_unix_nano,
            {a.key: value(a.value) for a in span.attributes},
            span.status.code,
        )
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]


def read_json_file(path: Path) -> list[Span]:
    """Every span of an OTLP JSON file, parsed by protobuf's own JSON parser after the
    OTLP JSON exception (hex ids) is undone, which checks the file's form too."""
    found = []
    for line in path.read_text().splitlines():
        data = json.loads(line)
        for resource in data["resourceSpans"]:
            for scope in resource["scopeSpans"]:
                for span in scope["spans"]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in span:
                            span[key] = _base64(span[key])
        found.extend(spans_of(ParseDict(data, ExportTraceServiceRequest())))
    return found


def _base64(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode()
