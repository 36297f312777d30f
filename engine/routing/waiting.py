"""The router's waiting line: where a request waits while no provider can take it.

The router holds one :class:`WaitingLine` and never asks which discipline it is; the
``[line]`` table's ``discipline`` (:class:`LineConfig`) picks one of two:

- ``"priority"`` (:class:`engine.routing.shedding.PriorityLine`): ordered by priority,
  and a request that could not get its turn before its deadline is shed at once, with
  a Retry-After;
- ``"fifo"`` (:class:`FirstComeFirstServed`): requests of one class (same model and
  tier need, first try or retry: requests every provider treats alike) are served in
  arrival order, each held to its deadline.

The default is the same in both worlds, the deployed router's (priority with
shedding), so a fleet is sized under the discipline it will be deployed with.

Both are bounded (``max_waiting``: a newcomer past it is refused with
:class:`~engine.routing.errors.LineFull` and a Retry-After) and both are woken by
events, never by polling: one waiter keeps the time (sleeps until the soonest moment a
timer frees a provider), the others park, and the router tells the line when a call's
end frees an account a waiting request could use (:meth:`WaitingLine.freed`; with a board,
an account that stays busy or rests past every deadline in line wakes nobody).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

import attrs
import trio

from actors.runtime import clock
from actors.runtime.errors import require
from engine.routing.errors import LineFull
from engine.routing.selection import needs_strong
from engine.routing.shedding import PriorityLine

if TYPE_CHECKING:
    from actors.provider import Provider
    from engine.routing.policies import PolicyConfig
    from engine.routing.pursuit import Pursuit


#: The line's disciplines, by the name a ``[line]`` table gives them.
DISCIPLINES = ("priority", "fifo")


@attrs.frozen
class LineConfig:
    """The router's waiting line, with one default for the live router and the simulator
    (the deployed router's), so a fleet is sized under the discipline it is deployed with."""

    #: "priority": by the request's priority, shedding at once (with a Retry-After) what
    #: would not get its turn before its deadline; "fifo": first come first served per class
    #: of request, each held to its deadline. The same default live and simulated.
    discipline: str = "priority"
    #: Requests that may wait at once; a newcomer past it is refused (503 overloaded, with
    #: a Retry-After), unless under "priority" it outranks the worst waiter.
    max_waiting: int = 10_000
    #: Seconds of recent dispatches the "priority" line measures how fast it drains over.
    rate_window: float = 60.0

    def __attrs_post_init__(self) -> None:
        require(
            "line.discipline",
            self.discipline in DISCIPLINES,
            self.discipline,
            " | ".join(DISCIPLINES),
        )
        require(
            "line.rate_window", 0 < self.rate_window < math.inf, self.rate_window, "> 0 seconds"
        )
        require(
            "line.max_waiting",
            not isinstance(self.max_waiting, bool)
            and isinstance(self.max_waiting, int)
            and self.max_waiting >= 1,
            self.max_waiting,
            "an integer >= 1",
        )


class WaitingLine(Protocol):
    """What the router asks of its line, whatever the discipline."""

    def __len__(self) -> int:
        """Requests waiting in line."""
        ...

    def others_first(self, pursuit: Pursuit) -> bool:
        """Whether requests already waiting go before ``pursuit``, so it waits its turn
        (:meth:`wait` with ``soonest`` inf) before it even looks for a provider."""
        ...

    async def wait(self, pursuit: Pursuit, soonest: float, busy: bool) -> None:
        """Wait until ``pursuit`` should look for a provider again, booking the wait.

        ``soonest``: seconds until a timer frees a provider (inf when only a call's
        end will); ``busy``: a provider is merely busy (a slot), not limited. Returns
        when it should look again (or its deadline passed, which the caller checks);
        raises a :class:`~engine.routing.errors.NoProviderAvailable` when the line
        refuses or sheds it.
        """
        ...

    def dispatched(self, pursuit: Pursuit, now: float) -> None:
        """``pursuit`` leaves the line for a provider at ``now``."""
        ...

    def left(self, pursuit: Pursuit) -> None:
        """``pursuit`` ended (answered, given up, cancelled): the line moves on without it."""
        ...

    def freed(self) -> None:
        """A call ended and freed what a waiting request may need: the line looks now."""
        ...

    def latest_deadline(self) -> float:
        """The latest deadline of the requests waiting in line (-inf when none waits): a
        call's end on an account that could not answer before it need not wake the line."""
        ...

    def answered(self, seconds: float) -> None:
        """A request was answered ``seconds`` after it was dispatched."""
        ...


class ClassLine:
    """Requests of one class waiting for a provider, first come first served.

    The head parks in ``head`` until its soonest timer or until a call ends (the line
    unparks it); the others park in ``parked`` in arrival order. One is let go to
    look (:meth:`pass_on`) when the head leaves, so someone always keeps the time.
    """

    __slots__ = ("busy", "head", "head_taken", "parked")

    def __init__(self) -> None:
        self.head = trio.lowlevel.ParkingLot()
        self.parked = trio.lowlevel.ParkingLot()
        self.head_taken = False
        self.busy = False  # what the head waits for: a call's end (True) or a timer

    def __len__(self) -> int:
        return len(self.parked) + self.head_taken

    def pass_on(self) -> None:
        """Let the next waiter look, unless a head keeps the time already."""
        if self.parked and not self.head_taken:
            self.parked.unpark()


class FirstComeFirstServed:
    """First come first served within each class of request, held to the deadline."""

    def __init__(
        self, config: LineConfig, providers: list[Provider], tiers: PolicyConfig | None
    ) -> None:
        self.max_waiting = config.max_waiting
        self._providers = providers  # for the drain estimate of a refusal's Retry-After
        self._tiers = tiers
        self._lines: dict[tuple[str, bool, bool], ClassLine] = {}
        # The latest deadline of a request that waited since the line was last empty.
        self._latest = -math.inf

    def __len__(self) -> int:
        return sum(len(line) for line in self._lines.values())

    def _line_of(self, pursuit: Pursuit) -> ClassLine:
        """The line of the request's class: requests that every provider treats alike."""
        request = pursuit.request
        key = (
            request.model,
            needs_strong(request, self._tiers),
            bool(pursuit.avoid or pursuit.failed),
        )
        line = self._lines.get(key)
        if line is None:
            line = self._lines[key] = ClassLine()
        return line

    def others_first(self, pursuit: Pursuit) -> bool:
        if pursuit.place is not None:
            return False  # it waits in line already, and was let go to look
        line = self._line_of(pursuit)
        return line.head_taken or bool(line.parked)

    async def wait(self, pursuit: Pursuit, soonest: float, busy: bool) -> None:
        """The head sleeps until the soonest timer or until a call ends; the others park
        in arrival order and are let go one at a time (:meth:`ClassLine.pass_on`)."""
        began = clock.now()
        self._latest = pursuit.deadline if not len(self) else max(self._latest, pursuit.deadline)
        line = pursuit.place
        if line is None:
            line = self._line_of(pursuit)
            waiting = len(self)
            if waiting >= self.max_waiting:
                retry_after = soonest if soonest < math.inf else self._drain_estimate(waiting)
                raise LineFull(pursuit.request_id, pursuit.errors, waiting, retry_after)
            pursuit.place = line
        if line.head_taken or (line.parked and not pursuit.had_turn):
            try:
                with trio.move_on_at(pursuit.deadline):
                    await line.parked.park()
            finally:
                pursuit.had_turn = True
                pursuit.waited(clock.now() - began, line.busy)
            return
        line.head_taken = True
        line.busy = busy
        try:
            with trio.move_on_at(min(began + soonest, pursuit.deadline)):
                await line.head.park()
        finally:
            line.head_taken = False
            pursuit.had_turn = True
            pursuit.waited(clock.now() - began, busy)

    def _drain_estimate(self, waiting: int) -> float:
        """Seconds until the line would clear if every account's slots turned over at its
        typical service time (a Retry-After for a request refused by a full line)."""
        rate = sum(
            p.slots.capacity / p.typical_service for p in self._providers if p.typical_service > 0
        )
        return (waiting + 1) / rate if rate > 0 else 1.0

    def dispatched(self, pursuit: Pursuit, now: float) -> None:
        line = pursuit.place
        if line is not None:
            # Capacity is free: let the next waiting request look too, so a burst
            # of capacity (a window reset) drains the line instead of one slot.
            line.pass_on()
            pursuit.place = None
            pursuit.had_turn = False

    def left(self, pursuit: Pursuit) -> None:
        if pursuit.place is not None:
            pursuit.place.pass_on()

    def freed(self) -> None:
        for line in self._lines.values():
            if line.head_taken:
                line.head.unpark()

    def latest_deadline(self) -> float:
        return self._latest if len(self) else -math.inf

    def answered(self, seconds: float) -> None:
        """First come first served needs no service time: it sheds nothing."""


def open_line(
    config: LineConfig, providers: list[Provider], tiers: PolicyConfig | None
) -> WaitingLine:
    """The waiting line of ``config``'s discipline, for a router over ``providers``."""
    if config.discipline == "priority":
        return PriorityLine(config)
    return FirstComeFirstServed(config, providers, tiers)
