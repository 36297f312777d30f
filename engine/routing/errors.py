"""How a request ends when it is not answered: each ends answered or as one of these."""

from __future__ import annotations

from actors.errors import AttemptError
from actors.runtime.errors import CallboardError, FieldError, Overloaded


class InvalidRequest(FieldError):
    """A chat request that cannot be served; names the field. No provider is called."""

    code = "invalid_request"


class RequestFailed(CallboardError):
    """The router gave up on a request; ``attempts`` lists what was tried."""

    code = "request_failed"
    status = 502

    def __init__(self, request_id: str, reason: str, attempts: list[AttemptError]) -> None:
        tried = "; ".join(str(a) for a in attempts) or "no attempt made"
        super().__init__(f"request {request_id}: {reason} ({tried})")
        self.request_id = request_id
        self.reason = reason
        self.attempts = attempts


class NoProviderAvailable(RequestFailed):
    """Every provider is quarantined, disabled or out of quota until past the deadline."""

    code = "no_provider"
    status = 503

    def __init__(
        self, request_id: str, attempts: list[AttemptError], retry_after: float | None
    ) -> None:
        super().__init__(request_id, "no provider can serve it before its deadline", attempts)
        self.retry_after = retry_after


class DeadlineExceeded(RequestFailed):
    """The request's overall deadline passed."""

    code = "deadline_exceeded"
    status = 504

    def __init__(self, request_id: str, deadline: float, attempts: list[AttemptError]) -> None:
        super().__init__(request_id, f"deadline of {deadline:g} s exceeded", attempts)
        self.deadline = deadline


class RetryBudgetExhausted(RequestFailed):
    """An attempt failed and the retry budget had no credit left for another one.

    Retries are capped at a share of traffic; past it, failing fast is better than
    multiplying the load on a provider that is already failing.
    """

    code = "retry_budget_exhausted"
    status = 503

    def __init__(
        self, request_id: str, attempts: list[AttemptError], retry_after: float | None = None
    ) -> None:
        RequestFailed.__init__(
            self, request_id, "retry budget exhausted after a failed attempt", attempts
        )
        self.retry_after = retry_after


class Shed(NoProviderAvailable):
    """Load shedding: waiting for capacity would not end before the request's deadline.

    Lower-priority requests are shed first; ``retry_after`` is the estimated wait.
    """

    code = "shed"
    status = 503

    def __init__(
        self, request_id: str, attempts: list[AttemptError], retry_after: float | None
    ) -> None:
        RequestFailed.__init__(
            self,
            request_id,
            "shed: the line for a provider would not clear before its deadline",
            attempts,
        )
        self.retry_after = retry_after


class LineFull(NoProviderAvailable, Overloaded):
    """The router's line for a provider holds ``line.max_waiting`` requests already.

    The bound keeps memory flat under overload: past it a request is refused at
    once with a Retry-After (the line's estimated drain time) instead of waiting.
    A request that found no provider, and capacity exhausted: either ``except`` catches it.
    """

    code = "overloaded"
    status = 503

    def __init__(
        self, request_id: str, attempts: list[AttemptError], waiting: int, retry_after: float
    ) -> None:
        RequestFailed.__init__(
            self,
            request_id,
            f"overloaded: {waiting} requests already wait for a provider (line.max_waiting)",
            attempts,
        )
        self.retry_after = retry_after
