"""A workload from traces: each observed request enters the simulated router again.

`callboard compare` asks how far the simulated fleet is from what happened; for that the
simulation must differ from the traces only by the model of the fleet. So the arrivals
are not drawn: each observed request is sent at its observed start (virtual seconds),
with its observed kind, conversation, prompt size and answer length. A conversation is
one :class:`~actors.session.InterviewSession` (not started as an actor: only its
``complete`` is used), so session affinity sees where its earlier turns went; its prompt
is the observed one, whole, since the observed input tokens already count the history.

Each request bypasses the response cache: an observed cache hit never reached the fleet,
so it is not replayed at all (:mod:`sims.compare` leaves those out on both sides), and a
replayed request must not be answered by a hit the real router never had.
"""

from __future__ import annotations

import attrs
import trio

from actors.messages import ChatMessage, ChatRequest
from actors.runtime import clock
from actors.runtime.errors import CallboardError, InvalidSetting
from actors.session import InterviewSession
from engine.routing.router import Router
from sims.interview import InterviewTally

#: Tokens a one-message prompt counts besides its text (``estimate_tokens``).
_MESSAGE_TOKENS = 4


@attrs.frozen
class Arrival:
    """One observed request, as the replay sends it again."""

    #: Seconds from the traces' first request.
    start: float
    #: The turn kind (``chat`` when the trace named none).
    kind: str
    #: The conversation it belongs to (None: a request of its own).
    session: str | None
    #: The prompt's size in tokens.
    input_tokens: int
    #: The answer's length in tokens (None: unknown, the account's model draws one).
    output_tokens: int | None


def prompt(index: int, input_tokens: int) -> tuple[ChatMessage, ...]:
    """One user message counted as ``input_tokens`` prompt tokens (at least the four a
    message costs), its head tagged with ``index`` so no two requests are the same text."""
    head = f"[{index}] "
    chars = 4 * max(0, input_tokens - _MESSAGE_TOKENS)
    return (ChatMessage("user", head, max(0, chars - len(head))),)


@attrs.frozen
class TraceWorkload:
    """Observed arrivals, sent through the router at their times (a runner's workload)."""

    arrivals: tuple[Arrival, ...]
    #: Whether answers are streamed (traces do not say; the scenario's workload does).
    stream: bool = True
    max_tokens: int | None = None

    def __attrs_post_init__(self) -> None:
        if not self.arrivals:
            raise InvalidSetting("traces", "no requests", "traces with at least one request")
        starts = [a.start for a in self.arrivals]
        if starts != sorted(starts) or starts[0] < 0:
            raise InvalidSetting("arrivals", starts[:3], "sorted starts >= 0 seconds")

    @property
    def conversations(self) -> int:
        return len({a.session for a in self.arrivals if a.session is not None}) + sum(
            1 for a in self.arrivals if a.session is None
        )

    def request(self, index: int, arrival: Arrival) -> ChatRequest:
        return ChatRequest(
            messages=prompt(index, arrival.input_tokens),
            kind=arrival.kind,
            bypass_cache=True,
            expected_output_tokens=arrival.output_tokens,
            max_tokens=self.max_tokens,
            stream=self.stream,
        )

    async def play(self, router: Router, tally: InterviewTally, duration: float) -> None:
        """Send every arrival at its time until all end or ``duration``; the tally counts
        conversations as the interview workload counts interviews."""
        sessions: dict[str, InterviewSession] = {}
        book = _Book(tally)
        with trio.move_on_after(duration):
            async with trio.open_nursery() as nursery:
                for index, arrival in enumerate(self.arrivals):
                    name = arrival.session
                    if name is None:
                        session = None
                        name = f"request-{index}"
                    else:
                        session = sessions.get(name)
                        if session is None:
                            session = sessions[name] = InterviewSession(name, router)
                    book.expect(name)
                    nursery.start_soon(self._send, router, index, arrival, session, name, book)

    async def _send(
        self,
        router: Router,
        index: int,
        arrival: Arrival,
        session: InterviewSession | None,
        name: str,
        book: _Book,
    ) -> None:
        await clock.sleep_until(arrival.start)
        book.began(name)
        request = self.request(index, arrival)
        failed = False
        try:
            if session is None:
                await router.complete(request)
            else:
                await session.complete(request)
        except CallboardError:
            failed = True
        book.ended(name, failed)


@attrs.define
class _Book:
    """Each conversation's requests left, first start and errors, into the tally."""

    tally: InterviewTally
    left: dict[str, int] = attrs.Factory(dict)
    first: dict[str, float] = attrs.Factory(dict)
    errors: dict[str, int] = attrs.Factory(dict)

    def expect(self, name: str) -> None:
        self.left[name] = self.left.get(name, 0) + 1

    def began(self, name: str) -> None:
        if name not in self.first:
            self.first[name] = clock.now()
            self.tally.started += 1

    def ended(self, name: str, failed: bool) -> None:
        self.errors[name] = self.errors.get(name, 0) + failed
        self.left[name] -= 1
        if self.left[name]:
            return
        errors = self.errors[name]
        tally = self.tally
        tally.completed += 1
        tally.errors += errors
        tally.with_error += errors > 0
        tally.durations.append(clock.now() - self.first[name])
