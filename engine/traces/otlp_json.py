"""A span exporter writing the OTLP JSON file format: one export request a line.

This is what the OpenTelemetry collector's file exporter writes and its OTLP JSON file
receiver reads: each line an ``ExportTraceServiceRequest`` in the protobuf JSON mapping
(lowerCamelCase keys, enums as integers) with the OTLP exceptions: trace and span ids
as hex strings, not base64. The SDK's own encoder builds the request.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from actors.runtime.errors import InvalidSetting

_ID_KEYS = ("traceId", "spanId", "parentSpanId")


def otlp_json(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """``spans`` as one OTLP JSON ``ExportTraceServiceRequest``."""
    message = MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    for resource in message.get("resourceSpans", ()):
        for scope in resource.get("scopeSpans", ()):
            for span in scope.get("spans", ()):
                _hex_ids(span)
                for link in span.get("links", ()):
                    _hex_ids(link)
    return message


def _hex_ids(item: dict[str, Any]) -> None:
    for key in _ID_KEYS:
        value = item.get(key)
        if value:
            item[key] = base64.b64decode(value).hex()


class OtlpJsonFile(SpanExporter):
    """Writes spans to ``path``, a line per ``every`` spans (and the rest at a flush).

    Live, behind the SDK's batch processor, ``every`` is 1: each batch is a line. A
    simulation batches here instead, so lines break at the same spans on every run.
    """

    def __init__(self, path: str | Path, every: int = 1) -> None:
        try:
            self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed at shutdown)
        except OSError as exc:
            allowed = f"a writable path ({exc.strerror})"
            raise InvalidSetting("traces.file", str(path), allowed) from None
        self._every = every
        self._pending: list[ReadableSpan] = []
        self._lock = threading.Lock()  # the batch processor exports from its own thread

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            if self._file.closed:
                return SpanExportResult.FAILURE
            self._pending.extend(spans)
            if len(self._pending) >= self._every:
                self._write()
        return SpanExportResult.SUCCESS

    def _write(self) -> None:
        line = json.dumps(otlp_json(self._pending), separators=(",", ":"), ensure_ascii=False)
        self._file.write(line + "\n")
        self._file.flush()
        self._pending.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        with self._lock:
            if self._pending and not self._file.closed:
                self._write()
        return True

    def shutdown(self) -> None:
        self.force_flush()
        with self._lock:
            self._file.close()
