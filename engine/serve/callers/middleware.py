"""Caller keys as Starlette route middleware: every route of ``callboard serve`` is behind it
when keys are configured (with none, no key is asked and the layer is left out).

It runs once the request is routed (it needs the route's name: ``callers.public`` routes
need no key, and only the routes the router answers spend a budget). An HTTP request
without a valid key is refused (401), one over its key's budget too (429 with a
Retry-After); an answered request is billed to its key even if the client left before the
answer. A WebSocket without a valid key is closed before it is accepted (1008, the reason
said); its turns are admitted and billed one by one through the :class:`Meter` it leaves
in the scope (:func:`meter_of`).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from actors.runtime.errors import CallboardError
from engine.serve.callers.gate import CallerGate, Meter
from engine.serve.context import exchange_of

_METER = "callboard.meter"


class CallerKeys:
    """Checks the caller key of each request to a route, admits and bills it."""

    def __init__(self, app: ASGIApp, gate: CallerGate, spending: frozenset[str]) -> None:
        self.app = app
        self.gate = gate
        #: Routes whose requests the router answers: admitted by the key's budget.
        self.spending = spending

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gate = self.gate
        if scope["type"] == "websocket":
            await self._socket(gate, scope, receive, send)
        else:
            await self._http(gate, scope, receive, send)

    async def _http(self, gate: CallerGate, scope: Scope, receive: Receive, send: Send) -> None:
        route = scope["route"].name
        caller = gate.check(route, scope["headers"])
        if caller is None:
            await self.app(scope, receive, send)
            return
        exchange = exchange_of(scope)
        exchange.key = caller.id
        if route not in self.spending:
            await self.app(scope, receive, send)
            return
        ticket = await gate.admit(caller)
        try:
            await self.app(scope, receive, send)
        finally:
            if exchange.completion is not None:
                gate.settle(ticket, exchange.completion)

    async def _socket(self, gate: CallerGate, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            caller = gate.check(scope["route"].name, scope["headers"])
        except CallboardError as exc:
            websocket = WebSocket(scope, receive, send)
            await websocket.receive()  # the handshake, before it is refused
            await websocket.close(1008, str(exc)[:120])
            return
        scope[_METER] = gate.meter(caller)
        await self.app(scope, receive, send)


def meter_of(scope: Scope) -> Meter | None:
    """The WebSocket caller's meter; None when no key is asked."""
    return scope.get(_METER)
