"""The HTTP backend: one real provider account behind an OpenAI- or Anthropic-style API.

It implements the :class:`~actors.backends.Backend` protocol over an
``httpx.AsyncClient`` shared by every account of the router (the client the
OpenAI and Anthropic SDKs are built on, configured as their users configure it:
pool limits, timeouts, proxies, certificates, HTTP/2), maps every upstream
outcome to a named :class:`~actors.errors.AttemptError`, and hands the
rate-limit headers of every response to ``on_limits`` (every wait capped at
``retry.max_retry_after``) so the provider actor can slow down before a 429.
When the caller passes a sink (:mod:`actors.backends.sink`), the call is made
with ``stream: true`` and each text delta goes to the sink as it arrives. A request
that asks for a stream without a sink is streamed too (into a
:class:`~actors.backends.sink.DiscardingSink`), so its first token is timed as the
virtual providers time it.

httpx frames the responses and bounds the time to connect; every body is read
through the size caps of :mod:`actors.backends.caps`, which httpx does not have.
The attempt's other timeouts (first byte, silence, total) are the provider actor's
watch (:mod:`actors.timeouts`), told here of every byte that arrives. API keys live in
:class:`Secret`, which never shows its value, and are scrubbed from any upstream
text quoted in an error.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import ssl
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

import attrs
import httpx
import trio

from actors.backends import BackendReply, Usage
from actors.backends.answers import AnswerBuilder, Piece, answer_chars
from actors.backends.caps import (
    DEFAULT_CAPS,
    EventReader,
    ReplyTooLarge,
    StreamTooLarge,
    UpstreamCaps,
    decoded,
)
from actors.backends.dialects import Dialect, StreamFault, dialect_for, error_message, is_overload
from actors.backends.ratelimit_headers import RateLimitInfo, parse_rate_limit_headers
from actors.backends.reach import REACHED
from actors.backends.sink import DiscardingSink, StreamSink
from actors.errors import (
    AttemptError,
    AuthFailed,
    MalformedReply,
    ProviderOverloaded,
    RateLimited,
    UpstreamError,
)
from actors.failures import ErrorCode
from actors.messages import ChatRequest
from actors.runtime import clock
from actors.timeouts import AnswerWatch

#: Retry-After assumed for a 429 that does not say how long to wait.
DEFAULT_RETRY_AFTER = 1.0
#: The longest wait a provider's hint may impose by default (``retry.max_retry_after``).
MAX_RETRY_AFTER = 300.0
_QUOTE_LIMIT = 200
# Header names whose configured values are credentials, scrubbed like the API key.
_CREDENTIAL_HEADER = re.compile(r"authorization|cookie|key|token|secret|password", re.IGNORECASE)
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


def connect_failed(exc: httpx.HTTPError) -> bool:
    """Whether ``exc`` means no connection was made (httpx's connect errors: refused,
    DNS, TLS handshake, connect timeout), as opposed to one that broke once made."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)


class UpstreamRejected(AttemptError):
    """A 4xx other than 401/403/429: this provider refuses this request (e.g. unknown model).

    Another provider may accept it; it says nothing about this one's health, so
    breakers and health scores ignore it.
    """

    code = ErrorCode.UPSTREAM_REJECTED
    status = 502

    def __init__(self, provider: str, upstream_status: int, detail: str = "") -> None:
        super().__init__(provider, f"HTTP {upstream_status} {detail}".rstrip())
        self.upstream_status = upstream_status


class ConnectionFailed(UpstreamError):
    """No HTTP answer at all: a connection reset or dropped, a read timeout, a proxy's
    refusal; :class:`Unreachable` when no connection was made."""

    def __init__(self, provider: str, detail: str) -> None:
        AttemptError.__init__(self, provider, f"connection failed: {detail}")
        self.upstream_status = 0


class Unreachable(ConnectionFailed):
    """No connection could be made at all: refused, DNS, TLS handshake, connect timeout.

    Its own code, so that the account is marked unreachable (:mod:`actors.backends.reach`)
    and logs and metrics tell a provider nobody can reach from one that answers badly;
    breakers and health count it as they count an ``upstream_error``.
    """

    code = ErrorCode.UNREACHABLE


class StreamBroken(UpstreamError):
    """The provider failed after part of the answer was streamed to a client.

    Not retryable: a second answer cannot be appended to half of the first.
    """

    retryable = False


class HttpBackend:
    """One account's real API, reached with a shared ``httpx.AsyncClient``."""

    def __init__(
        self,
        endpoint: Endpoint,
        client: httpx.AsyncClient,
        *,
        caps: UpstreamCaps = DEFAULT_CAPS,
        max_retry_after: float = MAX_RETRY_AFTER,
        wall_clock: Callable[[], float] = time.time,
        on_limits: Callable[[RateLimitInfo], None] | None = None,
        on_reach: Callable[[str], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._secrets = endpoint.secrets()
        self.client = client
        self.caps = caps
        self.max_retry_after = max_retry_after
        self.dialect: Dialect = dialect_for(endpoint.kind, **endpoint.options)
        self._wall_clock = wall_clock
        self._url = self.dialect.url(endpoint.base_url)
        #: Called with the rate-limit headers of every response that has any (a
        #: :meth:`~actors.backends.ratelimit_headers.LimitFeed.report`).
        self.on_limits = on_limits
        self.last_limits = RateLimitInfo()
        #: Told whether each exchange reached the provider (a
        #: :meth:`~actors.backends.reach.ReachFeed.report`): see :meth:`note_reach`.
        self.on_reach = on_reach
        self._unreachable = False

    def __repr__(self) -> str:
        e = self.endpoint
        return f"HttpBackend({e.name!r}, kind={e.kind!r}, url={self._url!r}, model={e.model!r})"

    # --- the Backend protocol ------------------------------------------------
    async def complete(
        self,
        request: ChatRequest,
        request_id: str,
        usage: Usage,
        sink: StreamSink | None = None,
        watch: AnswerWatch | None = None,
    ) -> BackendReply:
        if sink is not None or request.stream:
            sink = DiscardingSink() if sink is None else sink
            return await self.stream(request, request_id, sink, usage, watch)
        start = clock.now()
        name = self.endpoint.name
        body = json.dumps(self.dialect.body(request, self.endpoint.model, stream=False))
        try:
            async with self.client.stream(
                "POST", self._url, headers=self._headers(request_id, request), content=body.encode()
            ) as response:
                if watch is not None:
                    watch.arrived(clock.now())
                usage.limits = self._observe(response.headers)
                self.note_reach(REACHED)
                if response.status_code == 200:
                    # Accepted: the provider bills the input now, answered or cut short.
                    usage.input_tokens = request.prompt_tokens
                content = await self._read(response, watch)
        except httpx.HTTPError as exc:
            raise self._connection_failed(exc) from None
        if response.status_code != 200:
            text = content.decode("utf-8", "replace")
            raise self._status_error(response.status_code, response.headers, text)
        try:
            data = json.loads(content)
        except ValueError:
            raise MalformedReply(
                name, f"reply is not JSON: {self._sample(response, content)}"
            ) from None
        try:
            answer = self.dialect.reply(data)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise self._not_a_completion(data, f"reply is not a completion: {exc}") from None
        if answer.prompt_tokens is not None:
            usage.input_tokens = answer.prompt_tokens  # billed as the provider counts
        usage.output_tokens = _tokens(answer.completion_tokens, answer_chars(answer))
        return BackendReply(answer.text, usage.output_tokens, clock.now() - start, answer)

    async def stream(
        self,
        request: ChatRequest,
        request_id: str,
        sink: StreamSink,
        usage: Usage,
        watch: AnswerWatch | None = None,
    ) -> BackendReply:
        """Stream the answer into ``sink`` as it arrives; return it whole at the end."""
        name = self.endpoint.name
        await sink.start_attempt(name, self.endpoint.model)
        start = clock.now()
        body = json.dumps(self.dialect.body(request, self.endpoint.model, stream=True))
        builder = AnswerBuilder()
        read = self.dialect.stream_reader()
        ttft: float | None = None
        try:
            async with self.client.stream(
                "POST", self._url, headers=self._headers(request_id, request), content=body.encode()
            ) as response:
                if watch is not None:
                    watch.arrived(clock.now())
                usage.limits = self._observe(response.headers)
                self.note_reach(REACHED)
                if response.status_code != 200:
                    text = (await self._read(response, watch)).decode("utf-8", "replace")
                    raise self._status_error(response.status_code, response.headers, text)
                usage.input_tokens = request.prompt_tokens
                kind = response.headers.get("content-type", "")
                if not kind.lower().startswith("text/event-stream"):
                    raise self._not_an_event_stream(response, await self._read(response, watch))
                done = False
                async with contextlib.aclosing(self._events(response, watch)) as events:
                    async for event, data in events:
                        step = read(event, data)
                        piece = None if step.chunk is None else builder.feed(step.chunk)
                        if piece is not None:
                            if ttft is None:
                                ttft = clock.now() - start
                            # Billed as generated, so a stream cut short costs what it sent.
                            usage.output_tokens += _tokens(None, _piece_chars(piece))
                            if piece.logprobs is None and piece.delta.keys() == {"content"}:
                                await sink.text(piece.text)  # text alone: the common case
                            else:
                                await sink.piece(piece.text, piece.delta, piece.logprobs)
                        if step.done:
                            done = True
                            break
                    if done:
                        # Read the body's end too, so that the connection can be kept alive.
                        with trio.move_on_after(_DRAIN_AFTER_DONE):
                            async for _ in events:
                                pass
                # The end marker, or a finish reason (for servers that close the stream
                # without [DONE]; usage may still follow it), completes the answer.
                if not (done or builder.finish_reason is not None):
                    raise self._broken(sink, "the stream ended before the answer did")
        except httpx.HTTPError as exc:
            if connect_failed(exc):
                raise self._connection_failed(exc) from None
            raise self._broken(sink, self._describe(exc)) from None
        except StreamFault as exc:
            detail = f"error event: {self._quote(str(exc))}"
            if exc.overloaded and not (sink.started and not sink.restartable):
                raise ProviderOverloaded(name, None, detail) from None
            raise self._broken(sink, detail) from None
        except MalformedReply as exc:  # a cap, a bad encoding: named, maybe past text
            if sink.started and not sink.restartable:
                raise StreamBroken(name, 200, str(exc).removeprefix(f"{name}: ")) from None
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if sink.started and not sink.restartable:
                raise StreamBroken(name, 200, f"unreadable event: {exc}") from None
            raise MalformedReply(name, f"unreadable event: {exc}") from None
        answer = builder.answer()
        if answer.prompt_tokens is not None:
            usage.input_tokens = answer.prompt_tokens
        usage.output_tokens = _tokens(answer.completion_tokens, answer_chars(answer))
        return BackendReply(
            answer.text,
            usage.output_tokens,
            clock.now() - start if ttft is None else ttft,
            answer,
        )

    # --- reaching the provider ----------------------------------------------
    async def reach(self) -> str | None:
        """One cheap exchange: a GET of the account's base URL, without its credentials
        (any status will do). :data:`~actors.backends.reach.REACHED` if an HTTP answer
        came, the reason if no connection could be made (both told to ``on_reach``), None
        if it learnt neither (a connection that broke once made). The caller bounds its
        time; the client's connect timeout bounds the connect."""
        try:
            async with self.client.stream("GET", self.endpoint.base_url):
                pass
        except httpx.HTTPError as exc:
            if not connect_failed(exc):
                return None
            reason = self._describe(exc)
            self.note_reach(reason)
            return reason
        self.note_reach(REACHED)
        return REACHED

    def note_reach(self, reason: str) -> None:
        """Tell ``on_reach`` what an exchange said: ``reason`` (unreachable), or
        :data:`~actors.backends.reach.REACHED`, which is told only when the account was
        unreachable: an answer costs nothing more while all is well."""
        if not reason and not self._unreachable:
            return
        self._unreachable = bool(reason)
        if self.on_reach is not None:
            self.on_reach(reason)

    def _connection_failed(self, exc: httpx.HTTPError) -> ConnectionFailed:
        """No HTTP answer: :class:`Unreachable` (and so reported) if no connection was made."""
        detail = self._describe(exc)
        if connect_failed(exc):
            self.note_reach(detail)
            return Unreachable(self.endpoint.name, detail)
        return ConnectionFailed(self.endpoint.name, detail)

    # --- reading bodies within the caps -------------------------------------
    async def _read(self, response: httpx.Response, watch: AnswerWatch | None) -> bytes:
        """A whole body (a completion or an error page), decoded, within the caps."""
        name, caps = self.endpoint.name, self.caps
        declared = response.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > caps.max_reply_bytes:
            raise ReplyTooLarge(name, caps.max_reply_bytes)
        encoding = response.headers.get("content-encoding", "")
        raw = _watched(response, watch)
        async with contextlib.aclosing(raw):
            pieces = decoded(name, raw, encoding, caps, ReplyTooLarge)
            return b"".join([piece async for piece in pieces])

    async def _events(
        self, response: httpx.Response, watch: AnswerWatch | None
    ) -> AsyncGenerator[tuple[str | None, str], None]:
        """(event name, data) per server-sent event, within the caps."""
        name = self.endpoint.name
        reader = EventReader(name, self.caps)
        encoding = response.headers.get("content-encoding", "")
        pieces = decoded(name, _watched(response, watch), encoding, self.caps, StreamTooLarge)
        async with contextlib.aclosing(pieces):
            async for piece in pieces:
                for event in reader.feed(piece):
                    yield event
        for event in reader.finish():
            yield event

    # --- helpers -------------------------------------------------------------
    def _headers(self, request_id: str, request: ChatRequest | None = None) -> dict[str, str]:
        key = self.endpoint.api_key
        headers = dict(self.endpoint.headers)
        headers.update(self.dialect.headers(key.reveal() if key is not None else None))
        # Only encodings the caps can inflate step by step (httpx would offer br and zstd
        # when their packages are installed).
        headers["accept-encoding"] = "gzip"
        headers["x-callboard-request-id"] = request_id
        if request is not None and request.expected_output_tokens is not None:
            # Only modelled workloads (simulated interviews replayed live) set it; it tells
            # a mock provider how long an answer to model, as the virtual one is told.
            headers["x-callboard-expected-tokens"] = str(request.expected_output_tokens)
        return headers

    def _observe(self, headers: Mapping[str, str]) -> RateLimitInfo:
        info = parse_rate_limit_headers(headers, self._wall_clock())
        if info:
            info = info.capped(self.max_retry_after)
            self.last_limits = info
            if self.on_limits is not None:
                self.on_limits(info)
        return info

    def _describe(self, exc: httpx.HTTPError) -> str:
        """An httpx error as a short phrase: its kind, the origin, and the OS or TLS reason
        (httpx's own text is often empty), credentials scrubbed."""
        kind = type(exc).__name__
        if isinstance(exc, httpx.ReadTimeout):
            text = f"no byte for {self.client.timeout.read:g} s (read timeout)"
        elif isinstance(exc, httpx.ConnectTimeout):
            text = f"not connected within {self.client.timeout.connect:g} s"
        else:
            text = _reason(exc)
        try:
            url = exc.request.url
            where = f" ({url.host}:{url.port or {'https': 443}.get(url.scheme, 80)})"
        except RuntimeError:  # an error raised before the request was made
            where = ""
        return self._quote(f"{kind}{where}: {text}" if text else f"{kind}{where}")

    def _quote(self, text: str) -> str:
        """Upstream text fit for an error message: short, one line, credentials scrubbed."""
        for secret in self._secrets:
            text = secret.scrub(text)
        text = " ".join(text.split())
        return text if len(text) <= _QUOTE_LIMIT else text[: _QUOTE_LIMIT - 3] + "..."

    def _sample(self, response: httpx.Response, content: bytes) -> str:
        """The reply's content type and start, for an error saying it is not what was asked."""
        kind = response.headers.get("content-type") or "no content-type"
        return self._quote(f"{kind}: {content[:_QUOTE_LIMIT].decode('utf-8', 'replace')}")

    def _not_a_completion(self, data: Any, detail: str) -> AttemptError:
        """A 200 that is no completion: an error body (some servers send those) or junk."""
        message = error_message(data)
        if message:
            return UpstreamError(self.endpoint.name, 200, f"error body: {self._quote(message)}")
        return MalformedReply(self.endpoint.name, self._quote(detail))

    def _not_an_event_stream(self, response: httpx.Response, content: bytes) -> AttemptError:
        """A streamed call answered 200 without an event stream (JSON error, HTML page...)."""
        try:
            data = json.loads(content)
        except ValueError:
            data = None
        if error_message(data):
            return self._not_a_completion(data, "")
        sample = self._sample(response, content)
        return MalformedReply(
            self.endpoint.name, f"a stream must be text/event-stream, not {sample}"
        )

    def _status_error(self, status: int, headers: Mapping[str, str], text: str) -> AttemptError:
        name = self.endpoint.name
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        detail = error_message(data) or text
        detail = self._quote(detail)
        if is_overload(status, data):
            wait = (
                parse_rate_limit_headers(headers, self._wall_clock())
                .capped(self.max_retry_after)
                .retry_after
            )
            return ProviderOverloaded(name, wait, f"HTTP {status} {detail}")
        if status in (401, 403):
            return AuthFailed(name, f"HTTP {status} {detail}".rstrip())
        if status == 429:
            limits = parse_rate_limit_headers(headers, self._wall_clock())
            retry_after = limits.capped(self.max_retry_after).retry_after
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


async def _watched(
    response: httpx.Response, watch: AnswerWatch | None
) -> AsyncGenerator[bytes, None]:
    """The body's raw chunks, each told to the attempt's watch as it arrives (the
    silence between two is what ``timeouts.idle`` bounds)."""
    async for chunk in response.aiter_raw():
        if watch is not None:
            watch.arrived(clock.now())
        yield chunk


def _reason(exc: BaseException) -> str:
    """The most telling text in an exception's chain: a TLS reason, else the deepest OS
    reason (trio wraps each address's "Connection refused" in "all attempts to connect
    ... failed"), else its own."""
    seen: BaseException | None = exc
    reason = ""
    for _ in range(32):  # a chain is short; this bounds a pathological one
        if seen is None:
            break
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {seen.verify_message}"
        if isinstance(seen, ssl.SSLError):
            return f"TLS: {seen.reason or seen}"
        if isinstance(seen, OSError) and seen.strerror:
            # The errno's own words: trio's "Error connecting to (...): " prefix repeats
            # the address (DNS errors have negative numbers and their words as strerror).
            errno = seen.errno
            reason = os.strerror(errno) if isinstance(errno, int) and errno > 0 else seen.strerror
        if isinstance(seen, BaseExceptionGroup):
            seen = seen.exceptions[0]  # one per address tried: the first one's reason
        else:
            seen = seen.__cause__ or seen.__context__
    return reason or str(exc)


def _tokens(reported: Any, chars: int) -> int:
    """The provider's count when it gave one, else the usual ~4 characters a token."""
    if isinstance(reported, int) and not isinstance(reported, bool) and reported >= 0:
        return reported
    return max(1, chars // 4) if chars else 0


def _piece_chars(piece: Piece) -> int:
    """Characters a streamed piece adds: its text, else what else it carries."""
    if piece.text:
        return len(piece.text)
    return sum(len(json.dumps(v)) for v in piece.delta.values()) if piece.delta else 0
