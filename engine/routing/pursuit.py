"""One request on its way through its attempts: what it tried, what it must avoid, how
long it waited.

The router and a hedge both record failed attempts here (:meth:`Pursuit.attempt_failed`),
so the bookkeeping of a failure is written once. The waiting line keeps its place
for the request here too (``place``, ``had_turn``): the line's own business, which the
router never reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors.errors import AttemptError, RateLimited

if TYPE_CHECKING:
    from actors.messages import ChatRequest
    from actors.session import InterviewSession
    from engine.routing.waiting import ClassLine


class Pursuit:
    """One request on its way through the attempts: what it tried, what it must avoid."""

    # Slots, not attrs: one is made per request, and its fields are read on every pass.
    __slots__ = (
        "avoid",
        "deadline",
        "errors",
        "failed",
        "had_turn",
        "limit_wait",
        "place",
        "request",
        "request_id",
        "retries",
        "seq",
        "session",
        "slot_wait",
        "start",
    )

    def __init__(
        self,
        request: ChatRequest,
        request_id: str,
        session: InterviewSession | None,
        start: float,
        deadline: float,
        seq: int,
    ) -> None:
        self.request = request
        self.request_id = request_id
        self.session = session
        self.start = start
        self.deadline = deadline
        self.seq = seq  # its arrival order, for the priority line's ties
        self.errors: list[AttemptError] = []
        self.avoid: dict[str, float] = {}  # provider -> until when (a 429's Retry-After)
        self.failed: set[str] = set()  # providers that failed this request
        self.retries = 0
        self.place: ClassLine | None = None  # the first-come line it waits in, until dispatched
        self.had_turn = False  # it was let go to look, so it keeps its place if it waits on
        self.slot_wait = 0.0  # seconds in line while a provider was only busy (every slot)
        self.limit_wait = 0.0  # seconds in line for a rate limit, cool-down or quarantine

    def attempt_failed(self, exc: AttemptError, provider: str, end: float) -> None:
        """Provider ``provider``'s attempt failed with ``exc`` at ``end``: a 429 is avoided
        until its Retry-After, any other failure marks the provider as failed for this
        request."""
        self.errors.append(exc)
        if isinstance(exc, RateLimited):
            self.avoid[provider] = end + exc.retry_after
        else:
            self.failed.add(provider)

    def waited(self, seconds: float, busy: bool) -> None:
        """Book ``seconds`` in line: for a slot when a provider was merely busy, else for
        a limit (the timers: rate limits, cool-downs, quarantines)."""
        if busy:
            self.slot_wait += seconds
        else:
            self.limit_wait += seconds
