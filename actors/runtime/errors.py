"""The errors every layer shares: the base class, a bad setting, actors' own failures.

Each layer names its own failures beside its code (attempts in :mod:`actors.errors`,
requests in :mod:`engine.routing.errors`); :mod:`engine.errors` draws the whole tree and
:mod:`engine` exports it.
"""

from __future__ import annotations


class CallboardError(Exception):
    """Base of every error callboard raises on purpose."""

    #: Short machine-readable name, used in logs, metrics and results.
    code = "error"
    #: HTTP status the live surface answers with.
    status = 500
    #: Seconds after which trying again may succeed (a ``Retry-After``); None unless known.
    retry_after: float | None = None


class FieldError(CallboardError):
    """A value that cannot be used, named by its field, with what is allowed instead."""

    code = "invalid_value"
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


class InvalidSetting(FieldError):
    """A setting (scenario, config, command-line option) that cannot run; names its key."""

    code = "invalid_setting"


def require(field: str, ok: bool, value: object, allowed: str) -> None:
    """Raise :class:`InvalidSetting` for ``field`` unless ``ok``: every config check's form."""
    if not ok:
        raise InvalidSetting(field, value, allowed)


class Overloaded(CallboardError):
    """Capacity is exhausted (a full mailbox or queue); retry after ``retry_after`` s."""

    code = "overloaded"
    status = 503

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ActorCrashed(CallboardError):
    """An actor failed while handling a message; names the actor and the cause."""

    code = "actor_crashed"

    def __init__(self, actor: str, error: BaseException) -> None:
        super().__init__(f"actor {actor!r} crashed: {type(error).__name__}: {error}")
        self.actor = actor
        self.error = error


class ShuttingDown(CallboardError):
    """The server is stopping: it takes no new request, and after its grace period
    cancels those still running. Another replica (or this one, restarted) can take it."""

    code = "shutting_down"
    status = 503

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def leaves(error: BaseException) -> list[BaseException]:
    """The errors inside (nested) exception groups, in order; ``[error]`` if it is no group.

    A nursery wraps what its tasks raise in groups; one leaf is the error that happened.
    """
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]
