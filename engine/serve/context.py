"""The request context of ``callboard serve``: one :class:`Exchange` per HTTP request.

:class:`RequestContext` is the outermost middleware: it opens the exchange, watches the
response go out (its status; the access log line and the metric once, as the last byte
leaves, not after, so a server stopped right then loses no line), tags the response with
the request's id, and answers what nothing inside answered: a client that left (logged as
499) or an unexpected error (logged with its traceback, answered 500 in OpenAI's shape).
Handlers and route middleware reach the exchange with :func:`exchange_of`.

The request's body is read here too (:func:`read_json`), within the limits Starlette and
hypercorn leave to the app: Starlette reads a body as fast as the client sends it, for as
long as it takes and as large as it comes; hypercorn bounds each read only if told to (and
that bound would also cut a client that quietly waits for a long answer). So the whole
body is bounded in size and in time, each limit a named error; a JSON body nested too
deeply for the parser is a 400 naming the body, not a crash.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs
import trio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actors.errors import AttemptError
from actors.messages import Completion
from actors.runtime.errors import CallboardError
from engine.routing.decision_log import log_value
from engine.routing.errors import InvalidRequest, RequestFailed
from engine.serve.metrics import LiveMetrics
from engine.serve.openai_format import error_body, error_code

logger = logging.getLogger("callboard.http")

#: The default of ``server.body_timeout``.
BODY_TIMEOUT = 30.0


class BodyTooLarge(CallboardError):
    code = "body_too_large"
    status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"body: larger than {limit} bytes")
        self.limit = limit


class BodyTimeout(CallboardError):
    code = "body_timeout"
    status = 408

    def __init__(self, timeout: float) -> None:
        super().__init__(f"body: not received whole within server.body_timeout = {timeout:g} s")
        self.timeout = timeout


async def read_body(request: Request, limit: int, timeout: float = BODY_TIMEOUT) -> bytes:
    """The whole body, at most ``limit`` bytes, within ``timeout`` seconds (a body trickled
    a byte at a time is bounded as a whole). A client that leaves raises Starlette's
    ``ClientDisconnect``."""
    chunks, size = [], 0
    with trio.move_on_after(timeout):
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(limit)
            chunks.append(chunk)
        return b"".join(chunks)
    raise BodyTimeout(timeout)


def parse_json(body: bytes) -> Any:
    """The body's JSON, or an :class:`InvalidRequest` that says where it is broken."""
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        message = f"body: not valid JSON (line {exc.lineno}, column {exc.colno})"
    except UnicodeDecodeError as exc:
        message = f"body: not valid JSON (not UTF-8 at byte {exc.start})"
    except RecursionError:
        message = "body: JSON nested too deeply"
    shown = body[:60].decode("utf-8", "replace")
    raise InvalidRequest("body", shown, "a JSON object", message=message) from None


async def read_json(request: Request, limit: int, timeout: float = BODY_TIMEOUT) -> Any:
    return parse_json(await read_body(request, limit, timeout))


_KEY = "callboard.exchange"
T = TypeVar("T")


@attrs.define
class Exchange:
    """One HTTP request and its response, as the access log line tells it.

    Answered or not, the line says how many attempts were made, at which providers in
    order (``providers=a,b``), and ``error``: the code of the last failed attempt (an
    answer after a failover says why it failed over), else the request's own error code
    when it ended in one without any attempt failing (``no_provider``,
    ``invalid_request`` ...), else ``-``.
    """

    method: str
    path: str
    start: float
    route: str = "unknown"  # the route's name (set once routed)
    request_id: str = "-"
    status: int = 0  # 0 until the response starts
    provider: str = "-"  # who answered
    attempts: int = 0
    providers: tuple[str, ...] = ()  # the providers tried, in order
    error: str = "-"
    routed: bool = False  # the router has the request (and counts it from then on)
    streaming: bool = False  # a server-sent event stream is the answer
    done: bool = False  # the last byte of the response is on its way
    logged: bool = False
    key: str = "-"  # the caller key's id (never the key)
    completion: Completion | None = None  # the answer, once the router gave one

    def answered(self, completion: Completion) -> None:
        self.completion = completion
        self.provider, self.attempts = completion.provider, completion.attempts
        failed = completion.failed_attempts
        if not completion.cached:  # a cache hit tried no provider
            self.providers = (*(provider for provider, _ in failed), completion.provider)
        self.error = failed[-1][1] if failed else "-"

    def failed(self, error: CallboardError) -> None:
        """The request ended in ``error``: the attempts it lists, and its code."""
        if isinstance(error, RequestFailed):
            attempts = error.attempts
        elif isinstance(error, AttemptError):
            attempts = [error]
        else:
            attempts = []
        self.attempts = len(attempts)
        self.providers = tuple(a.provider for a in attempts)
        self.error = attempts[-1].code if attempts else error_code(error)


def exchange_of(scope: Scope) -> Exchange:
    return scope[_KEY]


class RequestContext:
    """The outermost middleware: opens each HTTP request's :class:`Exchange` and logs it."""

    def __init__(self, app: ASGIApp, metrics: LiveMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # A trailing slash names the same route (no redirect).
        path = scope["path"] = scope["path"].rstrip("/") or "/"
        exchange = scope[_KEY] = Exchange(scope["method"], path, time.perf_counter())
        for name, value in scope["headers"]:
            if name == b"x-request-id" and value:
                exchange.request_id = value.decode("latin-1")[:128]

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
                if exchange.request_id != "-" and not any(
                    name == b"x-request-id" for name, _ in message["headers"]
                ):
                    tag = (b"x-request-id", exchange.request_id.encode("latin-1"))
                    message["headers"] = [*message["headers"], tag]
            elif not message.get("more_body", False):
                exchange.done = True
                self.finish(exchange)
            await send(message)

        try:
            await self.app(scope, receive, watched)
            if exchange.streaming and not exchange.done:
                exchange.status = 499  # Starlette ended the stream: the client hung up
        except ClientDisconnect:
            exchange.status = 499
        except Exception:
            exchange.error = "internal_error"
            logger.exception(
                "request_id=%s path=%s internal error",
                log_value(exchange.request_id),
                log_value(path),
            )
            if exchange.status == 0:
                status, body, headers = error_body(RuntimeError())
                await JSONResponse(body, status, headers)(scope, receive, watched)
        finally:
            self.finish(exchange)

    def finish(self, exchange: Exchange) -> None:
        """Count and log the response once."""
        if exchange.logged:
            return
        exchange.logged = True
        self.metrics.response(exchange.route, exchange.status)
        logger.info(
            "request_id=%s method=%s path=%s status=%s ms=%.1f provider=%s attempts=%s "
            "providers=%s error=%s key=%s",
            log_value(exchange.request_id),
            log_value(exchange.method),
            log_value(exchange.path),
            exchange.status,
            (time.perf_counter() - exchange.start) * 1000,
            log_value(exchange.provider),
            exchange.attempts,
            ",".join(log_value(p) for p in exchange.providers) or "-",
            log_value(exchange.error),
            exchange.key,
        )


async def until_disconnect(request: Request, work: Callable[[], Awaitable[T]]) -> T:
    """``work``'s result; a client that hangs up first cancels it (``ClientDisconnect``).

    Call it once the body is read: what the client sends next can only be its leaving.
    """
    result: list[T] = []
    failure: Exception | None = None
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            nursery.cancel_scope.cancel()

        nursery.start_soon(watch)
        try:
            result.append(await work())
        except Exception as exc:  # raised bare, not wrapped in the nursery's group
            failure = exc
        nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    if not result:
        raise ClientDisconnect
    return result[0]
