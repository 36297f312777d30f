"""How one attempt against one provider fails; the router may retry or fail over."""

from __future__ import annotations

from actors.failures import ErrorCode
from actors.runtime.errors import CallboardError


class AttemptError(CallboardError):
    """One attempt against one provider failed; the router may retry or fail over."""

    code = ErrorCode.ATTEMPT_FAILED
    #: Whether another attempt (on this or another provider) may succeed.
    retryable = True

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider


class RateLimited(AttemptError):
    """HTTP 429: a rate limit or quota refused the request."""

    code = ErrorCode.RATE_LIMITED
    status = 429
    #: Always known (the limit's or the provider's own wait): narrower than the base's
    #: ``float | None``, and never set to None, which pyright's invariance rule guards.
    retry_after: float

    def __init__(self, provider: str, limit: str, retry_after: float) -> None:
        super().__init__(provider, f"{limit} limit reached; retry after {retry_after:.3f} s")
        self.limit = limit
        self.retry_after = retry_after  # pyright: ignore[reportIncompatibleVariableOverride]


class UpstreamError(AttemptError):
    """HTTP 5xx (or another unexpected status) from the provider."""

    code = ErrorCode.UPSTREAM_ERROR
    status = 502

    def __init__(self, provider: str, upstream_status: int, detail: str = "") -> None:
        super().__init__(provider, f"HTTP {upstream_status} {detail}".rstrip())
        self.upstream_status = upstream_status


class BackendFailed(UpstreamError):
    """The backend raised something other than an AttemptError (a bug, or an upstream
    behaviour no check foresaw): a failed attempt of that provider like any other."""

    def __init__(self, provider: str, error: Exception) -> None:
        text = " ".join(str(error).split())[:200]
        detail = f"backend raised {type(error).__name__}" + (f": {text}" if text else "")
        AttemptError.__init__(self, provider, detail)
        self.upstream_status = 0
        self.error = error


class AttemptTimeout(AttemptError):
    """The provider kept silent past a limit of :class:`~actors.timeouts.Timeouts`: no
    first byte of its response in ``first_byte`` seconds, or no byte for ``idle``."""

    code = ErrorCode.TIMEOUT
    status = 504

    def __init__(self, provider: str, timeout: float, phase: str = "first_byte") -> None:
        if phase == "idle":
            text = f"no byte for {timeout:g} s within the response (timeouts.idle)"
        else:
            text = f"no first byte within {timeout:g} s (timeouts.first_byte)"
        super().__init__(provider, text)
        self.timeout = timeout
        #: Which limit it was: ``first_byte`` or ``idle``.
        self.phase = phase


class AnswerCapReached(AttemptError):
    """The router's own cap on an attempt's duration (``timeouts.total``) cut an answer
    that was still coming. Not the provider's failure: breakers and health ignore it.

    Not retried: another attempt at the same answer would take as long.
    """

    code = ErrorCode.ANSWER_CAP
    status = 504
    retryable = False

    def __init__(self, provider: str, cap: float) -> None:
        super().__init__(provider, f"answer cut at the router's cap of {cap:g} s (timeouts.total)")
        self.cap = cap


class ProviderOverloaded(AttemptError):
    """The provider is short of capacity for everyone (Anthropic's 529 ``overloaded_error``,
    OpenAI-style 503 "overloaded"): not this account's limit, not a fault of its own.

    The account cools down for ``retry_after`` (the provider's Retry-After; None when it
    gave none, and the account's ``retry.overload_cooldown`` applies) and the request
    fails over at once.
    """

    code = ErrorCode.OVERLOADED
    status = 503

    def __init__(self, provider: str, retry_after: float | None, detail: str = "") -> None:
        text = "overloaded" if retry_after is None else f"overloaded; Retry-After {retry_after:g} s"
        super().__init__(provider, f"{text} ({detail})" if detail else text)
        self.retry_after = retry_after


class DeadlineReached(AttemptError):
    """The request's own deadline cut the attempt off: the provider is not to blame.

    It moves neither the provider's breaker nor its health, and the request ends
    (its deadline has passed), so it is not retried.
    """

    code = ErrorCode.DEADLINE
    status = 504
    retryable = False

    def __init__(self, provider: str, after: float) -> None:
        super().__init__(provider, f"the request's deadline came {after:g} s into the attempt")
        self.after = after


class MalformedReply(AttemptError):
    """The provider answered, but not with a usable completion."""

    code = ErrorCode.MALFORMED_REPLY
    status = 502


class AuthFailed(AttemptError):
    """HTTP 401/403: the key is revoked or wrong; that account is disabled."""

    code = ErrorCode.AUTH_FAILED
    status = 502


class QueueFull(AttemptError):
    """The provider's concurrency queue is full; try another provider."""

    code = ErrorCode.QUEUE_FULL
    status = 503


class CircuitOpen(AttemptError):
    """The provider's breaker refused the call (quarantined, or its trial is out)."""

    code = ErrorCode.CIRCUIT_OPEN
    status = 503
