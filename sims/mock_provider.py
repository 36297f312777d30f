"""``callboard mock-provider``: a virtual provider served over HTTP, in real time.

The simulator's model of a provider (:class:`~actors.backends.virtual.VirtualBackend`:
latency distributions, error kinds by share) answers real HTTP requests on
trio's real clock, so the live router can be exercised, demonstrated and
tested without any real account. It speaks both wire formats: OpenAI's at
``/v1/chat/completions`` and Anthropic's Messages API at ``/v1/messages``,
streamed or not, with tool calls and JSON answers (:mod:`sims.mock_answers`).
Profiles say how it behaves and can be switched while it runs
(``POST /admin/profile {"profile": "down"}``). A profile with limits enforces
them and sends OpenAI's ``x-ratelimit-*`` headers, so a router can be seen
slowing down before the 429.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

import attrs
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from actors.backends import Usage
from actors.backends.answers import answer_chars
from actors.backends.dialects import OVERLOADED_STATUS
from actors.backends.virtual import ErrorRates, LatencyModel, VirtualBackend
from actors.errors import AttemptError, AuthFailed, ProviderOverloaded, RateLimited, UpstreamError
from actors.failures import MockProfileName
from actors.faults import Fault, FaultSchedule
from actors.limits import Admission, LimitSpec, TokenBucket
from actors.messages import Answer, ChatRequest, Completion, filler_text
from actors.runtime import clock
from actors.runtime.distributions import Constant, LogNormal
from actors.runtime.errors import CallboardError, InvalidSetting
from actors.runtime.randomness import RandomStreams
from engine.routing.errors import InvalidRequest
from engine.serve import sse
from engine.serve.anthropic_format import chat_body, messages_error, messages_reply
from engine.serve.context import read_json, until_disconnect
from engine.serve.messages_stream import MessagesStream
from engine.serve.openai_format import error_body, parse_chat_body
from sims.mock_answers import special_answer

logger = logging.getLogger("callboard.mock")
MAX_BODY = 4 * 1024 * 1024


@attrs.frozen
class MockProfile:
    name: str
    description: str
    latency: LatencyModel
    errors: ErrorRates = ErrorRates()
    limits: tuple[LimitSpec, ...] = ()


def mock_profiles(speed: float = 1.0) -> dict[str, MockProfile]:
    """The built-in behaviours; ``speed`` > 1 makes every delay that many times shorter."""
    if not (isinstance(speed, int | float) and 0 < speed < math.inf):
        raise InvalidSetting("speed", speed, "a number > 0")

    def latency(median: float, p95: float, tokens_per_s: float) -> LatencyModel:
        return LatencyModel(
            ttft=LogNormal.from_median_p95(median / speed, p95 / speed),
            tokens_per_s=tokens_per_s * speed,
            output_tokens=Constant(40),
            error_ttft=Constant(0.05 / speed),
        )

    normal = latency(0.3, 0.9, 80.0)
    rpm = (LimitSpec("requests", "requests", 600, 60.0),)
    profiles = [
        MockProfile(
            MockProfileName.HEALTHY,
            "answers everything; 600 requests/min with headers",
            normal,
            limits=rpm,
        ),
        MockProfile(
            MockProfileName.SLOW, "answers everything, ~10x slower", latency(4.0, 10.0, 15.0)
        ),
        MockProfile(
            MockProfileName.FLAKY,
            "30% of calls fail with HTTP 500",
            normal,
            ErrorRates(upstream_error=0.3),
        ),
        MockProfile(
            MockProfileName.RATE_LIMITED,
            "every call gets 429 with Retry-After: 10",
            normal,
            ErrorRates(rate_limited=1.0, rate_limited_retry_after=10.0),
        ),
        MockProfile(
            MockProfileName.OVERLOADED,
            "every call gets 529 overloaded (Anthropic's overloaded_error), no Retry-After",
            normal,
            ErrorRates(overloaded=1.0),
        ),
        MockProfile(
            MockProfileName.DOWN,
            "every call fails with HTTP 500",
            normal,
            ErrorRates(upstream_error=1.0),
        ),
        MockProfile(
            MockProfileName.HANG,
            "accepts every call and never answers",
            normal,
            ErrorRates(timeout=1.0),
        ),
        MockProfile(
            MockProfileName.UNLIMITED, "answers everything, no rate limit (load tests)", normal
        ),
    ]
    return {p.name: p for p in profiles}


def go_duration(seconds: float) -> str:
    """A duration as OpenAI writes it: "6m0s", "1.5s", "20ms"."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    rest = round(rest, 3)
    text = f"{rest:g}s"
    return f"{int(minutes)}m{text}" if minutes else text


class MockProvider:
    """The ASGI app of one mock provider account."""

    def __init__(
        self,
        name: str = "mock",
        profile: str = "healthy",
        *,
        speed: float = 1.0,
        api_key: str | None = None,
        seed: int = 0,
        faults: Sequence[Fault] = (),
        time_scale: float = 1.0,
        profiles: Sequence[MockProfile] = (),
        min_piece_gap: float = 0.0,
    ) -> None:
        """``faults`` (in scenario seconds) are replayed ``time_scale`` times faster than
        real time, from when the mock first serves (or ``POST /admin/replay``).
        ``profiles`` are added to the built-ins (e.g. a scenario account's own model).
        A streamed answer's pieces carry four tokens, or enough that two come no closer
        than ``min_piece_gap`` seconds."""
        if not (isinstance(time_scale, int | float) and 0 < time_scale < math.inf):
            raise InvalidSetting("time_scale", time_scale, "a number > 0")
        self.name = name
        self.profiles = {**mock_profiles(speed), **{p.name: p for p in profiles}}
        self.replay = FaultSchedule(faults)
        self.time_scale = float(time_scale)
        self.min_piece_gap = min_piece_gap
        self._replay_start: float | None = None
        self._api_key = api_key
        self._streams = RandomStreams(seed)
        self._output = self._streams.stream(f"mock:{name}:output")
        self.recent: collections.deque[ChatRequest] = collections.deque(maxlen=100)
        self.calls: collections.Counter[str] = collections.Counter()
        #: Chat calls being answered now (a caller that hangs up ends its call).
        self.in_flight = 0
        self._served = 0
        self.set_profile(profile)
        self.app = self._app()

    def __repr__(self) -> str:
        return f"MockProvider({self.name!r}, profile={self.profile.name!r})"

    def set_profile(self, name: object) -> MockProfile:
        """Switch to the profile ``name``, as read from a request: any JSON value."""
        profile = self.profiles.get(name) if isinstance(name, str) else None
        if profile is None:
            raise InvalidSetting("profile", name, " | ".join(self.profiles))
        self.profile = profile
        self.backend = VirtualBackend(
            self.name,
            self.profile.latency,
            self.profile.errors,
            self.replay,
            self._streams,
            fault_clock=self.replay_time,
            fault_time_scale=self.time_scale,
        )
        self.admission = Admission(self.profile.limits)
        logger.info("mock=%s profile=%s", self.name, name)
        return self.profile

    def replay_time(self) -> float:
        """Scenario seconds since the replay started (it starts at the first call)."""
        now = clock.now()
        if self._replay_start is None:
            self._replay_start = now
        return (now - self._replay_start) * self.time_scale

    def restart_replay(self, at: float = 0.0) -> None:
        """Put the replay at scenario time ``at`` now (to line several mocks up)."""
        self._replay_start = clock.now() - at / self.time_scale

    def _describe_replay(self) -> dict[str, Any]:
        now = self.replay_time()
        return {
            "time_scale": self.time_scale,
            "scenario_time": round(now, 3),
            "faults": len(self.replay.faults),
            "active": [f.kind for f in self.replay.active(now)],
        }

    # --- HTTP (Starlette) ------------------------------------------------------------
    def _app(self) -> Starlette:
        def route(paths: tuple[str, ...], endpoint: Any, method: str) -> list[Route]:
            return [Route(path, endpoint, methods=[method]) for path in paths]

        return Starlette(
            routes=[
                *route(("/v1/chat/completions", "/chat/completions"), self._openai, "POST"),
                *route(("/v1/messages", "/messages"), self._anthropic, "POST"),
                *route(("/admin/profile",), self._put_profile, "POST"),
                *route(("/admin/profile",), self._get_profile, "GET"),
                *route(("/admin/replay",), self._put_replay, "POST"),
                *route(("/admin/replay",), self._get_replay, "GET"),
                *route(("/health", "/v1/models", "/models"), self._models, "GET"),
            ],
            exception_handlers={
                InvalidSetting: _invalid_setting,
                CallboardError: _callboard_error,
                HTTPException: _http_error,
                ClientDisconnect: _client_gone,
            },
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    async def _put_profile(self, request: Request) -> Response:
        body = await read_json(request, MAX_BODY)
        profile = self.set_profile(body.get("profile") if isinstance(body, dict) else body)
        return JSONResponse({"profile": profile.name})

    async def _get_profile(self, request: Request) -> Response:
        return JSONResponse(self._describe())

    async def _put_replay(self, request: Request) -> Response:
        body = await read_json(request, MAX_BODY)
        at = body.get("at", 0) if isinstance(body, dict) else 0
        if isinstance(at, bool) or not isinstance(at, int | float) or at < 0:
            raise InvalidSetting("at", at, "scenario seconds >= 0")
        self.restart_replay(float(at))
        return JSONResponse(self._describe_replay())

    async def _get_replay(self, request: Request) -> Response:
        return JSONResponse(self._describe_replay())

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": self.name}]})

    def _describe(self) -> dict[str, Any]:
        return {
            "profile": self.profile.name,
            "profiles": {p.name: p.description for p in self.profiles.values()},
            "calls": dict(self.calls),
        }

    def _authorised(self, request: Request, anthropic: bool) -> bool:
        if self._api_key is None:
            return True
        if anthropic:
            return request.headers.get("x-api-key", "") == self._api_key
        return request.headers.get("authorization", "") == f"Bearer {self._api_key}"

    async def _openai(self, request: Request) -> Response:
        return await self._chat(request, anthropic=False)

    async def _anthropic(self, request: Request) -> Response:
        return await self._chat(request, anthropic=True)

    async def _chat(self, http: Request, anthropic: bool) -> Response:
        """A chat call in OpenAI's wire format, or in Anthropic's Messages API's."""
        try:
            body = await read_json(http, MAX_BODY)
            request, stream = parse_chat_body(chat_body(body) if anthropic else body)
        except InvalidRequest as exc:  # as the real APIs do: 400 naming the field
            status, error, _ = (messages_error if anthropic else error_body)(exc)
            return JSONResponse(error, status)
        expected = http.headers.get("x-callboard-expected-tokens", "")
        if expected.isdigit() and int(expected) >= 1:
            # A modelled workload says how long its answer is, as in the simulator.
            request = attrs.evolve(request, expected_output_tokens=int(expected))
        self._served += 1
        request_id = http.headers.get("x-callboard-request-id") or f"m-{self._served}"
        self.recent.append(request)
        if not self._authorised(http, anthropic):
            self.calls["401"] += 1
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        limit_headers, wait = self._admit(request)
        if wait > 0:
            self.calls["429"] += 1
            headers_429 = {**limit_headers, "retry-after": str(math.ceil(wait))}
            return _error(
                429, "Rate limit reached for requests", "rate_limit_exceeded", None, headers_429
            )
        wire = _Wire(anthropic, request, request_id, self.name)
        self.in_flight += 1
        streaming = False
        try:
            # A client that hangs up stops the work, as a real server would.
            if stream:
                # The first token's fate and time come from the virtual model (a call of
                # no decoding, which ends at its time to first token); the rest is paced
                # at the model's decode speed.
                one = attrs.evolve(request, max_tokens=0)
                first = await until_disconnect(
                    http, lambda: self.backend.complete(one, request_id, Usage())
                )
                self.calls["200"] += 1
                streaming = True
                return sse.EventStream(self._stream(request, first.text, wire), limit_headers)
            reply = await until_disconnect(
                http, lambda: self.backend.complete(request, request_id, Usage())
            )
            self.calls["200"] += 1
            answer = wire.special or _text_answer(reply.text)
            tokens = reply.completion_tokens if wire.special is None else _count(answer)
            return JSONResponse(wire.reply(answer, tokens), headers=limit_headers)
        except AttemptError as exc:
            return self._fail(exc, limit_headers, anthropic)
        finally:
            if not streaming:  # (a stream is in flight until it ends)
                self.in_flight -= 1

    async def _stream(
        self, request: ChatRequest, first: str, wire: _Wire
    ) -> AsyncGenerator[bytes, None]:
        try:
            async for piece in self._events(request, first, wire):
                yield piece
        finally:
            self.in_flight -= 1

    async def _events(
        self, request: ChatRequest, first: str, wire: _Wire
    ) -> AsyncGenerator[bytes, None]:
        pace = self.profile.latency.tokens_per_s
        # Tokens a piece carries (of 4 characters each): four, or more when that is less
        # than the least gap's decoding.
        per_chunk = 4
        if wire.special is None:
            per_chunk = max(per_chunk, math.ceil(pace * self.min_piece_gap))
        if wire.special is not None:
            pieces = _pieces(wire.special)
            wanted = _count(wire.special)
        else:
            wanted = request.expected_output_tokens or int(
                self.profile.latency.output_tokens.sample(self._output)
            )
            if request.max_tokens is not None:
                wanted = min(wanted, request.max_tokens)
            text = filler_text(4 * max(0, wanted - 1))
            pieces = [{"content": first}] + [
                {"content": text[start : start + 4 * per_chunk]}
                for start in range(0, len(text), 4 * per_chunk)
            ]
        # Each piece at the moment its tokens are due, the last when the model ends the
        # answer (ttft + tokens / pace, as the virtual provider times it), on absolute
        # times: sleeping a gap per piece would add each wake-up's lateness to the next.
        # A model of the whole service time has the answer done when its first byte comes
        # (the first-token call took all of it): every piece goes at once.
        paced = self.profile.latency.service is None
        began = clock.now()
        last = len(pieces) - 1
        for i, delta in enumerate(pieces):
            if i and paced:
                due = wanted if i == last else min(i * per_chunk, wanted)
                await clock.sleep_until(began + due / pace)
            for name, data in wire.delta(delta, first=i == 0):
                yield sse.event(data, name)
        finish = wire.special.finish_reason if wire.special is not None else "stop"
        for name, data in wire.end(finish or "stop", max(1, wanted)):
            yield sse.event(data, name)

    def _admit(self, request: ChatRequest) -> tuple[dict[str, str], float]:
        """(x-ratelimit-* headers, seconds to wait) under the profile's limits."""
        if not self.admission.limiters:
            return {}, 0.0
        now = clock.now()
        wait, _ = self.admission.try_admit(
            now, 1, request.prompt_tokens, request.max_tokens or 0, request.prompt_chars
        )
        headers: dict[str, str] = {}
        for limiter in self.admission.limiters:
            # OpenAI's headers name requests and (total) tokens only.
            if not isinstance(limiter, TokenBucket) or limiter.unit not in ("requests", "tokens"):
                continue
            level = limiter.level(now)
            unit = limiter.unit
            headers[f"x-ratelimit-limit-{unit}"] = f"{limiter.limit:g}"
            headers[f"x-ratelimit-remaining-{unit}"] = str(max(0, math.floor(level)))
            headers[f"x-ratelimit-reset-{unit}"] = go_duration(
                (limiter.capacity - level) / limiter.rate
            )
        return headers, wait

    def _fail(self, exc: AttemptError, headers: dict[str, str], anthropic: bool) -> Response:
        if isinstance(exc, RateLimited):
            self.calls["429"] += 1
            extra = {
                **headers,
                "retry-after": str(math.ceil(exc.retry_after)),
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": go_duration(exc.retry_after),
            }
            return _error(
                429, "Rate limit reached for requests", "rate_limit_exceeded", None, extra
            )
        if isinstance(exc, ProviderOverloaded):
            extra = {} if exc.retry_after is None else {"retry-after": str(exc.retry_after)}
            if anthropic:  # Anthropic's own status and body for it
                self.calls["529"] += 1
                body = {
                    "type": "error",
                    "error": {"type": "overloaded_error", "message": "Overloaded"},
                }
                return JSONResponse(body, OVERLOADED_STATUS, extra)
            self.calls["503"] += 1
            message = "That model is currently overloaded with other requests."
            return _error(503, message, "server_error", None, extra)
        if isinstance(exc, AuthFailed):
            self.calls["401"] += 1
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        if isinstance(exc, UpstreamError):
            self.calls[str(exc.upstream_status)] += 1
            return _error(exc.upstream_status, "The server had an error.", "server_error")
        # A malformed reply: 200 with a body that is not a completion.
        self.calls["malformed"] += 1
        return JSONResponse({"object": "chat.completion", "choices": []})


def _error(
    status: int,
    message: str,
    code: str,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status, headers)


async def _invalid_setting(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidSetting)
    return _error(400, str(exc), exc.code, exc.field)


async def _callboard_error(request: Request, exc: Exception) -> Response:
    """A bad body (not JSON, too large): the error in OpenAI's shape."""
    assert isinstance(exc, CallboardError)
    status, body, headers = error_body(exc)
    return JSONResponse(body, status, headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    method, path = request.method, request.url.path
    what = "not_found" if exc.status_code == 404 else "method_not_allowed"
    return _error(exc.status_code, f"no route {method} {path}", what, None, exc.headers)


async def _client_gone(conn: HTTPConnection, exc: Exception) -> None:
    """The caller hung up: nothing to answer (Starlette sends nothing for None)."""


def _text_answer(content: str) -> Answer:
    return Answer(message={"role": "assistant", "content": content})


def _count(answer: Answer) -> int:
    """Output tokens of a made-up answer: ~4 characters a token."""
    return max(1, answer_chars(answer) // 4)


def _pieces(answer: Answer) -> list[dict[str, Any]]:
    """An answer as a stream's deltas: its text in pieces, each tool call's name, then
    its arguments in two halves (as providers split them)."""
    text = answer.text
    pieces: list[dict[str, Any]] = [{"content": text[i : i + 16]} for i in range(0, len(text), 16)]
    for index, call in enumerate(answer.message.get("tool_calls") or ()):
        function = call["function"]
        head = {"name": function["name"], "arguments": ""}
        pieces.append(
            {
                "tool_calls": [
                    {"index": index, "id": call["id"], "type": "function", "function": head}
                ]
            }
        )
        arguments = function["arguments"]
        half = len(arguments) // 2
        for part in (arguments[:half], arguments[half:]):
            pieces.append({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
    return pieces


class _Wire:
    """One call's answer in the wire format it came in: OpenAI's or Anthropic's."""

    def __init__(self, anthropic: bool, request: ChatRequest, request_id: str, name: str) -> None:
        self.anthropic = anthropic
        self.request = request
        self.request_id = request_id
        self.name = name
        self.special = special_answer(request.body, request_id, name)
        self.created = int(time.time())
        self._events = MessagesStream(request_id)

    def _completion(self, answer: Answer, tokens: int) -> Completion:
        request = self.request
        return Completion(
            self.request_id,
            answer.text,
            self.name,
            self.name,
            request.prompt_tokens,
            tokens,
            0.0,
            0.0,
            answer=answer,
        )

    def reply(self, answer: Answer, tokens: int) -> dict[str, Any]:
        if self.anthropic:
            return messages_reply(self._completion(answer, tokens))
        prompt = self.request.prompt_tokens
        return {
            "id": f"chatcmpl-{self.request_id}",
            "object": "chat.completion",
            "created": self.created,
            "model": self.name,
            "system_fingerprint": FINGERPRINT,
            "choices": [
                {
                    "index": 0,
                    "message": answer.message,
                    "logprobs": None,
                    "finish_reason": answer.finish_reason or "stop",
                }
            ],
            "usage": _usage(prompt, tokens),
        }

    def delta(self, delta: dict[str, Any], first: bool) -> list[tuple[str | None, Any]]:
        if self.anthropic:
            events = self._events.start(self.name, self.request.prompt_tokens) if first else []
            return [*events, *self._events.delta(delta)]
        chunk = _chunk(self.name, self.request_id, self.created, None)
        chunk["choices"][0]["delta"] = {"role": "assistant", **delta} if first else delta
        return [(None, chunk)]

    def end(self, finish: str, tokens: int) -> list[tuple[str | None, Any]]:
        if self.anthropic:
            answer = Answer(finish_reason=finish)
            return list(self._events.finish(self._completion(answer, tokens)))
        final = _chunk(self.name, self.request_id, self.created, finish)
        usage = _usage(self.request.prompt_tokens, tokens)
        options = (self.request.body or {}).get("stream_options") or {}
        if options.get("include_usage"):  # as OpenAI: a last chunk of its own, no choices
            tail = {**_chunk(self.name, self.request_id, self.created, None), "choices": []}
            return [(None, final), (None, {**tail, "usage": usage}), (None, "[DONE]")]
        return [(None, {**final, "usage": usage}), (None, "[DONE]")]


#: The mock's ``system_fingerprint``: its answers pass back whole, this included.
FINGERPRINT = "fp_callboard_mock"


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def _chunk(model: str, request_id: str, created: int, finish: str | None) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": [{"index": 0, "delta": {}, "finish_reason": finish}],
    }
