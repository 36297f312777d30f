"""The live router's HTTP surface: an OpenAI-compatible API, sessions, health and metrics.

It only parses, delegates to :class:`~engine.serve.live_router.LiveRouter` and formats;
every behaviour behind it is reachable from Python. A bad request is refused
with an OpenAI-style error body before any provider is called; a client that
hangs up cancels its request (the router counts it as cancelled).

Shutdown (:meth:`RouterApp.drain`): new requests are refused with a 503
``shutting_down``, those in flight finish for up to the grace period, and the
rest are then cancelled and answered with the same clear error, so every
request gets exactly one answer.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import attrs
import trio

from actors.backends.sink import Delta
from actors.messages import ChatRequest, Completion
from actors.runtime.errors import CallboardError, ShuttingDown
from engine.routing.books import Books
from engine.routing.decision_log import log_value
from engine.routing.errors import InvalidRequest
from engine.serve.anthropic_format import chat_body, messages_error, messages_reply
from engine.serve.asgi import (
    BODY_TIMEOUT,
    ClientGone,
    Receive,
    Scope,
    Send,
    encode_json,
    end_body,
    lifespan,
    parse_json,
    read_body,
    send_bytes,
    send_json,
    send_sse,
    start_sse,
    wait_for_disconnect,
)
from engine.serve.callers import CallerGate, Ticket
from engine.serve.live_router import LiveRouter
from engine.serve.messages_stream import MessagesStream
from engine.serve.metrics import CONTENT_TYPE, LiveMetrics
from engine.serve.models import models_body
from engine.serve.openai_format import (
    chunk_body,
    completion_body,
    error_body,
    final_chunks,
    include_usage,
    parse_chat_body,
)
from engine.serve.openapi import openapi_document
from engine.serve.reply_stream import Done
from engine.serve.sessions import check_session_id
from engine.serve.websocket import interview_socket

logger = logging.getLogger("callboard.http")

Handler = Callable[..., Awaitable[None]]


class _NotFound(CallboardError):
    code = "not_found"
    status = 404


class _MethodNotAllowed(CallboardError):
    code = "method_not_allowed"
    status = 405

    def __init__(self, method: str, path: str, allowed: list[str]) -> None:
        super().__init__(f"method {method} not allowed on {path}; allowed: {', '.join(allowed)}")
        self.headers = {"allow": ", ".join(allowed)}


@attrs.define
class _Exchange:
    """One HTTP request/response, for the access log line."""

    method: str
    path: str
    route: str
    start: float
    request_id: str = "-"
    status: int = 0
    provider: str = "-"
    attempts: int = 0
    routed: bool = False  # the router has the request (and counts it from then on)
    streaming: bool = False  # a server-sent event stream has started
    done: bool = False  # the last byte of the response is on its way
    logged: bool = False
    key: str = "-"  # the caller key's id (never the key)
    completion: Completion | None = None  # the answer, once the router gave one

    def answered(self, completion: Completion) -> None:
        self.completion = completion
        self.provider, self.attempts = completion.provider, completion.attempts


#: Routes that keep answering while the server drains: load balancers and scrapers poll them.
_WHILE_DRAINING = frozenset({"health", "stats", "metrics", "openapi", "models"})
#: Routes whose requests the router answers: admitted by the caller key's budget.
_SPENDING = frozenset({"chat", "messages", "anthropic_messages"})


class RouterApp:
    """The ASGI app of ``callboard serve``."""

    def __init__(
        self,
        live: LiveRouter,
        metrics: LiveMetrics,
        *,
        max_body_bytes: int,
        body_timeout: float = BODY_TIMEOUT,
        gate: CallerGate | None = None,
    ) -> None:
        self.live = live
        #: Caller keys and budgets (engine/serve/callers); None: no key asked.
        self.gate = gate
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.draining = False
        self.grace = 0.0
        # One cancel scope per request or socket in progress: what a drain waits for.
        self._active: set[trio.CancelScope] = set()
        self._quiet = trio.Event()
        self.routes: list[tuple[str, re.Pattern[str], str, Handler]] = [
            ("POST", re.compile(r"/v1/chat/completions"), "chat", self.chat),
            ("GET", re.compile(r"/v1/models"), "models", self.models),
            ("POST", re.compile(r"/v1/messages"), "anthropic_messages", self.anthropic_messages),
            ("POST", re.compile(r"/sessions"), "sessions", self.create_session),
            ("GET", re.compile(r"/sessions/(?P<sid>[^/]+)"), "session", self.get_session),
            ("POST", re.compile(r"/sessions/(?P<sid>[^/]+)/messages"), "messages", self.message),
            ("GET", re.compile(r"/health"), "health", self.health),
            ("GET", re.compile(r"/api/models/health"), "models_health", self.models_health),
            ("GET", re.compile(r"/api/models/best"), "models_best", self.models_best),
            (
                "POST",
                re.compile(r"/api/models/(?P<provider>[^/]+)/report-failure"),
                "report_failure",
                self.report_failure,
            ),
            ("GET", re.compile(r"/metrics"), "metrics", self.prometheus),
            ("GET", re.compile(r"/stats"), "stats", self.stats),
            ("GET", re.compile(r"/openapi\.json"), "openapi", self.openapi),
        ]
        self._ws_route = re.compile(r"/interview/stream/(?P<cid>[^/]+)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
        elif scope["type"] == "websocket":
            match = self._ws_route.fullmatch(scope["path"])
            if match is None:
                await receive()
                await send({"type": "websocket.close", "code": 4404})
                return
            if self.draining:
                await receive()
                await send({"type": "websocket.close", "code": 1012})  # service restart
                return
            # --- caller keys: checked before the socket is accepted ---
            gate = self.gate
            try:
                caller = None if gate is None else gate.check("interview", scope["headers"])
            except CallboardError as exc:
                await receive()
                await send({"type": "websocket.close", "code": 1008, "reason": str(exc)[:120]})
                return
            meter = None if gate is None else gate.meter(caller)
            # --- end caller keys ---
            with self._tracked() as cancel:
                await interview_socket(self.live, scope, receive, send, match["cid"], meter)
            if cancel.cancelled_caught:
                # Past the grace: say why (the turn's history is unchanged), then close as a
                # restart so the client reconnects, to another replica or to this one later.
                error = ShuttingDown(f"server shutting down after its {self.grace:g} s grace")
                with contextlib.suppress(Exception):  # the socket may already be gone
                    event = {"type": "error", **error_body(error)[1]}
                    await send({"type": "websocket.send", "text": encode_json(event).decode()})
                    await send({"type": "websocket.close", "code": 1012})
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    @contextlib.contextmanager
    def _tracked(self) -> Iterator[trio.CancelScope]:
        """A cancel scope for one request in progress, which a drain past its grace cancels."""
        cancel = trio.CancelScope()
        self._active.add(cancel)
        try:
            with cancel:
                yield cancel
        finally:
            self._active.discard(cancel)
            if not self._active:
                self._quiet.set()

    async def drain(self, grace: float) -> None:
        """Refuse new requests; let those in flight finish for up to ``grace`` s, then cancel
        the rest, which answer 503 ``shutting_down`` (one answer each, never none or two)."""
        self.draining, self.grace = True, grace
        if self._active:
            self._quiet = trio.Event()
            logger.info(
                "shutting down: %d request(s) in flight, grace %g s", len(self._active), grace
            )
            with trio.move_on_after(grace):
                await self._quiet.wait()
        if self._active:
            logger.warning(
                "shutting down: cancelling %d request(s) after the grace", len(self._active)
            )
            for cancel in list(self._active):
                cancel.cancel()
            with trio.move_on_after(1.0):  # they only write their error answers now
                await self._quiet.wait()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"].rstrip("/") or "/"
        handler, params, route = None, {}, "unknown"
        allowed: list[str] = []
        for verb, pattern, name, candidate in self.routes:
            match = pattern.fullmatch(path)
            if match is not None:
                route = name
                allowed.append(verb)
                if verb == method:
                    handler, params = candidate, match.groupdict()
                    break
        exchange = _Exchange(method, path, route, time.perf_counter())
        header_id = dict(scope["headers"]).get(b"x-request-id")
        if header_id:
            exchange.request_id = header_id.decode("latin-1")[:128]

        async def respond(status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            exchange.status = status
            exchange.done = True
            self._finish(exchange)
            extra = {"x-request-id": exchange.request_id} if exchange.request_id != "-" else {}
            await send_json(send, status, payload, {**extra, **(headers or {})})

        ticket: Ticket | None = None
        try:
            if handler is None:
                if allowed:
                    raise _MethodNotAllowed(method, path, allowed)
                raise _NotFound(f"no route {method} {path}")
            if self.draining and route not in _WHILE_DRAINING:
                raise ShuttingDown("server shutting down: it takes no new requests")
            # --- caller keys (engine/serve/callers): 401, then 429 by the key's budget ---
            if self.gate is not None:
                caller = self.gate.check(route, scope["headers"])
                if caller is not None:
                    exchange.key = caller.id
                    if route in _SPENDING:
                        ticket = await self.gate.admit(caller)
            # --- end caller keys ---
            with self._tracked() as cancel:
                await handler(scope, receive, send, respond, exchange, **params)
            if cancel.cancelled_caught:
                raise ShuttingDown(
                    f"server shutting down: the request was cancelled after the "
                    f"{self.grace:g} s grace period"
                )
        except ClientGone:
            exchange.status = 499
        except CallboardError as exc:
            # The Anthropic entrance answers errors in Anthropic's shape; the rest in OpenAI's.
            anthropic = route == "anthropic_messages"
            shape = messages_error if anthropic else error_body
            if exchange.status == 0:
                status, body, headers = shape(exc)
                headers = {**headers, **getattr(exc, "headers", {})}
                chat = route in ("chat", "anthropic_messages")
                if isinstance(exc, InvalidRequest) and chat and not exchange.routed:
                    self.metrics.rejected_before_router()
                if self.draining:
                    headers = {**headers, "connection": "close"}
                await respond(status, body, headers)
            elif exchange.streaming and not exchange.done:
                # The stream had started: its last event says why it ends here.
                exchange.done = True
                self._finish(exchange)
                await send_sse(send, shape(exc)[1], event="error" if anthropic else None)
                await end_body(send)
        except Exception:
            logger.exception(
                "request_id=%s path=%s internal error",
                log_value(exchange.request_id),
                log_value(path),
            )
            if exchange.status == 0:
                status, body, headers = error_body(RuntimeError())
                await respond(status, body, headers)
        finally:
            self._finish(exchange)
            if ticket is not None and exchange.completion is not None and self.gate is not None:
                self.gate.settle(ticket, exchange.completion)  # billed even if the client left

    def _finish(self, exchange: _Exchange) -> None:
        """Count and log the response once, as its last byte leaves (not after: a
        server stopped right then would lose the line)."""
        if exchange.logged:
            return
        exchange.logged = True
        self.metrics.response(exchange.route, exchange.status)
        logger.info(
            "request_id=%s method=%s path=%s status=%s ms=%.1f provider=%s attempts=%s key=%s",
            log_value(exchange.request_id),
            log_value(exchange.method),
            log_value(exchange.path),
            exchange.status,
            (time.perf_counter() - exchange.start) * 1000,
            exchange.provider,
            exchange.attempts,
            exchange.key,
        )

    async def _body(self, receive: Receive) -> Any:
        return parse_json(await read_body(receive, self.max_body_bytes, self.body_timeout))

    async def _until_disconnect(
        self, receive: Receive, exchange: _Exchange, work: Callable[[], Awaitable[None]]
    ) -> None:
        """Run ``work``; a client that hangs up before the response is complete cancels it."""
        gone = False
        failure: Exception | None = None
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                nonlocal gone
                await wait_for_disconnect(receive)
                if not exchange.done:  # (after a complete response, a disconnect is normal)
                    gone = True
                    nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            try:
                await work()
            except Exception as exc:  # raised bare, not wrapped in the nursery's group
                failure = exc
            nursery.cancel_scope.cancel()
        if failure is not None:
            raise failure
        if gone:
            raise ClientGone

    # --- OpenAI-compatible chat ------------------------------------------------
    def _routed(self, request: ChatRequest, exchange: _Exchange) -> ChatRequest:
        """The request with its id (the body's, the x-request-id header's, or a new one)."""
        request_id = request.request_id
        if request_id is None:
            request_id = exchange.request_id if exchange.request_id != "-" else None
        request = attrs.evolve(request, request_id=request_id or self.live.router.new_request_id())
        exchange.request_id = request.request_id or "-"
        exchange.routed = True
        return request

    async def chat(self, scope, receive, send, respond, exchange: _Exchange) -> None:
        unknown = self.live.config.server.unknown_fields
        request, stream = parse_chat_body(await self._body(receive), unknown_fields=unknown)
        request = self._routed(request, exchange)
        if stream:
            await self._until_disconnect(
                receive, exchange, lambda: self._stream_chat(request, send, respond, exchange)
            )
            return

        async def answer() -> None:
            completion = await self.live.complete_request(request)
            exchange.answered(completion)
            await respond(200, completion_body(completion))

        await self._until_disconnect(receive, exchange, answer)

    async def _stream_chat(self, request, send, respond, exchange: _Exchange) -> None:
        created = int(time.time())
        async with self.live.stream_request(request) as reply:
            # Wait for the first event: a request that fails before any text gets a
            # proper HTTP error status instead of a stream holding one error.
            event = await reply.next_event()
            exchange.status = 200
            exchange.streaming = True
            await start_sse(send, {"x-request-id": request.request_id or ""})
            first = True
            try:
                while True:
                    if isinstance(event, Done):
                        completion = event.completion
                        exchange.answered(completion)
                        for chunk in final_chunks(completion, created, include_usage(request)):
                            await send_sse(send, chunk)
                        await send_sse(send, "[DONE]")
                        break
                    if isinstance(event, Delta) and (event.text or event.delta):
                        delta = event.delta if event.delta is not None else {"content": event.text}
                        # Every chunk names the model answering, never "auto".
                        model = reply.sink.model or request.model
                        body = chunk_body(
                            request.request_id, model, created, delta, first, event.logprobs
                        )
                        await send_sse(send, body)
                        first = False
                    event = await reply.next_event()
            except CallboardError as exc:
                _, body, _ = error_body(exc)
                await send_sse(send, body)
            exchange.done = True
            self._finish(exchange)
            await end_body(send)

    # --- Anthropic-compatible messages ---------------------------------------------
    async def anthropic_messages(self, scope, receive, send, respond, exchange: _Exchange) -> None:
        """``POST /v1/messages``: Anthropic's Messages API, on the same router and fleet."""
        request, stream = parse_chat_body(chat_body(await self._body(receive)))
        request = self._routed(request, exchange)
        if stream:
            await self._until_disconnect(
                receive, exchange, lambda: self._stream_messages(request, send, exchange)
            )
            return

        async def answer() -> None:
            completion = await self.live.complete_request(request)
            exchange.answered(completion)
            await respond(200, messages_reply(completion))

        await self._until_disconnect(receive, exchange, answer)

    async def _stream_messages(self, request: ChatRequest, send, exchange: _Exchange) -> None:
        async with self.live.stream_request(request) as reply:
            event = await reply.next_event()  # a failure before any text: an HTTP status
            exchange.status = 200
            exchange.streaming = True
            await start_sse(send, {"x-request-id": request.request_id or ""})
            writer = MessagesStream(request.request_id or "")
            try:
                while True:
                    if not writer.started:
                        model = reply.sink.model or request.model
                        if isinstance(event, Done):
                            model = event.completion.model
                        for name, data in writer.start(model, request.prompt_tokens):
                            await send_sse(send, data, event=name)
                    if isinstance(event, Done):
                        completion = event.completion
                        exchange.answered(completion)
                        for name, data in writer.finish(completion):
                            await send_sse(send, data, event=name)
                        break
                    if isinstance(event, Delta):
                        delta = event.delta if event.delta is not None else {"content": event.text}
                        for name, data in writer.delta(delta):
                            await send_sse(send, data, event=name)
                    event = await reply.next_event()
            except CallboardError as exc:
                await send_sse(send, messages_error(exc)[1], event="error")
            exchange.done = True
            self._finish(exchange)
            await end_body(send)

    # --- sessions ----------------------------------------------------------------
    async def create_session(self, scope, receive, send, respond, exchange: _Exchange) -> None:
        body = await self._body(receive)
        if not isinstance(body, dict):
            raise InvalidRequest("body", body, "a JSON object")
        session_id = body.get("session_id")
        if session_id is None:
            session_id = f"s-{self.live.router.new_request_id()}"
        system_prompt = body.get("system_prompt", "")
        if not isinstance(system_prompt, str):
            raise InvalidRequest("system_prompt", system_prompt, "a string")
        existed = check_session_id(session_id) in self.live.sessions
        session = await self.live.session(session_id, system_prompt)
        await respond(200 if existed else 201, _session_body(session))

    async def get_session(self, scope, receive, send, respond, exchange, sid: str) -> None:
        await respond(200, _session_body(await self.live.sessions.fetch(sid)))

    async def message(self, scope, receive, send, respond, exchange: _Exchange, sid: str) -> None:
        body = await self._body(receive)
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(content, str) or not content:
            raise InvalidRequest("content", content, "the candidate's message, a non-empty string")
        max_tokens = _integral(body.get("max_tokens"))
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int)
        ):
            raise InvalidRequest("max_tokens", max_tokens, "an integer >= 1")
        session = await self.live.sessions.fetch(sid)
        priority = _integral(body.get("priority"))
        if priority is None:
            # Interviews under way go before new ones when the router must shed load.
            priority = 0 if any(m.role == "user" for m in session.history) else 1
        elif isinstance(priority, bool) or not isinstance(priority, int) or priority < 0:
            raise InvalidRequest("priority", priority, "an integer >= 0 (0 first)")

        async def answer() -> None:
            completion = await self.live.turn(
                sid, content, max_tokens=max_tokens, priority=priority
            )
            exchange.request_id = completion.request_id
            exchange.answered(completion)
            await respond(
                200,
                {
                    "session_id": sid,
                    "content": completion.content,
                    "turns": sum(1 for m in session.history if m.role == "user"),
                    "providers_used": list(session.providers_used),
                    **_answer_fields(completion),
                },
            )

        await self._until_disconnect(receive, exchange, answer)

    # --- health, models, metrics -------------------------------------------------
    async def health(self, scope, receive, send, respond, exchange) -> None:
        statuses = self.live.status()
        available = sum(s.available for s in statuses)
        # Busy is not broken: an account at its rate limit or with every slot taken still
        # answers in turn, and the router queues or sheds with a Retry-After. Only when no
        # account can answer at all (quarantined or disabled) is this instance down, so a
        # load balancer never pulls a router for being busy.
        up = sum(s.breaker != "open" and not s.disabled for s in statuses)
        if available == len(statuses):
            state = "ok"
        elif available:
            state = "degraded"
        else:
            state = "saturated" if up else "down"
        stats = self.live.router.stats
        await respond(
            200 if up else 503,
            {
                "status": state,
                "providers": len(statuses),
                "providers_up": up,
                "providers_available": available,
                "in_flight": stats.in_flight,
                "sessions": len(self.live.sessions),
                "state": self.live.state_status(),
            },
        )

    async def models(self, scope, receive, send, respond, exchange) -> None:
        """The models clients may ask for (OpenAI's list), with what each can do."""
        await respond(200, models_body(self.live.providers))

    async def models_health(self, scope, receive, send, respond, exchange) -> None:
        body: dict[str, Any] = {"providers": [s.as_json() for s in self.live.status()]}
        if self.live.state is not None:  # every router's own figures, from the shared store
            body["routers"] = self.live.state.peer_health
        await respond(200, body)

    async def models_best(self, scope, receive, send, respond, exchange) -> None:
        best = self.live.best()
        if best is None:
            body = {
                "message": "no provider can take a request now",
                "type": "server_error",
                "param": None,
                "code": "no_provider",
            }
            await respond(503, {"error": body})
            return
        await respond(200, {"provider": best.as_json()})

    async def report_failure(self, scope, receive, send, respond, exchange, provider: str) -> None:
        body = await self._body(receive) if _has_body(scope) else {}
        reason = body.get("reason", "reported") if isinstance(body, dict) else "reported"
        if not isinstance(reason, str):
            raise InvalidRequest("reason", reason, "a string")
        if provider not in self.live.router.by_name:
            allowed = " | ".join(self.live.router.by_name)
            raise _NotFound(f"provider: no provider {provider!r}; known: {allowed}")
        self.live.report_failure(provider, reason[:200])
        await respond(202, {"provider": provider, "reported": reason[:200]})

    async def stats(self, scope, receive, send, respond, exchange) -> None:
        """The books: where every request that entered the router is now."""
        books = Books.of(self.live.router).as_json()
        await respond(200, {**books, "draining": self.draining})

    async def openapi(self, scope, receive, send, respond, exchange) -> None:
        await respond(200, openapi_document())

    async def prometheus(self, scope, receive, send, respond, exchange) -> None:
        exchange.status = 200
        exchange.done = True
        self._finish(exchange)
        await send_bytes(send, 200, self.metrics.render(), CONTENT_TYPE)


def _integral(value: Any) -> Any:
    """JSON's 3.0 is the integer 3 (as JSON Schema counts it); anything else as given."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _has_body(scope: Scope) -> bool:
    headers = dict(scope["headers"])
    return headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers


def _answer_fields(completion) -> dict[str, Any]:
    return {
        "request_id": completion.request_id,
        "provider": completion.provider,
        "attempts": completion.attempts,
        "total_latency_ms": round(completion.latency * 1000, 3),
    }


def _session_body(session) -> dict[str, Any]:
    return {
        "session_id": session.session_id,
        "history": [{"role": m.role, "content": m.content} for m in session.history],
        "providers_used": list(session.providers_used),
    }
