"""Clocks: trio's own for the live world, a virtual one for simulations.

Every wait in callboard goes through :func:`sleep` / :func:`sleep_until`, so the
same code runs on real time (trio's ``SystemClock``) and on virtual time
(:class:`VirtualClock`), where time jumps to the next event as soon as every
task is blocked.
"""

from __future__ import annotations

import heapq
import math
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio
from trio.lowlevel import (
    Abort,
    Task,
    checkpoint,
    current_clock,
    current_task,
    reschedule,
)

from actors.runtime.trio_hooks import park, pinned_trio_scheduling, tuned_loop

T = TypeVar("T")

# How long trio may block on I/O when no timer of ours and no trio deadline is
# pending. A simulation always holds a timer for its end, so this only matters
# for tests that mix the virtual clock with real I/O.
_IDLE_IO_WAIT_S = 86400.0


class VirtualClock(trio.abc.Clock):
    """A trio clock whose time jumps to the next event when every task is blocked.

    Why not ``trio.testing.MockClock(autojump_threshold=0)``: it jumps through a
    system task woken by ``wait_all_tasks_blocked``, which costs ~64 µs per timed
    event here. This clock keeps its own timers and wakes them from
    :meth:`deadline_to_sleep_time`, which trio calls exactly when its run queue
    is empty. Trio's own deadlines (``move_on_after``, ``fail_after``, plain
    ``trio.sleep``) keep working: the clock jumps to whichever comes first.

    The timers are a heap of distinct wake-up times (plain floats: a float
    comparison is several times cheaper than comparing ``[when, seq, task]``
    entries, and a heap operation makes a dozen of them) beside a dict from each
    time to the tasks sleeping until it, in arrival order, so ties wake in
    arrival order, never by ``id()``.

    ``trio.testing.wait_all_tasks_blocked`` cannot see idleness on this clock
    while any timer is pending (time jumps instead); sleep past the moment of
    interest instead.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._times: list[float] = []
        # A time's sleeper itself, or a list of them in arrival order when several share
        # it: a list per sleeper cost ~100 bytes for each of thousands of sleeping tasks.
        self._sleepers: dict[float, Task | list[Task]] = {}
        self.timed_events = 0

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        return self._now

    def deadline_to_sleep_time(self, deadline: float) -> float:
        times = self._times
        while times and times[0] <= deadline:
            when = heapq.heappop(times)
            sleepers = self._sleepers.pop(when, None)
            if sleepers:  # none or empty when every sleeper of that time was cancelled
                if when > self._now:
                    self._now = when
                if isinstance(sleepers, list):
                    self.timed_events += len(sleepers)
                    for task in sleepers:
                        reschedule(task)
                else:
                    self.timed_events += 1
                    reschedule(sleepers)
                return 0.0
        if deadline == math.inf:
            return _IDLE_IO_WAIT_S
        if deadline > self._now:
            self._now = deadline
        return 0.0

    def _arm(self, when: float) -> _Unarm:
        """Put the calling task to sleep until ``when`` (> now); returns its abort."""
        task = current_task()
        if when != math.inf:  # an endless sleep is never woken by time; only a cancel ends it
            sleepers = self._sleepers
            present = sleepers.get(when)
            if present is None:
                sleepers[when] = task
                heapq.heappush(self._times, when)
            elif isinstance(present, list):
                present.append(task)
            else:
                sleepers[when] = [present, task]
        return _Unarm(self, when, task)

    async def sleep_until(self, when: float) -> None:
        """Park the calling task until virtual time reaches ``when``."""
        if when <= self._now:
            await checkpoint()
            return
        await park(self._arm(when))


class _Unarm:
    """A sleeper's abort: takes it off its clock's sleepers when it is cancelled.

    An object of three slots rather than a closure: ~56 bytes against ~150, held by each
    of thousands of sleeping tasks. A time left with no sleeper stays on the heap and is
    passed over when it comes up.
    """

    __slots__ = ("clock", "task", "when")

    def __init__(self, clock: VirtualClock, when: float, task: Task) -> None:
        self.clock = clock
        self.when = when
        self.task = task

    def __call__(self, _: object) -> Abort:
        sleepers = self.clock._sleepers
        present = sleepers.get(self.when)
        if present is self.task:
            del sleepers[self.when]
        elif isinstance(present, list):
            present.remove(self.task)
        return Abort.SUCCEEDED


class _Running(threading.local):
    #: The virtual clock of the run_virtual() call in progress on this thread, if any.
    clock: VirtualClock | None = None


# Reading it directly saves the run-context lookups of trio.current_time() on
# the simulator's hottest path; it is set and cleared only by run_virtual, so a
# later run on trio's own clock never sees a stale one.
_running = _Running()


def now() -> float:
    """Current time on whichever clock the running trio loop uses."""
    virtual = _running.clock
    if virtual is not None:
        return virtual._now
    return trio.current_time()


def sleep(seconds: float) -> Awaitable[None]:
    """Sleep on the running loop's clock (virtual or real): ``await clock.sleep(seconds)``.

    A function that returns what to await rather than a coroutine awaiting it: a virtual
    sleep is then one generator frame (:func:`~actors.runtime.trio_hooks.park`), ~190
    bytes less for each of thousands of sleeping interviews and a level less to resume
    on every wake-up of the simulator's most frequent wait. Its timer is armed when it is
    called, so it is awaited at once.
    """
    clock = _running.clock or current_clock()
    if type(clock) is not VirtualClock:
        return trio.sleep(seconds)
    if (when := clock._now + seconds) > clock._now:
        return park(clock._arm(when))
    return checkpoint()


async def sleep_until(when: float) -> None:
    """Sleep until an absolute time on the running loop's clock."""
    clock = _running.clock or current_clock()
    if type(clock) is VirtualClock:
        await clock.sleep_until(when)
    else:
        await trio.sleep_until(when)


def run_virtual(
    async_fn: Callable[..., Awaitable[T]],
    *args: Any,
    scheduling_seed: int = 0,
    start: float = 0.0,
) -> T:
    """Run ``async_fn`` on a fresh :class:`VirtualClock`, reproducibly.

    Trio's scheduling order is pinned from ``scheduling_seed`` for the duration
    of the run, so the same inputs give the same interleaving in any process.
    """
    clock = VirtualClock(start)
    if _running.clock is not None:
        raise RuntimeError("run_virtual() is already running on this thread")
    _running.clock = clock
    try:
        with pinned_trio_scheduling(scheduling_seed):
            return trio.run(tuned_loop, async_fn, *args, clock=clock)
    finally:
        _running.clock = None
