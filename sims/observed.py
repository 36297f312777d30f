"""What traces say happened: requests and their attempts, read from OTLP JSON files.

Calibration and comparison both start here. Two kinds of traces are understood:
callboard's own (a request span with a CLIENT span per attempt under it, live or
simulated) and those of any app following the OpenTelemetry GenAI conventions (each
``chat ...`` CLIENT span one request of one attempt, e.g. the official OpenAI
instrumentation calling a provider directly). Times are seconds from the earliest span
in the files, so a day of live traces and a simulated run read alike.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
from google.protobuf.json_format import ParseDict, ParseError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from actors.runtime.errors import InvalidSetting

#: OTLP's CLIENT span kind, as a number (the JSON has it so).
CLIENT = 3
#: GenAI operations that are one inference call (``gen_ai.operation.name``).
OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})
_RATELIMIT = re.compile(r"^callboard\.ratelimit\.(.+)\.(remaining|limit|reset)$")
_ID_KEYS = ("traceId", "spanId", "parentSpanId")
_CLASS = re.compile(r"^<class '([^']+)'>$")


@attrs.frozen
class ObservedAttempt:
    """One call to a provider account, as its span says."""

    account: str  # callboard.account, else server.address[:port], else gen_ai.provider.name
    model: str | None  # gen_ai.response.model or gen_ai.request.model
    start: float  # seconds since the earliest span in the files
    end: float
    ttft: float | None  # callboard.ttft, else from a GenAI first-token event if present
    input_tokens: int | None
    output_tokens: int | None
    error: str | None  # error.type (None: ok)
    retry_after: float | None
    ratelimit: dict[str, dict[str, float]]  # unit -> {"remaining", "limit", "reset"} seen
    provider: str | None = None  # gen_ai.provider.name (or the older gen_ai.system)
    request_model: str | None = None  # gen_ai.request.model: what the caller asked for


@attrs.frozen
class ObservedRequest:
    """One request a caller made, with the attempts sent for it (none: from the cache)."""

    request_id: str
    start: float
    end: float  # latency = end - start
    ttft: float | None
    session: str | None  # gen_ai.conversation.id / callboard.session.id
    kind: str | None  # callboard.request.kind
    outcome: str  # "ok" or an error code
    cached: bool
    input_tokens: int | None
    output_tokens: int | None
    attempts: tuple[ObservedAttempt, ...]


@attrs.frozen
class Observed:
    """Every request in a set of trace files."""

    requests: tuple[ObservedRequest, ...]  # sorted by start
    source: str  # "callboard" (request spans with attempt children) or "genai" (bare spans)
    epoch_ns: int  # the earliest span's start, absolute


def read_traces(paths: Sequence[str | Path]) -> Observed:
    """The requests in ``paths``: OTLP JSON files, one ``ExportTraceServiceRequest`` a
    line (the collector's file exporter; ``--traces-file``) or one pretty-printed object."""
    if not paths:
        raise InvalidSetting("traces", [], "one or more OTLP JSON trace files")
    spans = [span for path in paths for span in _spans(Path(path))]
    # A request span may sit under an app's own span (an embedded router): its kind, not
    # its place, tells it from its attempts.
    ours = [s for s in spans if s.kind != CLIENT and "callboard.request.id" in s.attributes]
    if ours:
        return _callboard(ours, spans)
    calls = [s for s in spans if s.kind == CLIENT and _is_inference(s)]
    if not calls:
        shown = ", ".join(str(p) for p in paths)
        raise InvalidSetting(
            "traces",
            shown,
            "files with GenAI spans (a CLIENT span with gen_ai.operation.name = chat, "
            f"or callboard's request spans); found {len(spans)} spans, none of them",
        )
    return _genai(calls)


@attrs.frozen
class _Span:
    """A span with its attributes as plain values."""

    span_id: str
    parent_span_id: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    first_token_ns: int | None


def _spans(path: Path) -> Iterator[_Span]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidSetting("traces", str(path), f"a readable UTF-8 file ({exc})") from None
    for number, data in _documents(path, text):
        try:
            message = ParseDict(_base64_ids(data), ExportTraceServiceRequest())
        except (ParseError, TypeError, ValueError) as exc:
            raise InvalidSetting(
                f"{path}:{number}",
                _head(data),
                f"an OTLP JSON ExportTraceServiceRequest ({exc})",
            ) from None
        for resource in message.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    yield _plain(span)


def _documents(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, JSON object): one a line, or the whole file as one object."""
    stripped = text.strip()
    if not stripped:
        raise InvalidSetting(str(path), "", "an OTLP JSON trace file; this one is empty")
    if "\n" in stripped and stripped.startswith("{"):
        try:
            whole = json.loads(stripped)
        except json.JSONDecodeError:
            whole = None  # then it is one object a line
        if isinstance(whole, dict):
            yield 1, whole
            return
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidSetting(
                f"{path}:{number}", line[:80], f"a JSON object ({exc.msg})"
            ) from None
        if not isinstance(data, dict) or "resourceSpans" not in data:
            raise InvalidSetting(
                f"{path}:{number}", _head(data), "an OTLP JSON object with resourceSpans"
            )
        yield number, data


def _head(data: object) -> str:
    return json.dumps(data)[:80]


def _base64_ids(data: dict[str, Any]) -> dict[str, Any]:
    """OTLP JSON writes ids as hex, protobuf's JSON mapping wants base64: convert hex ones."""
    for resource in data.get("resourceSpans") or ():
        for scope in (resource or {}).get("scopeSpans") or ():
            for span in (scope or {}).get("spans") or ():
                for item in (span, *(span.get("links") or ())):
                    for key in _ID_KEYS:
                        value = item.get(key)
                        if isinstance(value, str) and _is_hex_id(value):
                            item[key] = base64.b64encode(bytes.fromhex(value)).decode()
    return data


def _is_hex_id(value: str) -> bool:
    return len(value) in (16, 32) and all(c in "0123456789abcdefABCDEF" for c in value)


def _plain(span: Span) -> _Span:
    first = None
    for event in span.events:
        if "first_token" in event.name or "first_chunk" in event.name:
            first = event.time_unix_nano
            break
    return _Span(
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        kind=span.kind,
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        attributes={a.key: _value(a.value) for a in span.attributes},
        first_token_ns=first,
    )


def _value(any_value: AnyValue) -> Any:
    which = any_value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return tuple(_value(v) for v in any_value.array_value.values)
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, which)


def _is_inference(span: _Span) -> bool:
    operation = span.attributes.get("gen_ai.operation.name")
    if operation is not None:
        return operation in OPERATIONS
    return "gen_ai.request.model" in span.attributes


def _callboard(requests: list[_Span], spans: list[_Span]) -> Observed:
    epoch = min(s.start_ns for s in spans)
    children: dict[str, list[_Span]] = {}
    for span in spans:
        if span.parent_span_id and span.kind == CLIENT:
            children.setdefault(span.parent_span_id, []).append(span)
    observed = []
    for span in requests:
        attempts = sorted(children.get(span.span_id, ()), key=lambda s: (s.start_ns, s.span_id))
        observed.append(_request(span, epoch, tuple(_attempt(a, epoch) for a in attempts)))
    return Observed(_sorted(observed), "callboard", epoch)


def _genai(calls: list[_Span]) -> Observed:
    epoch = min(s.start_ns for s in calls)
    observed = [_request(span, epoch, (_attempt(span, epoch),)) for span in calls]
    return Observed(_sorted(observed), "genai", epoch)


def _sorted(requests: list[ObservedRequest]) -> tuple[ObservedRequest, ...]:
    return tuple(sorted(requests, key=lambda r: (r.start, r.request_id)))


def _seconds(ns: int, epoch: int) -> float:
    return (ns - epoch) / 1e9


def _ttft(span: _Span) -> float | None:
    ttft = _number(span.attributes.get("callboard.ttft"))
    if ttft is None and span.first_token_ns is not None:
        ttft = (span.first_token_ns - span.start_ns) / 1e9
    return ttft


def _request(span: _Span, epoch: int, attempts: tuple[ObservedAttempt, ...]) -> ObservedRequest:
    a = span.attributes
    session = a.get("gen_ai.conversation.id") or a.get("callboard.session.id")
    outcome = a.get("callboard.outcome") or _error(a.get("error.type")) or "ok"
    request_id = a.get("callboard.request.id") or a.get("gen_ai.response.id") or span.span_id
    return ObservedRequest(
        request_id=str(request_id),
        start=_seconds(span.start_ns, epoch),
        end=_seconds(span.end_ns, epoch),
        ttft=_ttft(span),
        session=None if session is None else str(session),
        kind=_text(a.get("callboard.request.kind")),
        outcome=str(outcome),
        cached=bool(a.get("callboard.cache_hit", False)),
        input_tokens=_integer(a.get("gen_ai.usage.input_tokens")),
        output_tokens=_integer(a.get("gen_ai.usage.output_tokens")),
        attempts=attempts,
    )


def _attempt(span: _Span, epoch: int) -> ObservedAttempt:
    a = span.attributes
    retry_after = _number(a.get("callboard.retry_after"))
    if retry_after is None:
        retry_after = _number(a.get("callboard.ratelimit.retry_after"))
    ratelimit: dict[str, dict[str, float]] = {}
    for key in sorted(a):
        match = _RATELIMIT.match(key)
        value = _number(a[key])
        if match and value is not None:
            ratelimit.setdefault(match.group(1), {})[match.group(2)] = value
    return ObservedAttempt(
        account=_account(a),
        model=_text(a.get("gen_ai.response.model") or a.get("gen_ai.request.model")),
        start=_seconds(span.start_ns, epoch),
        end=_seconds(span.end_ns, epoch),
        ttft=_ttft(span),
        input_tokens=_integer(a.get("gen_ai.usage.input_tokens")),
        output_tokens=_integer(a.get("gen_ai.usage.output_tokens")),
        error=_error(a.get("error.type")),
        retry_after=retry_after,
        ratelimit=ratelimit,
        provider=_text(a.get("gen_ai.provider.name") or a.get("gen_ai.system")),
        request_model=_text(a.get("gen_ai.request.model")),
    )


def _account(a: dict[str, Any]) -> str:
    if a.get("callboard.account"):
        return str(a["callboard.account"])
    address = a.get("server.address")
    if address:
        port = a.get("server.port")
        return f"{address}:{port}" if port else str(address)
    return str(a.get("gen_ai.provider.name") or a.get("gen_ai.system") or "unknown")


def _error(value: object) -> str | None:
    """``error.type``; an exception class written as its repr (``<class 'openai.X'>``, as
    some instrumentation versions do) as its qualified name."""
    text = _text(value)
    match = _CLASS.match(text or "")
    return match.group(1) if match else text


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _integer(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)
