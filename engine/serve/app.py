"""The live router's HTTP surface on Starlette: an OpenAI-compatible API, sessions, health.

It only parses, delegates to :class:`~engine.serve.live_router.LiveRouter` and formats;
every behaviour behind it is reachable from Python. A bad request is refused
with an OpenAI-style error body (Anthropic's on ``/v1/messages``) before any provider is
called; a client that hangs up cancels its request (the router counts it as cancelled).

The layers, outside in: :class:`~engine.serve.context.RequestContext` (the exchange, the
access log line, 499 and 500); Starlette's routing (404, 405 with Allow) and exception
handlers (a :class:`CallboardError` becomes its status and error body); then, per route,
:class:`_Drain` (refuses new work while draining, tracks what is in flight) and
:class:`~engine.serve.callers.middleware.CallerKeys`; then the handler.

Shutdown (:meth:`RouterApp.drain`): new requests are refused with a 503
``shutting_down``, those in flight finish for up to the grace period, and the
rest are then cancelled and answered with the same clear error, so every
request gets exactly one answer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any

import attrs
import trio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from actors.backends.sink import Delta
from actors.messages import ChatRequest, Completion
from actors.runtime.errors import CallboardError, ShuttingDown
from engine.routing.books import Books
from engine.routing.errors import InvalidRequest
from engine.serve import sse
from engine.serve.anthropic_format import chat_body, messages_error, messages_reply
from engine.serve.callers import CallerGate
from engine.serve.callers.middleware import CallerKeys, meter_of
from engine.serve.context import (
    BODY_TIMEOUT,
    Exchange,
    RequestContext,
    exchange_of,
    read_json,
    until_disconnect,
)
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
from engine.serve.reply_stream import Done, ReplyStream
from engine.serve.sessions import check_session_id
from engine.serve.status import OK, UNAVAILABLE, fleet_status
from engine.serve.status_feed import status_events, status_snapshot, stream_every
from engine.serve.status_page import FILES, page_file
from engine.serve.websocket import interview_socket

logger = logging.getLogger("callboard.http")


class NotFound(CallboardError):
    """No route at a path, or no provider of that name."""

    code = "not_found"
    status = 404


class MethodNotAllowed(CallboardError):
    """A method the path's route does not take; ``Allow`` lists those it does."""

    code = "method_not_allowed"
    status = 405

    def __init__(self, method: str, path: str, allowed: list[str]) -> None:
        super().__init__(f"method {method} not allowed on {path}; allowed: {', '.join(allowed)}")
        self.headers = {"allow": ", ".join(allowed)}


#: Routes that keep answering while the server drains: load balancers and scrapers poll them
#: (readiness says 503 then, liveness 200: the process still finishes what it holds).
_WHILE_DRAINING = frozenset(
    {
        "health",
        "health_live",
        "health_ready",
        "stats",
        "metrics",
        "openapi",
        "models",
        "status_page",
        "status",
    }
)
#: The page's files load nothing from elsewhere; a browser is told so, so that an
#: injected script or style could not run.
_PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "cache-control": "no-cache",
}
#: Routes whose requests the router answers: admitted by the caller key's budget.
_SPENDING = frozenset({"chat", "messages", "anthropic_messages"})
#: Routes that answer in Anthropic's error shape (the rest answer in OpenAI's).
_ANTHROPIC = frozenset({"anthropic_messages"})


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
        self.app = Starlette(
            routes=self.routes(),
            middleware=[Middleware(RequestContext, metrics=metrics)],
            exception_handlers={
                CallboardError: self._refusal,
                405: self._method_not_allowed,
            },
        )
        self.app.router.default = self._no_route

    def routes(self) -> list[BaseRoute]:
        """The routes, each behind the drain and, when keys are asked, the caller keys
        (named as ``callers.public`` and the metrics name them)."""
        door = [Middleware(_Drain, owner=self)]
        if self.gate is not None:  # no pass-through layer when no key is asked of anyone
            door.append(Middleware(CallerKeys, gate=self.gate, spending=_SPENDING))

        def route(path: str, endpoint: Any, method: str, name: str) -> Route:
            return Route(path, endpoint, methods=[method], name=name, middleware=door)

        # The page's own files hold no figure: open to anyone, so a browser can load the
        # page and then send the key it is given with its requests for the figures.
        page = [Middleware(_Drain, owner=self)]
        return [
            route("/status.json", self.status, "GET", "status"),
            route("/status/events", self.status_events, "GET", "status_events"),
            Route(
                "/status", self.status_page, methods=["GET"], name="status_page", middleware=page
            ),
            Route(
                "/status/{name}",
                self.status_file,
                methods=["GET"],
                name="status_page",
                middleware=page,
            ),
            route("/v1/chat/completions", self.chat, "POST", "chat"),
            route("/v1/models", self.models, "GET", "models"),
            route("/v1/messages", self.anthropic_messages, "POST", "anthropic_messages"),
            route("/sessions", self.create_session, "POST", "sessions"),
            route("/sessions/{session_id}", self.get_session, "GET", "session"),
            route("/sessions/{session_id}/messages", self.message, "POST", "messages"),
            route("/health", self.health, "GET", "health"),
            route("/health/live", self.health_live, "GET", "health_live"),
            route("/health/ready", self.health_ready, "GET", "health_ready"),
            route("/api/models/health", self.models_health, "GET", "models_health"),
            route("/api/models/best", self.models_best, "GET", "models_best"),
            route(
                "/api/models/{provider}/report-failure",
                self.report_failure,
                "POST",
                "report_failure",
            ),
            route("/metrics", self.prometheus, "GET", "metrics"),
            route("/stats", self.stats, "GET", "stats"),
            route("/openapi.json", self.openapi, "GET", "openapi"),
            WebSocketRoute(
                "/interview/stream/{cid}", self.interview, name="interview", middleware=door
            ),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    # --- errors ----------------------------------------------------------------------
    async def _no_route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            websocket = WebSocket(scope, receive, send)
            await websocket.receive()
            await websocket.close(4404)
            return
        raise NotFound(f"no route {scope['method']} {scope['path']}")

    async def _method_not_allowed(self, request: Request, exc: Exception) -> Response:
        # Starlette raises this for a path routed with other methods only.
        route, exchange = request.scope["route"], exchange_of(request.scope)
        exchange.route = route.name
        refusal = MethodNotAllowed(request.method, exchange.path, sorted(route.methods))
        return await self._refusal(request, refusal)

    async def _refusal(self, request: Request, exc: Exception) -> Response:
        """A :class:`CallboardError` as its status and error body, in the route's shape."""
        assert isinstance(exc, CallboardError)
        exchange = exchange_of(request.scope)
        exchange.failed(exc)
        shape = messages_error if exchange.route in _ANTHROPIC else error_body
        status, body, headers = shape(exc)
        headers = {**headers, **getattr(exc, "headers", {})}
        chat = exchange.route in ("chat", "anthropic_messages")
        if isinstance(exc, InvalidRequest) and chat and not exchange.routed:
            self.metrics.rejected_before_router()
        if self.draining:
            headers = {**headers, "connection": "close"}
        return JSONResponse(body, status, headers)

    # --- drain -----------------------------------------------------------------------
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

    # --- bodies ----------------------------------------------------------------------
    async def _body(self, request: Request) -> Any:
        return await read_json(request, self.max_body_bytes, self.body_timeout)

    def _routed(self, request: ChatRequest, exchange: Exchange) -> ChatRequest:
        """The request with its id (the body's, the x-request-id header's, or a new one)."""
        request_id = request.request_id
        if request_id is None:
            request_id = exchange.request_id if exchange.request_id != "-" else None
        request = attrs.evolve(request, request_id=request_id or self.live.router.new_request_id())
        exchange.request_id = request.request_id or "-"
        exchange.routed = True
        tracing = self.live.tracing
        if tracing is not None and exchange.key != "-":  # its id, never the key
            tracing.recorder.note(exchange.request_id, {"callboard.caller.key_id": exchange.key})
        return request

    async def _first_event(
        self, http: Request, request: ChatRequest, exchange: Exchange
    ) -> tuple[ReplyStream, Any]:
        """The stream and its first event: a request that fails before any text gets a
        proper HTTP error status instead of a stream holding one error."""
        reply = self.live.stream_request(request)
        try:
            event = await until_disconnect(http, reply.next_event)
        except BaseException:
            with trio.CancelScope(shield=True):
                await reply.aclose()
            raise
        exchange.streaming = True
        return reply, event

    # --- OpenAI-compatible chat ------------------------------------------------
    async def chat(self, http: Request) -> Response:
        unknown = self.live.config.server.unknown_fields
        request, stream = parse_chat_body(await self._body(http), unknown_fields=unknown)
        return await self._served(http, request, stream, self._chat_events, completion_body)

    async def _served(
        self,
        http: Request,
        request: ChatRequest,
        stream: bool,
        events: Callable[[ChatRequest, ReplyStream, Any, Exchange], AsyncGenerator[bytes, None]],
        body: Callable[[Completion], dict[str, Any]],
    ) -> Response:
        """Route ``request`` and answer it in its API's shape: whole (``body``), or as a
        stream of ``events`` once the first one came."""
        exchange = exchange_of(http.scope)
        request = self._routed(request, exchange)
        if stream:
            reply, first = await self._first_event(http, request, exchange)
            replies = events(request, reply, first, exchange)
            return sse.EventStream(replies, {"x-request-id": request.request_id or ""})
        completion = await until_disconnect(http, lambda: self.live.complete_request(request))
        exchange.answered(completion)
        return JSONResponse(body(completion))

    async def _chat_events(
        self, request: ChatRequest, reply: ReplyStream, event: Any, exchange: Exchange
    ) -> AsyncGenerator[bytes, None]:
        created = int(time.time())
        first = True
        try:
            while True:
                if isinstance(event, Done):
                    completion = event.completion
                    exchange.answered(completion)
                    for chunk in final_chunks(completion, created, include_usage(request)):
                        yield sse.event(chunk)
                    yield sse.event("[DONE]")
                    return
                if isinstance(event, Delta) and (event.text or event.delta):
                    delta = event.delta if event.delta is not None else {"content": event.text}
                    # Every chunk names the model answering, never "auto".
                    model = reply.sink.model or request.model
                    yield sse.event(
                        chunk_body(
                            request.request_id or "", model, created, delta, first, event.logprobs
                        )
                    )
                    first = False
                event = await reply.next_event()
        except CallboardError as exc:  # failed mid-answer: its last event says why
            exchange.failed(exc)
            yield sse.event(error_body(exc)[1])
        finally:
            await reply.aclose()

    # --- Anthropic-compatible messages ---------------------------------------------
    async def anthropic_messages(self, http: Request) -> Response:
        """``POST /v1/messages``: Anthropic's Messages API, on the same router and fleet."""
        request, stream = parse_chat_body(chat_body(await self._body(http)))
        return await self._served(http, request, stream, self._messages_events, messages_reply)

    async def _messages_events(
        self, request: ChatRequest, reply: ReplyStream, event: Any, exchange: Exchange
    ) -> AsyncGenerator[bytes, None]:
        writer = MessagesStream(request.request_id or "")
        try:
            while True:
                if not writer.started:
                    model = reply.sink.model or request.model
                    if isinstance(event, Done):
                        model = event.completion.model
                    for name, data in writer.start(model, request.prompt_tokens):
                        yield sse.event(data, name)
                if isinstance(event, Done):
                    completion = event.completion
                    exchange.answered(completion)
                    for name, data in writer.finish(completion):
                        yield sse.event(data, name)
                    return
                if isinstance(event, Delta):
                    delta = event.delta if event.delta is not None else {"content": event.text}
                    for name, data in writer.delta(delta):
                        yield sse.event(data, name)
                event = await reply.next_event()
        except CallboardError as exc:
            exchange.failed(exc)
            yield sse.event(messages_error(exc)[1], "error")
        finally:
            await reply.aclose()

    # --- sessions ----------------------------------------------------------------
    async def create_session(self, http: Request) -> Response:
        body = await self._body(http)
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
        return JSONResponse(_session_body(session), 200 if existed else 201)

    async def get_session(self, http: Request) -> Response:
        session = await self.live.sessions.fetch(http.path_params["session_id"])
        return JSONResponse(_session_body(session))

    async def message(self, http: Request) -> Response:
        exchange = exchange_of(http.scope)
        sid = http.path_params["session_id"]
        body = await self._body(http)
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
        completion = await until_disconnect(
            http,
            lambda: self.live.turn(sid, content, max_tokens=max_tokens, priority=priority),
        )
        exchange.request_id = completion.request_id
        exchange.answered(completion)
        return JSONResponse(
            {
                "session_id": sid,
                "content": completion.text,
                "turns": sum(1 for m in session.history if m.role == "user"),
                "providers_used": list(session.providers_used),
                **_answer_fields(completion),
            }
        )

    async def interview(self, websocket: WebSocket) -> None:
        """``WS /interview/stream/{cid}``: the interview socket (engine/serve/websocket.py)."""
        cid = websocket.path_params["cid"]
        await interview_socket(self.live, websocket, cid, meter_of(websocket.scope))

    # --- health, models, metrics -------------------------------------------------
    async def health(self, http: Request) -> Response:
        """The fleet at a glance: ``ok``, ``degraded``, ``saturated`` or ``down``, each
        provider's state and why (engine/serve/status.py). 200 unless no provider is
        available: busy is not broken (a rate limit or every slot taken still answers in
        turn), so a load balancer never pulls a router for being busy."""
        states = self.live.states()
        up = sum(s.state != UNAVAILABLE for s in states.values())
        stats = self.live.router.stats
        return JSONResponse(
            {
                "status": fleet_status(list(states.values())),
                "providers": {
                    name: {"state": s.state, "reasons": list(s.reasons)}
                    for name, s in states.items()
                },
                "providers_up": up,
                "providers_available": sum(s.state == OK for s in states.values()),
                "in_flight": stats.in_flight,
                "sessions": len(self.live.sessions),
                "state": self.live.state_status(),
                "draining": self.draining,
            },
            200 if up else 503,
        )

    async def health_live(self, http: Request) -> Response:
        """Liveness: 200 while the process serves, draining included (a restart would only
        cut what it is finishing); no answer means a hung process."""
        return JSONResponse({"status": "live", "draining": self.draining})

    async def health_ready(self, http: Request) -> Response:
        """Readiness: 200 while some provider is available (ok, or busy: it answers in
        turn); 503 while none is, or while the server drains, with why and, when a
        quarantine's or a disabling's end says so, a Retry-After."""
        if self.draining:
            return JSONResponse({"ready": False, "reason": "shutting down"}, 503)
        states = self.live.states()
        up = sum(s.state != UNAVAILABLE for s in states.values())
        if up:
            return JSONResponse({"ready": True, "providers_up": up})
        body: dict[str, Any] = {
            "ready": False,
            "reason": "no provider is available",
            "providers": {name: list(s.reasons) for name, s in states.items()},
        }
        headers = {}
        ends = [s.back_in for s in states.values() if s.back_in is not None]
        if ends:
            body["retry_after"] = round(min(ends), 3)
            headers["retry-after"] = str(max(1, math.ceil(min(ends))))
        return JSONResponse(body, 503, headers)

    async def models(self, http: Request) -> Response:
        """The models clients may ask for (OpenAI's list), with what each can do."""
        return JSONResponse(models_body(self.live.providers))

    async def models_health(self, http: Request) -> Response:
        body: dict[str, Any] = {"providers": [s.as_json() for s in self.live.status()]}
        if self.live.state is not None:  # every router's own figures, from the shared store
            body["routers"] = self.live.state.peer_health
        return JSONResponse(body)

    async def models_best(self, http: Request) -> Response:
        best = self.live.best()
        if best is None:
            body = {
                "message": "no provider can take a request now",
                "type": "server_error",
                "param": None,
                "code": "no_provider",
            }
            return JSONResponse({"error": body}, 503)
        return JSONResponse({"provider": best.as_json()})

    async def report_failure(self, http: Request) -> Response:
        provider = http.path_params["provider"]
        headers = http.headers
        has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
        body = await self._body(http) if has_body else {}
        reason = body.get("reason", "reported") if isinstance(body, dict) else "reported"
        if not isinstance(reason, str):
            raise InvalidRequest("reason", reason, "a string")
        if provider not in self.live.router.by_name:
            allowed = " | ".join(self.live.router.by_name)
            raise NotFound(f"provider: no provider {provider!r}; known: {allowed}")
        self.live.report_failure(provider, reason[:200])
        return JSONResponse({"provider": provider, "reported": reason[:200]}, 202)

    # --- the status page (engine/serve/status_page, engine/serve/status_feed.py) ----------
    async def status_page(self, http: Request) -> Response:
        return self._page_file("status.html")

    async def status_file(self, http: Request) -> Response:
        name = http.path_params["name"]
        if name not in FILES or name == "status.html":
            raise NotFound(f"no route GET /status/{name}")
        return self._page_file(name)

    def _page_file(self, name: str) -> Response:
        return Response(page_file(name), media_type=FILES[name], headers=_PAGE_HEADERS)

    async def status(self, http: Request) -> Response:
        """Every account's state, the waiting line and the callers' budget use."""
        return JSONResponse(status_snapshot(self.live, self.gate, self.draining))

    async def status_events(self, http: Request) -> Response:
        """The same, as server-sent events every ``every`` seconds (default 1)."""
        every = stream_every(http.query_params.get("every"))
        events = status_events(
            lambda: status_snapshot(self.live, self.gate, self.draining),
            every,
            lambda: self.draining,
        )
        return sse.EventStream(events)

    async def stats(self, http: Request) -> Response:
        """The books: where every request that entered the router is now."""
        books = Books.of(self.live.router).as_json()
        return JSONResponse({**books, "draining": self.draining})

    async def openapi(self, http: Request) -> Response:
        return JSONResponse(openapi_document())

    async def prometheus(self, http: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE.decode())


class _Drain:
    """Route middleware: refuses new work while the server drains, and tracks what is in
    flight so that a drain past its grace cancels it with a clear answer."""

    def __init__(self, app: ASGIApp, owner: RouterApp) -> None:
        self.app = app
        self.owner = owner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        owner = self.owner
        route = scope["route"].name
        if scope["type"] == "websocket":
            await self._socket(scope, receive, send)
            return
        exchange = exchange_of(scope)
        exchange.route = route
        if owner.draining and route not in _WHILE_DRAINING:
            raise ShuttingDown("server shutting down: it takes no new requests")
        with owner._tracked() as cancel:
            await self.app(scope, receive, send)
        if not cancel.cancelled_caught:
            return
        error = ShuttingDown(
            f"server shutting down: the request was cancelled after the "
            f"{owner.grace:g} s grace period"
        )
        if exchange.status == 0:
            raise error
        if exchange.streaming and not exchange.done:
            # The stream had started: its last event says why it ends here.
            exchange.failed(error)
            anthropic = route in _ANTHROPIC
            data = (messages_error if anthropic else error_body)(error)[1]
            body = sse.event(data, "error" if anthropic else None)
            await send({"type": "http.response.body", "body": body, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _socket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.owner.draining:
            websocket = WebSocket(scope, receive, send)
            await websocket.receive()
            await websocket.close(1012)  # service restart
            return
        with self.owner._tracked() as cancel:
            await self.app(scope, receive, send)
        if cancel.cancelled_caught:
            # Past the grace: say why (the turn's history is unchanged), then close as a
            # restart so the client reconnects, to another replica or to this one later.
            error = ShuttingDown(f"server shutting down after its {self.owner.grace:g} s grace")
            event = json.dumps({"type": "error", **error_body(error)[1]})
            with contextlib.suppress(Exception):  # the socket may already be gone
                await send({"type": "websocket.send", "text": event})
                await send({"type": "websocket.close", "code": 1012})


def _integral(value: Any) -> Any:
    """JSON's 3.0 is the integer 3 (as JSON Schema counts it); anything else as given."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


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
