"""The router's records as spans: one per request, one per attempt under it.

Names and attributes follow the OpenTelemetry GenAI semantic conventions (the inference
span: ``chat {gen_ai.request.model}``; ``gen_ai.*``, ``error.type``, ``server.*``), and
callboard's own figures are under ``callboard.``. A request's span covers all its
attempts (kind INTERNAL: the router's own work); each attempt that reached a provider is
a CLIENT span under it. Spans are made when the request's record arrives, with explicit
start and end times from the records, so the same code traces the live router and the
simulator: only the epoch the clock's seconds count from differs.

Message contents are never recorded unless ``capture_content`` says so; then as the
conventions' opt-in ``gen_ai.input.messages`` / ``gen_ai.output.messages`` attributes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from engine.routing.recording import AttemptRecord, RequestRecord

if TYPE_CHECKING:
    from actors.messages import ChatRequest, Completion
    from actors.provider import AttemptSeen

#: The GenAI operation every span here is.
OPERATION = "chat"


@attrs.frozen
class Upstream:
    """What the spans of one account's attempts say of it."""

    #: ``gen_ai.provider.name``: ``openai``, ``anthropic``, or the account's family.
    system: str
    #: The model the account is asked for.
    model: str
    #: ``server.address`` / ``server.port`` of its API (None: a modelled provider).
    address: str | None = None
    port: int | None = None


class SpanRecorder:
    """A :class:`~engine.routing.recording.Recorder` that makes spans of what it is told.

    ``epoch_ns`` is the Unix time in nanoseconds at the clock's zero: trio's clock
    mapped to wall time live, a fixed date in a simulation. Attempts wait here, by
    request id, until their request's record arrives (attempts end before it).
    """

    __slots__ = ("_notes", "_waiting", "accounts", "capture_content", "epoch_ns", "tracer")

    def __init__(
        self,
        tracer: trace.Tracer,
        accounts: Mapping[str, Upstream],
        epoch_ns: int,
        *,
        capture_content: bool = False,
    ) -> None:
        self.tracer = tracer
        self.accounts = accounts
        self.epoch_ns = epoch_ns
        self.capture_content = capture_content
        self._waiting: dict[str, list[AttemptRecord]] = {}
        self._notes: dict[str, dict[str, Any]] = {}

    def note(self, request_id: str, attributes: dict[str, Any]) -> None:
        """Attributes the router does not know (the caller's key id) for the span of
        ``request_id``, told before it is routed."""
        self._notes[request_id] = attributes

    def _ns(self, seconds: float) -> int:
        return self.epoch_ns + round(seconds * 1e9)

    # --- the Recorder protocol ------------------------------------------------------------
    def record_attempt(self, attempt: AttemptRecord) -> None:
        if attempt.code == "rejected" or attempt.seen is None:
            return  # refused by the account's own limits before it was sent: no call
        self._waiting.setdefault(attempt.request_id, []).append(attempt)

    def record(self, outcome: RequestRecord) -> None:
        attempts = self._waiting.pop(outcome.request_id, None)
        request = outcome.request
        model = request.model if request is not None else "auto"
        # A first token the router saw: the answering attempt's, when it streamed.
        streamed = any(
            a.code == "ok" and a.seen is not None and not math.isnan(a.seen.ttft)
            for a in attempts or ()
        )
        attributes = _request_attributes(outcome, request, self.accounts, streamed)
        notes = self._notes.pop(outcome.request_id, None) if self._notes else None
        if notes:
            attributes.update(notes)
        if self.capture_content and request is not None:
            _content(attributes, request, outcome.completion)
        span = self.tracer.start_span(
            f"{OPERATION} {model}",
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=self._ns(outcome.start),
        )
        if outcome.code not in ("ok", "cancelled"):
            span.set_status(Status(StatusCode.ERROR, outcome.code))
        if attempts:
            self._attempt_spans(span, outcome, request, attempts)
        span.end(end_time=self._ns(outcome.start + outcome.latency))

    def _attempt_spans(
        self,
        parent: trace.Span,
        outcome: RequestRecord,
        request: ChatRequest | None,
        attempts: list[AttemptRecord],
    ) -> None:
        context = trace.set_span_in_context(parent)
        attempts.sort(key=_started)  # hedged legs may end out of order
        previous: str | None = None
        for number, attempt in enumerate(attempts, 1):
            seen = attempt.seen
            assert seen is not None  # record_attempt keeps only those
            upstream = self.accounts.get(attempt.provider) or Upstream("unknown", "unknown")
            attributes = _attempt_attributes(attempt, seen, upstream, outcome.kind, request)
            attributes["callboard.attempt"] = number
            attributes["callboard.retry"] = previous == attempt.provider
            attributes["callboard.failover"] = previous is not None and previous != attempt.provider
            previous = attempt.provider
            span = self.tracer.start_span(
                f"{OPERATION} {upstream.model}",
                context=context,
                kind=SpanKind.CLIENT,
                attributes=attributes,
                start_time=self._ns(seen.start),
            )
            if attempt.code != "ok":
                span.set_status(Status(StatusCode.ERROR, attempt.code))
            span.end(end_time=self._ns(seen.end))


def _started(attempt: AttemptRecord) -> float:
    seen = attempt.seen
    return seen.start if seen is not None else 0.0


def _request_attributes(
    outcome: RequestRecord,
    request: ChatRequest | None,
    accounts: Mapping[str, Upstream],
    streamed: bool,
) -> dict[str, Any]:
    """The request span's attributes: what the caller asked, and how the router answered
    (``streamed``: its answer's first token came as such, so its time is known)."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": OPERATION,
        "gen_ai.request.model": request.model if request is not None else "auto",
    }
    if request is not None:
        _asked(attributes, request)
    provider = outcome.provider
    if provider is not None and provider in accounts:
        attributes["gen_ai.provider.name"] = accounts[provider].system
    completion = outcome.completion
    if completion is not None:
        attributes["gen_ai.response.id"] = completion.request_id
        attributes["gen_ai.response.model"] = completion.model
        attributes["gen_ai.usage.input_tokens"] = completion.prompt_tokens
        attributes["gen_ai.usage.output_tokens"] = completion.completion_tokens
        answer = completion.answer
        reason = "stop" if answer is None else answer.finish_reason
        if reason is not None:
            attributes["gen_ai.response.finish_reasons"] = (reason,)
    if outcome.session is not None:
        attributes["gen_ai.conversation.id"] = outcome.session
        attributes["callboard.session.id"] = outcome.session
    if outcome.code != "ok":
        attributes["error.type"] = outcome.code
    attributes["callboard.request.id"] = outcome.request_id
    attributes["callboard.request.kind"] = outcome.kind
    attributes["callboard.outcome"] = outcome.code
    if provider is not None:
        attributes["callboard.account"] = provider
    attributes["callboard.attempts"] = outcome.attempts
    attributes["callboard.cache_hit"] = outcome.cached
    if completion is not None and streamed:
        attributes["callboard.ttft"] = outcome.ttft
    attributes["callboard.slot_wait"] = outcome.slot_wait
    attributes["callboard.limit_wait"] = outcome.limit_wait
    attributes["callboard.cost"] = outcome.cost
    attributes["callboard.wasted"] = outcome.wasted
    return attributes


def _asked(attributes: dict[str, Any], request: ChatRequest) -> None:
    """What the caller asked for, as the conventions name it."""
    if request.max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = request.max_tokens
    if request.temperature is not None:
        attributes["gen_ai.request.temperature"] = request.temperature
    if request.stream:
        attributes["gen_ai.request.stream"] = True
    if request.deadline is not None:
        attributes["callboard.request.deadline"] = request.deadline
    if request.priority:
        attributes["callboard.request.priority"] = request.priority


def _attempt_attributes(
    attempt: AttemptRecord,
    seen: AttemptSeen,
    upstream: Upstream,
    kind: str,
    request: ChatRequest | None,
) -> dict[str, Any]:
    """An attempt span's attributes: the call to one account, and what it saw."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": OPERATION,
        "gen_ai.provider.name": upstream.system,
        "gen_ai.request.model": upstream.model,
    }
    if request is not None:
        _asked(attributes, request)
    ok = attempt.code == "ok"
    if ok:
        attributes["gen_ai.response.model"] = upstream.model
    attributes["gen_ai.usage.input_tokens"] = seen.input_tokens
    attributes["gen_ai.usage.output_tokens"] = seen.output_tokens
    if seen.finish_reason is not None:
        attributes["gen_ai.response.finish_reasons"] = (seen.finish_reason,)
    if not ok:
        attributes["error.type"] = attempt.code
    if upstream.address is not None:
        attributes["server.address"] = upstream.address
        if upstream.port is not None:
            attributes["server.port"] = upstream.port
    attributes["callboard.request.id"] = attempt.request_id
    attributes["callboard.account"] = attempt.provider
    attributes["callboard.request.kind"] = kind
    attributes["callboard.outcome"] = attempt.code
    if not math.isnan(seen.ttft):  # only a streamed answer's first token is seen
        attributes["callboard.ttft"] = seen.ttft
    attributes["callboard.slot_wait"] = seen.slot_wait
    attributes["callboard.breaker.state"] = seen.breaker
    attributes["callboard.cost"] = attempt.cost
    if seen.retry_after is not None:
        attributes["callboard.retry_after"] = seen.retry_after
    limits = seen.limits
    if limits:
        if limits.retry_after is not None:
            attributes["callboard.ratelimit.retry_after"] = limits.retry_after
        for observed in limits.limits:
            prefix = f"callboard.ratelimit.{observed.dimension}"
            attributes[f"{prefix}.remaining"] = observed.remaining
            if observed.limit is not None:
                attributes[f"{prefix}.limit"] = observed.limit
            if observed.reset_in is not None:
                attributes[f"{prefix}.reset"] = observed.reset_in
    return attributes


def _content(
    attributes: dict[str, Any], request: ChatRequest, completion: Completion | None
) -> None:
    """The conventions' opt-in content attributes: the messages in, the answer out."""
    messages = [
        {"role": message.role, "parts": _parts(message.content)} for message in request.messages
    ]
    attributes["gen_ai.input.messages"] = json.dumps(messages, ensure_ascii=False)
    if completion is not None:
        answer = completion.answer
        output = {
            "role": "assistant",
            "parts": [{"type": "text", "content": completion.content}],
            "finish_reason": "stop" if answer is None else answer.finish_reason,
        }
        attributes["gen_ai.output.messages"] = json.dumps([output], ensure_ascii=False)


def _parts(content: object) -> list[dict[str, Any]]:
    """A message's content as the conventions' parts: text as text; OpenAI's content
    parts with their text, others (images ...) by their type alone."""
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else ():
        if isinstance(part, dict) and part.get("type") == "text":
            parts.append({"type": "text", "content": str(part.get("text", ""))})
        elif isinstance(part, dict):
            parts.append({"type": str(part.get("type", "unknown"))})
    return parts
