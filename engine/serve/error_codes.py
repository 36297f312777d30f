"""Every status and ``code`` an error body of ``callboard serve`` can carry, in one table.

The error tree (:mod:`engine.errors`) gives each error its code and status, but not
which of them reach a client: a base (``FieldError``'s ``invalid_value``) is never
raised, a setting's error stops the server before it serves, an attempt's error is
listed inside a ``request_failed`` body. This table names the errors a client meets
(their code and status read from each class), with the few codes the surface sets
itself; docs/reference.py prints it, and the docs are checked against it
(``tests/test_doc_error_codes.py``).
"""

from __future__ import annotations

import attrs

from actors.failures import ErrorCode
from actors.runtime.errors import ActorCrashed, CallboardError, Overloaded, ShuttingDown
from engine.routing.errors import (
    DeadlineExceeded,
    InvalidRequest,
    LineFull,
    NoProviderAvailable,
    RequestFailed,
    RetryBudgetExhausted,
    Shed,
)
from engine.serve.app import MethodNotAllowed, NotFound
from engine.serve.callers.budget import OverBudget
from engine.serve.callers.gate import NotAdmin
from engine.serve.callers.keys import MISSING_API_KEY, Unauthorized
from engine.serve.context import BodyTimeout, BodyTooLarge
from engine.serve.openai_format import INTERNAL_ERROR, MODEL_NOT_FOUND
from engine.serve.sessions import SessionBusy, UnknownSession


@attrs.frozen
class ErrorAnswer:
    """One kind of error answer: its status, its ``code``, the error class that carries
    it (or what else does) and when a client gets it."""

    status: int
    code: str
    error: str
    when: str


def _answer(error: type[CallboardError], when: str) -> ErrorAnswer:
    return ErrorAnswer(error.status, error.code, error.__name__, when)


#: The error answers, in the order a request meets them.
ANSWERS: tuple[ErrorAnswer, ...] = (
    _answer(NotFound, "no route at the path, or no provider of that name"),
    _answer(MethodNotAllowed, "a method the route does not take (`Allow` lists those it does)"),
    ErrorAnswer(
        Unauthorized.status,
        MISSING_API_KEY,
        "Unauthorized",
        "caller keys are configured, none was sent",
    ),
    _answer(Unauthorized, "a caller key that is not configured, or is revoked"),
    _answer(NotAdmin, "a caller key not in `callers.admins`, asking for the status figures"),
    _answer(OverBudget, "the caller key's budget is spent for now; `Retry-After` unless never"),
    _answer(BodyTooLarge, "a body past `server.max_body_bytes`"),
    _answer(BodyTimeout, "a body not received whole within `server.body_timeout`"),
    _answer(
        InvalidRequest,
        "a bad field, named in `param` (unparseable or too deeply nested JSON: `body`); "
        "no provider sees the request",
    ),
    ErrorAnswer(404, MODEL_NOT_FOUND, "InvalidRequest", "a `model` that no account serves"),
    _answer(UnknownSession, "a session id the router does not hold"),
    _answer(SessionBusy, "a turn of a session that is still answering its previous one"),
    _answer(
        RequestFailed,
        "every attempt failed; `attempts` lists each (provider, code, message)",
    ),
    _answer(
        NoProviderAvailable,
        "no provider can take the request before its deadline, or every account is cooling "
        "down (rate-limited or overloaded) when its attempts ran out; `Retry-After` when known",
    ),
    _answer(Shed, "shed: waiting would not end before the deadline; `Retry-After` when known"),
    _answer(LineFull, "the provider's line is full (`line.max_waiting`); `Retry-After`"),
    _answer(
        Overloaded, "too many sessions open at once (`server.max_sessions`), or a full mailbox"
    ),
    _answer(RetryBudgetExhausted, "an attempt failed and the retry budget had no credit left"),
    _answer(DeadlineExceeded, "the request's deadline passed"),
    _answer(ShuttingDown, "the server is stopping; `Retry-After`"),
    _answer(ActorCrashed, "a part of the router failed while handling the request (a bug)"),
    ErrorAnswer(500, INTERNAL_ERROR, "no CallboardError", "a bug; its text is not sent"),
)

#: The codes of one attempt, in the ``attempts`` of a ``request_failed`` body (not
#: ``attempt_failed``: the base's, which no attempt fails with).
ATTEMPT_CODES = tuple(c.value for c in ErrorCode if c is not ErrorCode.ATTEMPT_FAILED)
