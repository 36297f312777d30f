"""Named errors. Every request that enters callboard ends answered or as one of these."""

from __future__ import annotations


class CallboardError(Exception):
    """Base of every error callboard raises on purpose."""

    #: Short machine-readable name, used in logs, metrics and results.
    code = "error"
    #: HTTP status the live surface answers with.
    status = 500


class InvalidRequest(CallboardError):
    """A request or a config value that cannot be served; names the field."""

    code = "invalid_request"
    status = 400

    def __init__(
        self, field: str, value: object, allowed: str, *, message: str | None = None
    ) -> None:
        shown = repr(value)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        # ``message`` for what "got <value>" cannot say: a missing field, unparseable JSON.
        super().__init__(message or f"{field}: got {shown}; allowed: {allowed}")
        self.field = field
        self.value = value
        self.allowed = allowed


def require(field: str, ok: bool, value: object, allowed: str) -> None:
    """Raise :class:`InvalidRequest` for ``field`` unless ``ok``: every config check's form."""
    if not ok:
        raise InvalidRequest(field, value, allowed)


class Overloaded(CallboardError):
    """Capacity is exhausted (a full mailbox or queue); retry after ``retry_after`` s."""

    code = "overloaded"
    status = 503

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ActorCrashed(CallboardError):
    """An actor failed while handling a message; names the actor and the cause."""

    code = "actor_crashed"

    def __init__(self, actor: str, error: BaseException) -> None:
        super().__init__(f"actor {actor!r} crashed: {type(error).__name__}: {error}")
        self.actor = actor
        self.error = error


# --- one attempt against one provider ---------------------------------------------


class AttemptError(CallboardError):
    """One attempt against one provider failed; the router may retry or fail over."""

    code = "attempt_failed"
    #: Whether another attempt (on this or another provider) may succeed.
    retryable = True

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider


class RateLimited(AttemptError):
    """HTTP 429: a rate limit or quota refused the request."""

    code = "rate_limited"
    status = 429

    def __init__(self, provider: str, limit: str, retry_after: float) -> None:
        super().__init__(provider, f"{limit} limit reached; retry after {retry_after:.3f} s")
        self.limit = limit
        self.retry_after = retry_after


class UpstreamError(AttemptError):
    """HTTP 5xx (or another unexpected status) from the provider."""

    code = "upstream_error"
    status = 502

    def __init__(self, provider: str, upstream_status: int, detail: str = "") -> None:
        super().__init__(provider, f"HTTP {upstream_status} {detail}".rstrip())
        self.upstream_status = upstream_status


class AttemptTimeout(AttemptError):
    """The provider did not answer within the per-attempt timeout."""

    code = "timeout"
    status = 504

    def __init__(self, provider: str, timeout: float) -> None:
        super().__init__(provider, f"no answer within {timeout:g} s")
        self.timeout = timeout


class MalformedReply(AttemptError):
    """The provider answered, but not with a usable completion."""

    code = "malformed_reply"
    status = 502


class AuthFailed(AttemptError):
    """HTTP 401/403: the key is revoked or wrong; that account is disabled."""

    code = "auth_failed"
    status = 502


class QueueFull(AttemptError):
    """The provider's concurrency queue is full; try another provider."""

    code = "queue_full"
    status = 503


class CircuitOpen(AttemptError):
    """The provider's breaker refused the call (quarantined, or its trial is out)."""

    code = "circuit_open"
    status = 503


# --- the outcome of a whole request -----------------------------------------------


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


class LineFull(NoProviderAvailable):
    """The router's line for a provider holds ``shedding.max_waiting`` requests already.

    The bound keeps memory flat under overload: past it a request is refused at
    once with a Retry-After (the line's estimated drain time) instead of waiting.
    """

    code = "overloaded"
    status = 503

    def __init__(
        self, request_id: str, attempts: list[AttemptError], waiting: int, retry_after: float
    ) -> None:
        RequestFailed.__init__(
            self,
            request_id,
            f"overloaded: {waiting} requests already wait for a provider (shedding.max_waiting)",
            attempts,
        )
        self.retry_after = retry_after


class ShuttingDown(CallboardError):
    """The server is stopping: it takes no new request, and after its grace period
    cancels those still running. Another replica (or this one, restarted) can take it."""

    code = "shutting_down"
    status = 503

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after
