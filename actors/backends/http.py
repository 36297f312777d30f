"""The HTTP backend: one real provider account behind an OpenAI- or Anthropic-style API.

It implements the :class:`~actors.backends.Backend` protocol over the lean
HTTP/1.1 client of :mod:`actors.backends.http1` (chosen over httpx for its CPU
cost per request; see there), maps every upstream outcome to a named
:class:`~actors.errors.AttemptError`, and hands the rate-limit headers of every
response to ``on_limits`` so the provider actor can slow down before a 429.
When the calling task streams (:mod:`actors.backends.sink`), the call is made
with ``stream: true`` and each text delta goes to the sink as it arrives.

The per-attempt timeout is the provider actor's job (a trio cancel scope); the
client bounds the connect phase and, if configured, each read. API keys live in
:class:`Secret`, which never shows its value, and are scrubbed from any upstream
text quoted in an error.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import trio

from actors.backends import BackendReply, Usage
from actors.backends.dialects import Dialect, StreamFault, dialect_for, error_message
from actors.backends.http1 import Headers, HttpClient, HttpError, Response
from actors.backends.ratelimit_headers import RateLimitInfo, parse_rate_limit_headers
from actors.backends.sink import StreamSink, current_sink
from actors.errors import AttemptError, AuthFailed, MalformedReply, RateLimited, UpstreamError
from actors.messages import ChatRequest
from actors.runtime import clock

#: Retry-After assumed for a 429 that does not say how long to wait.
DEFAULT_RETRY_AFTER = 1.0
_QUOTE_LIMIT = 200
# Header names whose configured values are credentials, scrubbed like the API key.
_CREDENTIAL_HEADER = re.compile(r"authorization|cookie|key|token|secret|password", re.IGNORECASE)
#: The largest reply body read whole (a completion, or an error page).
MAX_REPLY_BYTES = 16 * 1024 * 1024
#: After a stream's end marker, how long the rest of its body may take to arrive
#: (usually at once) before the connection is closed instead of kept alive.
_DRAIN_AFTER_DONE = 1.0


class Secret:
    """An API key that never appears in a repr, a str, a log line or an error."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError("an API key must be a non-empty string")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def scrub(self, text: str) -> str:
        return text.replace(self._value, "***")

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@attrs.frozen
class Endpoint:
    """Where and how to reach one account: API kind, base URL, upstream model, key."""

    name: str
    kind: str
    base_url: str
    model: str
    api_key: Secret | None = attrs.field(default=None, repr=False)
    headers: dict[str, str] = attrs.field(factory=dict, repr=False)
    options: dict[str, Any] = attrs.field(factory=dict)

    def secrets(self) -> list[Secret]:
        """The API key and every configured header value that names a credential
        (``Authorization``, ``x-api-key``, a token, a cookie ...): what must never show."""
        found = [self.api_key] if self.api_key is not None else []
        found += [
            Secret(value)
            for name, value in self.headers.items()
            if value and _CREDENTIAL_HEADER.search(name)
        ]
        return found


class UpstreamRejected(AttemptError):
    """A 4xx other than 401/403/429: this provider refuses this request (e.g. unknown model).

    Another provider may accept it; it says nothing about this one's health, so
    breakers and health scores ignore it.
    """

    code = "upstream_rejected"
    status = 502

    def __init__(self, provider: str, upstream_status: int, detail: str = "") -> None:
        super().__init__(provider, f"HTTP {upstream_status} {detail}".rstrip())
        self.upstream_status = upstream_status


class ConnectionFailed(UpstreamError):
    """No HTTP answer at all: refused, reset, DNS, TLS or a dropped connection."""

    def __init__(self, provider: str, detail: str) -> None:
        AttemptError.__init__(self, provider, f"connection failed: {detail}")
        self.upstream_status = 0


class StreamBroken(UpstreamError):
    """The provider failed after part of the answer was streamed to a client.

    Not retryable: a second answer cannot be appended to half of the first.
    """

    retryable = False


class HttpBackend:
    """One account's real API, reached with a shared :class:`HttpClient`."""

    def __init__(
        self,
        endpoint: Endpoint,
        client: HttpClient,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoint = endpoint
        self._secrets = endpoint.secrets()
        self.client = client
        self.dialect: Dialect = dialect_for(endpoint.kind, **endpoint.options)
        self._wall_clock = wall_clock
        self._url = self.dialect.url(endpoint.base_url)
        #: Called with the rate-limit headers of every response that has any.
        self.on_limits: Callable[[RateLimitInfo], None] | None = None
        self.last_limits = RateLimitInfo()

    def __repr__(self) -> str:
        e = self.endpoint
        return f"HttpBackend({e.name!r}, kind={e.kind!r}, url={self._url!r}, model={e.model!r})"

    # --- the Backend protocol ------------------------------------------------
    async def complete(self, request: ChatRequest, request_id: str, usage: Usage) -> BackendReply:
        sink = current_sink()
        if sink is not None:
            return await self.stream(request, request_id, sink, usage)
        start = clock.now()
        name = self.endpoint.name
        body = json.dumps(self.dialect.body(request, self.endpoint.model, stream=False))
        try:
            response = await self.client.request(
                "POST",
                self._url,
                headers=self._headers(request_id, request),
                body=body.encode(),
                limit=MAX_REPLY_BYTES,
            )
        except HttpError as exc:
            raise ConnectionFailed(name, self._quote(str(exc))) from None
        self._observe(response.headers)
        if response.status != 200:
            raise self._status_error(response.status, response.headers, response.text)
        usage.input_tokens = request.prompt_tokens
        try:
            data = json.loads(response.content)
        except ValueError:
            raise MalformedReply(name, f"reply is not JSON: {self._sample(response)}") from None
        try:
            content, tokens = self.dialect.reply(data)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise self._not_a_completion(data, f"reply is not a completion: {exc}") from None
        usage.output_tokens = _tokens(tokens, content)
        return BackendReply(content, usage.output_tokens, clock.now() - start)

    async def stream(
        self, request: ChatRequest, request_id: str, sink: StreamSink, usage: Usage
    ) -> BackendReply:
        """Stream the answer into ``sink`` as it arrives; return it whole at the end."""
        name = self.endpoint.name
        await sink.start_attempt(name)
        start = clock.now()
        body = json.dumps(self.dialect.body(request, self.endpoint.model, stream=True))
        parts: list[str] = []
        tokens: int | None = None
        ttft: float | None = None
        try:
            async with self.client.stream(
                "POST", self._url, headers=self._headers(request_id, request), body=body.encode()
            ) as response:
                self._observe(response.headers)
                if response.status != 200:
                    text = (await response.read(MAX_REPLY_BYTES)).decode("utf-8", "replace")
                    raise self._status_error(response.status, response.headers, text)
                usage.input_tokens = request.prompt_tokens
                kind = response.headers.get("content-type", "")
                if not kind.lower().startswith("text/event-stream"):
                    await response.read(MAX_REPLY_BYTES)
                    raise self._not_an_event_stream(response)
                complete = done = False
                async with contextlib.aclosing(_server_sent_events(response)) as events:
                    async for event, data in events:
                        step = self.dialect.stream_event(event, data)
                        if step.text:
                            if ttft is None:
                                ttft = clock.now() - start
                            parts.append(step.text)
                            # Billed as generated, so a stream cut short costs what it sent.
                            usage.output_tokens += _tokens(None, step.text)
                            await sink.text(step.text)
                        if step.completion_tokens is not None:
                            tokens = step.completion_tokens
                        complete = complete or step.finished or step.done
                        if step.done:
                            done = True
                            break
                    if done:
                        # Read the body's end too, so that the connection can be kept alive.
                        with trio.move_on_after(_DRAIN_AFTER_DONE):
                            async for _ in events:
                                pass
                if not complete:
                    raise self._broken(sink, "the stream ended before the answer did")
        except HttpError as exc:
            raise self._broken(sink, f"connection failed: {self._quote(str(exc))}") from None
        except StreamFault as exc:
            raise self._broken(sink, f"error event: {self._quote(str(exc))}") from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if sink.started and not sink.restartable:
                raise StreamBroken(name, 200, f"unreadable event: {exc}") from None
            raise MalformedReply(name, f"unreadable event: {exc}") from None
        content = "".join(parts)
        usage.output_tokens = _tokens(tokens, content)
        return BackendReply(
            content, usage.output_tokens, clock.now() - start if ttft is None else ttft
        )

    # --- helpers -------------------------------------------------------------
    def _headers(self, request_id: str, request: ChatRequest | None = None) -> dict[str, str]:
        key = self.endpoint.api_key
        headers = dict(self.endpoint.headers)
        headers.update(self.dialect.headers(key.reveal() if key is not None else None))
        headers["x-callboard-request-id"] = request_id
        if request is not None and request.expected_output_tokens is not None:
            # Only modelled workloads (simulated interviews replayed live) set it; it tells
            # a mock provider how long an answer to model, as the virtual one is told.
            headers["x-callboard-expected-tokens"] = str(request.expected_output_tokens)
        return headers

    def _observe(self, headers: Headers) -> RateLimitInfo:
        info = parse_rate_limit_headers(headers, self._wall_clock())
        if info:
            self.last_limits = info
            if self.on_limits is not None:
                self.on_limits(info)
        return info

    def _quote(self, text: str) -> str:
        """Upstream text fit for an error message: short, one line, credentials scrubbed."""
        for secret in self._secrets:
            text = secret.scrub(text)
        text = " ".join(text.split())
        return text if len(text) <= _QUOTE_LIMIT else text[: _QUOTE_LIMIT - 3] + "..."

    def _sample(self, response: Response) -> str:
        """The reply's content type and start, for an error saying it is not what was asked."""
        kind = response.headers.get("content-type") or "no content-type"
        return self._quote(f"{kind}: {response.content[:_QUOTE_LIMIT].decode('utf-8', 'replace')}")

    def _not_a_completion(self, data: Any, detail: str) -> AttemptError:
        """A 200 that is no completion: an error body (some servers send those) or junk."""
        message = error_message(data)
        if message:
            return UpstreamError(self.endpoint.name, 200, f"error body: {self._quote(message)}")
        return MalformedReply(self.endpoint.name, self._quote(detail))

    def _not_an_event_stream(self, response: Response) -> AttemptError:
        """A streamed call answered 200 without an event stream (JSON error, HTML page...)."""
        try:
            data = json.loads(response.content)
        except ValueError:
            data = None
        if error_message(data):
            return self._not_a_completion(data, "")
        return MalformedReply(
            self.endpoint.name, f"a stream must be text/event-stream, not {self._sample(response)}"
        )

    def _status_error(self, status: int, headers: Headers, text: str) -> AttemptError:
        name = self.endpoint.name
        try:
            detail = error_message(json.loads(text)) or text
        except ValueError:
            detail = text
        detail = self._quote(detail)
        if status in (401, 403):
            return AuthFailed(name, f"HTTP {status} {detail}".rstrip())
        if status == 429:
            retry_after = parse_rate_limit_headers(headers, self._wall_clock()).retry_after
            wait = DEFAULT_RETRY_AFTER if retry_after is None else retry_after
            return RateLimited(name, "upstream", wait)
        if 400 <= status < 500 and status != 408:
            return UpstreamRejected(name, status, detail)
        return UpstreamError(name, status, detail)

    def _broken(self, sink: StreamSink, detail: str) -> AttemptError:
        name = self.endpoint.name
        if sink.started and not sink.restartable:
            return StreamBroken(name, 200, detail)
        return UpstreamError(name, 200, detail)


def _tokens(reported: Any, content: str) -> int:
    """The provider's count when it gave one, else the usual ~4 characters a token."""
    if isinstance(reported, int) and not isinstance(reported, bool) and reported >= 0:
        return reported
    return max(1, len(content) // 4) if content else 0


async def _server_sent_events(response: Response) -> AsyncIterator[tuple[str | None, str]]:
    """(event name, data) per server-sent event; comments and ids are skipped."""
    event: str | None = None
    data: list[str] = []
    async with contextlib.aclosing(response.iter_lines()) as lines:
        async for line in lines:
            if not line:
                if data:
                    yield event, "\n".join(data)
                event, data = None, []
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "data":
                data.append(value)
            elif field == "event":
                event = value
    if data:
        yield event, "\n".join(data)
