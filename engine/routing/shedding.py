"""Priorities and load shedding: the ``"priority"`` discipline of the router's waiting
line (:class:`engine.routing.waiting.WaitingLine`), the default in both worlds.

When no provider can take a request now (every account rate-limited, full,
quarantined), the request waits in line against its deadline. The line is ordered
by the request's ``priority`` (0 first, then 1, ...; first come first served within
a priority), and a request is shed at once, with a Retry-After, when the line ahead
of it would not clear before its deadline with a typical service time (measured:
dispatch to answer) to spare. How fast the line clears is measured: the attempts the
router sent over the last ``rate_window`` seconds. A higher-priority arrival pushes
lower-priority waiters back; those that can no longer make their deadline are shed,
lowest priority and newest first.

The line is bounded (``max_waiting``): when it is full, a newcomer that outranks the
worst waiter takes its place (that one is shed), and any other is refused at once
with :class:`~engine.routing.errors.LineFull` and a Retry-After, so overload costs
bounded memory and never a hung client.

Only one waiter (the timer) sleeps until the soonest moment a provider could take
a request; the others park until woken, so a long line costs no rescans. The router
tells the line when a call's end frees what a waiting request could use
(:meth:`PriorityLine.freed`), so a freed slot is seen then, whichever of the two tasks
trio runs first when that moment is also the timer's.
"""

from __future__ import annotations

import bisect
import math
from typing import TYPE_CHECKING

import trio

from actors.errors import AttemptError
from actors.runtime import clock
from engine.routing.errors import LineFull, Shed
from engine.routing.retry import SlidingCount

if TYPE_CHECKING:
    from engine.routing.pursuit import Pursuit
    from engine.routing.waiting import LineConfig

Key = tuple[int, int]  # (priority, arrival sequence)


class _Waiter:
    __slots__ = ("deadline", "event", "key", "shed_after")

    def __init__(self, key: Key, deadline: float) -> None:
        self.key = key
        self.deadline = deadline
        self.event = trio.Event()
        self.shed_after: float | None = None  # set when shed: the estimated wait


class PriorityLine:
    """The waiting line by priority, shedding what would not get its turn in time."""

    def __init__(self, config: LineConfig) -> None:
        self.config = config
        self._keys: list[Key] = []
        self._waiters: list[_Waiter] = []
        self._timer_taken = False
        self._timer_key: Key = (0, 0)  # the timer's place in line, while it sleeps
        self._timer_until = 0.0  # when it wakes: the soonest a provider could take a request
        self._timer_scope = trio.CancelScope()
        self._timer_shed: float | None = None  # set when the timer was shed: the estimate
        self._sent = SlidingCount(config.rate_window)
        self._since: float | None = None
        #: Typical seconds from dispatch to answer (EWMA): a request that would get its turn
        #: with less than that left before its deadline is shed now, not failed then.
        self.service = 0.0
        self.shed = 0
        # The latest deadline of a request that waited since the line was last empty.
        self._latest = -math.inf

    def __len__(self) -> int:
        return len(self._waiters) + (self._timer_taken and self._timer_shed is None)

    # --- the drain rate -------------------------------------------------------
    def rate(self, now: float) -> float:
        """Attempts sent per second lately (0 before the first one)."""
        if self._since is None:
            return 0.0
        self._sent.advance(now)
        span = min(self.config.rate_window, max(1.0, now - self._since))
        return self._sent.total / span

    def dispatched(self, pursuit: Pursuit, now: float) -> None:
        """An attempt is going out: count it, and let the best waiter look for capacity too."""
        if self._since is None:
            self._since = now
        self._sent.add(now)
        if self._waiters and not self._timer_taken:
            self._wake(0)

    def answered(self, seconds: float) -> None:
        """A dispatched request was answered after ``seconds``."""
        service = self.service
        self.service = seconds if not service else service + 0.1 * (seconds - service)

    def freed(self) -> None:
        """A call ended and its slot is free: the best request in line looks now.

        Without this the line would only see the slot when the timer's estimate runs
        out, and when that moment equals the call's end the slot is seen, or missed
        for a whole estimate, depending on which of the two tasks trio runs first.
        """
        if self._timer_taken:
            if self._timer_shed is None:
                self._timer_scope.cancel()  # the timer looks now (not shed: it just wakes)
        elif self._waiters:
            self._wake(0)

    def latest_deadline(self) -> float:
        return self._latest if len(self) else -math.inf

    def left(self, pursuit: Pursuit) -> None:
        """A request gave up (or was answered) without dispatching: if nobody keeps the
        time, let the best waiter look, so the line never stalls."""
        if self._waiters and not self._timer_taken:
            self._wake(0)

    def others_first(self, pursuit: Pursuit) -> bool:
        """Never: a newcomer looks for a provider at once, and when it must wait its
        priority decides its place (:meth:`dispatched` lets the best waiter look too)."""
        return False

    # --- waiting --------------------------------------------------------------
    async def wait(self, pursuit: Pursuit, soonest: float, busy: bool) -> None:
        """Wait for a chance at capacity; raise :class:`Shed` if it would come too late.

        ``soonest`` is when a timer frees a provider (inf when only a call's end will:
        :meth:`freed` wakes the line then). Returns when the caller should look for a
        provider again (or its deadline passed, which the caller checks).
        """
        # One frame, not a helper: each frame between the waiter and the clock is resumed
        # on every wake-up.
        began = now = clock.now()
        try:
            request_id, deadline, errors = pursuit.request_id, pursuit.deadline, pursuit.errors
            self._latest = deadline if not len(self) else max(self._latest, deadline)
            key = (pursuit.request.priority, pursuit.seq)
            rate = self.rate(now)
            # Estimates count from the timer, or from now when a call's end frees capacity
            # (the drain rate then says how fast the line moves).
            head_start = soonest if soonest < math.inf else 0.0
            if len(self) >= self.config.max_waiting:
                self._make_room(request_id, key, head_start, rate, errors)
            if rate > 0:
                estimate = head_start + self._ahead(key, bisect.bisect_left(self._keys, key)) / rate
                if now + estimate + self.service >= deadline:
                    self.shed += 1
                    raise Shed(request_id, errors, estimate)
            if not self._timer_taken:
                self._timer_taken = True
                self._timer_key = key
                self._timer_until = now + soonest
                self._timer_shed = None
                try:
                    with trio.CancelScope() as self._timer_scope:
                        await clock.sleep(min(soonest, deadline - now))
                except BaseException:
                    self._timer_taken = False
                    if self._waiters:
                        self._wake(0)  # someone else keeps the time
                    raise
                self._timer_taken = False
                if self._timer_shed is not None:  # a better request took its place in the full line
                    if self._waiters:
                        self._wake(0)
                    raise Shed(request_id, errors, self._timer_shed)
                if not self._waiters or key < self._keys[0]:
                    return  # the best in line looks first
                self._wake(0)  # a better request looks first; this one waits its turn
                # Better requests came while this one kept the time: it may be too late now.
                now = clock.now()
                rate = self.rate(now)
                if rate > 0:
                    # Ahead: the parked ones before it, and the one just woken to look first.
                    estimate = (bisect.bisect_left(self._keys, key) + 1) / rate
                    if now + estimate + self.service >= deadline:
                        self.shed += 1
                        raise Shed(request_id, errors, estimate)
            waiter = _Waiter(key, deadline)
            index = bisect.bisect_left(self._keys, key)
            self._keys.insert(index, key)
            self._waiters.insert(index, waiter)
            if rate > 0 and index < len(self._waiters) - 1:
                self._shed_overtaken(index, now, rate)
            try:
                with trio.move_on_at(deadline):
                    await waiter.event.wait()
            finally:
                if not waiter.event.is_set():
                    self._remove(waiter)
            if waiter.shed_after is not None:
                raise Shed(request_id, errors, waiter.shed_after)
        finally:
            pursuit.waited(clock.now() - began, busy)

    def _make_room(
        self, request_id: str, key: Key, soonest: float, rate: float, errors: list[AttemptError]
    ) -> None:
        """The line is full: shed its worst request (a parked one, or the one keeping the
        time) if ``key`` outranks it, else refuse ``key``."""
        estimate = soonest + (len(self) / rate if rate > 0 else 0.0)
        timer = self._timer_taken and self._timer_shed is None
        worst = self._keys[-1] if self._waiters else None
        self.shed += 1
        if timer and (worst is None or self._timer_key > worst) and key < self._timer_key:
            self._timer_shed = estimate
            self._timer_scope.cancel()
        elif worst is not None and key < worst:
            self._wake(len(self._waiters) - 1).shed_after = estimate
        else:
            raise LineFull(request_id, errors, len(self), estimate)

    def _ahead(self, key: Key, index: int) -> int:
        """Requests that get capacity before the one with ``key`` at ``index`` in line."""
        return index + (self._timer_taken and self._timer_key < key)

    def _wake(self, index: int) -> _Waiter:
        self._keys.pop(index)
        waiter = self._waiters.pop(index)
        waiter.event.set()
        return waiter

    def _remove(self, waiter: _Waiter) -> None:
        index = bisect.bisect_left(self._keys, waiter.key)
        if index < len(self._waiters) and self._waiters[index] is waiter:
            self._keys.pop(index)
            self._waiters.pop(index)

    def _shed_overtaken(self, index: int, now: float, rate: float) -> None:
        """Shed the waiters behind ``index`` (just overtaken) that can no longer make
        their deadline.

        Each one is checked: deadlines need not grow along the line (an old request
        of low priority sits ahead of newer ones of its class), so the first from the
        back that still fits says nothing about those ahead of it. This costs one pass
        over the overtaken part of the line per overtaking arrival, and none when a
        request joins at the back.
        """
        next_free = max(0.0, self._timer_until - now) if self._timer_taken else 0.0
        if next_free == math.inf:
            next_free = 0.0  # the timer waits for a call's end: the drain rate tells
        timer_ahead = self._timer_taken and self._timer_shed is None
        keys, waiters = self._keys, self._waiters
        kept_keys: list[Key] = keys[: index + 1]
        kept: list[_Waiter] = waiters[: index + 1]
        shed: list[tuple[_Waiter, float]] = []
        for key, waiter in zip(keys[index + 1 :], waiters[index + 1 :], strict=True):
            ahead = len(kept) + (timer_ahead and self._timer_key < key)
            estimate = next_free + ahead / rate
            if now + estimate + self.service < waiter.deadline:
                kept_keys.append(key)
                kept.append(waiter)
            else:
                shed.append((waiter, estimate))
        if not shed:
            return
        self._keys, self._waiters = kept_keys, kept
        self.shed += len(shed)
        for waiter, estimate in reversed(shed):  # lowest priority and newest first
            waiter.shed_after = estimate
            waiter.event.set()
