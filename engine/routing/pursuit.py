"""One request on its way through its attempts: what it tried, what it must avoid, how
long it waited.

The router and a hedge both record failed attempts here (:meth:`Pursuit.attempt_failed`),
so the bookkeeping of a failure is written once. The waiting line keeps its place
for the request here too (``place``, ``had_turn``): the line's own business, which the
router never reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from actors.errors import AttemptError, ProviderOverloaded, RateLimited

if TYPE_CHECKING:
    from actors.backends.sink import StreamSink
    from actors.messages import ChatRequest
    from actors.session import InterviewSession
    from engine.routing.waiting import ClassLine


@attrs.define(eq=False)
class Pursuit:
    """One request on its way through the attempts: what it tried, what it must avoid.

    An attrs class with slots (one is made per request, and its fields are read on every
    pass); the router fills the first six, the rest start empty.
    """

    request: ChatRequest
    request_id: str
    session: InterviewSession | None
    start: float
    deadline: float
    #: Its arrival order, for the priority line's ties.
    seq: int
    errors: list[AttemptError] = attrs.Factory(list)
    #: Provider -> until when to avoid it (a 429's Retry-After).
    avoid: dict[str, float] = attrs.Factory(dict)
    #: Providers that failed this request.
    failed: set[str] = attrs.Factory(set)
    retries: int = 0
    #: The first-come line it waits in, until dispatched.
    place: ClassLine | None = None
    #: It was let go to look, so it keeps its place if it waits on.
    had_turn: bool = False
    #: Seconds in line while a provider was only busy (every slot).
    slot_wait: float = 0.0
    #: Seconds in line for a rate limit, cool-down or quarantine.
    limit_wait: float = 0.0
    #: Where the answer streams to, if the caller streams it.
    sink: StreamSink | None = None

    def attempt_failed(self, exc: AttemptError, provider: str, end: float) -> None:
        """Provider ``provider``'s attempt failed with ``exc`` at ``end``: a 429 is avoided
        until its Retry-After, an overloaded account rests on its own (its cool-down), any
        other failure marks the provider as failed for this request."""
        self.errors.append(exc)
        if isinstance(exc, RateLimited):
            self.avoid[provider] = end + exc.retry_after
        elif not isinstance(exc, ProviderOverloaded):
            self.failed.add(provider)

    @property
    def answer_begun(self) -> bool:
        """Whether part of an answer already reached a caller who cannot take another
        from the start (a plain stream): no other attempt may follow."""
        sink = self.sink
        return sink is not None and sink.started and not sink.restartable

    def waited(self, seconds: float, busy: bool) -> None:
        """Book ``seconds`` in line: for a slot when a provider was merely busy, else for
        a limit (the timers: rate limits, cool-downs, quarantines)."""
        if busy:
            self.slot_wait += seconds
        else:
            self.limit_wait += seconds
